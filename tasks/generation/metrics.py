"""Metrics of a synthetic text set: diversity (distinct-n, self-BLEU), fidelity to held-out real examples
(a real-vs-synthetic classifier's AUC, the embedding similarity to the nearest real example) and coherence
(perplexity under the base model).

Texts are split into lower-cased words and punctuation marks for the n-gram metrics. Distinct-n is
Li et al. (2016): distinct n-grams over all n-grams of the whole set. Self-BLEU is Zhu et al. (2018,
Texygen): each text's BLEU-4 against all the others as references, averaged (nltk's `sentence_bleu` with
smoothing method 1, as Texygen uses); lower is more diverse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the set (0 when no text has n words)."""
    grams = [tuple(w[i : i + n]) for w in map(words, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(texts: Sequence[str], order: int = 4) -> float:
    """Mean BLEU-`order` of each non-empty text against every other text as references."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    tokenized = [w for w in map(words, texts) if w]
    if len(tokenized) < 2:
        raise ValueError(f"self-BLEU needs at least two non-empty texts, got {len(tokenized)}")
    smoothing = SmoothingFunction().method1
    weights = (1.0 / order,) * order
    scores = [
        sentence_bleu(tokenized[:i] + tokenized[i + 1 :], hypothesis, weights, smoothing)
        for i, hypothesis in enumerate(tokenized)
    ]
    return float(np.mean(scores))


def classifier_auc(real: Sequence[str], synthetic: Sequence[str], folds: int = 5) -> float:
    """Cross-validated ROC AUC of TF-IDF (words and word pairs) + logistic regression telling synthetic
    from real texts: 0.5 is indistinguishable, 1 fully separable. Folds are grouped by text, so copies of
    one text are always scored together (a copied real example cannot be told apart, and identical sets
    give exactly 0.5)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    texts = [*real, *synthetic]
    labels = np.array([0] * len(real) + [1] * len(synthetic))
    groups = np.unique(np.array(texts, dtype=object), return_inverse=True)[1]
    splits = min(folds, len(set(groups.tolist())))
    if splits < 2 or not real or not synthetic:
        raise ValueError("the classifier needs real and synthetic texts and at least two distinct texts")
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b"),
        LogisticRegression(max_iter=1000),
    )
    scores = cross_val_predict(
        model, texts, labels, groups=groups, cv=GroupKFold(n_splits=splits), method="predict_proba"
    )[:, 1]
    return float(roc_auc_score(labels, scores))


def nearest_similarity(real: np.ndarray, synthetic: np.ndarray) -> float:
    """Mean over synthetic texts of the cosine similarity to the nearest real text ((n, dim) embeddings)."""
    a = synthetic / np.linalg.norm(synthetic, axis=1, keepdims=True).clip(1e-12)
    b = real / np.linalg.norm(real, axis=1, keepdims=True).clip(1e-12)
    return float((a @ b.T).max(axis=1).mean())


def embed(encoder: Any, tokenizer: Any, texts: Sequence[str], device: str, batch: int = 64) -> np.ndarray:
    """(texts, dim) mean-pooled sentence embeddings (how all-MiniLM-L6-v2 was trained to be used)."""
    import torch

    from tasks.early_exit.backbone import pool

    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            enc = tokenizer(
                [t or " " for t in texts[start : start + batch]],
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            ).to(device)
            hidden = encoder(**enc).last_hidden_state
            out.append(pool(hidden, enc["attention_mask"], "mean").float().cpu().numpy())
    return np.concatenate(out)


def perplexity(
    model: Any, tokenizer: Any, prompt: str, texts: Sequence[str], device: str, batch: int = 16
) -> float:
    """exp(mean NLL per token) of the texts' tokens after the task's prompt, under `model`: how natural
    a general LM finds them. Empty texts add no token."""
    import torch
    from torch.nn.functional import log_softmax

    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    rows = [tokenizer(" " + t, add_special_tokens=False)["input_ids"] for t in texts if t.strip()]
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            width = len(prompt_ids) + max(map(len, chunk))
            ids = torch.full((len(chunk), width), tokenizer.eos_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, row in enumerate(chunk):
                full = prompt_ids + row
                ids[i, : len(full)] = torch.tensor(full)
                mask[i, : len(full)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            logp = log_softmax(logits[:, :-1], dim=-1)
            target = ids[:, 1:].to(device)
            nll = -logp.gather(-1, target[..., None])[..., 0]
            scored = torch.zeros_like(mask[:, 1:])
            for i, row in enumerate(chunk):
                scored[i, len(prompt_ids) - 1 : len(prompt_ids) - 1 + len(row)] = 1
            scored = scored.to(device).bool()
            total += float(nll[scored].sum())
            count += int(scored.sum())
    return math.exp(total / count) if count else math.inf
