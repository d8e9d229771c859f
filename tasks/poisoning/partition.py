"""Deterministic hash partitioning: where a training sample goes depends on its own content only.

That independence is what the certificates rely on: inserting, deleting or changing one sample touches
the one partition (DPA) or the one bucket (FA) its content hashes to, and no other.
"""

from __future__ import annotations

import hashlib

import numpy as np


def content_hash(samples: np.ndarray, salt: int) -> np.ndarray:
    """(samples,) 64-bit hash of each sample's bytes and the salt."""
    prefix = salt.to_bytes(8, "little", signed=True)
    rows = np.ascontiguousarray(samples.reshape(len(samples), -1))
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(prefix + row.tobytes(), digest_size=8).digest(), "little")
            for row in rows
        ],
        dtype=np.uint64,
    )


def dpa_groups(hashes: np.ndarray, k: int) -> list[np.ndarray]:
    """DPA: k disjoint partitions; model m trains on the samples hashing to m."""
    part = (hashes % np.uint64(k)).astype(np.int64)
    return [np.flatnonzero(part == m) for m in range(k)]


def fa_spread(k: int, d: int) -> np.ndarray:
    """The d offsets that send a bucket to its d models (fixed, part of the scheme)."""
    return np.random.default_rng(0).permutation(k * d)[:d]


def fa_bucket_models(k: int, d: int) -> np.ndarray:
    """(k*d, d): the models each bucket's samples train."""
    return (np.arange(k * d)[:, None] + fa_spread(k, d)[None, :]) % (k * d)


def fa_groups(hashes: np.ndarray, k: int, d: int) -> list[np.ndarray]:
    """FA: k*d buckets; model m trains on every bucket b with m in fa_bucket_models(k, d)[b]."""
    bucket = (hashes % np.uint64(k * d)).astype(np.int64)
    reach = fa_bucket_models(k, d)
    members: list[list[int]] = [[] for _ in range(k * d)]
    for b, models in enumerate(reach):
        for m in models:
            members[m].append(b)
    return [np.flatnonzero(np.isin(bucket, buckets)) for buckets in members]
