"""Test setup: the diagnostics plugin is on the path for this process and for every worker it starts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).parent / "plugins"
sys.path.insert(0, str(PLUGINS))
os.environ["LOGITBENCH_PLUGIN_MODULES"] = "lb_diagnostics"
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "results"
    monkeypatch.setenv("LOGITBENCH_RESULTS", str(folder))
    return folder


@pytest.fixture
def board_file(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Writes a leaderboard YAML file and returns its path."""

    def write(text: str, name: str = "board.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
