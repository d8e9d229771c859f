"""A plugin reaches the registries through a real entry point, found by importlib.metadata on sys.path."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from harness.components import Method
from harness.registry import Registry


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What `pip install` leaves for a plugin package: its module and a dist-info with entry points."""
    (tmp_path / "my_plugin.py").write_text(
        textwrap.dedent("""
        from dataclasses import dataclass
        from tasks.tabular.protocol import TabularMethod

        @dataclass(kw_only=True)
        class NearestCentroid(TabularMethod):
            shrink: float = 0.0

            def make_estimator(self, seed, n_classes):
                from sklearn.neighbors import NearestCentroid as NC
                from sklearn.calibration import CalibratedClassifierCV
                return CalibratedClassifierCV(NC(shrink_threshold=self.shrink or None), cv=3)
    """)
    )
    dist = tmp_path / "my_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[logitbench.methods]\nnearest-centroid = my_plugin:NearestCentroid\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("my_plugin", None)


def test_entry_point_plugin_is_registered_with_its_origin(installed_plugin):
    registry: Registry[type[Method]] = Registry("method", ("methods.tabular",), "logitbench.methods")
    cls = registry.get("nearest-centroid")
    assert cls.name == "nearest-centroid"
    assert cls.families() == ["tabular"]
    assert "my_plugin:NearestCentroid" in registry.origin("nearest-centroid")


def test_broken_plugin_module_is_a_one_line_error(monkeypatch):
    from harness.errors import UserError

    monkeypatch.setenv("LOGITBENCH_PLUGIN_MODULES", "no_such_plugin_module")
    registry: Registry[type[Method]] = Registry("method", (), "logitbench.methods")
    with pytest.raises(UserError, match="plugin module 'no_such_plugin_module'.*cannot be imported"):
        registry.names()
