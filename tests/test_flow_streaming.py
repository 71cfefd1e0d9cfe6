"""Tests for minicosy.flow.streaming's prompt state and chunk schedule: the clipped prompt lookahead
(the prompt block depends on the prompt alone), a state computed once and forked (forks are
independent, leave the state untouched and equal a stream built from the prompt), streamed = offline
with a short first chunk, the legacy "cross" fallback, and bad arguments."""

import math

import pytest
import torch

from minicosy.flow.masks import attention_mask
from minicosy.flow.model import ChunkAwareFlow, FlowConfig
from minicosy.flow.streaming import FlowPromptState, FlowStream, fork_cache, stream_mel


def micro(**kw):
    base = dict(vocab_size=50, d_enc=32, enc_heads=2, enc_pre_layers=1, enc_post_layers=1, d_est=32, est_heads=2,
                est_layers=2, time_dim=16, spk_dim=8, dropout=0.0, chunk_tokens=4, lookahead=2, max_frames=1000)
    return FlowConfig.tiny(**{**base, **kw})


def flow(seed=1, **kw):
    torch.manual_seed(seed)
    return ChunkAwareFlow(micro(**kw)).eval()


@pytest.fixture(scope="module")
def clip():
    return flow(prompt_lookahead="clip")


@pytest.fixture(scope="module")
def cross():
    return flow(prompt_lookahead="cross")


def utterance(cfg, T=23, Tp=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, cfg.vocab_size, (T,), generator=g), torch.randint(0, cfg.vocab_size, (Tp,), generator=g),
            torch.randn(cfg.n_mels, 2 * Tp, generator=g) - 5, torch.randn(cfg.spk_dim, generator=g))


def run(st, toks, cuts=(0, 1, 5, 6, 13, 100)):
    """Push ``toks`` in irregular pieces, then flush: ``(mel (n_mels, 2T), pieces)``."""
    pieces = [st.push(toks[a:b]) for a, b in zip(cuts, cuts[1:])] + [st.flush()]
    return torch.cat(pieces, dim=1), pieces


def snapshot(cache):
    """Every tensor of a nested cache, cloned, with its path."""
    if isinstance(cache, dict):
        return {k: snapshot(v) for k, v in cache.items()}
    if isinstance(cache, list):
        return [snapshot(v) for v in cache]
    return cache.clone()


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return torch.equal(a, b)


def test_defaults_and_legacy_value():
    assert FlowConfig().prompt_lookahead == FlowConfig.paper().prompt_lookahead == "clip"
    assert FlowConfig.added_fields == {"prompt_lookahead": "cross"}
    assert FlowConfig.legacy_defaults()["prompt_lookahead"] == "cross"
    with pytest.raises(ValueError, match="prompt_lookahead"):
        FlowConfig.tiny(prompt_lookahead="none")


def test_checkpoint_without_the_field_loads_as_cross(clip, tmp_path):
    import json

    stem = clip.save_pretrained(tmp_path / "flow", half=False)
    assert ChunkAwareFlow.from_pretrained(stem, device="cpu").cfg.prompt_lookahead == "clip"
    meta = json.loads(stem.with_suffix(".json").read_text())
    del meta["config"]["prompt_lookahead"]  # as written before the field existed
    stem.with_suffix(".json").write_text(json.dumps(meta))
    old = ChunkAwareFlow.from_pretrained(stem, device="cpu")
    assert old.cfg.prompt_lookahead == "cross" and not old.cacheable_prompt


def test_committed_flow_has_the_cacheable_prompt_block():
    from minicosy.utils import DEFAULT_CHECKPOINT

    if not (DEFAULT_CHECKPOINT / "flow.safetensors").is_file():
        pytest.skip("flow not trained yet")
    assert ChunkAwareFlow.from_pretrained(device="cpu").cfg.prompt_lookahead == "clip"


@pytest.mark.parametrize("kind", ["chunk", "full_causal", "non_causal"])
def test_clipped_prompt_ignores_the_generated_tokens(clip, cross, kind):
    """With "clip" the prompt's mu never sees a generated token (under every mask, its lookahead stops at
    the prompt); with "cross" its last tokens see the first P generated ones."""
    Tp, T = 6, 14
    toks = torch.randint(0, 50, (T,), generator=torch.Generator().manual_seed(2))
    other = toks.clone()
    other[Tp] = (toks[Tp] + 1) % 50  # the first generated token
    mask = None if kind == "non_causal" else attention_mask(kind, T, 4, prefix=Tp)[None]
    with torch.no_grad():
        for model, changed in ((clip, False), (cross, True)):
            d = (model.encoder(toks[None], mask, n_prompt=Tp) - model.encoder(other[None], mask, n_prompt=Tp)).abs()
            d = d.amax(dim=(0, 1))[: 2 * Tp]  # the prompt's frames
            if kind == "non_causal":  # attention still reaches the generated tokens offline
                continue
            assert bool((d > 0).any()) is changed, d
    # training passes the same clip per utterance: a batch equals its rows run alone
    n_prompt, lengths = torch.tensor([Tp, 0]), torch.tensor([T, T])
    batch = torch.stack([toks, other])
    with torch.no_grad():
        both = clip.encoder(batch, mask, lengths=lengths, n_prompt=n_prompt)
        one = clip.encoder(batch[:1], mask, n_prompt=Tp)
        none = clip.encoder(batch[1:], mask)
    assert (both[:1] - one).abs().max() < 1e-5 and (both[1:] - none).abs().max() < 1e-5


@pytest.mark.parametrize("mode", ["cached", "recompute"])
@pytest.mark.parametrize("first", [None, 1, 2, 6])
@pytest.mark.parametrize("prompt", [True, False])
def test_streamed_equals_offline_with_a_schedule(clip, mode, first, prompt):
    cfg = clip.cfg
    toks, ptoks, pmel, spk = utterance(cfg)
    kw = dict(prompt_tokens=ptoks, prompt_mel=pmel) if prompt else {}
    offline = clip.inference(toks, speaker=spk, mask="chunk", first_chunk_tokens=first, n_steps=4, **kw)
    st = clip.stream(speaker=spk, mode=mode, first_chunk_tokens=first, n_steps=4, **kw)
    streamed, pieces = run(st, toks)
    assert streamed.shape == offline.shape and (streamed - offline).abs().max() <= 1e-4
    F, M, P = first or cfg.chunk_tokens, cfg.chunk_tokens, cfg.lookahead
    # the first frames come out once F + P tokens are in: 2F frames, then whole chunks of 2M
    got = torch.tensor([p.shape[1] for p in pieces[:-1]]).cumsum(0).tolist()
    cuts = (1, 5, 6, 13, 23)
    for n, c in zip(got, cuts):
        final = 0 if c < F + P else F + M * ((c - P - F) // M)
        assert n == 2 * final, (got, F)
    # a schedule is a different mask: it changes the output (less context in the first chunk)
    if first is not None and first < M:
        other = clip.inference(toks, speaker=spk, mask="chunk", n_steps=4, **kw)
        assert (other - offline).abs().max() > 1e-4


@pytest.mark.parametrize("model_name", ["clip", "cross"])
def test_streamed_equals_offline_with_a_prompt(request, model_name):
    """The old test, for both flags: the clipped and the legacy prompt stream exactly."""
    model = request.getfixturevalue(model_name)
    toks, ptoks, pmel, spk = utterance(model.cfg, T=17, Tp=5, seed=3)
    offline = model.inference(toks, ptoks, pmel, spk, mask="chunk", n_steps=3)
    streamed, _ = run(model.stream(ptoks, pmel, spk, n_steps=3), toks)
    assert (streamed - offline).abs().max() <= 1e-4


def test_prompt_state_forks_are_independent_and_equal_a_fresh_stream(clip):
    cfg = clip.cfg
    toks, ptoks, pmel, spk = utterance(cfg)
    state = clip.prompt_state(ptoks, pmel, spk, n_steps=4)
    assert isinstance(state, FlowPromptState) and state.precomputed and state.done == len(ptoks)
    assert state.enc_cache and len(state.step_caches) == 4 and all(state.step_caches)
    before = snapshot([state.enc_cache, state.step_caches, state.tokens, state.prompt, state.spk])
    fresh, _ = run(clip.stream(ptoks, pmel, spk, n_steps=4, first_chunk_tokens=2), toks)
    a, b = state.fork(first_chunk_tokens=2), FlowStream(clip, prompt_state=state, first_chunk_tokens=2)
    assert a.done == b.done == len(ptoks) and a.chunk_times == []  # the prompt block is not run again
    # interleave two forks over different sentences: neither disturbs the other, nor the state
    other = torch.flip(toks, [0])
    pa = [a.push(toks[:7]), b.push(other[:9]), a.push(toks[7:]), b.push(other[9:]), a.flush(), b.flush()]
    mel_a, mel_b = torch.cat(pa[0::2], dim=1), torch.cat(pa[1::2], dim=1)
    assert torch.equal(mel_a, fresh)  # bit-exact: the same operations on the same numbers
    assert same(before, [state.enc_cache, state.step_caches, state.tokens, state.prompt, state.spk])
    ref_b, _ = run(clip.stream(ptoks, pmel, spk, n_steps=4, first_chunk_tokens=2), other)
    assert torch.equal(mel_b, ref_b)
    # a later fork (after two streams ran) still gives the first stream's output
    again, _ = run(state.fork(first_chunk_tokens=2), toks)
    assert torch.equal(again, fresh)
    # the chunk size is the fork's choice: the prompt block does not depend on it
    offline = clip.inference(toks, ptoks, pmel, spk, mask="chunk", chunk_tokens=3, first_chunk_tokens=1, n_steps=4)
    forked, _ = run(state.fork(3, 1), toks)
    assert (forked - offline).abs().max() <= 1e-4
    rec, _ = run(state.fork(3, 1, mode="recompute"), toks)
    assert (rec - offline).abs().max() <= 1e-4
    # the generator form forks too
    out = torch.cat(list(stream_mel(clip, [toks[:10], toks[10:]], prompt_state=state, first_chunk_tokens=2)), 1)
    assert torch.equal(out, fresh)


def test_prompt_state_without_a_prompt(clip):
    toks, _, _, spk = utterance(clip.cfg, T=9)
    state = clip.prompt_state(speaker=spk, n_steps=3, guidance=0.0)
    assert state.precomputed and state.n_prompt == 0 and state.step_caches == []
    forked, _ = run(state.fork(), toks)
    assert torch.equal(forked, run(clip.stream(speaker=spk, n_steps=3, guidance=0.0), toks)[0])


def test_cross_checkpoint_falls_back_to_recomputing(cross):
    """A legacy flow cannot run its prompt block before the first tokens: the state keeps the inputs
    and each fork computes the block, exactly as a stream from the prompt does."""
    toks, ptoks, pmel, spk = utterance(cross.cfg)
    state = cross.prompt_state(ptoks, pmel, spk, n_steps=3)
    assert not state.precomputed and state.done == 0 and state.enc_cache == {}
    fs = state.fork()
    assert fs.push(toks[:1]).shape[1] == 0 and fs.done == 0  # the prompt block waits for P = 2 tokens
    forked, _ = run(state.fork(), toks)
    assert torch.equal(forked, run(cross.stream(ptoks, pmel, spk, n_steps=3), toks)[0])


def test_fork_cache_copies_containers_and_shares_tensors():
    t = torch.zeros(2)
    c = {"a": {"k": t}, "b": [{"x": t}]}
    f = fork_cache(c)
    assert f == c and f["a"] is not c["a"] and f["b"][0] is not c["b"][0] and f["a"]["k"] is t
    f["a"]["k"] = torch.ones(2)
    assert c["a"]["k"] is t


def test_bad_arguments(clip, cross):
    _, ptoks, pmel, spk = utterance(clip.cfg)
    state = clip.prompt_state(ptoks, pmel, spk, n_steps=3)
    with pytest.raises(ValueError, match="not both"):
        FlowStream(clip, ptoks, pmel, prompt_state=state)
    with pytest.raises(ValueError, match="n_steps=3"):
        FlowStream(clip, prompt_state=state, n_steps=10)
    with pytest.raises(ValueError, match="guidance"):
        FlowStream(clip, prompt_state=state, guidance=0.0)
    with pytest.raises(ValueError, match="another flow model"):
        FlowStream(cross, prompt_state=state)
    with pytest.raises(ValueError, match="FlowPromptState"):
        FlowStream(clip, prompt_state={"tokens": ptoks})
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="first_chunk_tokens"):
            state.fork(first_chunk_tokens=bad)
    with pytest.raises(ValueError, match="mask='chunk'"):
        clip.inference([1, 2, 3], mask="full_causal", first_chunk_tokens=2)
    with pytest.raises(ValueError, match="n_steps"):
        clip.prompt_state(ptoks, pmel, spk, n_steps=0)
    with pytest.raises(ValueError, match="both"):
        clip.prompt_state(ptoks)
    assert math.ceil(clip.cfg.chunk_tokens / 3) == 2  # the default schedule of training: F = ⌈M/3⌉
