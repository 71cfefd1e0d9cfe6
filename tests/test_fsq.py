"""Tests for minicosy.speech_tokenizer.fsq: Eq. 1 / Eq. 2 of CosyVoice 2, the straight-through gradient, the VQ
baseline, codebook statistics, and agreement with an independent FSQ implementation."""

import itertools

import pytest
import torch

from minicosy.speech_tokenizer.fsq import FSQ, VectorQuantizer, codebook_usage, round_ste


@pytest.mark.parametrize("D,K", [(1, 1), (2, 1), (3, 2), (4, 1), (2, 3)])
def test_round_trip_over_whole_codebook(D, K):
    q = FSQ(16, num_dims=D, K=K)
    assert q.codebook_size == (2 * K + 1) ** D
    idx = torch.arange(q.codebook_size)
    codes = q.indices_to_codes(idx)
    assert codes.shape == (q.codebook_size, D)
    assert codes.min() == -K and codes.max() == K
    assert torch.equal(codes, codes.round())
    assert torch.equal(q.codes_to_indices(codes), idx)
    # every grid point appears exactly once
    assert len({tuple(c) for c in codes.long().tolist()}) == q.codebook_size


def test_paper_codebook_size():
    assert FSQ(32, num_dims=8, K=1).codebook_size == 6561


def test_eq2_known_answer():
    """μ = Σ_j (h_j + K)(2K+1)^j with K = 1: codes (-1, 0, 1) → 0·1 + 1·3 + 2·9 = 21."""
    q = FSQ(8, num_dims=3, K=1)
    assert q.codes_to_indices(torch.tensor([[-1.0, 0.0, 1.0]])).tolist() == [21]
    assert q.indices_to_codes(torch.tensor([21])).tolist() == [[-1.0, 0.0, 1.0]]
    # brute force Eq. 2 over all codes, written independently of the package
    for code in itertools.product(range(-1, 2), repeat=3):
        mu = sum((c + 1) * 3 ** j for j, c in enumerate(code))
        assert q.codes_to_indices(torch.tensor([code], dtype=torch.float)).item() == mu


def test_forward_is_eq1():
    torch.manual_seed(0)
    q = FSQ(32, num_dims=6, K=2)
    h = torch.randn(2, 7, 32)
    h_hat, idx = q(h)
    assert h_hat.shape == h.shape and idx.shape == (2, 7) and idx.dtype == torch.long
    codes = torch.round(2 * torch.tanh(q.proj_down(h)))  # bound K·tanh, then round   [Eq. 1]
    assert torch.allclose(h_hat, q.proj_up(codes))
    assert torch.equal(idx, q.codes_to_indices(codes))
    assert torch.allclose(q.embed_tokens(idx), h_hat, atol=1e-6)


def test_straight_through_gradient():
    x = torch.tensor([0.2, 0.7, -1.4, 2.5], requires_grad=True)
    y = round_ste(x)
    assert y.tolist() == [0.0, 1.0, -1.0, 2.0]
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 3.0, 4.0]  # identity backward
    q = FSQ(8, num_dims=4, K=1)
    h = torch.randn(1, 5, 8, requires_grad=True)
    q(h)[0].sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert q.proj_down.weight.grad.abs().sum() > 0  # the projection below the rounding learns


def test_bad_codes_and_indices():
    q = FSQ(8, num_dims=2, K=1)
    with pytest.raises(ValueError):
        q.indices_to_codes(torch.tensor([9]))
    with pytest.raises(ValueError):
        q.codes_to_indices(torch.tensor([[2.0, 0.0]]))
    with pytest.raises(ValueError):
        q.codes_to_indices(torch.tensor([[0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError):
        FSQ(8, num_dims=0)


def test_agrees_with_vector_quantize_pytorch():
    vqp = pytest.importorskip("vector_quantize_pytorch")
    torch.manual_seed(0)
    for D, K in [(8, 1), (4, 2), (3, 3)]:
        ref = vqp.FSQ(levels=[2 * K + 1] * D)  # dim = D: no projections, so z is fed as is
        ours = FSQ(D, num_dims=D, K=K)
        z = torch.randn(4, 200, D) * 1.5
        bounded = K * torch.tanh(z)
        # vector-quantize-pytorch scales the bound by (1 + 1e-3): skip values within 1e-2 of a
        # rounding boundary, where the two bounds may legitimately round differently
        safe = ((bounded - bounded.floor() - 0.5).abs() > 1e-2).all(-1)
        _, ref_idx = ref(z)
        codes = ours.quantize(z)
        our_idx = ours.codes_to_indices(codes)
        assert safe.float().mean() > 0.5
        assert torch.equal(our_idx[safe], ref_idx.long()[safe])
        # and the inverse maps agree over the whole codebook
        all_idx = torch.arange(ours.codebook_size)
        assert torch.allclose(ref.indices_to_codes(all_idx) * K, ours.indices_to_codes(all_idx))


def test_vq_baseline():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, codebook_size=32)
    h0 = torch.randn(4, 20, 16)
    vq(h0)  # the first training batch initialises the codebook from its own vectors
    assert vq.initted
    vq.aux_loss()
    h = torch.randn(3, 10, 16, requires_grad=True)
    before = vq.embed.clone()
    h_hat, idx = vq(h)
    assert h_hat.shape == h.shape and idx.shape == (3, 10)
    assert torch.allclose(h_hat, before[idx], atol=1e-6)  # forward = nearest code (before the EMA step)
    dist = torch.cdist(h.detach().reshape(-1, 16), before)
    assert torch.equal(idx.reshape(-1), dist.argmin(1))
    aux = vq.aux_loss()
    assert aux > 0
    (h_hat.sum() + aux).backward()
    assert h.grad is not None  # straight-through
    assert not torch.equal(before, vq.embed)  # the EMA moved the used codes
    vq.eval()
    vq(h)
    assert vq.aux_loss() == 0


def test_codebook_usage():
    u = codebook_usage(torch.tensor([0, 1, 2, 3]), 8)
    assert u["utilisation"] == 0.5 and abs(u["perplexity"] - 4.0) < 1e-9
    u = codebook_usage(torch.tensor([5, 5, 5]), 8)
    assert u["codes_used"] == 1 and abs(u["perplexity"] - 1.0) < 1e-9
    with pytest.raises(ValueError):
        codebook_usage(torch.tensor([], dtype=torch.long), 8)


def test_vq_dead_code_restart():
    torch.manual_seed(0)
    x = torch.randn(16)
    h = x.expand(2, 6, 16).clone()  # every frame is the same vector: only one code can be used
    plain = VectorQuantizer(16, codebook_size=8, decay=0.5, dead_threshold=0.0)
    restarted = VectorQuantizer(16, codebook_size=8, decay=0.5, dead_threshold=0.3)
    spread = torch.randn(2, 6, 16) * 3
    plain(spread), restarted(spread)  # initialise both codebooks on spread-out data
    for _ in range(10):
        plain(h + 0.01 * torch.randn_like(h))
        restarted(h + 0.01 * torch.randn_like(h))
    # with restarts, the unused codes were moved onto live data (all near x); without, they stay put
    assert (restarted.embed - x).norm(dim=1).max() < 0.5
    assert (plain.embed - x).norm(dim=1).max() > 2.0
