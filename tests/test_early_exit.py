"""Exit distributions, exit rules and the early-exit task on a tiny local BERT and ALBERT."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import write_rotten_tomatoes

from harness.registries import METHODS, TASKS
from harness.spec import make_spec
from harness.store import ResultStore
from harness.worker import WorkerOptions, run_spec
from tasks.early_exit.ponder import exit_distribution, geometric_prior, ponder_loss, q_exit
from tasks.early_exit.protocol import exit_layers


def logit(p: float, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.logit(torch.full(shape, p, dtype=torch.float64))


def test_exit_distribution_has_no_remainder_on_the_last_layer():
    """p_i = lambda_i prod_{j<i} (1 - lambda_j) on every layer, the last included (palbert_fast.py)."""
    p = exit_distribution(logit(0.5, (3, 1)))
    assert p[:, 0].tolist() == pytest.approx([0.5, 0.25, 0.125])
    assert p.sum().item() == pytest.approx(1 - 0.5**3)  # what is left is not piled on the last layer
    lambdas = torch.rand(6, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.3
    survive = torch.cumprod(torch.cat([torch.ones(1, 50, dtype=torch.float64), 1 - lambdas[:-1]]), dim=0)
    assert torch.allclose(exit_distribution(torch.logit(lambdas)), lambdas * survive)  # mass stays < 0.95


def test_truncation_gives_the_constant_eps_over_layers_once_the_mass_passed_one_minus_eps():
    # column 0: 0.9, then 0.09 -> the mass 0.99 has passed 0.95, so layers 3 and 4 get 0.05 / 4 each;
    # column 1 (lambda 0.1) never passes, so the batch runs every layer
    z = torch.cat([logit(0.9, (4, 1)), logit(0.1, (4, 1))], dim=1)
    p = exit_distribution(z)
    assert p[:, 0].tolist() == pytest.approx([0.9, 0.09, 0.0125, 0.0125])
    assert p[:, 1].tolist() == pytest.approx([0.1, 0.09, 0.081, 0.0729])
    assert p[:, 0].sum().item() == pytest.approx(1.015)  # the official distribution need not sum to 1


def test_geometric_prior_puts_its_tail_on_the_last_layer():
    prior = geometric_prior(6, 0.1, torch.zeros(1, dtype=torch.float64))
    assert prior.tolist() == pytest.approx([0.1, 0.09, 0.081, 0.0729, 0.06561, 0.9**5])
    assert prior.sum().item() == pytest.approx(1.0)


def test_ponder_loss_matches_the_official_value():
    """lambda = 0.1 on 6 layers, CE = ln 2 on every layer, beta 0.5, prior rate 0.1: the official 1.004607.
    p_i = 0.1 * 0.9^(i-1) sums to 1 - 0.9^6; prior and p agree but on layer 6 (0.9^5 against 0.1 * 0.9^5)."""
    by_hand = math.log(2) * (1 - 0.9**6) + 0.5 * 0.9**5 * math.log(0.9**5 / (0.1 * 0.9**5))
    loss = ponder_loss(
        torch.zeros(6, 3, 2, dtype=torch.float64), logit(0.1, (6, 3)), torch.tensor([0, 1, 0]), 0.5, 0.1
    )
    assert loss.item() == pytest.approx(by_hand, abs=1e-12)
    assert loss.item() == pytest.approx(1.004607, abs=5e-7)


def test_ponder_loss_drops_the_layers_after_the_whole_batch_passed():
    """lambda 0.9: the batch has passed 0.95 after layer 2, so the official loop stops there; layers 3, 4
    weigh in the KL term only, with 0.05 / 4 each."""
    logits = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    labels = torch.tensor([2, 0])
    ce = [torch.nn.functional.cross_entropy(layer, labels, reduction="none") for layer in logits]
    p = [0.9, 0.09, 0.0125, 0.0125]
    prior = [0.1, 0.09, 0.081, 0.9**3]
    kl = sum(q * math.log(q / pi) for q, pi in zip(prior, p, strict=True))
    by_hand = float((0.9 * ce[0] + 0.09 * ce[1]).mean()) + 0.5 * kl
    z = logit(0.9, (4, 2))
    assert ponder_loss(logits, z, labels, 0.5, 0.1).item() == pytest.approx(by_hand, abs=1e-12)
    # the layers not computed are not needed
    assert ponder_loss(logits[:2], z[:2], labels, 0.5, 0.1, total_layers=4).item() == pytest.approx(by_hand)


def test_palbert_training_pass_stops_once_the_batch_passed_and_gives_the_same_loss():
    method = METHODS.get("palbert")()
    modules = method.make_modules(8, 4, 3).eval()
    final = modules["halting"][-1]
    torch.nn.init.zeros_(final.weight)
    torch.nn.init.constant_(final.bias, math.log(0.9 / 0.1))  # lambda = 0.9 on every layer
    states, labels = torch.randn(5, 2, 8), torch.tensor([1, 2])
    logits = torch.stack([head(s) for head, s in zip(modules["classifiers"], states[1:], strict=True)])
    run = method.layer_by_layer(modules, labels, 4)
    assert [run.add(logits[0], states[1]), run.add(logits[1], states[2])] == [False, True]
    assert run.total().item() == pytest.approx(method.loss(logits, states, modules, labels).item(), rel=1e-6)


def test_palbert_head_is_the_official_one():
    method = METHODS.get("palbert")()
    modules = method.make_modules(8, 6, 3)
    assert "layer_embedding" not in modules  # off in the README's command
    assert "layer_embedding" in METHODS.get("palbert")(layer_embedding=True).make_modules(8, 6, 3)
    halting = modules["halting"]
    assert isinstance(halting[0], torch.nn.Dropout) and halting[0].p == 0.1
    shapes = [(m.in_features, m.out_features) for m in halting if isinstance(m, torch.nn.Linear)]
    assert shapes == [(16, 16)] * 3 + [(16, 1)]
    assert sum(isinstance(m, torch.nn.Tanh) for m in halting) == 3
    heads = modules["classifiers"]
    assert all(head is heads[0] for head in heads), "one classifier shared by every layer"
    modules.eval()
    states = torch.randn(3, 4, 8)
    z = method.halting_logits(states, modules)
    first = halting(torch.cat([states[1], torch.zeros(4, 8)], dim=-1)).squeeze(-1)  # zeros before layer 1
    second = halting(torch.cat([states[2], states[1]], dim=-1)).squeeze(-1)
    assert torch.allclose(z, torch.stack([first, second]))


def test_q_exit_picks_the_first_layer_whose_cdf_passes_the_threshold():
    z = torch.logit(torch.tensor([[0.2], [0.5], [0.5], [0.5]]))  # CDF 0.2, 0.6, 0.8, ...
    assert not q_exit(z[:1], 0.5)[0]
    assert q_exit(z[:2], 0.5)[0]
    assert not q_exit(z[:2], 0.6 + 1e-6)[0]


def test_pabee_exits_after_exactly_patience_unchanged_predictions():
    method = METHODS.get("pabee")(patience=2)
    sequence = [0, 1, 1, 1, 1, 0]  # predictions of layers 1..6
    logits = torch.nn.functional.one_hot(torch.tensor(sequence), 2).float()[:, None, :]
    exits = exit_layers(method, logits, torch.zeros(7, 1, 4), None, torch.zeros(6, 1))
    assert exits.tolist() == [3]  # layers 2, 3 and 4 agree: exit after layer 4 (index 3)


def official_patience_exit(predictions: list[int], patience: int) -> int:
    """0-based exit layer by the official PABEE counter (`AlbertModel.forward`): +1 when a layer's argmax
    equals the previous layer's, back to 0 otherwise, exit when it reaches `patience`; patience 0 runs
    every layer."""
    if patience == 0:
        return len(predictions) - 1
    counter, previous = 0, None
    for layer, prediction in enumerate(predictions):
        counter = counter + 1 if previous is not None and prediction == previous else 0
        previous = prediction
        if counter == patience:
            return layer
    return len(predictions) - 1


def test_pabee_exit_layers_are_the_official_counters_on_random_predictions():
    generator = torch.Generator().manual_seed(0)
    predictions = torch.randint(0, 2, (8, 300), generator=generator)  # 8 layers, 300 examples, 2 classes
    logits = torch.nn.functional.one_hot(predictions, 2).float()
    for patience in (0, 1, 2, 3, 6):
        method = METHODS.get("pabee")(patience=patience)
        exits = exit_layers(method, logits, torch.zeros(9, 300, 1), None, torch.zeros(8, 300)).tolist()
        expected = [official_patience_exit(predictions[:, i].tolist(), patience) for i in range(300)]
        assert exits == expected, patience


def test_pabee_loss_weights_layer_i_by_i():
    logits = torch.tensor([[[2.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]]])  # 3 layers, 1 example, label 0
    ce = [math.log(1 + math.exp(-2.0)), math.log(1 + math.exp(1.0)), math.log(2.0)]
    loss = METHODS.get("pabee")().loss(logits, None, None, torch.tensor([0]))
    assert float(loss) == pytest.approx((1 * ce[0] + 2 * ce[1] + 3 * ce[2]) / 6, rel=1e-6)


def test_deebert_exits_when_the_entropy_in_nats_is_below_the_threshold():
    logits = torch.log(torch.tensor([[[0.9, 0.1]]]))  # entropy -0.9 ln 0.9 - 0.1 ln 0.1 = 0.32508 nats
    entropy = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert METHODS.get("deebert")(entropy_threshold=entropy + 1e-4).exits_at(logits, None, None, None)[0]
    assert not METHODS.get("deebert")(entropy_threshold=entropy - 1e-4).exits_at(logits, None, None, None)[0]


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
        modules = method.make_modules(8, 6, 3).eval()  # as evaluated: no dropout
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
    write_rotten_tomatoes(root / "corpus", plot="a plot summary")
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
    record = run_spec(spec, ResultStore(tmp_path), WorkerOptions(str(tmp_path)), "t")
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
        assert run_spec(spec, ResultStore(tmp_path), WorkerOptions(str(tmp_path)), "t")["status"] == "ok"
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
    assert run_spec(spec, ResultStore(tmp_path), WorkerOptions(str(tmp_path)), "t")["status"] == "ok"


@pytest.mark.parametrize("backbone", ["bert", "albert"])
def test_the_backbone_pooler_is_the_models_own(tiny, backbone):
    from tasks.early_exit.backbone import load, pooler

    encoder, tokenizer = load(str(tiny / backbone), "cpu")
    encoder.eval()
    batch = tokenizer(["the film was great"], return_tensors="pt")
    with torch.no_grad():
        out = encoder(**batch)
        assert torch.allclose(pooler(encoder)(out.last_hidden_state[:, 0]), out.pooler_output)


def test_deebert_trains_in_two_stages_and_the_second_leaves_the_backbone_bit_identical(tiny):
    from tasks.early_exit.backbone import load

    task = TASKS.get("early_exit/rotten-tomatoes")(
        model=str(tiny / "bert"), corpus_asset=str(tiny / "corpus"), max_train=48, batch_size=16, epochs=1
    )
    train = task.sets()["train"]
    train = type(train)(train.first[:48], None, train.labels[:48], train.classes)
    method = METHODS.get("deebert")()
    torch.manual_seed(0)
    encoder, tokenizer = load(task.model, "cpu")
    modules = method.make_modules(encoder.config.hidden_size, 4, 2)
    first, second = method.stages(modules)
    assert (first.backbone, second.backbone) == (True, False)

    def snapshot():  # type: ignore[no-untyped-def]
        return (
            {k: v.clone() for k, v in encoder.state_dict().items()},
            [[p.clone() for p in head.parameters()] for head in modules["classifiers"]],
        )

    def same(a, b):  # type: ignore[no-untyped-def]
        return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))

    generator = torch.Generator().manual_seed(0)
    encoder_0, heads_0 = snapshot()
    task._train_stage(encoder, tokenizer, modules, method, first, train, generator, "cpu")
    encoder_1, heads_1 = snapshot()
    assert not all(torch.equal(encoder_0[k], encoder_1[k]) for k in encoder_0), "stage 1 trains the backbone"
    assert not same(heads_0[-1], heads_1[-1]), "and the final classifier"
    assert all(same(a, b) for a, b in zip(heads_0[:-1], heads_1[:-1], strict=True)), "not the exit heads"
    task._train_stage(encoder, tokenizer, modules, method, second, train, generator, "cpu")
    encoder_2, heads_2 = snapshot()
    assert all(torch.equal(encoder_1[k], encoder_2[k]) for k in encoder_1), "stage 2 leaves the backbone"
    assert same(heads_1[-1], heads_2[-1]), "and the final classifier"
    assert all(not same(a, b) for a, b in zip(heads_1[:-1], heads_2[:-1], strict=True)), (
        "it trains exit heads"
    )
    # the stage-2 loss is the sum of the exit heads' CE, the last layer's excluded
    logits, labels = torch.randn(4, 3, 2), torch.tensor([0, 1, 1])
    ce = [torch.nn.functional.cross_entropy(layer, labels) for layer in logits[:3]]
    assert second.loss(logits, None, modules, labels).item() == pytest.approx(float(sum(ce)))
    assert first.loss(logits, None, modules, labels).item() == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits[3], labels))
    )
    joint = METHODS.get("deebert")(training="joint").stages(modules)
    assert len(joint) == 1 and joint[0].backbone


def test_a_palbert_training_forward_stops_computing_layers_once_the_batch_passed(tiny):
    from tasks.early_exit.backbone import load, pooler, run_layers
    from tasks.early_exit.tasks import _TrainingFeed

    encoder, tokenizer = load(str(tiny / "bert"), "cpu")
    method = METHODS.get("palbert")()
    modules = method.make_modules(encoder.config.hidden_size, 4, 2)
    torch.nn.init.zeros_(modules["halting"][-1].weight)
    torch.nn.init.constant_(modules["halting"][-1].bias, math.log(0.9 / 0.1))  # lambda = 0.9
    batch = dict(tokenizer(["the film was great", "dull"], padding=True, return_tensors="pt"))
    run = method.layer_by_layer(modules, torch.tensor([1, 0]), 4)
    last = run_layers(
        encoder, batch, _TrainingFeed(run, modules, batch["attention_mask"], "mean", pooler(encoder))
    )
    assert last == 1, "mass 0.99 > 0.95 after layer 2: layers 3 and 4 are not run"
    run.total().backward()
    assert encoder.encoder.layer[1].output.dense.weight.grad is not None
    assert encoder.encoder.layer[2].output.dense.weight.grad is None


@pytest.mark.parametrize(
    ("method", "params", "heads_called"),
    [("full-depth", {}, [3]), ("pabee", {"patience": 5}, [0, 1, 2, 3]), ("pabee", {"patience": 0}, [3])],
)
def test_incremental_inference_asks_only_the_heads_a_rule_can_exit_on(tiny, method, params, heads_called):
    """Full-depth (and PABEE at patience 0) never exits early, so its timed path runs no intermediate head
    (the plain model's cost); a rule that can exit reads every layer's head, and all end on the batched
    rule's layer."""
    from tasks.early_exit import backbone
    from tasks.early_exit.tasks import _IncrementalRule

    encoder, tokenizer = backbone.load(str(tiny / "bert"), "cpu")
    rule_method = METHODS.get(method)(**params)
    modules = rule_method.make_modules(encoder.config.hidden_size, backbone.layer_count(encoder), 2).eval()
    called: list[int] = []
    for i, head in enumerate(modules["classifiers"]):
        head.register_forward_hook(lambda *_, i=i: called.append(i))
    batch = dict(tokenizer(["the film was great"], return_tensors="pt"))
    rule = _IncrementalRule(rule_method, modules, torch.rand(4, 1), batch["attention_mask"], "mean", None)
    assert backbone.incremental_exit(encoder, batch, rule) == 3
    assert called == heads_called
    batched = backbone.layer_states(encoder, batch, "mean")
    assert torch.allclose(rule.states[-1], batched[-1], atol=1e-6)
