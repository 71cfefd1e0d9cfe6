"""Tests for the LM prefix cache of minicosy.lm.generate (``LMPrefix``, ``lm_prefix``, ``prefix=``):
which inputs are shareable (known answers, checked against the training layout), forked requests
equal the plain ones token for token, forks never share state, a prefix of another prompt or model.
The sampling rules and the four scenarios: tests/test_lm_sampling.py.
"""

import pytest
import torch

from minicosy.lm.generate import encode_icl, generate, generate_bistream, lm_prefix, prefix_items
from minicosy.lm.model import LMConfig, TextSpeechLM
from minicosy.lm.sequence import build_sequence
from minicosy.text.chars import CharTokenizer

C = 27
TOK = CharTokenizer()
PTEXT, TEXT = encode_icl(TOK, "hello there.", "how are you today")  # 12 + 18 ids
PSPEECH = list(range(20))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = LMConfig(codebook_size=C, text_vocab_size=TOK.vocab_size, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                   d_ff=64, max_len=400, dropout=0.0, mix_n=4, mix_m=3, min_token_text_ratio=0.5,
                   max_token_text_ratio=3.0)
    return TextSpeechLM(cfg).eval()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_prefix_items_known_answer():
    """n = 2, m = 3; prompt text a b c (3 ids), prompt speech 1..7.

    offline: [SOS] a b c (the text to speak follows the transcript, then TASK and the speech);
    streaming: [SOS] a b 1 2 3 — one full block (⌊3/2⌋ = 1 ≤ ⌊7/3⌋ = 2); c would share a block with the text.
    """
    a, b, c = 10, 11, 12
    assert prefix_items([a, b, c], list(range(1, 8)), False, 2, 3) == [("sos", None)] + [("text", t) for t in (a, b, c)]
    assert prefix_items([a, b, c], list(range(1, 8)), True, 2, 3) == (
        [("sos", None), ("text", a), ("text", b), ("speech", 1), ("speech", 2), ("speech", 3)])
    # the prompt speech limits it: two blocks of text but speech for one only
    assert len(prefix_items([a, b, c, a], [1, 2, 3, 4], True, 2, 3)) == 1 + 2 + 3


@pytest.mark.parametrize("streaming", [False, True])
def test_the_prefix_begins_every_request_of_the_voice(streaming):
    """Whatever the text, its training layout starts with the prefix (so the prefix is shareable)."""
    for text in (TEXT, TOK.encode(" a"), TOK.encode(" " + "word " * 12)):
        inputs, _ = build_sequence(PTEXT + text, PSPEECH + [5] * 60, streaming, n=4, m=3)
        items = prefix_items(PTEXT, PSPEECH, streaming, 4, 3)
        assert inputs[:len(items)] == items and len(items) > 1


@pytest.mark.parametrize("streaming", [False, True])
def test_forked_requests_equal_plain_ones(model, streaming):
    prefix = lm_prefix(model, PTEXT, PSPEECH, streaming)
    assert prefix.cache.get_seq_length() == len(prefix.items)
    for seed in range(3):
        kw = {"prompt_text_ids": PTEXT, "prompt_speech_ids": PSPEECH, "streaming": streaming}
        plain = generate(model, TEXT, generator=gen(seed), **kw)
        forked = generate(model, TEXT, generator=gen(seed), prefix=prefix, **kw)
        assert forked.run() == plain.run() and forked.fed == plain.fed and forked.eos == plain.eos
    assert prefix.cache.get_seq_length() == len(prefix.items)  # the requests extended their forks only


def test_bistream_with_a_prefix(model):
    prefix = lm_prefix(model, PTEXT, PSPEECH, True)
    kw = {"prompt_text": "hello there.", "prompt_speech_ids": PSPEECH}
    plain = generate_bistream(model, iter(["how are", " you today"]), TOK, generator=gen(4), **kw).run()
    assert plain == generate_bistream(model, iter(["how are", " you today"]), TOK, generator=gen(4), prefix=prefix,
                                      **kw).run()


def test_interleaved_forks_share_no_state(model):
    prefix = lm_prefix(model, PTEXT, PSPEECH, False)
    kw = {"prompt_text_ids": PTEXT, "prompt_speech_ids": PSPEECH, "prefix": prefix}
    alone = [generate(model, t, generator=gen(s), **kw).run() for t, s in ((TEXT, 1), (TOK.encode(" good day"), 2))]
    its = [iter(generate(model, t, generator=gen(s), **kw)) for t, s in ((TEXT, 1), (TOK.encode(" good day"), 2))]
    out, done = [[], []], [False, False]
    while not all(done):
        for k, it in enumerate(its):
            if not done[k]:
                tok = next(it, None)
                done[k] = tok is None
                out[k] += [] if tok is None else [tok]
    assert out == alone


def test_a_prefix_of_another_prompt_is_recomputed_not_trusted(model):
    other = lm_prefix(model, TOK.encode("good bye."), PSPEECH, False)
    kw = {"prompt_text_ids": PTEXT, "prompt_speech_ids": PSPEECH}
    assert generate(model, TEXT, generator=gen(1), prefix=other, **kw).run() == generate(
        model, TEXT, generator=gen(1), **kw).run()
    # an offline prefix handed to a streaming request: it leaves the prefix at the first speech input
    off = lm_prefix(model, PTEXT, PSPEECH, False)
    s = generate(model, TEXT, generator=gen(1), prefix=off, streaming=True, **kw)
    assert s.run() == generate(model, TEXT, generator=gen(1), streaming=True, **kw).run()


def test_a_prefix_of_another_model_is_refused(model):
    torch.manual_seed(1)
    other = TextSpeechLM(model.cfg).eval()
    prefix = lm_prefix(other, PTEXT, PSPEECH, False)
    with pytest.raises(ValueError, match="computed with this model"):
        generate(model, TEXT, prompt_text_ids=PTEXT, prompt_speech_ids=PSPEECH, prefix=prefix)  # before any step
