"""Tests for minicosy.system.model (MiniCosy): the four scenarios, streamed = offline chunk-masked
audio, seeds, bistream, closing early, per-request state, timing, the LM-context rule in both
modes, the bad-input table. The front end's own policies: tests/test_system_frontend.py; the
`synth`/`stream` commands: tests/test_cli.py.

Models are random-init "micro" checkpoints (a 1-layer LM, a 1-block flow) written next to the
committed speech tokenizer and vocoder: the plumbing is under test, not the voice.
"""

import gc
import shutil
import threading

import numpy as np
import pytest
import soundfile as sf
import torch

from minicosy.lm.model import LMConfig, TextSpeechLM
from minicosy.system.frontend import SAMPLE_RATE, VoiceReference
from minicosy.system.model import MiniCosy
from minicosy.system.timing import Timing
from minicosy.text.chars import CharTokenizer


def _ok(wav):
    assert wav.dtype == np.float32 and wav.ndim == 1 and wav.size and np.isfinite(wav).all()
    assert wav.size % 480 == 0  # whole 50 Hz frames
    return wav


# ----------------------------------------------------------------------------- scenarios


def test_four_scenarios(model, voice):
    icl, sr = model.synthesize("Hi there.", voice)
    assert sr == SAMPLE_RATE and _ok(icl).size == 480 * 2 * sum(map(len, model.last_timing.tokens))
    cross, _ = model.synthesize("Hi there.", VoiceReference(voice.audio, voice.sample_rate))  # flow prompt only
    sft, _ = model.synthesize("Hi there.", speaker="flite_awb")
    default, _ = model.synthesize("Hi there.")  # no voice, no speaker: the first SFT voice
    assert np.array_equal(default, model.synthesize("Hi there.", speaker=model.speakers[0])[0])
    for w in (cross, sft):
        _ok(w)
    toks = model.zero_shot_voice(voice, "Hi there.")
    assert toks.dtype == torch.long and toks.numel() and int(toks.max()) < model.tokenizer.codebook_size


def test_same_seed_same_audio(model, voice):
    a = model.synthesize("Hi there.", voice, seed=3)[0]
    assert np.array_equal(a, model.synthesize("Hi there.", voice, seed=3)[0])
    assert not np.array_equal(a, model.synthesize("Hi there.", voice, seed=4)[0])
    s = np.concatenate(list(model.stream("Hi there.", voice, seed=3)))
    assert np.array_equal(s, np.concatenate(list(model.stream("Hi there.", voice, seed=3))))


def test_stream_equals_offline_chunk_masked_across_sentences(model, voice):
    """Two sentences through one vocoder stream = flow offline (chunk mask) per sentence, one vocoder pass."""
    pieces = list(model.stream("Hi there. Good day!", voice, chunk_tokens=5))
    t = model.last_timing
    assert len(t.tokens) == 2 and len(pieces) > 2
    streamed = np.concatenate(pieces)
    offline, _ = model.tokens_to_audio(t.tokens, voice, mask="chunk", chunk_tokens=5)
    assert streamed.shape == offline.shape  # no gap, no overlap at the sentence join
    peak = float(np.abs(offline).max())
    assert float(np.abs(streamed - offline).max()) < 0.02 * peak  # the vocoder's own stream tolerance
    # the flow ran in chunks of M = 5 tokens, the audio came out in pieces
    assert len(t.flow_chunk_s) >= sum(len(x) for x in t.tokens) // 5


def test_a_short_first_chunk_streams_as_its_offline_schedule(model, voice):
    """``first_chunk_tokens=F``: the first audio after F + P tokens (2F − H frames: the vocoder holds back H,
    so F > H / 2 is the shortest that makes sound at once), the same tokens, and the audio of the offline chunk
    mask with the same schedule (the first sentence's first block F, then M)."""
    M, F = 10, 7
    uniform = list(model.stream("Hi there. Good day!", voice, chunk_tokens=M, seed=1))
    tokens = model.last_timing.tokens
    pieces = list(model.stream("Hi there. Good day!", voice, chunk_tokens=M, seed=1, first_chunk_tokens=F))
    assert model.last_timing.tokens == tokens  # the schedule is the flow's alone
    hold = model.vocoder.cfg.stream_lookahead
    assert len(pieces[0]) == (model.flow.cfg.up * F - hold) * 480 < len(uniform[0])
    offline, _ = model.tokens_to_audio(tokens, voice, mask="chunk", chunk_tokens=M, first_chunk_tokens=F)
    streamed = np.concatenate(pieces)
    assert streamed.shape == offline.shape
    assert float(np.abs(streamed - offline).max()) < 0.02 * float(np.abs(offline).max())
    with pytest.raises(ValueError, match="first_chunk_tokens"):
        model.stream("Hi there.", voice, first_chunk_tokens=0)


def test_a_fresh_voice_computes_a_clip_prompt_block_once_per_request(model, voice):
    assert model.flow.cacheable_prompt
    list(model.stream("Hi there. Good day! See you.", voice))
    t = model.last_timing
    assert len(t.tokens) == 3 and len(t.flow_prompt_s) == 1 and t.flow_prompt_idx == [0]


def endless_text(closed: list):
    """A text source that never ends (an upstream LLM); appends True to ``closed`` once it is closed."""
    try:
        while True:
            yield "and so on "
    finally:
        closed.append(True)


def test_bistream_text_iterator_and_early_close(model, voice):
    pieces = ["Hel", "lo the", "re. How", " are you?"]
    out = list(model.stream(iter(pieces), voice))
    assert len(model.last_timing.tokens) == 2 and _ok(np.concatenate(out)).size
    closed = []
    gen = model.stream(endless_text(closed), voice)
    _ok(next(gen))
    gen.close()
    gc.collect()
    assert closed == [True]  # closing the audio generator released everything up to the text source


def test_early_close_ends_the_request_without_the_cyclic_gc(model, voice):
    """close() ends the LM request at once — its generator (KV cache) and the text source it reads —
    not whenever the cyclic garbage collector next runs (an LMStream and its steps refer to each other)."""
    closed = []
    was = gc.isenabled()
    gc.disable()  # only reference counting may release anything here
    try:
        gen = model.stream(endless_text(closed), voice)
        _ok(next(gen))
        gen.close()
        assert closed == [True]
    finally:
        if was:
            gc.enable()


def _lm_threads():
    return [t for t in threading.enumerate() if t.name == "minicosy-lm"]


@pytest.mark.parametrize("voice_kind", ["fresh", "registered", "sft"])
def test_lm_ahead_same_tokens_same_audio(model, voice, voice_kind):
    """The LM in its own thread (a bounded queue ahead of the flow) changes when tokens are drawn,
    never which: the same seed gives the same tokens and audio as the pull chain — and a registered
    voice (its LM prefix forked) the same as the recording processed afresh. One intra-op thread
    throughout: float kernels may round differently with another thread count (the tokens may not)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    kw = {"fresh": {"voice": voice}, "registered": {"voice": "kal_ahead"}, "sft": {"speaker": "flite_slt"}}[voice_kind]
    if voice_kind == "registered":
        model.register_voice("kal_ahead", voice)
    try:
        runs = {}
        for ahead in (False, True):
            runs[ahead] = np.concatenate(list(model.stream("Hi there. Good day!", seed=7, chunk_tokens=5,
                                                           lm_ahead=ahead, **kw)))
            assert model.last_timing.lm_ahead is ahead
            runs[ahead, "tokens"] = model.last_timing.tokens
        assert runs[True, "tokens"] == runs[False, "tokens"] and np.array_equal(runs[True], runs[False])
        if voice_kind == "registered":
            fresh = np.concatenate(list(model.stream("Hi there. Good day!", voice, seed=7, chunk_tokens=5)))
            assert np.array_equal(fresh, runs[True])
            assert np.array_equal(model.synthesize("Hi there.", voice, seed=7)[0],
                                  model.synthesize("Hi there.", "kal_ahead", seed=7)[0])
    finally:
        torch.set_num_threads(threads)
        if voice_kind == "registered":
            model.remove_voice("kal_ahead")
    assert not _lm_threads()


@pytest.mark.parametrize("how", ["close", "garbage collection"])
def test_lm_ahead_early_close_stops_and_joins_the_thread(model, voice, how):
    closed = []
    was = gc.isenabled()
    gc.disable()  # reference counting alone must release the thread, the LM request, the text source
    try:
        gen = model.stream(endless_text(closed), voice, lm_ahead=True)
        _ok(next(gen))
        assert len(_lm_threads()) == 1
        gen.close() if how == "close" else None
        del gen
        assert closed == [True] and not _lm_threads()
    finally:
        if was:
            gc.enable()


def test_lm_ahead_errors_reach_the_consumer(model, voice):
    def bad_source():
        yield "Hello there, my friend, how are you doing today? "
        yield 42  # not a str: the LM thread meets it

    gen = model.stream(bad_source(), voice, lm_ahead=True)
    with pytest.raises(ValueError, match="str pieces"):
        list(gen)
    assert not _lm_threads()
    with pytest.raises(ValueError, match="text stream was empty"):
        list(model.stream(iter(["  "]), voice, lm_ahead=True))


def test_first_packet_breakdown(model, voice):
    for ahead in (False, True):
        list(model.stream("Hi there.", voice, lm_ahead=ahead))
        t = model.last_timing
        fp = t.summary()["first_packet"]
        parts = ("prompt", "lm_wait", "flow_prompt_block", "flow_chunks", "vocoder", "other")
        assert set(parts) <= set(fp) and abs(sum(fp[k] for k in parts) - t.first_packet_s) < 1e-3
        assert fp["flow_prompt_block"] > 0 and fp["lm_tokens"] >= 1 and min(fp[k] for k in parts[:-1]) >= 0
        assert len(t.flow_prompt_s) == len(t.tokens) == 1  # one prompt block per sentence, apart from the chunks
        if not ahead:
            assert abs(t.lm_wait_s - t.lm_s) < 0.05 * t.lm_s + 2e-3  # a pull chain waits for every draw


def test_long_text_streams_and_closes(model):
    text = ("The cat sat on the mat and looked at the rain. " * 450)[:20000]
    assert len(text) == 20000
    gen = model.stream(text, speaker="flite_slt")
    _ok(next(gen))
    assert model.last_timing.first_packet_s is not None
    gen.close()
    with pytest.raises(ValueError, match="stream"):
        model.synthesize(text)  # offline keeps the whole waveform: refused, pointing to stream()


def test_requests_share_no_state(model, voice):
    """Two interleaved streams (different voices, seeds, chunk sizes) give what each gives alone."""
    alone_a = np.concatenate(list(model.stream("Hi there.", voice, seed=1, chunk_tokens=5)))
    alone_b = np.concatenate(list(model.stream("Good day.", speaker="flite_slt", seed=2)))
    ta, tb = Timing("stream"), Timing("stream")
    ga = model.stream("Hi there.", voice, seed=1, chunk_tokens=5, timing=ta)
    gb = model.stream("Good day.", speaker="flite_slt", seed=2, timing=tb)
    a, b, done = [], [], set()
    while len(done) < 2:
        for name, g, acc in (("a", ga, a), ("b", gb, b)):
            if name not in done:
                x = next(g, None)
                done.add(name) if x is None else acc.append(x)
    assert np.array_equal(np.concatenate(a), alone_a) and np.array_equal(np.concatenate(b), alone_b)
    assert ta.tokens != tb.tokens and model.last_timing is tb


def test_timing_record(model, voice):
    list(model.stream("Hi there.", voice))
    s = model.last_timing.summary()
    assert 0 < s["first_packet_s"] <= s["total_s"] and s["audio_s"] > 0 and s["rtf"] > 0
    for k in ("prompt_s", "lm_prefill_s", "lm_per_token_s", "flow_per_chunk_s", "vocoder_per_chunk_s"):
        assert s[k] is not None and s[k] >= 0, k
    model.synthesize("Hi there.", voice)
    s = model.last_timing.summary()
    assert s["mode"] == "offline" and s["first_packet_s"] == s["total_s"] and s["n_audio_chunks"] == 1


# ----------------------------------------------------------------------------- bad input


def _wav(tmp_path, name, data, sr=16000):
    p = tmp_path / name
    sf.write(p, data, sr)
    return p


@pytest.mark.parametrize("case, match", [
    ("empty text", "empty"), ("whitespace text", "empty"), ("emoji only", "nothing speakable"),
    ("cyrillic only", "nothing speakable"), ("missing wav", "not found"), ("corrupt wav", "cannot read"),
    ("silent wav", "silent"), ("0.2 s wav", "0.20 s"), ("60 s wav", "60.00 s"), ("transcript too long", "characters/s"),
    ("transcript too short", "characters/s"), ("empty transcript", "transcript is empty"), ("int16 audio", "int16"),
    ("4 kHz audio", "8000"), ("voice and speaker", "not both"), ("missing checkpoint", "not found"),
    ("checkpoint without lm", "lm"), ("truncated flow", "truncated"), ("foreign lm", "do not belong"),
    ("cuda without cuda", "CUDA"),
])
def test_bad_input_is_a_clear_value_error(case, match, model, voice, ckpt, tmp_path):
    rng = np.random.default_rng(0)
    speech = (0.1 * rng.standard_normal(3 * 16000)).astype(np.float32)

    def copy():
        d = tmp_path / "ck"
        shutil.copytree(ckpt, d, symlinks=True)
        return d

    def run():
        if case.endswith("text") or case in ("emoji only", "cyrillic only"):
            text = {"empty text": "", "whitespace text": " \n\t ", "emoji only": "🙂🎉", "cyrillic only": "привет мир"}[
                case
            ]
            return model.synthesize(text, voice)
        if case == "missing wav":
            return VoiceReference.from_file(tmp_path / "nope.wav")
        if case == "corrupt wav":
            (tmp_path / "bad.wav").write_bytes(b"RIFF\x00garbage" * 50)
            return VoiceReference.from_file(tmp_path / "bad.wav")
        if case == "silent wav":
            return VoiceReference.from_file(_wav(tmp_path, "s.wav", np.zeros(48000, np.float32)))
        if case == "0.2 s wav":
            return VoiceReference.from_file(_wav(tmp_path, "s.wav", speech[:3200]))
        if case == "60 s wav":
            return VoiceReference.from_file(_wav(tmp_path, "s.wav", np.tile(speech, 20)))
        if case.startswith("transcript") or case == "empty transcript":
            text = {"transcript too long": "word " * 60, "transcript too short": "hi", "empty transcript": "  "}[case]
            return VoiceReference(speech, 16000, text)
        if case == "int16 audio":
            return VoiceReference((speech * 32767).astype(np.int16), 16000)
        if case == "4 kHz audio":
            return VoiceReference(speech, 4000)
        if case == "voice and speaker":
            return model.synthesize("Hi.", voice, speaker="flite_awb")
        if case == "missing checkpoint":
            return MiniCosy.from_pretrained(tmp_path / "none", device="cpu")
        if case == "checkpoint without lm":
            d = copy()
            (d / "lm.safetensors").unlink()
            return MiniCosy.from_pretrained(d, device="cpu")
        if case == "truncated flow":
            d = copy()
            data = (d / "flow.safetensors").read_bytes()
            (d / "flow.safetensors").write_bytes(data[: len(data) // 2])
            return MiniCosy.from_pretrained(d, device="cpu")
        if case == "foreign lm":  # an LM trained on another tokenizer (27 codes)
            d = copy()
            cfg = LMConfig(codebook_size=27, text_vocab_size=CharTokenizer().vocab_size, d_model=16, n_layers=1,
                           n_heads=2, n_kv_heads=1, d_ff=32)
            TextSpeechLM(cfg).save_pretrained(d / "lm", text_tokenizer=CharTokenizer().to_dict())
            return MiniCosy.from_pretrained(d, device="cpu")
        if case == "cuda without cuda":
            if torch.cuda.is_available():
                pytest.skip("this machine has CUDA")
            return MiniCosy.from_pretrained(ckpt, device="cuda")
        raise AssertionError(case)

    with pytest.raises(ValueError, match=match):
        run()


# ----------------------------------------------------------------------------- the LM's context, both modes


def _short_context(ckpt, tmp_path, max_len: int):
    """The micro checkpoint with an LM whose context holds only ``max_len`` positions."""
    d = tmp_path / f"ctx{max_len}"
    shutil.copytree(ckpt, d, symlinks=True)
    m = MiniCosy.from_pretrained(ckpt, device="cpu")
    cfg = LMConfig(**{**m.lm.cfg.to_dict(), "max_len": max_len})
    TextSpeechLM(cfg).save_pretrained(d / "lm", text_tokenizer=m.text_tokenizer.to_dict(), dtype=torch.float32,
                                      extra={"untrained": True})
    return MiniCosy.from_pretrained(d, device="cpu")


def test_a_sentence_too_long_for_the_context_is_cut_alike_in_both_modes(ckpt, tmp_path):
    """Before: streaming raised ValueError in its block phase after audio had gone out, while
    offline truncated silently at the context. Now both cut the sentence into pieces that fit, up front."""
    small = _short_context(ckpt, tmp_path, 64)
    text = "the cat sat on the mat and looked at the rain for a very long time without a word"  # no sentence end
    p = small.frontend.prompt(speaker="flite_slt")
    pieces = small.frontend.sentences(text, p)
    assert len(pieces) > 1 and " ".join(pieces).split() == text.split()
    assert all(small.frontend.positions(p, s) <= 64 for s in pieces)
    wav, _ = small.synthesize(text, speaker="flite_slt")
    offline = small.last_timing.tokens
    streamed = list(small.stream(text, speaker="flite_slt"))  # no error once audio has started
    assert len(small.last_timing.tokens) == len(offline) == len(pieces) and _ok(wav).size and streamed
    streamed = list(
        small.stream((w + " " for w in text.split()), speaker="flite_slt")
    )  # bistream: cut as the words arrive
    assert len(small.last_timing.tokens) > 1 and streamed


def test_a_prompt_that_fills_the_context_fails_before_any_audio(ckpt, tmp_path, voice):
    small = _short_context(ckpt, tmp_path, 64)  # the clip's prompt alone takes more than 64 positions
    for run in (lambda: small.synthesize("Hi.", voice), lambda: small.stream("Hi.", voice),
                lambda: small.stream(iter(["Hi."]), voice)):
        with pytest.raises(ValueError, match="does not fit the LM's context.*shorter voice prompt"):
            run()  # the call itself refuses: no generator, no chunk, no LM step
