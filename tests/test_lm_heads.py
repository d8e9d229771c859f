"""Output heads: VQ-Logits' gather and fast normaliser, k-means, parameter counts, perplexity by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F  # noqa: N812

from tasks.lm.heads import AdaptiveHead, FullHead, LowRankHead, VQLogitsHead, frequency_buckets, kmeans
from tasks.lm.training import perplexity


@pytest.fixture
def vq():
    torch.manual_seed(0)
    mapping = torch.tensor([0, 2, 2, 1, 0, 2, 4])  # code 3 is empty
    head = VQLogitsHead(torch.randn(5, 8), mapping, token_bias=True)
    with torch.no_grad():
        head.bias.copy_(torch.randn(7))
    return head


def test_scattered_logits_are_the_code_logits_gathered_through_the_map(vq):
    h = torch.randn(3, 8)
    codes = h @ vq.codebook.T
    expected = torch.stack([codes[:, int(vq.mapping[i])] + vq.bias[i] for i in range(7)], dim=1)
    assert torch.allclose(vq.logits(h), expected)


@pytest.mark.parametrize("bias", [True, False])
def test_fast_log_normaliser_equals_the_naive_one(vq, bias):
    if not bias:
        vq.bias = None
    h, y = torch.randn(6, 8, dtype=torch.float32), torch.tensor([0, 1, 2, 3, 4, 6])
    naive = F.cross_entropy(vq.logits(h), y, reduction="none")
    assert torch.allclose(vq.nll(h, y), naive, atol=1e-5)
    assert torch.allclose(
        vq.log_normalizer(vq.code_logits(h)), torch.logsumexp(vq.logits(h), dim=1), atol=1e-5
    )
    # without a bias, log S_k is the log of each code's token count (empty code: -inf)
    if not bias:
        assert vq.log_code_mass().exp().tolist() == pytest.approx([2, 1, 3, 0, 1])


def test_kmeans_is_deterministic_under_a_seed():
    points = torch.randn(300, 6, generator=torch.Generator().manual_seed(1))
    a, b, c = kmeans(points, 10, seed=3), kmeans(points, 10, seed=3), kmeans(points, 10, seed=4)
    assert torch.equal(a[1], b[1]) and torch.equal(a[0], b[0])
    assert not torch.equal(a[1], c[1])


def test_parameter_counts_match_the_formulas():
    d, v = 16, 1000
    assert FullHead(d, v).parameter_count() == d * v + v
    assert LowRankHead(d, v, 4).parameter_count() == d * 4 + 4 * v + v
    assert (
        VQLogitsHead(torch.zeros(32, d), torch.zeros(v, dtype=torch.long), True).parameter_count()
        == 32 * d + v
    )
    assert (
        VQLogitsHead(torch.zeros(32, d), torch.zeros(v, dtype=torch.long), False).parameter_count() == 32 * d
    )
    # adaptive softmax, cutoffs (100, 400), div 4: head d*(100 + 2); tail i: d*(d/4^(i+1)) + (d/4^(i+1))*n_i
    adaptive = AdaptiveHead(d, v, torch.arange(v), [100, 400], 4.0)
    assert adaptive.parameter_count() == d * 102 + (d * 4 + 4 * 300) + (d * 1 + 1 * 600)


def test_frequency_buckets_have_equal_mass():
    counts = torch.tensor([40, 30, 10, 10, 5, 3, 1, 1])
    mapping = frequency_buckets(counts, 2)
    mass = [float((counts[mapping == k] + 1).sum()) for k in range(2)]
    assert mapping[0] == 0 and mapping[-1] == 1 and abs(mass[0] - mass[1]) <= 41


def test_adaptive_head_nll_matches_its_own_log_probabilities():
    torch.manual_seed(0)
    head = AdaptiveHead(8, 50, torch.randperm(50), [10, 30], 2.0)
    h, y = torch.randn(5, 8), torch.tensor([0, 7, 19, 33, 49])
    assert torch.allclose(head.nll(h, y), -head.logits(h).gather(1, y[:, None])[:, 0], atol=1e-5)


def test_perplexity_of_a_known_distribution():
    # A model that gives the true next token probability 1/2 everywhere has perplexity exactly 2;
    # one that gives 1/4 to the first half of the predictions and 1 to the rest: exp(ln(4)/2) = 2.
    tokens = torch.tensor([0, 1] * 50)

    def halves(x, y):  # type: ignore[no-untyped-def]
        return torch.full(y.shape, math.log(2.0))

    assert perplexity(halves, tokens, block=16, max_tokens=0) == pytest.approx(2.0)

    def mixed(x, y):  # type: ignore[no-untyped-def]
        return torch.tensor([math.log(4.0), 0.0]).repeat(y.numel() // 2 + 1)[: y.numel()].reshape(y.shape)

    assert perplexity(mixed, tokens[:9], block=8, max_tokens=0) == pytest.approx(2.0)


def test_vq_head_starts_as_a_unigram_model_within_each_code():
    from methods.lm.vq_logits import VQLogits
    from tasks.lm.protocol import HeadContext

    torch.manual_seed(0)
    warm = torch.randn(40, 8)
    counts = torch.arange(40).numpy()
    head = VQLogits(codes=4, mapping="random").make_head(HeadContext(8, 40, counts, warm, seed=1))
    shares = torch.zeros(4).index_add(0, head.mapping, head.bias.exp())
    assert torch.allclose(shares, torch.ones(4), atol=1e-5), "exp(bias) of each code's tokens sums to 1"
    for code in range(4):
        members = head.mapping == code
        if members.any():
            assert torch.allclose(head.codebook[code], warm[members].mean(dim=0), atol=1e-5)


def _two_pass_logits(head: VQLogitsHead, h: torch.Tensor) -> torch.Tensor:
    """The gather as it was first written: index_select of the (K, N) code logits, then the bias add."""
    scattered = (head.codebook @ h.T).index_select(0, head.mapping)
    if head.bias is not None:
        scattered += head.bias[:, None]
    return scattered.T


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_gather_is_bitwise_the_two_pass_gather(threads, dtype):
    torch.manual_seed(1)
    vocab, codes, dim, positions = 5_000, 64, 16, 33
    head = VQLogitsHead(torch.randn(codes, dim), torch.randint(codes, (vocab,)), token_bias=True).to(dtype)
    with torch.no_grad():
        head.bias.copy_(torch.randn(vocab, dtype=dtype))
    h = torch.randn(positions, dim, dtype=dtype)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            expected = _two_pass_logits(head, h)
            fresh = head.logits(h)
            buffer = torch.full((vocab, positions), float("nan"), dtype=dtype)
            into = head.logits(h, out=buffer)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(fresh, expected) and torch.equal(into, expected)
    assert into.data_ptr() == buffer.data_ptr() and into.shape == (positions, vocab)


def test_vq_logits_keep_their_gradient(vq):
    h = torch.randn(4, 8, requires_grad=True)
    vq.logits(h).sum().backward()
    expected_h = torch.autograd.grad(_two_pass_logits(vq, h).sum(), h)[0]
    assert torch.allclose(h.grad, expected_h)
    assert vq.bias.grad is not None and vq.codebook.grad is not None
    with torch.no_grad():
        assert torch.equal(vq.logits(h), _two_pass_logits(vq, h))
