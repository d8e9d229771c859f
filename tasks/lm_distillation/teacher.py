"""Source-model logits as an artifact: the k largest next-token logits (values and ids) at every position
of the training windows, so that a run never runs the teacher on its training text.

Cost on disk, per position: k values (float32, 4 bytes) + k ids (uint16, 2 bytes, when the vocabulary has
at most 65,536 tokens as SmolLM2's 49,152; int32 otherwise) + the full-vocabulary log-sum-exp (float32,
kept to measure how much of the teacher's probability the k channels hold). At k = 64 that is 388 bytes a
position, against 196,608 for SmolLM2's full float32 logits (a 507x saving): the cpu setting's 16,384
positions take 6.4 MB; the paper setting's 4.2M positions at k = 32 take 0.8 GB. float32 values keep
k = V exact (a test checks KD from the store against KD from the dense logits); float16 would halve the
values' part.

Windows are `length + 1` consecutive tokens of the split's stream, starting at evenly spaced offsets so
that every corpus of the split is represented; a window's input is its first `length` tokens and its
targets are the `length` tokens after each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

VALUES, IDS, LOGSUMEXP = "values.npy", "ids.npy", "logsumexp.npy"


def id_dtype(vocab: int) -> type:
    return np.uint16 if vocab <= 2**16 else np.int32


def bytes_per_position(k: int, vocab: int) -> int:
    return k * (4 + np.dtype(id_dtype(vocab)).itemsize) + 4


def windows(stream: np.ndarray, length: int, count: int) -> np.ndarray:
    """(count, length + 1) int32 windows at evenly spaced starts, at most as many as fit without
    overlapping (a short stream gives fewer)."""
    fit = (len(stream) - 1) // length
    count = min(count, fit)
    if count < 1:
        return np.zeros((0, length + 1), dtype=np.int32)
    starts = np.linspace(0, len(stream) - length - 1, count).round().astype(np.int64)
    return np.stack([stream[s : s + length + 1] for s in starts]).astype(np.int32)


def compute(model: Any, inputs: np.ndarray, k: int, batch: int, device: str, out: Path) -> dict[str, float]:
    """Write the model's top-k logits on `inputs` (windows, length) into `out`; return what it cost."""
    import time

    import torch

    start = time.perf_counter()
    vocab = int(model.get_output_embeddings().weight.shape[0])
    n, length = inputs.shape
    values = np.lib.format.open_memmap(out / VALUES, "w+", np.float32, (n, length, k))
    ids = np.lib.format.open_memmap(out / IDS, "w+", id_dtype(vocab), (n, length, k))
    lse = np.lib.format.open_memmap(out / LOGSUMEXP, "w+", np.float32, (n, length))
    with torch.no_grad():
        for begin in range(0, n, batch):
            x = torch.from_numpy(inputs[begin : begin + batch]).long().to(device)
            logits = model(input_ids=x).logits.float()
            top = logits.topk(k, dim=-1)
            values[begin : begin + len(x)] = top.values.cpu().numpy()
            ids[begin : begin + len(x)] = top.indices.cpu().numpy()
            lse[begin : begin + len(x)] = logits.logsumexp(dim=-1).cpu().numpy()
    for table in (values, ids, lse):
        table.flush()
    mass = float(np.exp(values - lse[..., None]).sum(axis=-1).mean()) if n else 0.0
    meta = {
        "seconds": time.perf_counter() - start,
        "k": k,
        "vocab": vocab,
        "positions": n * length,
        "bytes_per_position": bytes_per_position(k, vocab),
        "bytes": n * length * bytes_per_position(k, vocab),
        "top_k_mass": mass,  # mean share of the model's probability (T = 1) its k stored channels hold
    }
    (out / "meta.json").write_text(json.dumps(meta))
    return meta


def load(folder: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(values, ids, meta) of a stored artifact, the tables memory-mapped."""
    values = np.load(folder / VALUES, mmap_mode="r")
    ids = np.load(folder / IDS, mmap_mode="r")
    return values, ids, json.loads((folder / "meta.json").read_text())
