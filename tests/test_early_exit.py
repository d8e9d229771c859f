"""Exit distributions, exit rules and the early-exit task on a tiny local BERT and ALBERT."""

from __future__ import annotations

import bz2
import csv
import io
import math

import numpy as np
import pytest
import torch

from harness.registries import METHODS, TASKS
from harness.spec import make_spec
from harness.store import ResultStore
from harness.worker import WorkerOptions, run_spec
from tasks.early_exit.ponder import exit_distribution, ponder_loss, q_exit
from tasks.early_exit.protocol import exit_layers


def test_exit_distribution_follows_the_formula_and_sums_to_one():
    p = exit_distribution(torch.tensor([[0.5], [0.5], [0.5]]))
    assert p[:, 0].tolist() == pytest.approx([0.5, 0.25, 0.25])  # the last layer takes what is left
    # 0.9, then 0.09: the mass passes 0.95 at layer 2, so the last 0.01 is spread over layers 3 and 4
    p = exit_distribution(torch.tensor([[0.9], [0.9], [0.9], [0.9]]))
    assert p[:, 0].tolist() == pytest.approx([0.9, 0.09, 0.005, 0.005])
    lambdas = torch.rand(6, 50, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(exit_distribution(lambdas).sum(dim=0), torch.ones(50))
    # a prefix gives the first rows of the full distribution
    assert torch.allclose(exit_distribution(lambdas[:3], total_layers=6), exit_distribution(lambdas)[:3])


def test_q_exit_picks_the_first_layer_whose_cdf_passes_the_threshold():
    lambdas = torch.tensor([[0.2], [0.5], [0.5], [0.5]])  # p = 0.2, 0.4, ... -> CDF 0.2, 0.6
    assert not q_exit(lambdas[:1], 0.5, 4)[0]
    assert q_exit(lambdas[:2], 0.5, 4)[0]


def test_ponder_loss_against_hand_computation():
    # two layers, lambda_1 = 1/2 -> p = (1/2, 1/2); logits equal -> CE = ln 2 at both layers
    # prior (0.1, 0.09) / 0.19; KL(prior || p) = sum prior * ln(prior / p)
    prior = [0.1 / 0.19, 0.09 / 0.19]
    kl = sum(q * math.log(q / 0.5) for q in prior)
    loss = ponder_loss(torch.zeros(2, 1, 2), torch.tensor([[0.5], [0.3]]), torch.tensor([0]), 0.5, 0.1)
    assert loss.item() == pytest.approx(math.log(2) + 0.5 * kl)


def test_pabee_exits_after_exactly_patience_unchanged_predictions():
    method = METHODS.get("pabee")(patience=2)
    sequence = [0, 1, 1, 1, 1, 0]  # predictions of layers 1..6
    logits = torch.nn.functional.one_hot(torch.tensor(sequence), 2).float()[:, None, :]
    exits = exit_layers(method, logits, torch.zeros(7, 1, 4), None, torch.zeros(6, 1))
    assert exits.tolist() == [3]  # layers 2, 3 and 4 agree: exit after layer 4 (index 3)


def test_exit_rules_are_the_same_batched_and_one_by_one():
    torch.manual_seed(0)
    logits, states, uniforms = torch.randn(6, 20, 3), torch.randn(7, 20, 8), torch.rand(6, 20)
    for name, params in (
        ("deebert", {"entropy_threshold": 0.9}),
        ("pabee", {"patience": 1}),
        ("pondernet", {}),
        ("palbert", {}),
    ):
        method = METHODS.get(name)(**params)
        modules = method.make_modules(8, 6, 3)
        batched = exit_layers(method, logits, states, modules, uniforms)
        single = [
            int(
                exit_layers(
                    method, logits[:, i : i + 1], states[:, i : i + 1], modules, uniforms[:, i : i + 1]
                )[0]
            )
            for i in range(20)
        ]
        assert batched.tolist() == single, name


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AlbertConfig, AlbertModel, BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("early-exit")
    words = "the a film plot great dull fine awful loved hated it was and so very".split()  # noqa: SIM905
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]))
    tokenizer = BertTokenizerFast(vocab_file=str(root / "vocab.txt"))
    for name, model in (
        (
            "bert",
            BertModel(
                BertConfig(
                    vocab_size=len(words) + 5,
                    hidden_size=32,
                    num_hidden_layers=4,
                    num_attention_heads=4,
                    intermediate_size=64,
                )
            ),
        ),
        (
            "albert",
            AlbertModel(
                AlbertConfig(
                    vocab_size=len(words) + 5,
                    embedding_size=16,
                    hidden_size=32,
                    num_hidden_layers=4,
                    num_attention_heads=4,
                    intermediate_size=64,
                )
            ),
        ),
    ):
        model.save_pretrained(str(root / name))
        tokenizer.save_pretrained(str(root / name))
    rng = np.random.default_rng(0)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
    for i in range(300):
        fresh = i % 2 == 0
        text = " ".join(
            rng.choice(["great", "loved", "fine"] if fresh else ["dull", "awful", "hated"], size=3)
        )
        writer.writerow(["fresh" if fresh else "rotten", f"the film was {text} {i}", "m", "False"])
    writer.writerow(["plot", "a plot summary", "m", "True"])
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "rotten_tomatoes_corpus_full.csv.bz2").write_bytes(bz2.compress(buffer.getvalue().encode()))
    return root


@pytest.mark.parametrize("backbone", ["bert", "albert"])
@pytest.mark.parametrize("method", ["full-depth", "deebert", "pabee", "pondernet", "palbert"])
def test_every_method_trains_and_exits_on_a_tiny_encoder(tiny, tmp_path, backbone, method):
    params = {"pabee": {"patience": 1}, "deebert": {"entropy_threshold": 0.6}}.get(method, {})
    spec = make_spec(
        TASKS.get("early_exit/rotten-tomatoes"),
        METHODS.get(method),
        0,
        "smoke",
        {"model": str(tiny / backbone), "corpus_asset": str(tiny / "corpus")},
        params,
    )
    record = run_spec(spec, ResultStore(tmp_path), WorkerOptions(str(tmp_path), 1), "t")
    assert record["status"] == "ok", record["error"]
    metrics = {k: v["value"] for k, v in record["metrics"].items()}
    assert 1.0 <= metrics["mean_layers"] <= 4.0
    assert metrics["exit_agreement"] == 1.0, "the incremental exit matches the batched rule"
    if method == "full-depth":
        assert metrics["mean_layers"] == 4.0 and metrics["layer_speedup"] == 1.0


def test_a_sweep_shares_one_trained_model(tiny, tmp_path):
    for threshold in (0.2, 0.6):
        spec = make_spec(
            TASKS.get("early_exit/rotten-tomatoes"),
            METHODS.get("deebert"),
            0,
            "smoke",
            {"model": str(tiny / "bert"), "corpus_asset": str(tiny / "corpus")},
            {"entropy_threshold": threshold},
        )
        assert run_spec(spec, ResultStore(tmp_path), WorkerOptions(str(tmp_path), 1), "t")["status"] == "ok"
    assert len(list((tmp_path / "artifacts" / "early-exit-model").glob("*/modules.pt"))) == 1


def test_training_batches_keep_inputs_and_labels_together(tiny, tmp_path):
    """A training set that is not a multiple of the batch size (70 = 16 * 4 + 6) must still line up."""
    spec = make_spec(
        TASKS.get("early_exit/rotten-tomatoes"),
        METHODS.get("pabee"),
        0,
        "smoke",
        {"model": str(tiny / "bert"), "corpus_asset": str(tiny / "corpus"), "max_train": 70},
        {"patience": 1},
    )
    assert run_spec(spec, ResultStore(tmp_path), WorkerOptions(str(tmp_path), 1), "t")["status"] == "ok"
