"""The mcq family on the real SmolLM2-135M (slow; skipped when the asset is not in the cache)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.artifacts import ArtifactCache
from harness.assets import get_asset, is_cached

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not is_cached(get_asset("smollm2-135m")), reason="run `logitbench assets pull smollm2-135m` first"
    ),
]


def test_debiasing_removes_smollm2s_first_option_anchor(tmp_path):
    """On sums in the letter format SmolLM2 answers "A" nearly always; dividing out the position prior
    (PriDe, fitted on calibration questions only) must bring the anchored rate down towards 1/4."""
    import torch

    from methods.mcq.debiasing import PriDe, ZeroShot
    from tasks.causal_lm import load
    from tasks.mcq.metrics import mcq_metrics
    from tasks.mcq.scoring import Scorer
    from tasks.mcq.suites import offline_split

    torch.set_num_threads(1)
    model, tokenizer = load("smollm2-135m", ArtifactCache(tmp_path), "cpu")
    data = offline_split("arithmetic", 4, 24, 48, seed=0)
    scorer = Scorer(model, tokenizer, 4, "cpu")
    gold = np.array([q.answer for q in data.test])
    plain = mcq_metrics(ZeroShot().probabilities(scorer, data.test), gold)
    pride = PriDe()
    pride.fit(scorer, data.calibration)
    debiased = mcq_metrics(pride.probabilities(scorer, data.test), gold)
    assert plain["anchored_rate"] > 0.8
    assert debiased["anchored_rate"] < 0.5
    assert debiased["recall_std"] < plain["recall_std"]
