"""Tests for minicosy.lm.sequence (the LM's training layouts) and minicosy.text.chars.

Known answers (expected lists written out by hand, derivation in each docstring) and
properties over random lengths (hypothesis): every speech token is predicted exactly once,
FILL is never an input, one FILL per full block, inputs and targets line up.
"""

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minicosy.lm.model import LMConfig
from minicosy.lm.sequence import (
    IGNORE,
    M_SPEECH,
    N_TEXT,
    build_sequence,
    can_stream,
    eos_id,
    fill_id,
    head_size,
    target_ids,
    to_tensors,
    use_streaming,
)
from minicosy.text.chars import ALPHABET, CharTokenizer

SOS, TASK, EOS, FILL = ("sos", None), ("task", None), ("eos", None), ("fill", None)


def T(x):
    return ("text", x)


def S(x):
    return ("speech", x)


# ----------------------------------------------------------------------------- known answers


def test_non_streaming_known_answer():
    """[SOS] a b [TASK] 1 2 3: TASK predicts 1, 1→2, 2→3, 3→EOS; SOS and text have no loss."""
    inputs, targets = build_sequence([10, 11], [1, 2, 3], streaming=False)
    assert inputs == [SOS, T(10), T(11), TASK, S(1), S(2), S(3)]
    assert targets == [None, None, None, S(1), S(2), S(3), EOS]


def test_streaming_known_answer_docstring_example():
    """n=2, m=3, text a b c, speech 1..7: one full block (a b | 1 2 3), leftover c, TASK, 4..7.

    b predicts 1 (first speech of the block), 1→2, 2→3, 3→FILL; c (leftover) no loss;
    TASK→4, 4→5, 5→6, 6→7, 7→EOS.
    """
    inputs, targets = build_sequence([20, 21, 22], [1, 2, 3, 4, 5, 6, 7], streaming=True, n=2, m=3)
    assert inputs == [SOS, T(20), T(21), S(1), S(2), S(3), T(22), TASK, S(4), S(5), S(6), S(7)]
    assert targets == [None, None, S(1), S(2), S(3), FILL, None, S(4), S(5), S(6), S(7), EOS]


def test_streaming_paper_ratio_two_blocks():
    """n=5, m=15, 12 text tokens, 40 speech: blocks [t0..t4 | s0..s14], [t5..t9 | s15..s29],
    leftover t10 t11, TASK, s30..s39, EOS."""
    text, speech = list(range(100, 112)), list(range(40))
    inputs, targets = build_sequence(text, speech, streaming=True, n=N_TEXT, m=M_SPEECH)
    expect_in = ([SOS] + [T(t) for t in text[:5]] + [S(s) for s in speech[:15]]
                 + [T(t) for t in text[5:10]] + [S(s) for s in speech[15:30]]
                 + [T(t) for t in text[10:]] + [TASK] + [S(s) for s in speech[30:]])
    expect_tgt = ([None] + [None] * 4 + [S(s) for s in speech[:15]] + [FILL]
                  + [None] * 4 + [S(s) for s in speech[15:30]] + [FILL]
                  + [None, None] + [S(s) for s in speech[30:]] + [EOS])
    assert inputs == expect_in and targets == expect_tgt


def test_streaming_speech_ends_at_block_boundary():
    """n=2, m=2, text a b, speech 1 2: the block uses all speech; 2→FILL, then TASK→EOS directly."""
    inputs, targets = build_sequence([5, 6], [1, 2], streaming=True, n=2, m=2)
    assert inputs == [SOS, T(5), T(6), S(1), S(2), TASK]
    assert targets == [None, None, S(1), S(2), FILL, EOS]


def test_streaming_text_multiple_of_n_still_has_task():
    """n=2, m=2, text a b c d, speech 1..5: two blocks, no leftover text, TASK→5, 5→EOS."""
    inputs, targets = build_sequence([5, 6, 7, 8], [1, 2, 3, 4, 5], streaming=True, n=2, m=2)
    assert inputs == [SOS, T(5), T(6), S(1), S(2), T(7), T(8), S(3), S(4), TASK, S(5)]
    assert targets == [None, None, S(1), S(2), FILL, None, S(3), S(4), FILL, S(5), EOS]


def test_streaming_without_full_block_equals_non_streaming():
    assert build_sequence([1, 2], [3, 4], True, n=5, m=15) == build_sequence([1, 2], [3, 4], False)


@pytest.mark.parametrize("text,speech,streaming,match", [
    ([], [1], False, "text_ids is empty"),
    ([1], [], True, "speech_ids is empty"),
    ([1, 2, 3, 4, 5], list(range(14)), True, "cannot fill 1 streaming"),
    ([1], [1], True, None),
])
def test_bad_input(text, speech, streaming, match):
    if match is None:
        build_sequence(text, speech, streaming, n=5, m=15)
    else:
        with pytest.raises(ValueError, match=match):
            build_sequence(text, speech, streaming, n=5, m=15)


def test_mix_ratio_has_no_silent_default():
    """The bug: n, m defaulted to the paper's 5:15 while the tiny LM is 15:15, so a call without
    them built a streaming layout the model never saw. Now the streaming layout, ``can_stream``
    and ``use_streaming`` refuse to guess; the non-streaming layout does not depend on N:M."""
    text, speech = list(range(100, 130)), list(range(100))
    with pytest.raises(ValueError, match="n=model.cfg.mix_n, m=model.cfg.mix_m"):
        build_sequence(text, speech, streaming=True)
    with pytest.raises(ValueError, match="mix ratio"):
        build_sequence(text, speech, streaming=True, n=5)
    with pytest.raises(ValueError, match="must be positive"):
        build_sequence(text, speech, streaming=False, n=0, m=15)
    with pytest.raises(TypeError):
        can_stream(30, 60)
    with pytest.raises(TypeError):
        use_streaming(30, 60, random.Random(0), 0.5, 5, 15)  # n, m are keyword-only: no positional mix-up with p
    assert build_sequence(text, speech, False) == build_sequence(text, speech, False, n=5, m=15)
    # the tiny preset's own ratio is not the paper's: the two layouts differ for the same utterance
    cfg = LMConfig.tiny()
    assert (cfg.mix_n, cfg.mix_m) != (N_TEXT, M_SPEECH)
    ours = build_sequence(text, speech, True, cfg.mix_n, cfg.mix_m)
    assert ours != build_sequence(text, speech, True, N_TEXT, M_SPEECH)
    assert sum(t == FILL for t in ours[1]) == len(text) // cfg.mix_n


def test_trainer_uses_the_models_ratio():
    """make_example builds every streaming sequence with the config's N:M (one FILL per full block of mix_n)."""
    from minicosy.lm.train import make_example

    tok = CharTokenizer()
    cfg = LMConfig(mix_n=4, mix_m=6)
    d = {"voice": "v", "text_ids": list(range(8, 20)), "speech": list(range(40))}
    rng = random.Random(0)
    fills = {sum(t == FILL for t in make_example(d, tok, cfg, rng, 1.0, 0.0)[1]) for _ in range(5)}
    assert fills == {12 // 4}


def test_target_ids_and_tensors():
    C = 243
    assert (eos_id(C), fill_id(C), head_size(C)) == (243, 245, 246)
    seq = build_sequence([7, 8], [1, 2], streaming=True, n=2, m=2)
    assert target_ids(seq[1], C) == [IGNORE, IGNORE, 1, 2, 245, 243]
    batch = to_tensors([seq, build_sequence([9], [4], False)], C)
    assert batch["kinds"].tolist() == [[1, 2, 2, 4, 4, 3], [1, 2, 3, 4, 0, 0]]
    assert batch["ids"].tolist() == [[0, 7, 8, 1, 2, 0], [0, 9, 0, 4, 0, 0]]
    assert batch["targets"][1].tolist() == [IGNORE, IGNORE, 4, 243, IGNORE, IGNORE]
    assert batch["lengths"].tolist() == [6, 4]


def test_streaming_rule_and_mixing():
    assert can_stream(5, 16, 5, 15) and not can_stream(5, 15, 5, 15) and not can_stream(0, 10, 5, 15)
    assert can_stream(5, 6, 1, 1) and not can_stream(5, 5, 1, 1)  # the ratio matters: 15:15 is 1:1
    rng = random.Random(0)
    picks = [use_streaming(10, 40, rng, n=5, m=15) for _ in range(400)]
    assert 150 < sum(picks) < 250  # p = 0.5
    assert not any(use_streaming(10, 20, rng, n=5, m=15) for _ in range(50))  # 20/10 < 15/5: never


# ----------------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None)
@given(L=st.integers(1, 40), extra=st.integers(0, 40), n=st.integers(1, 6), m=st.integers(1, 16),
       streaming=st.booleans())
def test_layout_properties(L, extra, n, m, streaming):
    text = list(range(1000, 1000 + L))
    T_len = max(1, (L // n) * m + extra) if streaming else 1 + extra  # an utterance has ≥ 1 speech token
    speech = list(range(T_len))
    inputs, targets = build_sequence(text, speech, streaming, n, m)
    assert len(inputs) == len(targets)
    kinds_in = [k for k, _ in inputs]
    assert "fill" not in kinds_in and "eos" not in kinds_in
    assert kinds_in.count("sos") == 1 and kinds_in.count("task") == 1 and kinds_in[0] == "sos"
    # every text and speech token is fed once, in order
    assert [i for k, i in inputs if k == "text"] == text
    assert [i for k, i in inputs if k == "speech"] == speech
    # every speech token is predicted exactly once, in order, then one EOS, last
    assert [t[1] for t in targets if t and t[0] == "speech"] == speech
    assert [t for t in targets if t == EOS] == [EOS] and targets[-1] == EOS
    n_fill = sum(t == FILL for t in targets)
    assert n_fill == ((L // n) if streaming else 0)
    # no loss on SOS or text inputs except the last text input of a full block
    for i, (k, _) in enumerate(inputs):
        if k == "sos":
            assert targets[i] is None
        if targets[i] == FILL:
            assert k == "speech"
    # causal consistency: a speech target equals the next speech input when one follows
    for i in range(len(inputs) - 1):
        if targets[i] and targets[i][0] == "speech" and inputs[i + 1][0] == "speech":
            assert inputs[i + 1] == targets[i]


# ----------------------------------------------------------------------------- chars tokenizer


def test_chars_known_answer_and_roundtrip(tmp_path):
    """Docstring derivation: space = 2, a = 8, so h = 15, i = 16; "2" is spelled "two"."""
    tok = CharTokenizer()
    assert tok.encode("Hi, 2 cats!") == [15, 16, 5, 2, 27, 30, 22, 2, 10, 8, 27, 26, 7]
    assert tok.decode(tok.encode("Hi, 2 cats!")) == "hi, two cats!"
    assert tok.vocab_size == 2 + len(ALPHABET) + 256
    a = tok.add_speaker("flite_awb")
    assert a == tok.n_chars and tok.add_speaker("flite_awb") == a and tok.add_speaker("x") == a + 1
    assert tok.decode([a, 15]) == "<|spk:flite_awb|>h"
    back = CharTokenizer.load(tok.save(tmp_path / "chars.json"))
    assert back.speakers == tok.speakers and back.vocab_size == tok.vocab_size
    assert back.encode("Don't stop.") == tok.encode("Don't stop.")


@pytest.mark.parametrize("text,expected", [("", ""), ("?", ""), ("café", "cafe"), ("中", "<unk>"),
                                           ("  Hello   world ", " hello world")])
def test_chars_edge_cases(text, expected):
    tok = CharTokenizer()
    assert tok.decode(tok.encode(text)) == expected


def test_chars_piecewise_equals_whole():
    tok = CharTokenizer()
    assert tok.encode("the cat") + tok.encode(" sat down.") == tok.encode("the cat sat down.")


def test_chars_bad_input():
    tok = CharTokenizer(max_speakers=1)
    tok.add_speaker("a")
    with pytest.raises(ValueError, match="slots are taken"):
        tok.add_speaker("b")
    with pytest.raises(ValueError, match="unknown speaker 'b'"):
        tok.speaker_id("b")
    with pytest.raises(ValueError, match="not in this tokenizer"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="must be a str"):
        tok.encode(None)


def test_to_tensors_dtype():
    b = to_tensors([build_sequence([1], [2], False)], 10)
    assert all(v.dtype == torch.long for v in b.values())
