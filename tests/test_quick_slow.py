"""The main job end to end on real data: `quick` runs clean and matches the committed reference baseline."""

from __future__ import annotations

import pytest

from harness.cli import main


@pytest.mark.slow
def test_quick_runs_and_matches_the_reference_baseline(results, capsys):
    assert main(["run", "quick", "--no-progress"]) == 0
    assert main(["compare", "quick", "--baseline", "reference"]) == 0
    assert "0 worse, 0 failed, 0 missing" in capsys.readouterr().out
