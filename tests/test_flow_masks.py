"""Tests for minicosy.flow.masks: property tests over random sizes (hypothesis), the drawings of
the module docstring as known answers, the token → frame upsampling, and padding."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minicosy.flow.masks import attention_mask, block_ends, chunk_spans, padding_mask, upsample_mask, with_padding

sizes = st.integers(min_value=1, max_value=40)
chunks = st.integers(min_value=1, max_value=12)
prefixes = st.integers(min_value=0, max_value=15)


firsts = st.one_of(st.none(), st.integers(min_value=1, max_value=12))


def reference(kind, T, C=None, prefix=0, first=None):
    """The rule written out with loops: row i sees every key up to the end of its own block; the
    blocks are the prefix, then a first chunk of ``first`` (default C), then chunks of C."""
    m = torch.zeros(T, T, dtype=torch.bool)
    for i in range(T):
        for j in range(T):
            if kind == "non_causal":
                m[i, j] = True
            else:
                c = 1 if kind == "full_causal" else C
                f = c if first is None else first
                if i < prefix:
                    end = prefix
                elif i < prefix + f:
                    end = prefix + f
                else:
                    end = prefix + f + ((i - prefix - f) // c + 1) * c
                m[i, j] = j < min(end, T)
    return m


@settings(max_examples=60, deadline=None)
@given(T=sizes, C=chunks, prefix=prefixes)
def test_masks_match_the_loop_definition(T, C, prefix):
    for kind in ("non_causal", "full_causal", "chunk"):
        assert torch.equal(attention_mask(kind, T, C, prefix), reference(kind, T, C, prefix))


@settings(max_examples=60, deadline=None)
@given(T=sizes, C=chunks, prefix=prefixes, first=firsts)
def test_scheduled_masks_match_the_loop_definition(T, C, prefix, first):
    m = attention_mask("chunk", T, C, prefix, first_chunk=first)
    assert torch.equal(m, reference("chunk", T, C, prefix, first))
    assert m.diagonal().all() and m[:, 0].all() and (m[:-1] <= m[1:]).all()
    for s, e in chunk_spans(T, C, prefix, first_chunk=first):
        assert (m[s:e] == m[s]).all() and m[s, :e].all() and not m[s, e:].any()
    # F = C is the uniform grid; the prompt block never changes with the schedule
    assert torch.equal(attention_mask("chunk", T, C, prefix, first_chunk=C), attention_mask("chunk", T, C, prefix))
    assert torch.equal(m[:prefix], attention_mask("chunk", T, C, prefix)[:prefix])


@settings(max_examples=60, deadline=None)
@given(T=sizes, C=chunks, prefix=prefixes)
def test_mask_properties(T, C, prefix):
    m = attention_mask("chunk", T, C, prefix)
    assert m.shape == (T, T) and m.dtype == torch.bool
    assert m.diagonal().all()  # every position sees itself
    assert m[:, 0].all()  # … and the first key, so no softmax row is ever empty
    assert (m[:-1] <= m[1:]).all()  # a later query sees at least what an earlier one sees
    # each row is a prefix of keys: no holes
    ends = m.sum(1)
    assert torch.equal(m, torch.arange(T)[None] < ends[:, None])
    # rows inside one chunk are identical; a chunk never sees past its own end
    for s, e in chunk_spans(T, C, prefix):
        assert (m[s:e] == m[s]).all() and m[s, :e].all() and not m[s, e:].any()
    # the full-causal mask is chunk-1 and the lower triangle; chunk ≥ T is non-causal
    assert torch.equal(attention_mask("full_causal", T), torch.ones(T, T, dtype=torch.bool).tril())
    assert torch.equal(attention_mask("chunk", T, 1), attention_mask("full_causal", T))
    assert torch.equal(attention_mask("chunk", T, T), attention_mask("non_causal", T))
    # chunk-2M sees at least what chunk-M sees (more context, more latency)
    assert (attention_mask("chunk", T, C, prefix) <= attention_mask("chunk", T, 2 * C, prefix)).all()


@settings(max_examples=40, deadline=None)
@given(T=sizes, C=chunks, prefix=prefixes, f=st.integers(1, 3))
def test_upsampled_mask_is_the_chunk_mask_in_frames(T, C, prefix, f):
    tok = attention_mask("chunk", T, C, prefix)
    assert torch.equal(upsample_mask(tok, f), attention_mask("chunk", f * T, f * C, f * prefix))
    assert torch.equal(upsample_mask(attention_mask("full_causal", T), f)[:: f, :: f], attention_mask("full_causal", T))
    sched = attention_mask("chunk", T, C, prefix, first_chunk=max(1, C // 3))
    assert torch.equal(upsample_mask(sched, f), attention_mask("chunk", f * T, f * C, f * prefix,
                                                               first_chunk=f * max(1, C // 3)))


@settings(max_examples=40, deadline=None)
@given(T=sizes, C=chunks, prefix=prefixes)
def test_chunk_spans_tile_the_sequence(T, C, prefix):
    for first in (None, 1, C + 2):
        spans = chunk_spans(T, C, prefix, first_chunk=first)
        assert spans[0][0] == 0 and spans[-1][1] == T
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        ends = block_ends("chunk", T, C, prefix, first_chunk=first)
        for s, e in spans:
            assert (ends[s:e] == e).all()
        after = [b - a for a, b in spans if a >= prefix]  # F, then C, …, the last may be shorter
        if first is not None and after:
            assert after[0] == min(first, T - prefix)
            assert all(n == C for n in after[1:-1])


def test_docstring_drawing():
    assert attention_mask("chunk", 6, 2, prefix=3).sum(1).tolist() == [3, 3, 3, 5, 5, 6]
    assert attention_mask("chunk", 6, 2).sum(1).tolist() == [2, 2, 4, 4, 6, 6]
    assert chunk_spans(7, 3, prefix=2) == [(0, 2), (2, 5), (5, 7)]
    # the schedule's drawing: T = 8, M = 3, prefix = 2, first_chunk = 1
    assert attention_mask("chunk", 8, 3, prefix=2, first_chunk=1).sum(1).tolist() == [2, 2, 3, 6, 6, 6, 8, 8]
    assert chunk_spans(8, 3, prefix=2, first_chunk=1) == [(0, 2), (2, 3), (3, 6), (6, 8)]
    assert chunk_spans(10, 6, first_chunk=2) == [(0, 2), (2, 8), (8, 10)]  # F = M/3 without a prompt


@settings(max_examples=40, deadline=None)
@given(T=sizes, C=chunks, data=st.data())
def test_with_padding(T, C, data):
    lengths = torch.tensor(data.draw(st.lists(st.integers(1, T), min_size=1, max_size=4)))
    m = with_padding(attention_mask("chunk", T, C), lengths)
    assert m.shape == (len(lengths), T, T)
    assert m.any(-1).all()  # no empty row, padded queries included
    for b, L in enumerate(lengths.tolist()):
        assert not m[b, :, L:].any()  # padded keys are hidden from every query
        assert torch.equal(m[b, :L, :L], attention_mask("chunk", L, C))  # real part = unpadded mask
    assert torch.equal(m[:, -1, :], padding_mask(lengths, T))  # the last row of a chunk mask sees every real key


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown mask kind"):
        attention_mask("causal", 4)
    with pytest.raises(ValueError, match="chunk_size"):
        attention_mask("chunk", 4)
    with pytest.raises(ValueError, match="lengths"):
        with_padding(attention_mask("non_causal", 4), torch.tensor([0, 3]))
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="first_chunk"):
            attention_mask("chunk", 6, 2, first_chunk=bad)
    with pytest.raises(ValueError, match="'chunk' mask only"):
        block_ends("full_causal", 6, first_chunk=2)
