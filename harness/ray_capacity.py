"""How many runs a Ray cluster holds at once: what `--dry-run --executor ray` plans the wall time on.

A run asks Ray for its task's CPUs (one per torch thread at least), GPUs and memory at its scale
(`Task.resources_at`, harness/ray_executor.py sends the same request). A node holds as many runs as fit in
each of its resources; the cluster, the sum over its nodes; the executor at most `--workers`. A dry run
asks a cluster only where `--address` names one (connecting takes seconds; starting one, far more):
otherwise it takes `--workers`, else this machine as the one node of the cluster a run would start here,
and says which it assumed.

This module imports Ray only when it asks a cluster, so a dry run needs Ray only with `--address`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from harness.errors import UserError
from harness.spec import RunSpec


@dataclass(frozen=True)
class Request:
    """What one run asks Ray for."""

    cpus: float
    gpus: int
    memory_bytes: int

    def text(self) -> str:
        return f"{self.cpus:g} CPU(s), {self.gpus} GPU(s), {self.memory_bytes / 2**30:g} GB"


def request_of(spec: RunSpec) -> Request:
    """The run's request: its task's resources at its scale, and a CPU for each of its torch threads."""
    from harness.registries import TASKS

    need = TASKS.get(spec.task.name).resources_at(spec.scale)
    return Request(max(need.cpus, spec.threads), need.gpus, int(max(need.memory_gb, 0.0) * 2**30))


def runs_per_node(node: dict[str, float], request: Request) -> int:
    """How many runs of `request` fit on a node with `node`'s resources (Ray's names: CPU, GPU, memory)."""
    fits = [
        node.get(name, 0.0) / wanted
        for name, wanted in (("CPU", request.cpus), ("GPU", request.gpus), ("memory", request.memory_bytes))
        if wanted > 0
    ]
    return int(min(fits)) if fits else 0


def dry_run_workers(address: str | None, workers: int | None, specs: Sequence[RunSpec]) -> tuple[int, str]:
    """(runs at once to plan the wall time on, the line saying where that number came from)."""
    requests = Counter(request_of(spec) for spec in specs)
    request = requests.most_common(1)[0][0] if requests else Request(1.0, 0, 0)
    mixed = f", for the most common request ({request.text()})" if len(requests) > 1 else ""
    if address is None:
        if workers is not None:
            return workers, (
                f"--executor ray: planned on --workers {workers} runs at once; no --address, so no cluster "
                "was asked whether it holds that many"
            )
        cpus = os.cpu_count() or 1
        here = max(1, int(cpus // request.cpus))  # its CPUs only: GPUs and memory are not looked at
        return here, (
            f"--executor ray: planned on {here} run(s) at once, assuming the cluster is this machine "
            f"({cpus} CPUs, as a cluster started here would be){mixed}; give --address to plan on a "
            "running cluster's resources, or --workers"
        )
    nodes = cluster_nodes(address)
    holds = sum(runs_per_node(node, request) for node in nodes)
    cpus = sum(node.get("CPU", 0.0) for node in nodes)
    at_once = max(1, min(workers, holds) if workers is not None else holds)
    capped = f", capped at --workers {workers}" if workers is not None and workers < holds else ""
    unheld = "" if holds else f"; no node holds a run asking for {request.text()}: such runs fail at once"
    return at_once, (
        f"--executor ray: planned on {at_once} run(s) at once: the cluster at {address} has "
        f"{len(nodes)} node(s), {cpus:g} CPUs, and holds {holds} run(s){mixed}{capped}{unheld}"
    )


def cluster_nodes(address: str) -> list[dict[str, float]]:
    """The resources of each live node of the cluster at `address` (connected for this, then left,
    unless this process was connected already)."""
    try:
        import ray
    except ImportError:
        raise UserError(
            "--executor ray --address needs Ray, which is not installed: pip install 'logitbench[ray]'"
        ) from None
    from harness.ray_executor import connect, connection_failure, live_nodes

    connected_here = not ray.is_initialized()
    try:
        if connected_here:
            connect(address, log_to_driver=False)
        return live_nodes()
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise connection_failure(err, address) from None
    finally:
        if connected_here and ray.is_initialized():
            ray.shutdown()
