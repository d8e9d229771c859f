"""Probes for the Ray executor, loaded as a plugin module beside lb_diagnostics.

`diag-die` kills a process mid-run: its own run process (`victim: run`), or the process that started the
run's forkserver (`victim: host`, on Ray the Ray worker), either always or only the first time (when its
`marker` file does not exist yet, which it then creates). `probe/gpu` and `probe/two-cpus` declare
resources that a CPU-only cluster of one-CPU nodes can never give.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lb_diagnostics import DiagnosticMethod, EchoTask

from harness.components import Resources
from harness.registries import register_method, register_task


@register_method("diag-die")
@dataclass(kw_only=True)
class DyingMethod(DiagnosticMethod):
    marker: str = ""  # die only while this file does not exist (it is created first); "" dies always
    victim: str = "run"  # "run": this process; "host": the parent of the forkserver that forked it

    def score(self, seed: int) -> float:
        if self.marker:
            path = Path(self.marker)
            if path.exists():
                return 2.0
            path.write_text(str(os.getpid()))
        target = os.getpid() if self.victim == "run" else _parent_of(os.getppid())
        os.kill(target, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)  # "host": this process goes with it
        return 0.0  # not reached


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])  # field 4, after the parenthesised command name


@register_task("probe/gpu")
@dataclass(kw_only=True)
class GpuTask(EchoTask):
    resources: ClassVar[dict[str, Resources]] = {
        "smoke": Resources(gpus=1),
        "cpu": Resources(gpus=1),
        "paper": Resources(gpus=1),
    }


@register_task("probe/two-cpus")
@dataclass(kw_only=True)
class TwoCpuTask(EchoTask):
    resources: ClassVar[dict[str, Resources]] = {
        "smoke": Resources(cpus=2),
        "cpu": Resources(cpus=2),
        "paper": Resources(cpus=2),
    }
