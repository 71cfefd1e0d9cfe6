"""Tests for minicosy.system.frontend: the text policy, the voice prompt (processed once, reusable,
registrable), SFT speaker vectors from speaker.json only, the LM-context rule, stream cutting.

Models are random-init "micro" checkpoints beside the committed speech tokenizer and vocoder.
"""

import json
import shutil
import warnings

import numpy as np
import pytest
import torch

from minicosy.system.frontend import MAX_WORDS, Prompt, VoiceReference, speakable, stream_sentences
from minicosy.system.model import MiniCosy
from minicosy.utils import DEFAULT_CHECKPOINT


def test_text_policy(model):
    tok = model.text_tokenizer
    with pytest.warns(UserWarning, match="cannot read"):
        assert speakable("hi 🙂 there 世界", tok).split() == ["hi", "there"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert speakable("Café “nº 5” – ½", tok) == "Café “nº 5” – ½"  # the normaliser reads these


def test_accepted_prompts_8k_stereo_float64(model):
    rng = np.random.default_rng(1)
    speech = 0.1 * rng.standard_normal(2 * 8000)  # float64
    with pytest.warns(UserWarning, match="muffled"):
        v8 = VoiceReference(speech, 8000)
    assert v8.audio.dtype == np.float32 and v8.duration_ms == 2000
    stereo = VoiceReference(np.stack([speech, -speech, speech]).T, 16000)  # (T, 3): downmixed (the mean)
    assert stereo.audio.shape == (16000,) and np.allclose(stereo.audio, speech / 3, atol=1e-6)
    wav, _ = model.synthesize("Hi there.", v8)
    assert wav.size and np.isfinite(wav).all()
    assert model.speech_tokens(speech, 8000).shape == (2 * 25,)


# ----------------------------------------------------------------------------- the prompt, once


def test_prompt_processed_once_reused_and_registered(model, voice):
    p = model.frontend.prompt(voice)
    assert isinstance(p, Prompt) and p.lm_text == voice.transcript and p.lm_tokens == p.flow_tokens.tolist()
    assert p.flow_mel.shape == (80, 2 * len(p.flow_tokens)) and p.spk.shape == (16,)
    a = model.synthesize("Hi there.", voice, seed=2)[0]
    assert np.array_equal(a, model.synthesize("Hi there.", p, seed=2)[0])  # a Prompt in place of the recording
    assert model.frontend.register("kal", voice).lm_tokens == p.lm_tokens
    assert np.array_equal(a, model.synthesize("Hi there.", "kal", seed=2)[0])
    with pytest.raises(ValueError, match="no registered voice 'bob'"):
        model.synthesize("Hi.", "bob")
    model.remove_voice("kal")


def test_register_list_remove(model, voice):
    p = model.register_voice("kal2", voice)
    assert model.voices == ["kal2"] and p.name == "kal2" and set(p.lm_prefix) == {"offline", "stream"}
    # the flow's prompt block, computed at registration ("clip" flow: encoder + every ODE step done)
    assert p.flow_state.precomputed and p.flow_state.n_prompt == len(p.flow_tokens) > 0
    assert model.frontend.prompt(voice).flow_state is p.flow_state
    assert model.register_voice("kal2", voice) is p  # the same recording again: a no-op
    assert model.frontend.prompt(voice) is p  # the registered object itself finds its snapshot
    assert model.frontend.prompt(VoiceReference(voice.audio.copy(), voice.sample_rate, voice.transcript)) is not p
    model.remove_voice("kal2")
    assert model.voices == [] and model.frontend.prompt(voice) is not p


def test_registered_flow_state_cross_flow_keeps_inputs_only(ckpt, voice, tmp_path):
    """A checkpoint from before the cacheable prompt block ("cross" lookahead) cannot run the block
    before the first tokens: registration keeps the checked inputs, and every stream computes the
    block itself — the same audio as the recording processed afresh."""
    d = tmp_path / "cross"
    shutil.copytree(ckpt, d, symlinks=True)
    meta = json.loads((d / "flow.json").read_text())
    meta["config"]["prompt_lookahead"] = "cross"
    (d / "flow.json").write_text(json.dumps(meta))
    m = MiniCosy.from_pretrained(d, device="cpu")
    assert not m.flow.cacheable_prompt
    p = m.register_voice("kal_cross", voice)
    assert not p.flow_state.precomputed and p.flow_state.done == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = np.concatenate(list(m.stream("Hi there.", "kal_cross", seed=3, chunk_tokens=5)))
        b = np.concatenate(list(m.stream("Hi there.", voice.__class__(voice.audio.copy(), voice.sample_rate,
                                                                     voice.transcript), seed=3, chunk_tokens=5)))
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(a, b)


def _changed(voice, how):
    v = VoiceReference(voice.audio.copy(), voice.sample_rate, voice.transcript)
    return v, {"audio": lambda: v.audio.__setitem__(slice(0, 100), 0.0),
               "transcript": lambda: setattr(v, "transcript", "Adam and Kevin are friends.")}[how]


@pytest.mark.parametrize("case, match", [
    ("unknown name", "no registered voice 'nobody'"), ("sft name", "training \\(SFT\\) voice"),
    ("sft name used as voice", "SFT voice: speaker="), ("duplicate name", "already registered with another"),
    ("audio changed after registration", "has changed since"), ("transcript changed after registration", "has changed"),
    ("empty name", "non-empty name"), ("not a recording", "register a VoiceReference"),
    ("remove unknown", "no registered voice 'ghost'"),
])
def test_registration_bad_input(model, voice, case, match):
    model.register_voice("base", voice)
    try:
        with pytest.raises(ValueError, match=match):
            if case == "unknown name":
                model.synthesize("Hi.", voice="nobody")
            elif case == "sft name":
                model.register_voice("flite_awb", voice)
            elif case == "sft name used as voice":
                model.stream("Hi.", voice="flite_awb")
            elif case == "duplicate name":
                model.register_voice("base", VoiceReference(voice.audio[: len(voice.audio) // 2], voice.sample_rate))
            elif case.endswith("changed after registration"):
                v, change = _changed(voice, case.split()[0])
                model.register_voice("mutable", v)
                change()  # in place, after registration
                model.synthesize("Hi.", voice=v)
            elif case == "empty name":
                model.register_voice("  ", voice)
            elif case == "not a recording":
                model.register_voice("x", "some/path.wav")
            elif case == "remove unknown":
                model.remove_voice("ghost")
    finally:
        for name in model.voices:
            model.remove_voice(name)


# ----------------------------------------------------------------------------- SFT vectors: speaker.json only


def test_sft_speaker_vectors_come_from_speaker_json(model, ckpt, tmp_path):
    stored = model.speaker.meta["centroids"]["flite_awb"]
    v = model.speaker_vector("flite_awb")
    assert v.shape == (16,) and torch.allclose(v, torch.tensor(stored)) and abs(float(v.norm()) - 1) < 1e-5
    d = tmp_path / "c"
    shutil.copytree(ckpt, d, symlinks=True)
    model.speaker.save_pretrained(d / "speaker", extra={"centroids": {"flite_slt": [1.0] + [0.0] * 15}})
    m2 = MiniCosy.from_pretrained(d, device="cpu")
    assert m2.speaker_vector("flite_slt").tolist() == [1.0] + [0.0] * 15
    # a voice without a stored centroid: refused, whatever data/fixtures holds of it
    with pytest.raises(ValueError, match="no speaker vector for SFT voice 'flite_awb'.*train speaker"):
        m2.synthesize("Hi.", speaker="flite_awb")
    with pytest.raises(ValueError, match="unknown speaker 'nobody'"):
        model.synthesize("Hi.", speaker="nobody")


def test_committed_speaker_json_holds_every_sft_voice():
    """The committed export stores each train voice's centroid (the LM's speaker tags) for SFT."""
    speakers = json.loads((DEFAULT_CHECKPOINT / "lm.json").read_text())["text_tokenizer"]["speakers"]
    meta = json.loads((DEFAULT_CHECKPOINT / "speaker.json").read_text())
    dim = meta["config"]["emb_dim"]
    assert speakers and set(speakers) <= set(meta["centroids"])
    assert all(len(meta["centroids"][s]) == dim for s in speakers)


# ----------------------------------------------------------------------------- the LM's context


def test_positions_known_answer(model, voice):
    """SFT, 9 text ids: prefix 2 + 1 (tag) + 9 = 12; speech ≤ ⌊5·9⌋ = 45 → 57 (the micro LM: ratio 5, N = M = 15)."""
    cfg = model.lm.cfg
    assert (cfg.max_token_text_ratio, cfg.mix_n, cfg.mix_m) == (5.0, 15, 15)
    sft = model.frontend.prompt(speaker="flite_slt")
    assert len(model.text_tokenizer.encode("Hi there.")) == 9
    assert model.frontend.positions(sft, "Hi there.") == 2 + 1 + 9 + 45
    p = model.frontend.prompt(voice)
    ptext, text = model.frontend.lm_text_ids(p, "Hi there.")  # ICL: " " + text
    assert len(text) == 10
    prefix = 2 + len(ptext) + 10 + len(p.lm_tokens)
    forced = (len(ptext) + 10) // 15 * 15 - len(p.lm_tokens)
    assert model.frontend.positions(p, "Hi there.") == prefix + max(50, forced)


def test_stream_sentences_cut_by_words_ends_and_fit():
    pieces = ["Hello th", "ere. one two ", "three four five six"]
    assert [list(s) for s in stream_sentences(pieces)] == [["Hello", " there."],
                                                           ["one", " two", " three", " four", " five", " six"]]
    short = [list(s) for s in stream_sentences(pieces, fits=lambda s: len(s) <= 9)]
    assert short == [["Hello"], ["there."], ["one", " two"], ["three"], ["four", " five"], ["six"]]
    assert [len(s) for s in (list(x) for x in stream_sentences(["w "] * 65))] == [MAX_WORDS, MAX_WORDS, 5]
    with pytest.raises(ValueError, match="does not fit"):
        [list(s) for s in stream_sentences(["a enormousword"], fits=lambda s: len(s) <= 5)]
