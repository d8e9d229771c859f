"""Probes for the result store's guarantees, loaded as a plugin module beside lb_diagnostics.

`probe/file` reads a number from a local file (a declared local input), `probe/details` keeps values in
`ctx.details` that JSON cannot hold, `probe/artifact` reads a number from a cached artifact,
`probe/threads-artifact` the thread count of the run that built its artifact, and the method
`probe-log` appends a line to a log file each time it starts and ends, so tests can count executions.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from lb_diagnostics import DiagnosticMethod, EchoTask

from harness.artifacts import artifact_id
from harness.registries import register_method, register_task


@register_task("probe/file")
@dataclass(kw_only=True)
class FileTask(EchoTask):
    """Score: the number in the file at `path` plus the method's score."""

    local_inputs: ClassVar[tuple[str, ...]] = ("path",)
    path: str

    def run(self, method: DiagnosticMethod, ctx) -> dict[str, float]:  # type: ignore[no-untyped-def]
        with ctx.phase("score"):
            value = float(Path(self.path).read_text()) + method.score(ctx.seed)
        return {"score": value, "seconds": ctx.phases["score"]}


@register_task("probe/details")
@dataclass(kw_only=True)
class DetailsTask(EchoTask):
    """Keeps an array with a NaN, a bare NaN, a numpy integer and an object in its details."""

    def run(self, method: DiagnosticMethod, ctx) -> dict[str, float]:  # type: ignore[no-untyped-def]
        values = super().run(method, ctx)
        ctx.details["curve"] = np.array([0.5, np.nan, 2.0])
        ctx.details["loss"] = float("nan")
        ctx.details["layer"] = np.int64(3)
        ctx.details["model"] = object()
        ctx.details["kept"] = {"name": "edit", "heads": (1, 2)}
        return values


@register_task("probe/artifact")
@dataclass(kw_only=True)
class ArtifactTask(EchoTask):
    """Score: the number stored in an artifact built once per seed (a float written as text)."""

    def run(self, method: DiagnosticMethod, ctx) -> dict[str, float]:  # type: ignore[no-untyped-def]
        folder = ctx.artifacts.get_or_build(
            "probe-value", {"seed": ctx.seed}, lambda out: (out / "value.txt").write_text(f"{1.5 + ctx.seed}")
        )
        return {"score": float((folder / "value.txt").read_text()), "seconds": 0.0}


@register_task("probe/threads-artifact")
@dataclass(kw_only=True)
class ThreadsArtifactTask(EchoTask):
    """Score: the thread count ($OMP_NUM_THREADS) of the run that built its artifact (one per seed)."""

    def identity(self, seed: int) -> dict[str, int]:
        return {"seed": seed}

    def artifact_keys(self, method: DiagnosticMethod, seed: int, scale: str) -> tuple[str, ...]:
        return (artifact_id("probe-threads", self.identity(seed), (self, method)),)

    def run(self, method: DiagnosticMethod, ctx) -> dict[str, float]:  # type: ignore[no-untyped-def]
        def build(out: Path) -> None:
            (out / "threads.txt").write_text(os.environ["OMP_NUM_THREADS"])

        folder = ctx.artifacts.get_or_build("probe-threads", self.identity(ctx.seed), build)
        return {"score": float((folder / "threads.txt").read_text()), "seconds": 0.0}


@register_method("probe-log")
@dataclass(kw_only=True)
class LoggedSleepMethod(DiagnosticMethod):
    """Sleeps `seconds`, logging `start SEED PID` and `end SEED PID` lines to `log`."""

    seconds: float = 0.3
    log: str = ""

    def score(self, seed: int) -> float:
        self._log(f"start {seed} {os.getpid()}")
        time.sleep(self.seconds)
        self._log(f"end {seed} {os.getpid()}")
        return 1.0

    def _log(self, line: str) -> None:
        if self.log:
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
