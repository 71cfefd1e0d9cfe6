"""Tests for minicosy.flow.model and minicosy.flow.streaming: the token/frame rule, streamed =
offline chunk-masked mel (cached and re-run-the-prefix modes), the lookahead receptive field, fixed
noise, padding invariance of the training pass, save/load, bad input, the presets."""

import pytest
import torch

from minicosy.flow.masks import attention_mask, with_padding
from minicosy.flow.model import ChunkAwareFlow, FlowConfig, align_tokens_and_frames
from minicosy.flow.streaming import FlowStream, stream_mel


def micro(**kw):
    base = dict(vocab_size=50, d_enc=32, enc_heads=2, enc_pre_layers=1, enc_post_layers=1, d_est=32, est_heads=2,
                est_layers=2, time_dim=16, spk_dim=8, dropout=0.0, chunk_tokens=4, lookahead=2, max_frames=1000)
    return FlowConfig.tiny(**{**base, **kw})


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return ChunkAwareFlow(FlowConfig.tiny(dropout=0.0)).eval()


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(1)
    return ChunkAwareFlow(micro()).eval()


def utterance(cfg, T=47, Tp=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, cfg.vocab_size, (T,), generator=g), torch.randint(0, cfg.vocab_size, (Tp,), generator=g),
            torch.randn(cfg.n_mels, 2 * Tp + 1, generator=g) - 5, torch.randn(cfg.spk_dim, generator=g))


def test_align_tokens_and_frames():
    tok, mel = torch.arange(10), torch.zeros(80, 23)
    t, m = align_tokens_and_frames(tok, mel)
    assert t.tolist() == list(range(10)) and m.shape == (80, 20)  # more frames than 2× tokens: crop the mel
    t, m = align_tokens_and_frames(torch.arange(12), torch.zeros(2, 80, 21))
    assert t.tolist() == list(range(10)) and m.shape == (2, 80, 20)  # fewer: keep ⌊21/2⌋ tokens
    t, m = align_tokens_and_frames(torch.arange(3), torch.zeros(80, 1))
    assert t.numel() == 0 and m.shape == (80, 0)


@pytest.mark.parametrize("prompt", [False, True])
@pytest.mark.parametrize("mode", ["cached", "recompute"])
def test_streamed_equals_offline_chunk_masked(tiny, mode, prompt):
    cfg = tiny.cfg
    toks, ptoks, pmel, spk = utterance(cfg)
    kw = dict(prompt_tokens=ptoks, prompt_mel=pmel) if prompt else {}
    offline = tiny.inference(toks, speaker=spk, mask="chunk", **kw)
    assert offline.shape == (cfg.n_mels, 2 * len(toks))
    st = tiny.stream(speaker=spk, mode=mode, **kw)
    pieces, cuts = [], [0, 1, 8, 11, 30, 31, 47]  # irregular arrivals, one token at a time included
    for a, b in zip(cuts, cuts[1:]):
        pieces.append(st.push(toks[a:b]))
        assert pieces[-1].shape[1] % (2 * cfg.chunk_tokens) == 0  # whole chunks only, until the flush
    pieces.append(st.flush())
    streamed = torch.cat(pieces, dim=1)
    assert streamed.shape == offline.shape
    assert (streamed - offline).abs().max() <= 1e-4
    # frames come out as soon as a chunk and its lookahead have arrived
    assert pieces[0].shape[1] == 0 and pieces[3].shape[1] == 2 * cfg.chunk_tokens
    # streaming differs from offline non-causal synthesis (it has less context), but not wildly
    assert (tiny.inference(toks, speaker=spk, **kw) - offline).abs().max() > 1e-3


def test_stream_generator_and_chunk_sizes(small):
    cfg = small.cfg
    toks, ptoks, pmel, spk = utterance(cfg, T=13, Tp=3)
    offline = small.inference(toks, ptoks, pmel, spk, mask="chunk", chunk_tokens=3, n_steps=4, guidance=0.0)
    out = list(stream_mel(small, [toks[:5], toks[5:]], prompt_tokens=ptoks, prompt_mel=pmel, speaker=spk,
                          chunk_tokens=3, n_steps=4, guidance=0.0))
    assert (torch.cat(out, 1) - offline).abs().max() <= 1e-4
    st = FlowStream(small, chunk_tokens=3)
    assert st.push([]).shape == (cfg.n_mels, 0) and st.flush().shape == (cfg.n_mels, 0)
    with pytest.raises(ValueError, match="flushed"):
        st.push([1])
    with pytest.raises(ValueError, match="mode"):
        FlowStream(small, mode="fast")


@pytest.mark.parametrize("kind, j, first_changed", [
    ("chunk", 9, 8),  # token 9 lies in chunk 2 (tokens 8–11); with P = 2 chunk 1 (ends at 8) sees it too
    ("chunk", 5, 0),  # chunk 0 ends at token 4: its lookahead reaches tokens 4, 5
    ("chunk", 6, 8),  # … but not token 6
    ("full_causal", 9, 14),  # token 7 sees tokens ≤ 7 + P = 9 → frames 14, 15 onward
    ("non_causal", 19, 0),
])
def test_lookahead_receptive_field(small, kind, j, first_changed):
    cfg = small.cfg
    assert cfg.chunk_tokens == 4 and cfg.lookahead == 2
    toks = torch.randint(0, cfg.vocab_size, (20,), generator=torch.Generator().manual_seed(3))
    other = toks.clone()
    other[j] = (toks[j] + 1) % cfg.vocab_size
    mask = None if kind == "non_causal" else attention_mask(kind, 20, cfg.chunk_tokens)[None]
    with torch.no_grad():
        d_mu = (small.encoder(toks[None], mask) - small.encoder(other[None], mask)).abs().amax(dim=(0, 1))
    d_mel = (small.inference(toks, mask=kind, n_steps=3) - small.inference(other, mask=kind, n_steps=3)).abs().amax(0)
    for d in (d_mu, d_mel):
        assert torch.all(d[:first_changed] == 0), d[:first_changed]
        assert d[first_changed] > 1e-6 and d[2 * j] > 1e-6


def test_fixed_noise_determinism(small):
    toks = torch.randint(0, small.cfg.vocab_size, (10,), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(5)
    rng = torch.random.get_rng_state()
    a = small.inference(toks, n_steps=3)
    assert torch.equal(torch.random.get_rng_state(), rng)  # the global RNG is neither read nor advanced
    torch.manual_seed(99)  # … so reseeding it changes nothing
    assert torch.equal(small.inference(toks, n_steps=3), a)
    twin = ChunkAwareFlow(small.cfg).eval()
    twin.load_state_dict(small.state_dict())
    assert torch.equal(twin.inference(toks, n_steps=3), a)
    other = ChunkAwareFlow(micro(noise_seed=1)).eval()
    other.load_state_dict(small.state_dict())
    assert not torch.equal(other.inference(toks, n_steps=3), a)


def test_training_pass_is_padding_invariant(small):
    cfg, g = small.cfg, torch.Generator().manual_seed(0)
    lengths = torch.tensor([11, 7])
    tokens = torch.randint(0, cfg.vocab_size, (2, 11), generator=g)
    x_t, cond = torch.randn(2, 80, 22, generator=g), torch.randn(2, 80, 22, generator=g)
    t, spk = torch.rand(2, generator=g), torch.randn(2, cfg.spk_dim, generator=g)
    mask = with_padding(torch.stack([attention_mask("chunk", 11, 4), attention_mask("full_causal", 11)]), lengths)
    with torch.no_grad():
        v = small(tokens, lengths, x_t, t, spk, cond, mask)
        v1 = small(tokens[1:, :7], lengths[1:], x_t[1:, :, :14], t[1:], spk[1:], cond[1:, :, :14],
                   attention_mask("full_causal", 7)[None])
        dropped = small(tokens, lengths, x_t, t, spk, cond, mask, drop=torch.tensor([True, False]))
    assert v.shape == (2, 80, 22) and (v[1:, :, :14] - v1).abs().max() < 1e-5
    assert torch.equal(dropped[1], v[1]) and not torch.allclose(dropped[0], v[0])


@pytest.mark.parametrize("half", [False, "auto"])
def test_save_load_round_trip(small, tmp_path, half):
    small.mel_mean.fill_(-4.0)
    stem = small.save_pretrained(tmp_path / "flow", half=half, extra={"note": "test"})
    loaded = ChunkAwareFlow.from_pretrained(tmp_path, device="cpu")
    assert loaded.cfg == small.cfg and loaded.meta["note"] == "test" and torch.equal(loaded.mel_mean, small.mel_mean)
    toks = torch.arange(9)
    diff = (loaded.inference(toks, n_steps=3) - small.inference(toks, n_steps=3)).abs().max()
    if half is False:
        assert loaded.meta["dtype"] == "float32" and diff == 0
    else:  # fp16 only when the outputs stay within tolerance
        assert loaded.meta["dtype"] in ("float16", "float32") and diff <= 1e-2
    small.mel_mean.zero_()
    with pytest.raises(ValueError, match="missing"):
        ChunkAwareFlow.from_pretrained(tmp_path / "nothing")
    assert stem.with_suffix(".json").is_file()


def test_bad_input(small):
    with pytest.raises(ValueError, match="no tokens"):
        small.inference([])
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        small.inference([1, 2, 50])
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        small.inference(torch.tensor([-1, 2]))
    with pytest.raises(ValueError, match="integers"):
        small.inference(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="1-D"):
        small.inference(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="80, frames"):
        small.inference([1, 2], prompt_tokens=[3, 4], prompt_mel=torch.zeros(40, 4))
    with pytest.raises(ValueError, match="both"):
        small.inference([1, 2], prompt_tokens=[3, 4])
    with pytest.raises(ValueError, match="at least"):
        small.inference([1, 2], prompt_tokens=[3, 4], prompt_mel=torch.zeros(80, 1))
    with pytest.raises(ValueError, match="speaker"):
        small.inference([1, 2], speaker=torch.zeros(5))
    with pytest.raises(ValueError, match="pre-drawn"):
        small.inference(torch.zeros(501, dtype=torch.long))


def test_prompt_is_trimmed_and_conditions(small):
    toks, ptoks, pmel, spk = utterance(small.cfg, T=6, Tp=4)
    with_prompt = small.inference(toks, ptoks, pmel, spk, n_steps=3)
    assert with_prompt.shape == (80, 12)
    assert not torch.allclose(with_prompt, small.inference(toks, speaker=spk, n_steps=3))


def test_presets():
    tiny = ChunkAwareFlow(FlowConfig.tiny(vocab_size=243))  # the committed tokenizer's codebook
    assert 1e6 <= tiny.num_parameters() <= 3e6
    assert FlowConfig.tiny().lookahead == 4 and FlowConfig.paper().vocab_size == 6561
    assert FlowConfig.from_dict(FlowConfig.tiny().to_dict()) == FlowConfig.tiny()
    with pytest.raises(ValueError, match="unknown"):
        FlowConfig.from_dict({"nope": 1})
    with torch.device("meta"):  # the paper size, constructed without allocating its weights
        n = ChunkAwareFlow(FlowConfig.paper()).num_parameters()
    assert 30e6 < n < 200e6
