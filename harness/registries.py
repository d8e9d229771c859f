"""The two registries of the harness. A new family adds its two packages to the built-in lists."""

from __future__ import annotations

from harness.components import Method, Task
from harness.registry import Registry

BUILTIN_TASK_MODULES = (
    "tasks.tabular",
    "tasks.poisoning.tasks",
    "tasks.distillation.tasks",
    "tasks.lm.tasks",
    "tasks.early_exit.tasks",
    "tasks.mcq.tasks",
)
BUILTIN_METHOD_MODULES = (
    "methods.tabular",
    "methods.poisoning",
    "methods.distillation",
    "methods.lm",
    "methods.early_exit",
    "methods.mcq",
)

TASKS: Registry[type[Task]] = Registry("task", BUILTIN_TASK_MODULES, "logitbench.tasks")
METHODS: Registry[type[Method]] = Registry("method", BUILTIN_METHOD_MODULES, "logitbench.methods")

register_task = TASKS.register
register_method = METHODS.register
