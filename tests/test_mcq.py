"""The mcq family on tiny random GPT-2 and Llama models saved locally, and on local files in the hub
sets' schemas: suites, scoring engine, logit lens, the edits, the debiasing identities, end to end."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
import torch
from tiny_models import tiny_causal_lm

from harness.errors import UserError
from harness.registries import METHODS, TASKS
from harness.spec import make_spec
from harness.store import ResultStore
from harness.worker import WorkerOptions, run_spec
from methods.mcq.anchored import edit_value_vectors
from methods.mcq.debiasing import ContextualCalibration, CyclicPermutation, PriDe, ZeroShot
from tasks.mcq import attention
from tasks.mcq.anatomy import anatomy
from tasks.mcq.lens import anchoring_scores, flagged_neurons, layer_curve, letter_direction, trace
from tasks.mcq.metrics import mcq_metrics
from tasks.mcq.prompts import TEMPLATES, prompt_template
from tasks.mcq.protocol import divide_prior, softmax
from tasks.mcq.scoring import Scorer, option_log_likelihoods, prompt
from tasks.mcq.sources import HUB_SETS, load_questions
from tasks.mcq.suites import Question, offline_split, place_gold

MCQ_METHODS = (
    "zero-shot",
    "cyclic-permutation",
    "pride",
    "contextual-calibration",
    "anchor-mlp",
    "anchor-attn",
    "anchor-mlp+attn",
    "cloze",
)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def tiny(request, tmp_path_factory):  # type: ignore[no-untyped-def]
    """(kind, folder, model, tokenizer) of a tiny random causal LM."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_causal_lm(tmp_path_factory.mktemp(f"tiny-{request.param}"), request.param)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    return request.param, folder, model, AutoTokenizer.from_pretrained(str(folder))


def questions(count: int = 9, options: int = 4, seed: int = 0) -> list[Question]:
    """Questions of different lengths, so that batches need padding."""
    return offline_split("capitals", options, 0, count, seed).test


# --- suites -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", ["ioi", "capitals", "arithmetic"])
@pytest.mark.parametrize("options", [2, 4])
def test_offline_suites_balance_gold_and_are_seeded(suite, options):
    data = offline_split(suite, options, 20, 41, seed=3)
    for part in (data.calibration, data.test):
        counts = np.bincount([q.answer for q in part], minlength=options)
        assert counts.max() - counts.min() <= 1
        for q in part:
            assert len(set(q.choices)) == options
    assert offline_split(suite, options, 20, 41, seed=3) == data
    assert offline_split(suite, options, 20, 41, seed=4) != data


def test_ioi_gold_is_the_indirect_object():
    for q in offline_split("ioi", 2, 0, 20, 0).test:
        subject_mentions = [c for c in q.choices if q.question.count(c) == 2]
        assert q.choices[q.answer] not in subject_mentions and len(subject_mentions) == 1


def test_rotation_and_gold_placement_keep_the_answer():
    q = Question("q", ("w", "x", "y", "z"), 1)
    assert q.rotated(1) == Question("q", ("z", "w", "x", "y"), 2)
    placed = place_gold([q] * 8, np.random.default_rng(0))
    assert sorted(p.answer for p in placed) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert all(p.choices[p.answer] == "x" for p in placed)


def test_prompt_is_the_papers_format():
    text, letters = prompt(Question("Who?", ("Ann", "Bob"), 1))
    assert text == "Question: Who? Answer Choices: A: Ann B: Bob Answer:"
    assert [text[i] for i in letters] == ["A", "B"]


def _old_inline_prompt(question: Question) -> tuple[str, list[int]]:
    """The prompt as the engine built it before templates existed (kept to pin the default byte for byte)."""
    text = f"Question: {question.question} Answer Choices:"
    letters = []
    for letter, choice in zip("ABCDEFGH", question.choices, strict=False):
        text += " "
        letters.append(len(text))
        text += f"{letter}: {choice}"
    return text + " Answer:", letters


def test_default_template_is_the_earlier_prompt_byte_for_byte():
    for q in questions(20) + offline_split("ioi", 2, 0, 10, 0).test + [Question("a {x} }{", ("{", "}"), 0)]:
        assert prompt(q) == _old_inline_prompt(q)
        assert TEMPLATES["anchored-bias"].cloze_context(q) == f"Question: {q.question} Answer:"
    assert TASKS.get("mcq/capitals").param_defaults()["prompt"] == "anchored-bias"


def test_newlines_and_free_templates_render_with_letter_offsets():
    q = Question("Who?", ("Ann", "Bob", "Cy"), 1)
    text, letters = prompt_template("newlines").render(q)
    assert text == "Question: Who?\nA. Ann\nB. Bob\nC. Cy\nAnswer:"
    assert [text[i] for i in letters] == ["A", "B", "C"] and text[letters[1] - 1] == "\n"
    assert prompt_template("newlines").cloze_context(q) == "Question: Who?\nAnswer:"
    mmlu = prompt_template("{question}\n{choices}Answer:")  # lm-eval's MMLU prompt
    assert mmlu.render(q)[0] == "Who?\nA. Ann\nB. Bob\nC. Cy\nAnswer:"
    assert mmlu.cloze_context(q) == "Who?\nAnswer:"
    custom = prompt_template("{{Q}} {question} |{choices} ->", " ({choice}) {letter};")
    text, letters = custom.render(q)
    assert text == "{Q} Who? | (Ann) A; (Bob) B; (Cy) C; ->"
    assert [text[i] for i in letters] == ["A", "B", "C"]
    named_with_option = prompt_template("anchored-bias", " [{letter}] {choice}")
    assert named_with_option.render(q)[0] == "Question: Who? Answer Choices: [A] Ann [B] Bob [C] Cy Answer:"


@pytest.mark.parametrize(
    ("prompt_value", "option", "message"),
    [
        ("anchored", "", r"parameter 'prompt': 'anchored' is neither a template \(anchored-bias, newlines\)"),
        ("Q: {qestion} {choices}", "", r"unknown placeholder \{qestion\} in 'Q: \{qestion\} \{choices\}'"),
        ("Q: {question}", "", r"has \{choices\} 0 times; expected \{question\} and \{choices\} once each"),
        ("{question} {choices} {choices}", "", r"has \{choices\} 2 times"),
        ("Q: {question {choices}", "", r"is not a format string"),
        ("{question:>9} {choices}", "", r"placeholder \{question\} takes no format spec"),
        ("{} {question} {choices}", "", r"unknown placeholder \{\}"),
        ("newlines", "{letter}) {text}", r"parameter 'prompt_option': unknown placeholder \{text\}"),
        ("newlines", "{letter}", r"'prompt_option': '\{letter\}' has \{choice\} 0 times"),
    ],
)
def test_bad_prompts_are_one_line_errors(prompt_value, option, message):
    with pytest.raises(UserError, match=message) as caught:
        prompt_template(prompt_value, option)
    assert "\n" not in str(caught.value)


def test_a_bad_prompt_fails_at_plan_time_and_at_run_time_naming_the_task(tmp_path):
    task = TASKS.get("mcq/capitals")(prompt="Q: {q} {choices}")
    with pytest.raises(UserError, match=r"^parameter 'prompt': unknown placeholder \{q\}"):
        task.check_inputs()  # the planner adds the task's name
    with pytest.raises(UserError, match=r"^parameter 'options' must be 2 to 5, got 9"):
        TASKS.get("mcq/capitals")(options=9).check_inputs()
    TASKS.get("mcq/capitals")(prompt="newlines").check_inputs()
    spec = make_spec(
        TASKS.get("mcq/capitals"), METHODS.get("zero-shot"), 0, "smoke", {"prompt": "{question}"}
    )
    record = run_spec(spec, ResultStore(tmp_path), WorkerOptions(str(tmp_path)), "t")
    assert record["status"] == "failed" and record["error"]["type"] == "UserError"
    assert record["error"]["message"].startswith("task 'mcq/capitals': parameter 'prompt': '{question}' has")


def test_the_prompt_parameter_changes_the_run_key_and_the_default_keeps_one():
    task, method = TASKS.get("mcq/capitals"), METHODS.get("zero-shot")
    default = make_spec(task, method, 0, "smoke")
    assert make_spec(task, method, 0, "smoke", {"prompt": "anchored-bias"}).key == default.key
    assert make_spec(task, method, 0, "smoke", {"prompt": "newlines"}).key != default.key


# --- sources ----------------------------------------------------------------------------------------


def _write_jsonl(path, rows):  # type: ignore[no-untyped-def]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _labelled(texts, labels=None):  # type: ignore[no-untyped-def]
    return {"text": texts, "label": labels or list("ABCDE"[: len(texts)])}


def test_hub_mappings_read_local_files_of_their_schemas(tmp_path):
    import polars as pl

    mmlu = tmp_path / "mmlu-test.parquet"
    pl.DataFrame(
        {"question": ["2+2?"], "subject": ["math"], "choices": [["3", "4", "5", "6"]], "answer": [1]}
    ).write_parquet(mmlu)
    arc = _write_jsonl(
        tmp_path / "arc.jsonl",
        [
            {"id": "1", "question": "Sky?", "choices": _labelled(["red", "blue", "green", "black"]),
             "answerKey": "B"},
            {"id": "2", "question": "Num?", "choices": _labelled(["a", "b", "c", "d"], list("1234")),
             "answerKey": "3"},
            {"id": "3", "question": "Three?", "choices": _labelled(["a", "b", "c"]), "answerKey": "A"},
        ],
    )  # fmt: skip
    csqa = _write_jsonl(
        tmp_path / "csqa.jsonl",
        [
            {
                "question": "Where?",
                "question_concept": "x",
                "choices": _labelled(list("vwxyz")),
                "answerKey": "E",
            }
        ],
    )
    obqa = tmp_path / "obqa.parquet"
    pl.DataFrame(
        {"id": ["o"], "question_stem": ["Sun is?"], "choices": [_labelled(["a star", "a moon", "ice", "x"])],
         "answerKey": ["A"]}
    ).write_parquet(obqa)  # fmt: skip
    hella = _write_jsonl(
        tmp_path / "hs.jsonl", [{"ctx": "He opens", "endings": ["a", "the door", "b", "c"], "label": "1"}]
    )
    generic = tmp_path / "mine.csv"
    generic.write_text('question,choices,answer\nPick?,"[""x"", ""y""]",B\n')

    assert load_questions(str(mmlu), HUB_SETS["mmlu"]) == [Question("2+2?", ("3", "4", "5", "6"), 1)]
    loaded = load_questions(str(arc), HUB_SETS["arc-challenge"])
    assert [q.answer for q in loaded] == [1, 2, 0] and loaded[0].choices[1] == "blue"
    assert load_questions(str(csqa), HUB_SETS["commonsense-qa"])[0].answer == 4
    assert load_questions(str(obqa), HUB_SETS["openbookqa"]) == [
        Question("Sun is?", ("a star", "a moon", "ice", "x"), 0)
    ]
    assert load_questions(str(hella), HUB_SETS["hellaswag"])[0].choices[1] == "the door"
    assert load_questions(str(generic)) == [Question("Pick?", ("x", "y"), 1)]


def test_bad_files_name_the_file_row_and_field(tmp_path):
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "choices": ["a", "b"]}])
    with pytest.raises(UserError, match=r"bad.jsonl: row 0 \(line 1\) has no field\(s\) answer"):
        load_questions(str(bad))
    out_of_range = _write_jsonl(
        tmp_path / "range.jsonl", [{"question": "q", "choices": ["a", "b"], "answer": 5}]
    )
    with pytest.raises(UserError, match=r"range.jsonl: row 0 \(line 1\): answer 5 is outside its 2 choices"):
        load_questions(str(out_of_range))
    with pytest.raises(UserError, match="no such file"):
        load_questions(str(tmp_path / "missing.jsonl"))


def test_file_task_without_shuffle_keeps_the_files_order(tmp_path):
    rows = [
        {
            "question": f"q{i}",
            "choices": ["a", "b", "c", "d"] if i != 3 else ["a", "b"],
            "answer": i % 4 if i != 3 else 1,
        }
        for i in range(12)
    ]
    path = _write_jsonl(tmp_path / "ordered.jsonl", rows)
    task = TASKS.get("mcq/file")(path=str(path), calibration=2, test=5, shuffle=False)
    data = task.split(0)
    assert [q.question for q in data.calibration] == ["q0", "q1"]
    assert [q.question for q in data.test] == ["q2", "q4", "q5", "q6", "q7"], "q3 has 2 options: left out"
    assert all(q.choices == ("a", "b", "c", "d") for q in data.test)
    assert [q.answer for q in data.test] == [2, 0, 1, 2, 3], "gold stays where the file puts it"
    assert task.split(1) == data, "the seed does not reorder"
    shuffled = TASKS.get("mcq/file")(path=str(path), calibration=2, test=5).split(0)
    assert [q.question for q in shuffled.calibration + shuffled.test] != [
        f"q{i}" for i in (0, 1, 2, 4, 5, 6, 7)
    ]
    with pytest.raises(UserError, match="the suite has 11 questions; calibration=2 \\+ test=10 is more"):
        TASKS.get("mcq/file")(path=str(path), calibration=2, test=10, shuffle=False).split(0)


def test_hub_task_splits_a_local_copy_keeping_its_option_count(tmp_path):
    rows = [
        {"question": f"q{i}", "choices": _labelled(["a", "b", "c", "d"][: 3 + i % 2]), "answerKey": "A"}
        for i in range(40)
    ]
    source = _write_jsonl(tmp_path / "test.jsonl", rows)
    task = TASKS.get("mcq/arc-easy")(source=str(source), calibration=5, test=10)
    data = task.split(0)
    assert len(data.calibration) == 5 and len(data.test) == 10
    assert all(len(q.choices) == 4 for q in data.calibration + data.test)
    assert {q.question for q in data.calibration}.isdisjoint(q.question for q in data.test)


# --- scoring engine ---------------------------------------------------------------------------------


def test_letters_are_single_leading_space_tokens(tiny):
    _, _, model, tokenizer = tiny
    scorer = Scorer(model, tokenizer, 4, "cpu")
    assert scorer.letter_ids == [tokenizer.convert_tokens_to_ids("\u0120" + c) for c in "ABCD"]
    encoded = scorer.encode(questions(3))
    for ids, positions in zip(encoded.ids, encoded.letter_positions, strict=True):
        assert [ids[p] for p in positions] == scorer.letter_ids


@pytest.mark.parametrize("template", ["newlines", "{question}\n{choices}Answer:"])
def test_other_templates_score_the_rendered_text_and_point_at_its_letters(tiny, template):
    _, _, model, tokenizer = tiny
    chosen = prompt_template(template)
    qs = questions(5)
    scorer = Scorer(model, tokenizer, 4, "cpu", batch_size=2, template=chosen)
    assert scorer.with_model(model).template is chosen
    encoded = scorer.encode(qs)
    logits = scorer.letter_logits(qs)
    for q, ids, positions, row in zip(qs, encoded.ids, encoded.letter_positions, logits, strict=True):
        text, letters = chosen.render(q)
        assert ids == tokenizer(text)["input_ids"]
        for position, char in zip(positions, letters, strict=True):
            start, end = tokenizer(text, return_offsets_mapping=True)["offset_mapping"][position]
            assert start <= char < end and text[char] in "ABCD"
        with torch.no_grad():
            plain = model(input_ids=torch.tensor([ids])).logits[0, -1, scorer.letter_ids].numpy()
        np.testing.assert_allclose(row, plain, atol=1e-4)


def test_cloze_scores_follow_the_template_context(tiny):
    _, _, model, tokenizer = tiny
    q = questions(1)[0]
    chosen = prompt_template("newlines")
    scores = option_log_likelihoods(model, tokenizer, [q], "cpu", chosen)
    context = tokenizer.encode("Question: " + q.question + "\nAnswer:")
    tail = tokenizer.encode(" " + q.choices[2], add_special_tokens=False)
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([context + tail])).logits[0].log_softmax(-1)
    expected = sum(float(logp[len(context) - 1 + i, t]) for i, t in enumerate(tail))
    assert scores[0, 2] == pytest.approx(expected, abs=1e-4)
    default = option_log_likelihoods(model, tokenizer, [q], "cpu")
    assert not np.allclose(default, scores), "the default context differs from the newline one"


@pytest.mark.parametrize("batch_size", [1, 3, 16])
@pytest.mark.parametrize("template", ["anchored-bias", "newlines"])
def test_batched_cloze_equals_one_pass_per_option(tiny, batch_size, template):
    _, _, model, tokenizer = tiny
    qs = questions(9)
    qs[4] = Question(qs[4].question, ("Oslo", "a much longer option text here", "X", qs[4].choices[3]), 1)
    chosen = prompt_template(template)
    reference = option_log_likelihoods(model, tokenizer, qs, "cpu", chosen)
    scorer = Scorer(model, tokenizer, 4, "cpu", batch_size=batch_size, template=chosen)
    batched = scorer.cloze_log_likelihoods(qs)
    assert batched.shape == reference.shape and np.isfinite(batched).all()
    # 1e-5, or float32's own rounding of the reference's sum (its ulp is 1.5e-5 at a score of -173)
    np.testing.assert_allclose(batched, reference, rtol=1e-6, atol=1e-5)
    assert len(set(np.round(reference.ravel(), 3))) > 20, "the scores differ between options"


def test_batched_scores_equal_one_by_one_and_unpadded(tiny):
    _, _, model, tokenizer = tiny
    qs = questions(9)
    batched = Scorer(model, tokenizer, 4, "cpu", batch_size=4).letter_logits(qs)
    single = Scorer(model, tokenizer, 4, "cpu", batch_size=1).letter_logits(qs)
    np.testing.assert_allclose(batched, single, atol=1e-4)
    scorer = Scorer(model, tokenizer, 4, "cpu")
    ids = torch.tensor([scorer.encode(qs[:1]).ids[0]])
    with torch.no_grad():
        plain = model(input_ids=ids).logits[0, -1, scorer.letter_ids].numpy()
    np.testing.assert_allclose(batched[0], plain, atol=1e-4)
    # contextual calibration's scores: the letters' log-probabilities under the whole vocabulary
    logprobs = Scorer(model, tokenizer, 4, "cpu", batch_size=4).letter_logits(qs, log_probabilities=True)
    with torch.no_grad():
        whole = model(input_ids=ids).logits[0, -1].log_softmax(-1)[scorer.letter_ids].numpy()
    np.testing.assert_allclose(logprobs[0], whole, atol=1e-4)
    assert (logprobs < 0).all() and np.exp(logprobs).sum(axis=1).max() < 1


def test_per_position_metrics_by_hand():
    probabilities = np.array([[0.7, 0.3], [0.6, 0.4], [0.2, 0.8], [0.9, 0.1]])
    gold = np.array([0, 1, 1, 1])
    m = mcq_metrics(probabilities, gold)
    assert m["accuracy"] == 0.5 and m["anchored_rate"] == 0.75
    assert m["accuracy_gold_A"] == 1.0 and m["accuracy_gold_B"] == pytest.approx(1 / 3)
    assert m["recall_std"] == pytest.approx(np.std([1.0, 1 / 3]))
    assert m["first_minus_gold"] == pytest.approx((0.0 + 0.2 - 0.6 + 0.8) / 4)


# --- logit lens -------------------------------------------------------------------------------------


def _mlp_outputs_by_hand(kind, model, ids):  # type: ignore[no-untyped-def]
    """Each block's MLP output at the last position, by running the blocks by hand, and the logits."""
    if kind == "gpt2":
        inner, final_norm = model.transformer, model.transformer.ln_f
        h = inner.wte(ids) + inner.wpe(torch.arange(ids.shape[1])[None])
        steps = [(b.ln_1, lambda x, b=b: b.attn(x)[0], b.ln_2, b.mlp) for b in inner.h]
    else:
        inner, final_norm = model.model, model.model.norm
        h = inner.embed_tokens(ids)
        rotary = inner.rotary_emb(h, torch.arange(ids.shape[1])[None])
        steps = [
            (
                b.input_layernorm,
                lambda x, b=b: b.self_attn(x, rotary, None)[0],
                b.post_attention_layernorm,
                b.mlp,
            )
            for b in inner.layers
        ]
    outs = []
    for norm_1, attend, norm_2, mlp in steps:
        h = h + attend(norm_1(h))
        m = mlp(norm_2(h))
        outs.append(m[0, -1])
        h = h + m
    return outs, model.lm_head(final_norm(h))[0, -1], final_norm


def test_logit_lens_matches_a_direct_computation(tiny):
    kind, _, model, tokenizer = tiny
    qs = questions(7)
    scorer = Scorer(model, tokenizer, 4, "cpu", batch_size=3)
    body = anatomy(model)
    traced = trace(scorer, body, qs)
    gold = np.array([q.answer for q in qs])
    unembed = model.lm_head.weight
    expected_curve = np.zeros(body.layers)
    with torch.no_grad():
        for i, q in enumerate(qs):
            ids = torch.tensor([scorer.encode([q]).ids[0]])
            outs, logits, final_norm = _mlp_outputs_by_hand(kind, model, ids)
            np.testing.assert_allclose(logits[scorer.letter_ids].numpy(), traced.logits[i], atol=1e-4)
            a, g = scorer.letter_ids[0], scorer.letter_ids[q.answer]
            direct = [float((unembed[a] - unembed[g]) @ final_norm(m)) for m in outs]
            direction, bias = letter_direction(body, scorer, gold[i : i + 1])
            lens = anchoring_scores(body, traced.mlp_out[i : i + 1], direction, bias)[0]
            np.testing.assert_allclose(lens.numpy(), direct, atol=1e-4)
            if q.answer:
                expected_curve += np.array(direct) / (gold != 0).sum()
    np.testing.assert_allclose(layer_curve(body, scorer, traced, gold), expected_curve, atol=1e-4)


# --- the edits --------------------------------------------------------------------------------------


def transformer_lens_unembedding(kind: str, model) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """(dim, vocab) W_U as the paper's notebook loads it, in TransformerLens's own order of steps: fold
    the final norm's weight into W_U (and, for LayerNorm, centre each column over d_model), then centre
    over the vocabulary (`center_unembed`)."""
    norm = model.transformer.ln_f if kind == "gpt2" else model.model.norm
    w_u = model.lm_head.weight.detach().T * norm.weight.detach()[:, None]
    if kind == "gpt2":
        w_u = w_u - w_u.mean(dim=0, keepdim=True)
    return w_u - w_u.mean(dim=-1, keepdim=True)


def test_value_vector_update_changes_exactly_the_chosen_row(tiny):
    import copy

    kind, _, model, tokenizer = tiny
    edited = copy.deepcopy(model)
    with torch.no_grad():  # a final norm weight that is not all ones, so that folding it in shows
        anatomy(edited).final_norm.weight.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(0))
    scorer = Scorer(edited, tokenizer, 4, "cpu")
    before = {k: v.clone() for k, v in edited.state_dict().items()}
    edits = edit_value_vectors(scorer, questions(12), 10, -1e9, 1.0, 8.0, 1, False)
    (neuron,) = edits["neurons"]
    body = anatomy(edited)
    w_u = transformer_lens_unembedding(kind, edited)
    letters = scorer.letter_ids
    correct = sum(share * w_u[:, letters["ABCD".index(c)]] for c, share in edits["correct_letters"].items())
    sign = 1.0 if neuron["mean_activation"] >= 0 else -1.0
    expected_row = sign * (-1.0 * w_u[:, letters[0]] + 8.0 * correct)
    after = edited.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) == 1 and ("c_proj" in changed[0] or "down_proj" in changed[0])
    assert f".{neuron['layer']}." in changed[0]
    rows_before = anatomy(model).value_vectors(neuron["layer"]).detach()
    rows_after = body.value_vectors(neuron["layer"]).detach()
    differs = (rows_before != rows_after).any(dim=1).nonzero().flatten().tolist()
    assert differs == [neuron["neuron"]]
    torch.testing.assert_close(rows_after[neuron["neuron"]] - rows_before[neuron["neuron"]], expected_row)
    assert neuron["layer"] == body.layers - 1, "the walk starts at the last layer"


def test_neuron_detector_is_the_notebooks_on_its_transformer_lens_weights(tiny):
    """`coefficient_dim_contribution_detector` of the notebook on one question, computed on the weights
    as TransformerLens processes them (centred W_out and b_out for LayerNorm, folded and centred W_U and
    b_U, the final norm without its weight) against `flagged_neurons` on the raw checkpoint."""
    import copy

    kind, _, model, tokenizer = tiny
    model = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    body = anatomy(model)
    with torch.no_grad():
        body.final_norm.weight.uniform_(0.5, 2.0, generator=generator)
        if kind == "gpt2":
            body.final_norm.bias.normal_(0.0, 0.5, generator=generator)
    scorer = Scorer(model, tokenizer, 4, "cpu")
    question = next(q for q in questions(12) if q.answer)
    traced = trace(scorer, body, [question])
    layer = body.layers - 1
    found = flagged_neurons(body, scorer, traced, np.array([0]), np.array([question.answer]), layer, 10, -1e9)

    w_u = transformer_lens_unembedding(kind, model)
    w_out = body.value_vectors(layer).detach()
    if kind == "gpt2":
        b_u = model.lm_head.weight.detach() @ body.final_norm.bias.detach()
        b_u = b_u - b_u.mean()
        b_out = body.mlp_out_bias(layer).detach()
        w_out, b_out = w_out - w_out.mean(dim=-1, keepdim=True), b_out - b_out.mean()
        eps = model.config.layer_norm_epsilon

        def ln_final(x):  # type: ignore[no-untyped-def]
            x = x - x.mean()
            return x / (x.pow(2).mean() + eps).sqrt()
    else:
        b_u, b_out, eps = torch.zeros(w_u.shape[1]), torch.zeros(w_out.shape[1]), model.config.rms_norm_eps

        def ln_final(x):  # type: ignore[no-untyped-def]
            return x / (x.pow(2).mean() + eps).sqrt()

    post = traced.neurons[0, layer]
    top = (post.abs() * torch.linalg.vector_norm(w_out, ord=2, dim=1)).topk(10)
    anchor, correct = scorer.letter_ids[0], scorer.letter_ids[question.answer]
    gap = [
        float(w_u[:, anchor] @ ln_final(post[i] * w_out[i] + b_out) + b_u[anchor])
        - float(w_u[:, correct] @ ln_final(post[i] * w_out[i] + b_out) + b_u[correct])
        for i in top.indices
    ]
    assert [f.neuron for f in found] == top.indices.tolist()
    np.testing.assert_allclose([f.contribution for f in found], top.values.numpy(), rtol=1e-5)
    np.testing.assert_allclose([f.anchoring for f in found], gap, atol=1e-4)


def test_attention_swap_exchanges_the_two_weights_only():
    weights = torch.rand(2, 3, 4, 5).softmax(dim=-1)
    out = attention._swapped(weights, [1], torch.tensor([0, 2]), torch.tensor([3, 2]))
    assert torch.equal(out[0, 1, -1, 0], weights[0, 1, -1, 3]) and torch.equal(
        out[0, 1, -1, 3], weights[0, 1, -1, 0]
    )
    assert torch.equal(out[1], weights[1]), "first == other leaves a row as it was"
    untouched = torch.ones_like(weights, dtype=torch.bool)
    untouched[0, 1, -1, [0, 3]] = False
    assert torch.equal(out[untouched], weights[untouched])


def test_recalibrating_attention_without_a_swap_changes_nothing(tiny):
    import copy

    _, _, model, tokenizer = tiny
    qs = questions(6)
    reference = Scorer(model, tokenizer, 4, "cpu").letter_logits(qs)
    routed = copy.deepcopy(model)
    attention.install(routed)
    scorer = Scorer(routed, tokenizer, 4, "cpu", batch_size=4)
    np.testing.assert_allclose(scorer.letter_logits(qs), reference, atol=1e-4)
    body = anatomy(routed)
    last = body.layers - 1
    seen: list = []
    handle = body.attention(last).register_forward_hook(lambda m, i, out: seen.append((out[1], out[0])))
    kept: dict = {}

    def swap_b(rows, letters):  # type: ignore[no-untyped-def]
        kept["letters"] = letters
        return attention.swapped(body, {last: [0, 1]}, letters[:, 0], letters[:, 1])

    try:
        scorer.letter_logits(qs[:4])
        scorer.letter_logits(qs[:4], hook=swap_b)
    finally:
        handle.remove()
    (plain, plain_out), (swapped, swapped_out) = seen
    rows = torch.arange(4)
    a, b = kept["letters"][:, 0], kept["letters"][:, 1]
    for head in (0, 1):
        torch.testing.assert_close(swapped[rows, head, -1, a], plain[rows, head, -1, b])
        torch.testing.assert_close(swapped[rows, head, -1, b], plain[rows, head, -1, a])
    torch.testing.assert_close(swapped[:, 2:], plain[:, 2:])
    assert not torch.equal(swapped_out[:, -1], plain_out[:, -1]), "the swap reaches the attention output"


# --- debiasing identities ---------------------------------------------------------------------------


class ContentScorer:
    """A stand-in model whose letter logits depend on each option's text plus a planted position prior."""

    def __init__(self, options: int, log_prior: np.ndarray | None = None) -> None:
        self.options = options
        self.log_prior = np.zeros(options) if log_prior is None else log_prior

    def content(self, text: str) -> float:
        return (zlib.crc32(text.encode()) % 1000) / 250.0

    def letter_logits(self, qs, hook=None, log_probabilities=False):  # type: ignore[no-untyped-def]
        logits = np.array([[self.content(c) for c in q.choices] for q in qs]) + self.log_prior
        if not log_probabilities:
            return logits
        # Over a whole vocabulary the letters hold a share of the mass that depends on the question.
        share = np.array([[0.1 + self.content(q.question) / 5.0] for q in qs])
        return np.log(softmax(logits) * share)


class ContentFreeScorer:
    """A stand-in model with given whole-vocabulary letter probabilities per content-free text."""

    options = 4

    def __init__(self, probabilities: dict[str, list[float]]) -> None:
        self.probabilities = probabilities

    def letter_logits(self, qs, hook=None, log_probabilities=False):  # type: ignore[no-untyped-def]
        log_p = np.log([self.probabilities[q.question] for q in qs])
        return log_p if log_probabilities else log_p + 7.0  # logits: plus each row's log-normaliser


def test_contextual_calibration_averages_the_whole_vocabulary_probabilities():
    """The official `get_p_content_free`: each input's label probabilities (not normalised over the
    labels) averaged over the inputs, then normalised: (0.51, 0.41, 0.26, 0.16) / 1.34 here, where
    normalising each input first would give (0.3611, 0.2778, 0.1991, 0.1620)."""
    scorer = ContentFreeScorer(
        {"N/A": [0.2, 0.1, 0.05, 0.05], "[MASK]": [0.01] * 4, "": [0.3, 0.3, 0.2, 0.1]}
    )
    method = ContextualCalibration()
    method.fit(scorer, [])  # type: ignore[arg-type]
    np.testing.assert_allclose(method.prior_, np.array([0.51, 0.41, 0.26, 0.16]) / 1.34, atol=1e-12)


def test_calibration_methods_are_identities_under_a_uniform_prior():
    p = softmax(np.random.default_rng(0).normal(size=(5, 4)))
    np.testing.assert_allclose(divide_prior(p, np.full(4, 0.25)), p)
    scorer, qs = ContentScorer(4), questions(10)
    plain = ZeroShot().probabilities(scorer, qs)
    contextual, pride = ContextualCalibration(), PriDe()
    for method in (contextual, pride, CyclicPermutation()):
        method.fit(scorer, questions(8, seed=1))
        np.testing.assert_allclose(method.probabilities(scorer, qs), plain, atol=1e-12)
    np.testing.assert_allclose(contextual.prior_, 0.25)
    np.testing.assert_allclose(pride.prior_, 0.25)


def test_pride_recovers_and_removes_a_planted_position_prior():
    prior = np.array([0.55, 0.25, 0.12, 0.08])
    biased = ContentScorer(4, np.log(prior))
    pride = PriDe()
    pride.fit(biased, questions(8, seed=1))
    np.testing.assert_allclose(pride.prior_, prior, atol=1e-12)
    qs = questions(10)
    np.testing.assert_allclose(
        pride.probabilities(biased, qs), ZeroShot().probabilities(ContentScorer(4), qs)
    )
    contextual = ContextualCalibration()
    contextual.fit(biased, [])
    np.testing.assert_allclose(contextual.prior_, prior, atol=1e-12)


# --- end to end -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", MCQ_METHODS)
def test_every_method_runs_end_to_end_on_a_tiny_model(tiny, method, tmp_path):
    _, folder, _, _ = tiny
    # A random model has no neuron past the paper's gap threshold: lower it so that an edit happens.
    params = {"gap_threshold": -1000.0} if method in ("anchor-mlp", "anchor-mlp+attn") else {}
    spec = make_spec(
        TASKS.get("mcq/capitals"), METHODS.get(method), 0, "smoke", {"model": str(folder)}, params
    )
    record = run_spec(spec, ResultStore(tmp_path), WorkerOptions(str(tmp_path)), "t")
    assert record["status"] == "ok", record["error"]
    metrics = {k: v["value"] for k, v in record["metrics"].items()}
    assert 0 <= metrics["accuracy"] <= 1 and {f"accuracy_gold_{c}" for c in "ABCD"} <= set(metrics)
    details = record["details"]
    if method.startswith("anchor"):
        assert "edits" in details
        curve = details["curves"]["logit_lens"]["series"]
        assert len(curve["before"]) == len(curve["after"]) == 2
    else:
        assert set(details) == {"health"}, "no edit, no curve: only the health figures"
    assert details["health"]["top_prediction_share"] == metrics["top_prediction_share"]
    if method == "anchor-mlp":
        assert len(details["edits"]["mlp"]["neurons"]) == 1
        assert curve["before"] != curve["after"], "the edit moved the lens"
    if method == "anchor-attn" and details["edits"]["heads"]:
        assert curve["before"] != curve["after"], "the lens after a swap runs the swap towards gold"


@pytest.mark.parametrize(
    "extra", [{}, {"prompt": "newlines", "shuffle": False}, {"prompt": "{question}\n{choices}Answer:"}]
)
def test_file_task_runs_on_a_local_jsonl(tiny, tmp_path, extra):
    _, folder, _, _ = tiny
    rows = [{"question": f"Is {i} even?", "choices": ["yes", "no"], "answer": i % 2} for i in range(30)]
    path = _write_jsonl(tmp_path / "mine.jsonl", rows)
    spec = make_spec(
        TASKS.get("mcq/file"), METHODS.get("pride"), 0, "smoke",
        {"model": str(folder), "path": str(path), "options": 2, **extra}, {},
    )  # fmt: skip
    record = run_spec(spec, ResultStore(tmp_path), WorkerOptions(str(tmp_path)), "t")
    assert record["status"] == "ok", record["error"]
    assert "accuracy_gold_C" not in record["metrics"]


def test_the_edit_folds_only_a_final_norm_that_scales_by_its_weight_alone():
    """TransformerLens folds w into W_U for x / rms(x) * w; Gemma's RMSNorm scales by (1 + w), so folding
    w would move the edit off the notebook's direction: that model is refused, Llama's is folded."""
    import torch
    from transformers.models.gemma.modeling_gemma import GemmaRMSNorm
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    from tasks.mcq.lens import _scales_by_its_weight

    llama, gemma = LlamaRMSNorm(8), GemmaRMSNorm(8)
    llama.weight.data, gemma.weight.data = torch.rand(8) + 0.5, torch.rand(8)
    assert _scales_by_its_weight(llama) and not _scales_by_its_weight(gemma)
    assert not _scales_by_its_weight(torch.nn.LayerNorm(8)), "a bias is added after the weight"
