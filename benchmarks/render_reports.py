"""Render HTML reports in headless Chromium and save screenshots, to look at what a reader sees.

    python benchmarks/render_reports.py --out shots/ [--results DIR] [--board quick --board poisoning]
        [--baseline quick:reference --baseline mcq:reference]

Each board is rendered from the stored results (`--results`, default $LOGITBENCH_RESULTS), each
`board:name` from a saved baseline; every page goes through `logitbench show --format html` and then
`chromium --headless --screenshot` (Debian's `chromium` package). A board without a stored record is
skipped with a note. Besides the top of each page, each family's section is shot from its start.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH, HEIGHT = 1400, 2400


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("no chromium on PATH (Debian: apt-get install -y chromium)")


def render(args: list[str], page: Path) -> bool:
    entry = "import sys; from harness.cli import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", entry, "show", *args, "--format", "html", "-o", str(page)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"skipped {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
        return False
    return True


def shoot(page: Path, png: Path, height: int = HEIGHT) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                f"--window-size={WIDTH},{height}",
                page.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
    print(f"wrote {png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("report-shots"))
    parser.add_argument("--results", default=None)
    parser.add_argument("--board", action="append", default=None, help="a board from stored results")
    parser.add_argument("--baseline", action="append", default=None, help="BOARD:NAME, a saved baseline")
    parser.add_argument("--height", type=int, default=HEIGHT, help="window height of each screenshot")
    parser.add_argument(
        "--anchor", action="append", default=[], help="also shoot from #ANCHOR (default: each family)"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, list[str]]] = []
    for board in args.board or ["quick"]:
        extra = ["--results", args.results] if args.results else []
        jobs.append((board, [board, *extra]))
    for item in args.baseline or []:
        board, _, name = item.partition(":")
        jobs.append((f"{board}-{name}", [board, "--baseline", name]))
    for stem, show_args in jobs:
        page = args.out / f"{stem}.html"
        if not render(show_args, page):
            continue
        shoot(page, args.out / f"{stem}.png", args.height)
        text = page.read_text()
        for anchor in args.anchor or re.findall(r'<section id="([^"]+)"', text):
            if f'id="{anchor}"' in text:
                target = args.out / f"{stem}--{anchor}.html"
                # a copy that shows only that section: headless screenshots ignore URL fragments
                only = f"<style>nav,section:not(#{anchor}){{display:none}}</style></head>"
                target.write_text(text.replace("</head>", only, 1))
                shoot(target, args.out / f"{stem}--{anchor}.png", args.height)


if __name__ == "__main__":
    main()
