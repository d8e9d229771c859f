"""Output heads as torch modules. Each has nll(h, y), logits(h) and parameter_count().

VQ-Logits (arXiv 2505.10202): K code vectors C (K x d) and a map M from the V tokens to codes. A token's
logit is its code's logit plus an optional per-token bias: logit_i = h . C[M(i)] + b_i. Scattering the K
code logits to V tokens is a gather, not a V x d product, and the normaliser needs no V-sized tensor:
log sum_i exp(z_M(i) + b_i) = logsumexp_k (z_k + log S_k), S_k = sum_{i in code k} exp(b_i) (the code's
token count when there is no bias).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


class Head(nn.Module):
    frozen = False  # a pretrained head kept untouched as the reference

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def nll(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(h), y, reduction="none")

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class FullHead(Head):
    def __init__(self, dim: int, vocab: int, weight: torch.Tensor | None = None, bias: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, vocab, bias=bias)
        if weight is not None:
            self.frozen = True
            with torch.no_grad():
                self.linear.weight.copy_(weight)
                if bias:
                    self.linear.bias.zero_()

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h)


class LowRankHead(Head):
    """logits = (h A) B + b: d*r + r*V (+ V) parameters instead of d*V."""

    def __init__(self, dim: int, vocab: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, rank, bias=False)
        self.up = nn.Linear(rank, vocab)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(h))


class AdaptiveHead(Head):
    """torch's adaptive softmax; token ids are first renumbered by training frequency (its requirement)."""

    def __init__(
        self, dim: int, vocab: int, rank_of_token: torch.Tensor, cutoffs: list[int], div_value: float
    ):
        super().__init__()
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(dim, vocab, cutoffs, div_value=div_value)
        self.register_buffer("rank_of_token", rank_of_token)

    def nll(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -self.softmax(h, self.rank_of_token[y]).output

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.softmax.log_prob(h)[:, self.rank_of_token]


class VQLogitsHead(Head):
    def __init__(self, codebook: torch.Tensor, mapping: torch.Tensor, token_bias: bool) -> None:
        super().__init__()
        self.codebook = nn.Parameter(codebook.clone())
        self.register_buffer("mapping", mapping.long())
        self.bias = nn.Parameter(torch.zeros(len(mapping))) if token_bias else None

    @property
    def codes(self) -> int:
        return self.codebook.shape[0]

    def code_logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.codebook.T  # (N, K)

    def logits(self, h: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """(N, V), returned as the transpose of a (V, N) array: gathering whole rows of the (K, N) code
        logits copies contiguous memory, so the cost is one write of the output (a gather of K logits per
        position, not a V x d product). `out`, a (V, N) buffer reused across calls, spares the fresh
        allocation's page faults, which on CPU cost more than the gather itself. Without autograd on CPU
        the gather and the bias add are one compiled pass over the output, split over torch's threads."""
        z = self.codebook @ h.T  # (K, N)
        bias_grad = self.bias is not None and self.bias.requires_grad
        if torch.is_grad_enabled() and (z.requires_grad or bias_grad):
            if out is not None:
                raise ValueError("VQLogitsHead.logits: out= is for inference (torch.no_grad()) only")
            scattered = z.index_select(0, self.mapping)  # (V, N)
            if self.bias is not None:
                scattered += self.bias[:, None]
            return scattered.T
        if out is None:
            out = torch.empty((len(self.mapping), z.shape[1]), dtype=z.dtype, device=z.device)
        if self.bias is None:
            torch.index_select(z, 0, self.mapping, out=out)
        elif _fused_gather_applies(z, self.bias, out):
            _gather_rows_add(z, self.mapping, self.bias, out)
        else:
            torch.index_select(z, 0, self.mapping, out=out)
            out += self.bias[:, None]
        return out.T

    def log_code_mass(self) -> torch.Tensor:
        """(K,) log S_k: log of the summed exp(bias) of each code's tokens (log count without a bias)."""
        weights = (
            torch.ones_like(self.mapping, dtype=self.codebook.dtype) if self.bias is None else self.bias.exp()
        )
        mass = torch.zeros(self.codes, dtype=weights.dtype, device=weights.device).index_add(
            0, self.mapping, weights
        )
        return torch.where(mass > 0, mass.clamp_min(1e-30).log(), torch.full_like(mass, float("-inf")))

    def log_normalizer(self, code_logits: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(code_logits + self.log_code_mass(), dim=1)

    def nll(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = self.code_logits(h)
        target = z.gather(1, self.mapping[y][:, None])[:, 0]
        if self.bias is not None:
            target = target + self.bias[y]
        return self.log_normalizer(z) - target

    @torch.no_grad()
    def reassign(self, reference: torch.Tensor) -> int:
        """Move each token to the code nearest its reference vector (cosine); returns how many moved."""
        codes = F.normalize(self.codebook, dim=1)
        nearest = torch.cat(
            [(F.normalize(chunk, dim=1) @ codes.T).argmax(dim=1) for chunk in reference.split(8192)]
        )
        moved = int((nearest != self.mapping).sum())
        self.mapping.copy_(nearest)
        return moved


def _fused_gather_applies(z: torch.Tensor, bias: torch.Tensor, out: torch.Tensor) -> bool:
    same = z.dtype == bias.dtype == out.dtype and z.dtype in (torch.float32, torch.float64)
    on_cpu = z.device.type == bias.device.type == out.device.type == "cpu"
    return same and on_cpu and z.is_contiguous() and out.is_contiguous()


def _gather_rows_add(z: torch.Tensor, mapping: torch.Tensor, bias: torch.Tensor, out: torch.Tensor) -> None:
    """out[v] = z[mapping[v]] + bias[v], the rows cut into one contiguous range per torch thread (the
    compiled kernel releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from tasks.lm.gather import gather_rows_add

    arrays = z.detach().numpy(), mapping.numpy(), bias.detach().numpy(), out.numpy()
    threads = max(1, min(torch.get_num_threads(), len(mapping) // 1024))
    if threads == 1:
        gather_rows_add(*arrays, 0, len(mapping))
        return
    bounds = [len(mapping) * i // threads for i in range(threads + 1)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: gather_rows_add(*arrays, bounds[i], bounds[i + 1]), range(threads)))


def kmeans(
    points: torch.Tensor, k: int, seed: int, iterations: int = 15
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spherical k-means (cosine) with seeded k-means++-lite init: (centroids (k, d), assignment (n,))."""
    generator = torch.Generator().manual_seed(seed)
    unit = F.normalize(points.float(), dim=1)
    centroids = unit[torch.randperm(len(unit), generator=generator)[:k]].clone()
    assignment = torch.zeros(len(unit), dtype=torch.long)
    for _ in range(iterations):
        assignment = torch.cat([(chunk @ centroids.T).argmax(dim=1) for chunk in unit.split(8192)])
        sums = torch.zeros_like(centroids).index_add(0, assignment, unit)
        counts = torch.bincount(assignment, minlength=k)
        empty = counts == 0
        if empty.any():  # re-seed empty clusters with random points
            sums[empty] = unit[torch.randint(len(unit), (int(empty.sum()),), generator=generator)]
        centroids = F.normalize(sums, dim=1)
    scale = points.float().norm(dim=1).mean()
    return centroids * scale, assignment


def frequency_buckets(counts: torch.Tensor, k: int) -> torch.Tensor:
    """Tokens sorted by frequency and cut into k buckets of equal total frequency (+1 smoothing)."""
    order = torch.argsort(counts.double() + 1.0, descending=True)
    cumulative = torch.cumsum(counts.double()[order] + 1.0, dim=0)
    bucket_of_rank = torch.clamp((cumulative / cumulative[-1] * k).ceil().long() - 1, 0, k - 1)
    mapping = torch.empty_like(order)
    mapping[order] = bucket_of_rank
    return mapping


def code_means(
    vectors: torch.Tensor, assignment: torch.Tensor, k: int, fallback: torch.Tensor
) -> torch.Tensor:
    """(k, d) the mean of each code's vectors (the least-squares code for its tokens); empty codes keep
    their `fallback` row."""
    sums = torch.zeros(k, vectors.shape[1], dtype=vectors.dtype).index_add(0, assignment.cpu(), vectors.cpu())
    counts = torch.bincount(assignment.cpu(), minlength=k).to(vectors.dtype)[:, None]
    return torch.where(counts > 0, sums / counts.clamp_min(1), fallback.to(vectors.dtype))
