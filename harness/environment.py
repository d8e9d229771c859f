"""What a record carries about where it ran: package versions, the git commit, the machine.

The packages are the ones results depend on, and every installed plugin package (a distribution with
logitbench entry points): a plugin's methods change with its release as built-ins change with the commit.
"""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

TRACKED_PACKAGES = (
    "logitbench",
    "torch",
    "numpy",
    "scipy",
    "scikit-learn",
    "polars",
    "transformers",
    "datasets",
)
PLUGIN_GROUPS = ("logitbench.tasks", "logitbench.methods")


@functools.cache
def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    for group in PLUGIN_GROUPS:
        for entry in metadata.entry_points(group=group):
            dist = entry.dist
            if dist is not None and dist.name:
                out.setdefault(dist.name, dist.version)
    return out


@functools.cache
def git_commit() -> str:
    """The commit of the logitbench source tree (with '+dirty' when it has changes), or 'unknown'."""
    source = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def environment() -> dict[str, object]:
    return {
        "packages": package_versions(),
        "git_commit": git_commit(),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "executable": sys.executable,
    }
