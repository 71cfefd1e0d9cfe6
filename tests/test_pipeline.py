"""Tests for minicosy.pipeline: the four scenarios, streamed = offline chunk-masked audio, seeds,
bistream, closing early, per-request state, timing, the bad-input table, the CLI handlers.

Models are random-init "micro" checkpoints (a 1-layer LM, a 1-block flow) written next to the
committed speech tokenizer and vocoder: the plumbing is under test, not the voice.
"""

import argparse
import gc
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from minicosy.lm.model import LMConfig, TextSpeechLM
from minicosy.pipeline import (SAMPLE_RATE, MiniCosy, Timing, VoiceReference, add_synth_args,
                               cli_stream, cli_synth, speakable, write_untrained_checkpoint)
from minicosy.text.chars import CharTokenizer
from minicosy.utils import FIXTURES_DIR

CLIP = FIXTURES_DIR / "audio" / "festival_kal" / "festival_kal-valid-00000.flac"
CLIP_TEXT = "Adam and Kevin are good friends."


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_untrained_checkpoint(tmp_path_factory.mktemp("ckpt"), "micro")


@pytest.fixture(scope="module")
def model(ckpt):
    return MiniCosy.from_pretrained(ckpt, device="cpu")


@pytest.fixture(scope="module")
def voice():
    return VoiceReference.from_file(CLIP, CLIP_TEXT)


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


def test_sft_speaker_vectors(model, ckpt, tmp_path):
    v = model.speaker_vector("flite_awb")  # no stored centroid: the fixture clips' mean vector
    assert v.shape == (16,) and abs(float(v.norm()) - 1) < 1e-5
    d = tmp_path / "c"
    shutil.copytree(ckpt, d, symlinks=True)
    enc = model.speaker
    enc.save_pretrained(d / "speaker", extra={"centroids": {"flite_awb": [1.0] + [0.0] * 15}})
    m2 = MiniCosy.from_pretrained(d, device="cpu")
    assert m2.speaker_vector("flite_awb").tolist() == [1.0] + [0.0] * 15
    with pytest.raises(ValueError, match="unknown speaker 'nobody'"):
        model.synthesize("Hi.", speaker="nobody")


# ----------------------------------------------------------------------------- bad input


def test_text_policy(model):
    tok = model.text_tokenizer
    with pytest.warns(UserWarning, match="cannot read"):
        assert speakable("hi 🙂 there 世界", tok).split() == ["hi", "there"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert speakable("Café “nº 5” – ½", tok) == "Café “nº 5” – ½"  # the normaliser reads these


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
            text = {"empty text": "", "whitespace text": " \n\t ", "emoji only": "🙂🎉", "cyrillic only": "привет мир"}[case]
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


def test_accepted_prompts_8k_stereo_float64(model):
    rng = np.random.default_rng(1)
    speech = 0.1 * rng.standard_normal(2 * 8000)  # float64
    with pytest.warns(UserWarning, match="muffled"):
        v8 = VoiceReference(speech, 8000)
    assert v8.audio.dtype == np.float32 and v8.duration_ms == 2000
    stereo = VoiceReference(np.stack([speech, -speech, speech]).T, 16000)  # (T, 3): downmixed (the mean)
    assert stereo.audio.shape == (16000,) and np.allclose(stereo.audio, speech / 3, atol=1e-6)
    _ok(model.synthesize("Hi there.", v8)[0])
    assert model.speech_tokens(speech, 8000).shape == (2 * 25,)


# ----------------------------------------------------------------------------- CLI handlers


def _args(ckpt, out, *extra):
    p = argparse.ArgumentParser()
    add_synth_args(p)
    return p.parse_args(["--text", "Hi there.", "--out", str(out), "--checkpoint", str(ckpt), "--device", "cpu",
                         *extra])


def test_cli_synth_and_stream_write_whole_files(ckpt, tmp_path, capsys):
    out = tmp_path / "a.wav"
    assert cli_synth(_args(ckpt, out, "--prompt-wav", str(CLIP), "--prompt-text", CLIP_TEXT)) == 0
    wav, sr = sf.read(out)
    assert sr == SAMPLE_RATE and wav.size and "RTF" in capsys.readouterr().out
    out2 = tmp_path / "b.flac"
    assert cli_stream(_args(ckpt, out2, "--speaker", "flite_slt")) == 0
    assert "first packet after" in capsys.readouterr().out and sf.read(out2)[0].size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.flac"]  # no partial files left


@pytest.mark.parametrize("extra, match", [
    (["--out-dir-missing"], "does not exist"), (["--prompt-text", "hello"], "needs --prompt-wav"),
])
def test_cli_bad_arguments(ckpt, tmp_path, extra, match):
    out = tmp_path / "missing" / "x.wav" if extra == ["--out-dir-missing"] else tmp_path / "x.wav"
    args = _args(ckpt, out, *([] if extra == ["--out-dir-missing"] else extra))
    with pytest.raises(ValueError, match=match):
        cli_synth(args)
    assert not list(tmp_path.iterdir())


def test_cli_registration_and_one_line_errors(monkeypatch, capsys, tmp_path):
    """What `minicosy synth|stream` become once cli.py lists minicosy.pipeline in CLI_MODULES."""
    import minicosy.cli as cli

    if "minicosy.pipeline" not in cli.CLI_MODULES:
        monkeypatch.setattr(cli, "CLI_MODULES", (*cli.CLI_MODULES, "minicosy.pipeline"))
    assert {"synth", "stream"} <= {name for name, _ in cli.command_table(cli.build_parser())}
    assert cli.main(["synth", "--text", "hi", "--out", str(tmp_path / "no" / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minicosy: error:") and err.count("\n") == 1 and "does not exist" in err
