"""Probes for the planner and the GPU slots, loaded as a plugin module beside lb_diagnostics.

`plan/shared` needs one artifact per `group` (its builder appends `build START END` to `log`, or
`attempt START END` and raises with `build_fails`), `plan/gpu`
declares a GPU at every scale and `plan/cpu` none; every run appends `run TASK CUDA_VISIBLE_DEVICES START
END` to `log`, so tests can see which device a run saw, when it ran and how often an artifact was built.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import ClassVar

from lb_diagnostics import DiagnosticMethod, EchoTask

from harness.artifacts import artifact_id
from harness.components import Resources
from harness.registries import register_task


def append(log: str, line: str) -> None:
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


@dataclass(kw_only=True)
class LoggedTask(EchoTask):
    log: str = ""
    hold: float = 0.0  # seconds a run takes beside its method's

    def run(self, method: DiagnosticMethod, ctx) -> dict[str, float]:  # type: ignore[no-untyped-def]
        start = time.time()
        self.before(ctx)
        time.sleep(self.hold)
        values = super().run(method, ctx)
        devices = os.environ.get("CUDA_VISIBLE_DEVICES", "-")
        append(self.log, f"run {self.name} [{devices}] {start:.6f} {time.time():.6f}")
        return values

    def before(self, ctx) -> None:  # type: ignore[no-untyped-def]
        pass


@register_task("plan/shared")
@dataclass(kw_only=True)
class SharedArtifactTask(LoggedTask):
    resources: ClassVar[dict[str, Resources]] = {"smoke": Resources(expected_s=7.0)}
    group: str = "a"
    build_seconds: float = 0.5
    build_fails: bool = False  # the build raises (after logging `attempt START`)

    def identity(self) -> dict[str, str]:
        return {"group": self.group}

    def artifact_keys(self, method: DiagnosticMethod, seed: int, scale: str) -> tuple[str, ...]:
        return (artifact_id("plan-shared", self.identity(), (self, method)),)

    def before(self, ctx) -> None:  # type: ignore[no-untyped-def]
        def build(out) -> None:  # type: ignore[no-untyped-def]
            start = time.time()
            time.sleep(self.build_seconds)
            if self.build_fails:
                append(self.log, f"attempt {start:.6f} {time.time():.6f}")
                raise RuntimeError("the probe's build fails")
            (out / "value.txt").write_text("1")
            append(self.log, f"build {start:.6f} {time.time():.6f}")

        ctx.artifacts.get_or_build("plan-shared", self.identity(), build)


@register_task("plan/gpu")
@dataclass(kw_only=True)
class GpuTask(LoggedTask):
    resources: ClassVar[dict[str, Resources]] = {
        scale: Resources(gpus=1, expected_s=2.0) for scale in ("smoke", "cpu", "paper")
    }


@register_task("plan/cpu")
@dataclass(kw_only=True)
class CpuTask(LoggedTask):
    pass
