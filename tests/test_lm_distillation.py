"""Distillation between language models (issue 18): the vocabulary-channel graph against a hand
computation, its invariance to relabelling the vocabulary, lossless top-k storage at k = V, the truncated
student, every method end to end on tiny local models (no hub), and the new parameters' bad inputs."""

from __future__ import annotations

import bz2
import csv
import io
import json
import math

import numpy as np
import pytest
import torch
from tiny_models import tiny_causal_lm, write_rotten_tomatoes

import methods.distillation.gld as image_gld
import methods.lm_distillation.gld as lm_gld
from harness.errors import UserError
from harness.registries import METHODS, TASKS
from harness.spec import make_spec
from harness.store import ResultStore
from harness.worker import WorkerOptions, run_spec
from methods.graph_on_logits import graph_distance
from methods.lm_distillation.gld import sequence_graph_distance
from methods.lm_distillation.kd import forward_kl
from methods.lm_distillation.reverse_kd import reverse_kl
from tasks.lm_distillation import students
from tasks.lm_distillation import teacher as store
from tasks.lm_distillation.protocol import TopKLogits

METHOD_NAMES = ["lm-sft", "lm-kd", "lm-reverse-kd", "lm-gld", "lm-kd+gld"]


def top_k(logits: torch.Tensor, k: int) -> TopKLogits:
    top = logits.topk(k, dim=-1)
    return TopKLogits(top.values, top.indices)


def test_one_graph_function_serves_the_image_and_the_language_model_gld():
    assert image_gld.graph_distance is graph_distance
    assert lm_gld.graph_distance is graph_distance


def test_vocabulary_graph_distance_is_the_hand_computed_one():
    # V = 6, one sequence of two positions, top-2. Teacher keeps {0: 3, 1: 1} then {1: 2, 2: 1}; the
    # student keeps {3: 4, 4: 2} then {4: 3, 0: 1}. Channel 5 is nobody's: the union is {0, 1, 2, 3, 4}.
    teacher = TopKLogits(torch.tensor([[[3.0, 1.0], [2.0, 1.0]]]), torch.tensor([[[0, 1], [1, 2]]]))
    student = torch.tensor([[[0.0, 0.0, 0.0, 4.0, 2.0, -9.0], [1.0, 0.0, 0.0, 0.0, 3.0, -9.0]]])
    # Weighted degree of node i = mean over positions of v_t[i] * sum(v_t):
    # teacher 0.5 * ([3,1,0,0,0] * 4 + [0,2,1,0,0] * 3) = [6, 5, 1.5, 0, 0] -> sorted [0, 0, 1.5, 5, 6]
    # student 0.5 * ([0,0,0,4,2] * 6 + [1,0,0,0,3] * 4) = [2, 0, 0, 12, 12] -> sorted [0, 0, 2, 12, 12]
    expected = (0.5**2 + 7**2 + 6**2) / 5
    assert sequence_graph_distance(student, teacher, 2, 1.0).item() == pytest.approx(expected)
    # Temperature divides every kept logit, so degrees by T^2 and the distance by T^4.
    assert sequence_graph_distance(student, teacher, 2, 2.0).item() == pytest.approx(expected / 16)
    # Two sequences: the mean of each one's distance (the second is the first's teacher as student: 0).
    both = TopKLogits(torch.cat([teacher.values] * 2), torch.cat([teacher.ids] * 2))
    same = torch.full((1, 2, 6), -5.0).scatter(2, teacher.ids, teacher.values)
    pair = sequence_graph_distance(torch.cat([student, same]), both, 2, 1.0).item()
    assert pair == pytest.approx(expected / 2)


def test_graph_and_kd_are_invariant_to_a_joint_permutation_of_the_vocabulary():
    gen = torch.Generator().manual_seed(0)
    student = 3 * torch.randn(3, 7, 40, generator=gen)
    teacher = top_k(3 * torch.randn(3, 7, 40, generator=gen), 6)
    perm = torch.randperm(40, generator=gen)  # new channel j is old channel perm[j]
    inverse = torch.argsort(perm)
    permuted_student = student[..., perm]
    permuted_teacher = TopKLogits(teacher.values, inverse[teacher.ids])
    for k in (1, 3, 6):
        assert sequence_graph_distance(permuted_student, permuted_teacher, k, 1.0).item() == pytest.approx(
            sequence_graph_distance(student, teacher, k, 1.0).item(), rel=1e-5
        )
    assert forward_kl(permuted_student, permuted_teacher, 2.0).item() == pytest.approx(
        forward_kl(student, teacher, 2.0).item(), rel=1e-5
    )
    assert sequence_graph_distance(student, teacher, 3, 1.0).item() > 0


def dense_kl(p_logits: torch.Tensor, q_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    log_p = (p_logits / temperature).log_softmax(-1)
    log_q = (q_logits / temperature).log_softmax(-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * temperature**2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny Llama teacher (V = 262), a second one with the same tokenizer, and a scattertext-like corpus."""
    root = tmp_path_factory.mktemp("lm-distillation")
    tiny_causal_lm(root / "teacher", "llama", seed=0)
    tiny_causal_lm(root / "second", "llama", seed=1)
    corpus = root / "corpus"
    write_rotten_tomatoes(corpus)

    def write_csv(name, header, rows, compress):  # type: ignore[no-untyped-def]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
        data = buffer.getvalue().encode()
        (corpus / name).write_bytes(bz2.compress(data) if compress else data)

    words = ["we", "will", "build", "a", "better", "future", "for", "all", "of", "us"]
    rng = np.random.default_rng(1)
    speeches = [["d", "s", " ".join(rng.choice(words, 30))] for _ in range(30)]
    write_csv("political_data.csv", ["party", "speaker", "text"], speeches, False)
    headlines = [[i, " ".join(rng.choice(words, 8)), "2020"] for i in range(30)]
    write_csv("guardian_headlines.csv.bz2", ["", "Text", "Date"], headlines, True)
    (corpus / "hamlet.txt").write_text(
        "SCENE I. Elsinore.\nto be or not to be\nSCENE II. A room.\nwho is there"
    )
    return root


def test_top_k_storage_at_k_equal_to_the_vocabulary_loses_nothing_for_kd(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    teacher = AutoModelForCausalLM.from_pretrained(str(tiny / "teacher")).eval()
    student = AutoModelForCausalLM.from_pretrained(str(tiny / "second")).eval()
    inputs = np.random.default_rng(0).integers(0, 262, (5, 12)).astype(np.int32)
    meta = store.compute(teacher, inputs, 262, 2, "cpu", tmp_path)
    values, ids, _ = store.load(tmp_path)
    assert ids.dtype == np.uint16 and meta["bytes_per_position"] == 262 * 6 + 4
    assert meta["top_k_mass"] == pytest.approx(1.0, abs=1e-5)
    stored = TopKLogits(torch.from_numpy(np.array(values)), torch.from_numpy(ids.astype(np.int64)))
    with torch.no_grad():
        x = torch.from_numpy(inputs).long()
        t_logits, s_logits = teacher(input_ids=x).logits, student(input_ids=x).logits
    for temperature in (1.0, 2.0):
        dense = dense_kl(t_logits, s_logits, temperature).item()
        assert forward_kl(s_logits, stored, temperature).item() == pytest.approx(dense, rel=1e-5)
        assert reverse_kl(s_logits, stored, temperature).item() == pytest.approx(
            dense_kl(s_logits, t_logits, temperature).item(), rel=1e-5
        )
    # Fewer channels renormalise the teacher over its top k: no longer the dense KL.
    assert forward_kl(s_logits, stored.first(4), 1.0).item() != pytest.approx(
        dense_kl(t_logits, s_logits, 1.0).item(), rel=1e-3
    )


def test_the_truncated_student_is_the_teacher_at_all_layers_and_smaller_below(tiny):
    from transformers import AutoModelForCausalLM

    teacher = AutoModelForCausalLM.from_pretrained(str(tiny / "teacher")).eval()
    x = torch.randint(0, 262, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = teacher(input_ids=x).logits
        full = students.truncated(teacher, 2).eval()
        assert torch.equal(full(input_ids=x).logits, expected)
        one = students.truncated(teacher, 1).eval()
        assert not torch.allclose(one(input_ids=x).logits, expected)
    assert len(one.model.layers) == 1 and len(teacher.model.layers) == 2, "the teacher is left whole"
    frozen = {id(one.get_input_embeddings().weight), id(one.get_output_embeddings().weight)}
    trained = students.trained_parameters(one, embeddings=False)
    assert trained and not frozen & {id(p) for p in trained}
    with pytest.raises(UserError, match=r"'student_layers' must be 1 to 2 .*got 3"):
        students.truncated(teacher, 3)


def run(tiny, results, task, method, task_params=None, method_params=None):  # type: ignore[no-untyped-def]
    params = {"teacher": str(tiny / "teacher"), "corpus_asset": str(tiny / "corpus"), **(task_params or {})}
    spec = make_spec(TASKS.get(task), METHODS.get(method), 0, "smoke", params, method_params or {})
    return run_spec(spec, ResultStore(results), WorkerOptions(str(results)), "t")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return tmp_path_factory.mktemp("lm-distillation-results")


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_distils_a_truncated_student(tiny, results, method):
    record = run(tiny, results, "lm_distillation/truncated", method, {"student_layers": 1})
    assert record["status"] == "ok", record["error"]
    metrics = {k: v["value"] for k, v in record["metrics"].items()}
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert metrics["teacher_kl"] >= 0 and 0 <= metrics["teacher_agreement"] <= 1
    assert 0 <= metrics["cloze_accuracy"] <= 1 and metrics["test_perplexity"] > 1
    terms = record["details"]["loss_terms"]
    assert ("gld" in terms) == ("gld" in method)
    assert ("kd" in terms) == (method in ("lm-kd", "lm-kd+gld"))
    assert record["details"]["storage"][0]["bytes_per_position"] == 16 * 6 + 4


def test_a_scratch_student_and_fusion_with_a_second_source(tiny, results):
    record = run(tiny, results, "lm_distillation/scratch", "lm-kd+gld", {"scratch_dim": 32})
    assert record["status"] == "ok", record["error"]
    assert record["metrics"]["student_parameters"]["value"] < 262 * 32 * 2 + 40_000
    fused = run(tiny, results, "lm_distillation/truncated", "lm-kd", {"second_source": str(tiny / "second")})
    assert fused["status"] == "ok", fused["error"]
    assert [s["source"] for s in fused["details"]["storage"]] == [str(tiny / "teacher"), str(tiny / "second")]
    expert = run(tiny, results, "lm_distillation/truncated", "lm-gld", {"second_source": "generation-expert"})
    assert expert["status"] == "ok", expert["error"]
    assert len(expert["details"]["storage"]) == 2


def test_the_hub_corpus_task_reads_a_local_folder_in_the_hub_layout(tiny, results, tmp_path):
    folder = tmp_path / "wiki"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for split in ("train", "validation", "test"):
        rows = [{"text": " ".join(rng.choice(["the", "cat", "sat", "on", "mat"], 20))} for _ in range(20)]
        (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    record = run(tiny, results, "lm_distillation/hub-corpus", "lm-sft", {"corpus": str(folder)})
    assert record["status"] == "ok", record["error"]


@pytest.mark.parametrize(
    ("task_params", "method", "method_params", "message"),
    [
        (
            {"student_layers": 5},
            "lm-sft",
            {},
            r"'student_layers' must be 1 to 2 \(the teacher's blocks\), got 5",
        ),
        ({"top_k": 300}, "lm-kd", {}, r"'top_k' must be at most the vocabulary size 262, got 300"),
        ({"top_k": 4}, "lm-gld", {"top_k": 6}, r"method 'lm-gld' needs the teacher's top 6 .*top_k=4"),
        ({}, "lm-kd", {"temperature": 0.0}, r"method 'lm-kd': parameter 'temperature' must be > 0, got 0.0"),
        ({}, "lm-kd+gld", {"alpha": 1.5}, r"parameter 'alpha' must be in \[0, 1\], got 1.5"),
        ({}, "lm-gld", {"weight": -1.0}, r"parameter 'weight' must be >= 0"),
    ],
)
def test_bad_parameters_fail_with_one_line_naming_them(
    tiny, results, task_params, method, method_params, message
):
    record = run(tiny, results, "lm_distillation/truncated", method, task_params, method_params)
    assert record["status"] == "failed"
    assert re_search(message, record["error"]["message"]) and "\n" not in record["error"]["message"]


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"length": 1}, r"'length' must be at least 2"),
        (
            {"scratch_dim": 50, "student": "scratch"},
            r"'scratch_dim' must be a positive multiple of 32, got 50",
        ),
        ({"steps": -1}, r"'steps' must be >= 0"),
        ({"eval_windows": 0}, r"'eval_windows' must be at least 1"),
    ],
)
def test_task_parameters_are_checked_before_anything_runs(params, message):
    task = TASKS.get("lm_distillation/truncated")(**params)
    with pytest.raises(UserError, match=message):
        task.check_inputs()


def test_a_second_source_with_another_tokenizer_is_refused(tiny, results, tmp_path):
    other = tmp_path / "other"
    tiny_causal_lm(other, "llama")
    vocab = json.loads((other / "vocab.json").read_text())
    vocab["zz"] = vocab.pop(next(iter(vocab)))
    (other / "vocab.json").write_text(json.dumps(vocab))
    (other / "tokenizer.json").unlink()
    record = run(tiny, results, "lm_distillation/truncated", "lm-kd", {"second_source": str(other)})
    assert record["status"] == "failed" and "does not share the tokenizer" in record["error"]["message"]


# --- artifact keys, as the planner sees them before anything runs ----------------------------------------


def _planned(runs, store):  # type: ignore[no-untyped-def]
    from harness.leaderboard import PlannedRun
    from harness.planner import plan_runs

    return plan_runs([PlannedRun(s.task.name, s.method.name, s) for s in runs], store)


def _built_artifacts(store: ResultStore) -> set[str]:
    return {
        f"{folder.parent.name}/{folder.name}"
        for folder in store.artifacts_dir.glob("*/*")
        if (folder / ".complete").exists()
    }


def _tiny_spec(tiny, task_params, method="lm-kd", seed=0, task="lm_distillation/truncated"):  # type: ignore[no-untyped-def]
    params = {"teacher": str(tiny / "teacher"), "corpus_asset": str(tiny / "corpus"), "student_layers": 1}
    return make_spec(TASKS.get(task), METHODS.get(method), seed, "smoke", {**params, **task_params}, {})


@pytest.mark.parametrize(
    ("second_source", "count"),
    [("", 3), ("second", 4), ("generation-expert", 5)],  # text, logits per source, cloze (+ the expert)
)
def test_the_predicted_artifact_keys_are_the_folders_a_run_creates(tiny, tmp_path, second_source, count):
    """Planned from an empty store, then run: the keys predicted without loading a model are exactly
    the artifact folders the run made (the generation expert's capped at the tiny teacher's 2 blocks)."""
    source = str(tiny / second_source) if second_source == "second" else second_source
    spec = _tiny_spec(tiny, {"second_source": source} if source else {})
    store = ResultStore(tmp_path / "results")
    predicted = _planned([spec], store).steps[0].builds
    record = run_spec(spec, store, WorkerOptions(str(store.root)), "r")
    assert record["status"] == "ok", record["error"]
    assert len(predicted) == count and set(predicted) == _built_artifacts(store)


def test_runs_sharing_a_teacher_wait_for_the_one_that_builds_its_artifacts(tiny, tmp_path):
    shared = [_tiny_spec(tiny, {}, method, seed) for method in ("lm-kd", "lm-gld") for seed in (0, 1)]
    other_k = _tiny_spec(tiny, {"top_k": 8})  # its own stored logits; the same windows and cloze score
    plan = _planned([*shared, other_k], ResultStore(tmp_path / "results"))
    builder, *rest = plan.steps
    assert len(builder.builds) == 3 and not builder.waits_for
    kinds = {key.split("/")[0] for key in builder.builds}
    assert kinds == {"lm-distillation-text", "lm-distillation-logits", "lm-distillation-teacher-cloze"}
    by_key = {step.run.spec.key: step for step in rest}
    for spec in shared[1:]:
        assert set(by_key[spec.key].waits_for) == set(builder.builds) and not by_key[spec.key].builds
    own = by_key[other_k.key]
    [logits] = own.builds
    assert logits.startswith("lm-distillation-logits/") and logits not in builder.builds
    assert set(own.waits_for) == set(builder.builds) - {k for k in builder.builds if "logits" in k}
    assert plan.steps.index(own) < min(plan.steps.index(by_key[s.key]) for s in shared[1:])  # builders first


@pytest.mark.slow  # the real SmolLM2 asset: its conversion is an artifact too (~1 min here)
def test_the_embedded_teachers_conversion_is_predicted_with_the_rest(tmp_path):
    spec = make_spec(TASKS.get("lm_distillation/truncated"), METHODS.get("lm-kd"), 0, "smoke", {}, {})
    store = ResultStore(tmp_path / "results")
    predicted = _planned([spec], store).steps[0].builds
    record = run_spec(spec, store, WorkerOptions(str(store.root)), "r")
    assert record["status"] == "ok", record["error"]
    assert "causal-lm-converted" in {k.split("/")[0] for k in predicted}
    assert len(predicted) == 4 and set(predicted) == _built_artifacts(store)
