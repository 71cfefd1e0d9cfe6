"""Tests for minicosy.lm.sampling and minicosy.lm.generate: nucleus / RAS sampling re-derived,
determinism without the global RNG, the loop that plain top-k falls into and RAS breaks, EOS
masking and length caps, the four scenarios and bistream reproducing the training layout token
for token (no input fed twice), independent concurrent requests, and a bad-input table."""

import math

import pytest
import torch

from minicosy.lm.generate import _complete_words, encode_icl, generate, generate_bistream
from minicosy.lm.model import LMConfig, TextSpeechLM
from minicosy.lm.sampling import SamplingConfig, length_limits, mask_logits, nucleus_sample, random_sample, ras_sample
from minicosy.lm.sequence import build_sequence
from minicosy.text.chars import CharTokenizer

C = 27


def micro(**kw) -> LMConfig:
    base = dict(codebook_size=C, text_vocab_size=CharTokenizer().vocab_size, d_model=32, n_layers=2, n_heads=4,
                n_kv_heads=2, d_ff=64, max_len=400, dropout=0.0, mix_n=4, mix_m=3, min_token_text_ratio=0.5,
                max_token_text_ratio=3.0)
    return LMConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TextSpeechLM(micro()).eval()


@pytest.fixture(scope="module")
def eos_model():
    """A model whose head loves EOS: it stops at the first step EOS is allowed."""
    torch.manual_seed(0)
    m = TextSpeechLM(micro()).eval()
    with torch.no_grad():
        m.head.bias[m.eos] = 50.0
    return m


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- sampling rules


def test_nucleus_keeps_tokens_below_top_p_mass_and_top_k():
    """p = [.6, .3, .06, .04]: masses before each are 0, .6, .9, .96 → top_p .8 keeps ids {0, 1}."""
    logits = torch.tensor([0.6, 0.3, 0.06, 0.04]).log()
    seen = {nucleus_sample(logits, 0.8, 25, gen(s)) for s in range(200)}
    assert seen == {0, 1}
    assert {nucleus_sample(logits, 0.8, 1, gen(s)) for s in range(50)} == {0}  # top_k = 1: greedy
    assert {nucleus_sample(logits, 1.0, 25, gen(s)) for s in range(400)} == {0, 1, 2, 3}


def test_sampling_is_seeded_and_leaves_global_rng_alone():
    logits = torch.randn(30, generator=gen(5))
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = [ras_sample(logits, [1, 2], SamplingConfig(), gen(7)) for _ in range(20)]
    b = [ras_sample(logits, [1, 2], SamplingConfig(), gen(7)) for _ in range(20)]
    assert a == b and torch.equal(before, torch.get_rng_state())
    assert random_sample(logits, gen(1)) == random_sample(logits, gen(1))


def test_ras_breaks_the_loop_that_plain_top_k_falls_into():
    """A 'model' that always puts 0.85 on token 3: top_p 0.8 keeps only token 3 — an endless
    loop. RAS sees 3 in the window and redraws from the full distribution."""
    logits = torch.full((20,), math.log(0.15 / 19))
    logits[3] = math.log(0.85)
    g, plain, ras = gen(0), [], []
    for _ in range(60):
        plain.append(nucleus_sample(logits, 0.8, 25, g))
    g = gen(0)
    for _ in range(60):
        ras.append(ras_sample(logits, ras, SamplingConfig(), g))
    assert plain == [3] * 60
    assert len(set(ras)) > 5 and ras.count(3) < 55
    # τ·window rule: redraw when the candidate appears ≥ 1 time in the last 10 (τ = 0.1)
    no_redraw = SamplingConfig(tau=1.1)  # would need 11 > window occurrences: never
    assert {ras_sample(logits, [3] * 10, no_redraw, gen(s)) for s in range(20)} == {3}


def test_masks_and_limits():
    logits = torch.zeros(C + 3)
    m = mask_logits(logits, C, allow_eos=False)
    assert m[C] == -math.inf and m[C + 1] == -math.inf and m[C + 2] == -math.inf and m[:C].eq(0).all()
    m = mask_logits(logits, C, allow_eos=True, allow_fill=True)
    assert m[C] == 0 and m[C + 1] == -math.inf and m[C + 2] == 0
    assert length_limits(10, 2, 20) == (20, 200) and length_limits(3, 0.5, 5) == (1, 15)
    with pytest.raises(ValueError, match="no text"):
        length_limits(0, 2, 20)
    with pytest.raises(ValueError, match="bad sampling"):
        SamplingConfig(top_p=0)


# ----------------------------------------------------------------------------- generation


def test_eos_masked_below_min_length_and_cap(eos_model):
    tok = CharTokenizer()
    text = tok.encode("a cat sat on a mat")  # 18 chars → min 9, cap 54
    s = generate(eos_model, text, generator=gen())
    assert len(s.run()) == 9 and s.eos  # EOS comes at the first step it is allowed
    s = generate(eos_model, text, sampling=SamplingConfig(min_ratio=0, max_ratio=1), generator=gen())
    assert s.run() == [] and s.eos
    torch.manual_seed(0)
    never = TextSpeechLM(micro()).eval()
    with torch.no_grad():
        never.head.bias[never.eos] = -50.0
    s = generate(never, text, generator=gen())
    assert len(s.run()) == 54 and not s.eos  # the 3× cap stopped it


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("scenario", ["sft", "icl"])
def test_scenarios_reproduce_the_training_layout(eos_model, scenario, streaming):
    """What the cache holds at the end is build_sequence(all text, all speech) minus nothing:
    no input is fed twice (official bug 2), FILL is never fed."""
    tok = CharTokenizer(["v0", "v1"])
    if scenario == "icl":
        ptext, text = encode_icl(tok, "hello there.", "how are you today")
        kw = dict(prompt_text_ids=ptext, prompt_speech_ids=list(range(20)))
        all_text, pspeech = ptext + text, list(range(20))
    else:
        text, ptext = tok.encode("how are you today"), []
        kw = dict(speaker_id=tok.speaker_id("v1"))
        all_text, pspeech = [tok.speaker_id("v1")] + text, []
    s = generate(eos_model, text, streaming=streaming, generator=gen(), **kw)
    tokens = s.run()
    assert s.eos and all(0 <= t < C for t in tokens)
    inputs, _ = build_sequence(all_text, pspeech + tokens, streaming, n=4, m=3)
    assert s.fed == inputs


def test_icl_joins_prompt_and_text_with_a_space():
    tok = CharTokenizer()
    p, t = encode_icl(tok, "Hello there.", "How are you?")
    assert tok.decode(p + t) == "hello there. how are you?"


def test_bistream_fill_schedule_and_lazy_text(eos_model):
    """Text arrives in odd pieces; blocks of N = 4 text then M = 3 speech; the text iterator is
    pulled only when a new block needs it; EOS only after the text has ended."""
    tok = CharTokenizer(["v0"])
    pulled = []

    def pieces():
        for p in ["the qu", "ick bro", "wn fox ", "jumps", " over it."]:
            pulled.append(p)
            yield p

    s = generate_bistream(eos_model, pieces(), tok, speaker="v0", generator=gen())
    it = iter(s)
    first = next(it)
    assert pulled == ["the qu"]  # tag + the complete word "the" = 4 ids: one block, nothing more pulled
    tokens = [first] + list(it)
    assert s.eos
    text = [tok.speaker_id("v0")] + tok.encode("the quick brown fox jumps over it.")
    inputs, targets = build_sequence(text, tokens, True, n=4, m=3)
    assert s.fed == inputs
    kinds = [k for k, _ in s.fed]
    # the FILL schedule: every full block of 4 text inputs is followed by exactly 3 speech inputs
    blocks = len(text) // 4
    assert sum(t == ("fill", None) for t in targets) == blocks
    assert kinds[1:1 + 7 * blocks] == (["text"] * 4 + ["speech"] * 3) * blocks
    assert len(tokens) >= int(0.5 * (len(text) - 1))  # min length counted on the text, not the tag


def test_bistream_equals_streaming_with_the_whole_text(model):
    tok = CharTokenizer(["v0"])
    full = generate(model, tok.encode("the quick brown fox"), speaker_id=tok.speaker_id("v0"), streaming=True,
                    generator=gen(3)).run()
    bi = generate_bistream(model, iter(["the q", "uick", " brown f", "ox"]), tok, speaker="v0",
                           generator=gen(3)).run()
    assert bi == full


def test_complete_words():
    assert list(_complete_words(["the qu", "ick bro", "wn", " fox"])) == ["the", " quick", " brown", " fox"]
    assert list(_complete_words(["", "  ", "hi"])) == ["  hi"]


def test_seeded_and_concurrent_requests_are_independent(model):
    """Two requests advanced in turns give what each gives alone (no shared mutable state)."""
    tok = CharTokenizer()
    a_alone = generate(model, tok.encode("one two three"), streaming=True, generator=gen(1)).run()
    b_alone = generate(model, tok.encode("four five"), generator=gen(2)).run()
    a = iter(generate(model, tok.encode("one two three"), streaming=True, generator=gen(1)))
    b = iter(generate(model, tok.encode("four five"), generator=gen(2)))
    out_a, out_b, done = [], [], [False, False]
    while not all(done):
        for k, (it, out) in enumerate(((a, out_a), (b, out_b))):
            try:
                out.append(next(it))
            except StopIteration:
                done[k] = True
    assert out_a == a_alone and out_b == b_alone


@pytest.mark.parametrize("kwargs,match", [
    (dict(text_ids=[]), "text is empty"),
    (dict(text_ids=[10_000]), "outside \\[0, 290\\)"),
    (dict(text_ids=[10] * 399), "context is max_len=400"),
    (dict(text_ids=[10], prompt_text_ids=[10], prompt_speech_ids=[C]), "prompt speech tokens \\[27\\]"),
    (dict(text_ids=[10], prompt_text_ids=[10], prompt_speech_ids=[-1]), "outside \\[0, 27\\)"),
    (dict(text_ids=[10], prompt_text_ids=[10], prompt_speech_ids=[1] * 400), "use a shorter prompt"),
    (dict(text_ids=[10], prompt_speech_ids=[1]), "both the prompt's text and its speech"),
    (dict(text_ids=[10], speaker_id=3, prompt_text_ids=[1], prompt_speech_ids=[1]), "not both"),
])
def test_bad_input(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(model, **kwargs)


def test_bistream_bad_input(model):
    tok = CharTokenizer()
    with pytest.raises(ValueError, match="text stream was empty"):
        generate_bistream(model, iter(["", "  "]), tok).run()
    with pytest.raises(ValueError, match="str pieces"):
        generate_bistream(model, iter([b"bytes"]), tok).run()
    with pytest.raises(ValueError, match="unknown speaker"):
        generate_bistream(model, iter(["hi"]), tok, speaker="nobody")
