"""A diagnostics family loaded as a plugin module: methods that succeed, fail, hang or return NaN on demand.

The tests (and benchmarks/harness_overhead.py) load it through $LOGITBENCH_PLUGIN_MODULES, which is
exactly how an unpackaged plugin reaches the registries and the worker processes.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import ClassVar

from harness.components import Method, Metric, Task
from harness.registries import register_method, register_task


class DiagnosticMethod(Method):
    protocol_of = "diagnostics"

    @abc.abstractmethod
    def score(self, seed: int) -> float: ...


@register_task("diag/echo")
@dataclass(kw_only=True)
class EchoTask(Task):
    """Reports the method's score; `offset` shifts it so tests can tell task parameters apart."""

    family: ClassVar[str] = "diagnostics"
    method_protocol: ClassVar[type] = DiagnosticMethod
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("score", True, tolerance=0.001),
        Metric("seconds", False, gate=False),
    )
    primary_metric: ClassVar[str] = "score"
    scales: ClassVar[dict] = {"smoke": {}, "cpu": {}, "paper": {"offset": 10.0}}
    offset: float = 0.0

    def run(self, method: DiagnosticMethod, ctx) -> dict[str, float]:  # type: ignore[no-untyped-def]
        with ctx.phase("score"):
            value = method.score(ctx.seed)
        return {"score": value + self.offset, "seconds": ctx.phases["score"]}


@register_method("diag-constant")
@dataclass(kw_only=True)
class ConstantMethod(DiagnosticMethod):
    value: float = 1.0
    jitter: float = 0.0  # added as jitter * seed, to make seeds differ

    def score(self, seed: int) -> float:
        return self.value + self.jitter * seed


@register_method("diag-sleep")
@dataclass(kw_only=True)
class SleepMethod(DiagnosticMethod):
    seconds: float = 0.2

    def score(self, seed: int) -> float:
        time.sleep(self.seconds)
        return 1.0


@register_method("diag-raise")
@dataclass(kw_only=True)
class RaisingMethod(DiagnosticMethod):
    def score(self, seed: int) -> float:
        raise ValueError("diag-raise always raises")


@register_method("diag-nan")
@dataclass(kw_only=True)
class NanMethod(DiagnosticMethod):
    def score(self, seed: int) -> float:
        return float("nan")


@register_method("diag-busy")
@dataclass(kw_only=True)
class BusyMethod(DiagnosticMethod):
    """CPU-bound pure-Python work, for measuring parallel throughput."""

    iterations: int = 3_000_000

    def score(self, seed: int) -> float:
        total = 0
        for i in range(self.iterations):
            total += i % 7
        return float(total % 5)
