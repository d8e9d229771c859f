"""A plugin reaches the registries through a real entry point, found by importlib.metadata on sys.path."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

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


def test_a_plugin_module_that_cannot_be_imported_is_a_warning_not_a_failure(monkeypatch):
    from harness.errors import UserError

    monkeypatch.setenv("LOGITBENCH_PLUGIN_MODULES", "no_such_plugin_module")
    registry: Registry[type[Method]] = Registry("method", (), "logitbench.methods")
    assert registry.names() == []
    (warning,) = registry.warnings()
    assert "plugin module 'no_such_plugin_module'" in warning and "going on without it" in warning
    with pytest.raises(UserError, match="unknown method 'knn'.*no_such_plugin_module.*cannot be imported"):
        registry.get("knn")


BAD_PLUGIN = """
from dataclasses import dataclass
from tasks.tabular.protocol import TabularMethod


def a_function():
    return 1


@dataclass(kw_only=True)
class Shadow(TabularMethod):
    def make_estimator(self, seed, n_classes):
        raise RuntimeError("the plugin's logreg ran")


@dataclass(kw_only=True)
class Kinded(TabularMethod):
    kind: str = "x"

    def make_estimator(self, seed, n_classes):
        raise RuntimeError


@dataclass(kw_only=True)
class Hook(TabularMethod):
    make_estimator: int = 1


@dataclass(kw_only=True)
class Fine(TabularMethod):
    k: int = 3

    def make_estimator(self, seed, n_classes):
        from sklearn.neighbors import KNeighborsClassifier
        return KNeighborsClassifier(self.k)
"""
BAD_ENTRY_POINTS = """[logitbench.methods]
func = bad_plugin:a_function
logreg = bad_plugin:Shadow
kinded = bad_plugin:Kinded
hook = bad_plugin:Hook
broken = no_such_module:Thing
fine = bad_plugin:Fine
"""


@pytest.fixture
def bad_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed plugin whose entry points go wrong in every way issue 16 lists, and one that works."""
    (tmp_path / "bad_plugin.py").write_text(BAD_PLUGIN)
    dist = tmp_path / "bad_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(BAD_ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("bad_plugin", None)


@pytest.fixture
def methods_registry():
    """The real METHODS registry (built-ins registered), looking for entry points afresh, and put back as
    it was afterwards so that no test plugin leaks into other tests."""
    from harness.registries import METHODS

    METHODS.load()  # built-ins register once, on import: they must be in the snapshot
    saved = {k: dict(v) for k, v in vars(METHODS).items() if isinstance(v, dict)}
    METHODS.reset()
    yield METHODS
    for k, v in saved.items():
        setattr(METHODS, k, v)
    METHODS.reset()


def test_bad_entry_points_are_left_out_with_a_warning_each(bad_plugin, methods_registry):
    from harness.errors import UserError
    from methods.tabular.logistic_regression import LogisticRegressionMethod

    registry = methods_registry
    names = registry.names()
    assert "fine" in names and "logreg" in names
    assert not {"func", "kinded", "hook", "broken"} & set(names)
    assert registry.get("logreg") is LogisticRegressionMethod, "the built-in wins over a plugin's name"
    assert registry.is_builtin("logreg") and not registry.is_builtin("fine")
    warnings = "\n".join(registry.warnings())
    assert "'func' (entry point bad_plugin:a_function) is the function bad_plugin.a_function" in warnings
    assert "'logreg' from entry point bad_plugin:Shadow has the name of a built-in method; the built-in" in (
        warnings
    )
    assert "declares parameter(s) 'kind'" in warnings and "declares parameter(s) 'make_estimator'" in warnings
    assert "'broken' (no_such_module:Thing)" in warnings and "ModuleNotFoundError" in warnings
    assert len([w for w in registry.warnings() if "bad_plugin" in w or "no_such_module" in w]) == 5
    for name, cause in (("func", "expected a subclass"), ("kinded", "'kind'"), ("broken", "failed to load")):
        with pytest.raises(UserError, match=f"method '{name}' cannot be used: .*{cause}"):
            registry.get(name)


def test_every_command_warns_about_broken_plugins_and_goes_on(
    bad_plugin, methods_registry, results, board_file, capsys
):
    from harness.cli import main

    assert main(["list", "methods"]) == 0
    captured = capsys.readouterr()
    assert "fine" in captured.out and "a_function" in captured.err and "Shadow" in captured.err
    board = str(board_file("name: b\ntasks: [tabular/iris]\nmethods: [logreg]\n"))
    assert main(["show", board]) == 0
    assert "warning:" in capsys.readouterr().err
    assert main(["run", board, "--dry-run"]) == 0
    assert main(["check-method", "broken"]) == 2
    err = capsys.readouterr().err
    assert "method 'broken' cannot be used: plugin entry point 'broken'" in err
    needs = str(board_file("name: b\ntasks: [tabular/iris]\nmethods: [kinded]\n", "needs.yaml"))
    assert main(["run", needs, "--dry-run"]) == 2
    assert "declares parameter(s) 'kind'" in capsys.readouterr().err


def test_a_plugin_that_joins_through_families_is_named_unless_the_board_pins_builtin_only(
    installed_plugin, methods_registry, results, board_file, capsys
):
    from harness.cli import main

    open_board = str(board_file("name: t\nscale: smoke\nfamilies: [tabular]\n"))
    assert main(["run", open_board, "--dry-run", "--tasks", "tabular/iris"]) == 0
    out = capsys.readouterr().out
    assert "method 'nearest-centroid' comes from a plugin (entry point my_plugin:NearestCentroid)" in out
    assert "joined through families: [tabular]" in out
    pinned = str(board_file("name: t\nscale: smoke\nbuiltin_only: true\nfamilies: [tabular]\n", "p.yaml"))
    assert main(["run", pinned, "--dry-run", "--tasks", "tabular/iris"]) == 0
    out = capsys.readouterr().out
    assert "nearest-centroid" not in out and "plugin" not in out
    named = "name: t\nbuiltin_only: true\ntasks: [tabular/iris]\nmethods: [nearest-centroid]\n"
    assert main(["run", str(board_file(named, "n.yaml")), "--dry-run"]) == 2
    assert "is a plugin (entry point my_plugin:NearestCentroid)" in capsys.readouterr().err


@pytest.mark.parametrize("board_name", ["quick", "mcq"])
def test_shipped_boards_with_committed_baselines_pin_builtin_only(board_name):
    from harness import leaderboard as lb

    assert lb.load(board_name).builtin_only


def test_no_builtin_declares_a_reserved_parameter():
    from harness.registries import METHODS, TASKS, reserved_fields

    clashes = {name: reserved_fields(cls) for registry in (TASKS, METHODS) for name, cls in registry}
    assert {n: c for n, c in clashes.items() if c} == {}
    assert TASKS.warnings() == [] or all("lb_diagnostics" not in w for w in TASKS.warnings())


def test_reserved_names_are_methods_and_class_variables_never_inherited_fields():
    from harness.components import Task
    from harness.registries import component_check, reserved_fields

    @dataclass(kw_only=True)
    class Source:  # a dataclass mixin: its fields are parameters of the tasks that use it
        path: str = ""

        def load(self) -> None: ...

    @dataclass(kw_only=True)
    class Good(Source, Task):
        family: ClassVar[str] = "x"
        folds: int = 5

    @dataclass(kw_only=True)
    class Bad(Source, Task):
        family: str = "x"  # a field hiding Task's ClassVar
        load: int = 0  # hides the mixin's method
        metric: str = "accuracy"  # hides Task.metric()
        version: str = "2"  # hides Component.version

    assert reserved_fields(Good) == []
    assert reserved_fields(Bad) == ["family", "load", "metric", "version"]
    component_check(Task)(Good, "task 'good'")
    from harness.errors import UserError

    with pytest.raises(UserError, match="task 'bad' declares parameter\\(s\\) 'family', 'load', 'metric'"):
        component_check(Task)(Bad, "task 'bad'")
