"""Tests for minicosy.data.corpus: voices, pseudo-speakers, planning, the committed fixtures, and
(marked ``engines``) tiny real builds with flite, festival and espeak-ng/mbrola."""

import argparse
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from minicosy.data import corpus, voices
from minicosy.data.corpus import (
    DEFAULT_VARIANTS,
    HELDOUT_VOICES,
    TRAIN_VOICES,
    VARIANTS,
    VOICE_BY_ID,
    VOICES,
    build_corpus,
    plan_corpus,
    summarize,
)
from minicosy.data.manifest import read_manifest
from minicosy.utils import FIXTURES_DIR

ENGINES = all(shutil.which(b) for b in ("flite", "text2wave", "espeak-ng", "RHVoice-test", "pico2wave", "sox"))


def _base(voice: str) -> str:
    """flite_awb_p+2 → flite_awb."""
    return voice if voice in VOICE_BY_ID else voice.rsplit("_", 1)[0]


# ----------------------------------------------------------------------------- tables


V1_VOICES = ["flite_awb", "flite_rms", "flite_slt", "flite_kal16", "festival_kal", "festival_slt_hts",
             "mbrola_us1", "mbrola_us2", "mbrola_us3", "mbrola_en1"]
V2_VOICES = ["festival_rab", "mbrola_de5_en", "mbrola_fr1_en", "rhvoice_alan", "rhvoice_bdl", "rhvoice_slt",
             "rhvoice_evgeniy", "pico_en_us", "pico_en_gb", "rhvoice_lyubov"]


def test_voice_table_is_corpus_v2():
    # v1's ten voices first, in their v1 order (the order decides who reads which sentence)
    assert [v.id for v in VOICES][:20] == V1_VOICES + V2_VOICES  # v3's voices follow (tests/test_voices_v3.py)
    assert HELDOUT_VOICES == ["mbrola_us3", "mbrola_en1", "pico_en_gb", "rhvoice_lyubov"]
    assert len(TRAIN_VOICES) >= 28
    assert set(DEFAULT_VARIANTS) == {"low", "high"}
    for settings in DEFAULT_VARIANTS.values():
        assert len(settings) == 2 and set(settings) <= set(VARIANTS)
    for v in VOICES:
        assert v.role in ("train", "heldout") and v.rate in (10000, 16000, 22050, 24000, 32000) and v.packages
        assert v.engine in corpus.ENGINE_BINARY


def test_missing_engine_names_its_package(monkeypatch):
    real = corpus.shutil.which
    monkeypatch.setattr(corpus.shutil, "which",
                        lambda name: None if name in ("pico2wave", "RHVoice-test") else real(name) or "/bin/true")
    with pytest.raises(ValueError, match="libttspico-utils"):
        corpus.check_engines(["pico_en_us"])
    with pytest.raises(ValueError, match="rhvoice-english"):
        corpus.synthesize("rhvoice_bdl", "hello")


# ----------------------------------------------------------------------------- planning


@pytest.fixture(scope="module")
def plan():
    return plan_corpus(per_voice=40, n_valid=5, n_test=5, seed=0, version=2)  # v2 mechanics, kept exactly


def test_plan_counts(plan):
    for vid in TRAIN_VOICES:
        mine = [j for j in plan if j["voice"] == vid]
        assert [sum(j["split"] == s for j in mine) for s in ("train", "valid", "test")] == [40, 5, 5]
        for s in corpus.default_variants(vid, 2):  # each variant copies ceil(0.5 · 40) utterances
            assert sum(s in j["variants"] for j in mine) == 20
        assert {s for j in mine for s in j["variants"]} == set(corpus.default_variants(vid, 2))
    for vid in HELDOUT_VOICES:
        mine = [j for j in plan if j["voice"] == vid]
        assert {j["split"] for j in mine} == {"valid", "test"} and len(mine) == 10


def test_plan_heldout_never_trained_and_no_heldout_variants(plan):
    for j in plan:
        if j["voice"] in HELDOUT_VOICES:
            assert j["split"] != "train" and not j["variants"]
        if j["variants"]:
            assert j["split"] == "train" and j["voice"] in TRAIN_VOICES


def test_plan_explicit_variants_and_none():
    jobs = plan_corpus(per_voice=4, n_valid=1, n_test=1, variants=("s+8",), voices=["flite_slt"], version=2)
    assert {s for j in jobs for s in j["variants"]} == {"s+8"}
    assert not any(j["variants"] for j in plan_corpus(per_voice=4, n_valid=1, n_test=1, variants=(), version=2))


def test_plan_sentence_level_split(plan):
    texts = {s: {j["text"] for j in plan if j["split"] == s} for s in ("train", "valid", "test")}
    assert not texts["train"] & texts["test"]
    assert not texts["train"] & texts["valid"]
    assert not texts["valid"] & texts["test"]


def test_plan_deterministic_and_independent_of_voice_selection(plan):
    assert plan_corpus(per_voice=40, n_valid=5, n_test=5, seed=0, version=2) == plan
    sub = plan_corpus(per_voice=40, n_valid=5, n_test=5, seed=0, voices=["flite_rms", "mbrola_en1"], version=2)
    assert sub == [j for j in plan if j["voice"] in ("flite_rms", "mbrola_en1")]
    assert plan_corpus(per_voice=40, n_valid=5, n_test=5, seed=1, version=2) != plan


def test_plan_train_voices_read_different_sentences(plan):
    train = [j["text"] for j in plan if j["split"] == "train"]
    assert len(set(train)) == len(train)  # 16 × 40 windows of a 3,600-sentence pool do not overlap


def test_plan_v1_voices_keep_their_v1_sentences_and_v2_voices_pair_with_them(plan):
    """v2 added voices without moving v1's split: the valid/test pools still wrap after ten
    voices, so v2 voice 10+i re-reads the sentences of v1 voice i (held-out pairs included)."""
    def texts(vid, split):
        return [j["text"] for j in plan if j["voice"] == vid and j["split"] == split]

    v1 = plan_corpus(per_voice=40, n_valid=5, n_test=5, seed=0, voices=V1_VOICES, version=2)
    assert v1 == [j for j in plan if j["voice"] in V1_VOICES]
    for a, b in [("mbrola_us3", "pico_en_gb"), ("mbrola_en1", "rhvoice_lyubov")]:
        for split in ("valid", "test"):
            assert texts(a, split) == texts(b, split) and texts(a, split)


@pytest.mark.parametrize("kwargs,match", [
    ({"voices": ["flite_bob"]}, "unknown voice"),
    ({"variants": ("p+99",)}, "unknown variant"),
    ({"variant_of": ["mbrola_us3"]}, "train voices only"),
    ({"per_voice": -1}, "≥ 0"),
    ({"variant_fraction": 1.5}, "variant_fraction"),
])
def test_plan_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plan_corpus(**kwargs)


# ----------------------------------------------------------------------------- helpers


def test_tidy_trims_and_normalises():
    sr = 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr).astype(np.float32)
    wav = np.concatenate([np.zeros(sr, np.float32), tone, np.zeros(2 * sr, np.float32)])
    out = voices._tidy(wav, sr, "test", margin_s=0.1)
    assert abs(len(out) - int(1.2 * sr)) <= sr // 100 + 1
    assert np.isclose(np.abs(out).max(), 0.9, atol=1e-3)
    assert len(voices._tidy(wav, sr, "test", margin_s=None)) == len(wav)


def test_tidy_rejects_silence():
    with pytest.raises(ValueError, match="silence"):
        voices._tidy(np.zeros(16000, np.float32), 16000, "flite_awb")


def test_valid_audio(tmp_path):
    good = tmp_path / "a.flac"
    corpus._write_flac(good, np.full(160, 0.1, np.float32), 16000, "Hello there.", "flite_awb")
    assert corpus._valid_audio(good) and corpus._valid_audio(good, "Hello there.")
    assert not corpus._valid_audio(good, "Another sentence.")  # text changed → re-synthesise
    (tmp_path / "b.flac").write_bytes(b"not audio")
    assert not corpus._valid_audio(tmp_path / "b.flac")
    assert not corpus._valid_audio(tmp_path / "missing.flac")


def test_missing_engine_names_debian_package(monkeypatch):
    monkeypatch.setattr(corpus.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="festvox-us-slt-hts.*install_debian.sh"):
        corpus.synthesize("festival_slt_hts", "Hello there.")
    with pytest.raises(ValueError, match="`sox`"):
        corpus.check_engines(["flite_awb"])


def test_unknown_voice_or_variant():
    with pytest.raises(ValueError, match="unknown voice"):
        corpus.synthesize("festival_bob", "Hello.")
    with pytest.raises(ValueError, match="unknown variant"):
        corpus.apply_variant(np.ones(10, np.float32), 16000, "p+12")


def test_cli_registration():
    parser = argparse.ArgumentParser()
    data = parser.add_subparsers().add_parser("data")
    corpus.register_cli({"data": data.add_subparsers()})
    args = parser.parse_args(["data", "build", "--per-voice", "2", "--valid", "1", "--test", "1",
                              "--no-variants", "--voices", "flite_awb,mbrola_us3", "--jobs", "1"])
    assert (args.per_voice, args.valid, args.test, args.variants, args.jobs) == (2, 1, 1, False, 1)
    assert args.func is corpus._cmd_build
    assert parser.parse_args(["data", "fixtures"]).func is corpus._cmd_fixtures
    assert parser.parse_args(["data", "info"]).func is corpus._cmd_info


def test_info_command_on_fixtures(capsys):
    corpus._cmd_info(argparse.Namespace(corpus=str(FIXTURES_DIR)))
    out = capsys.readouterr().out
    assert "mbrola_en1" in out and "heldout" in out and "flite_awb_p+2" in out


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fixtures():
    return read_manifest(FIXTURES_DIR / "manifest.jsonl")


def test_fixtures_cover_every_voice_and_split(fixtures):
    voices = {u.voice for u in fixtures}
    assert {v.id for v in VOICES} <= voices
    assert any(v not in VOICE_BY_ID for v in voices)  # a few pseudo-speakers
    for vid in VOICE_BY_ID:  # v1 voices: train/valid/test (valid/test held out); v2 voices: one test clip
        n = sum(u.voice == vid for u in fixtures)
        assert 2 <= n <= 3 if vid in V1_VOICES else n == 1
    assert sum(u.split == "test" for u in fixtures) >= 5


def test_fixtures_heldout_and_variant_rules(fixtures):
    for u in fixtures:
        if u.voice in HELDOUT_VOICES:
            assert u.split != "train"
        if u.voice not in VOICE_BY_ID:
            assert u.split == "train" and _base(u.voice) in TRAIN_VOICES
            assert u.voice.rsplit("_", 1)[1] in VARIANTS


def test_fixtures_audio_matches_manifest(fixtures):
    root = FIXTURES_DIR
    for u in fixtures:
        path = u.audio_path(root)
        with sf.SoundFile(str(path)) as f:
            assert f.samplerate == u.sample_rate == VOICE_BY_ID[_base(u.voice)].rate
            assert abs(f.frames / f.samplerate - u.duration) < 1e-3
            assert f.comment == u.text and f.title == u.voice
            assert f.subtype == "PCM_16" and f.format == "FLAC"
        assert u.id == f"{u.voice}-{u.split}-00000"


def test_fixtures_match_the_plan(fixtures):
    """The committed slice is exactly what ``minicosy data fixtures`` would build today."""
    expected = {}
    for j in corpus.fixture_plan(seed=0):
        for vid in [j["voice"]] + [f"{j['voice']}_{s}" for s in j["variants"]]:
            expected[f"{vid}-{j['split']}-{j['index']:05d}"] = j["text"]
    assert {u.id: u.text for u in fixtures} == expected


def test_fixtures_small():
    size = sum(p.stat().st_size for p in FIXTURES_DIR.rglob("*") if p.is_file())
    assert size <= 3_000_000


def test_summarize(fixtures):
    s = summarize(fixtures)
    assert s["utterances"] == len(fixtures)
    assert sum(d["utterances"] for d in s["splits"].values()) == len(fixtures)
    assert s["voices"]["mbrola_us3"]["train"] == 0
    assert np.isclose(s["hours"], sum(u.duration for u in fixtures) / 3600, atol=1e-3)


# ----------------------------------------------------------------------------- engines


@pytest.mark.engines
@pytest.mark.skipif(not ENGINES, reason="Debian TTS engines not installed")
@pytest.mark.parametrize("voice", [v.id for v in VOICES])
def test_every_voice_synthesises(voice):
    wav, sr = corpus.synthesize(voice, "Good morning, Anna.")
    assert sr == VOICE_BY_ID[voice].rate
    assert wav.dtype == np.float32 and 0.5 < len(wav) / sr < 5
    assert np.sqrt(np.mean(wav ** 2)) > 0.01
    assert np.isclose(np.abs(wav).max(), 0.9, atol=1e-3)


@pytest.mark.engines
@pytest.mark.skipif(not ENGINES, reason="Debian TTS engines not installed")
def test_variant_shifts_pitch_and_is_deterministic():
    wav, sr = corpus.synthesize("mbrola_us2", "Hello there, my friend.")
    up, down = corpus.apply_variant(wav, sr, "p+3"), corpus.apply_variant(wav, sr, "p-3")
    assert np.array_equal(up, corpus.apply_variant(wav, sr, "p+3"))
    assert abs(len(up) - len(wav)) < 0.02 * sr  # pitch, not tempo

    def centroid(x):  # spectral centroid in Hz
        mag = np.abs(np.fft.rfft(x))
        return float((np.fft.rfftfreq(len(x), 1 / sr) * mag).sum() / mag.sum())

    assert centroid(down) < centroid(wav) < centroid(up)


@pytest.mark.engines
@pytest.mark.skipif(not ENGINES, reason="Debian TTS engines not installed")
def test_tiny_build_manifest_resume_and_determinism(tmp_path, monkeypatch):
    kw = dict(per_voice=2, n_valid=1, n_test=1, voices=["flite_awb", "mbrola_en1"], seed=0, jobs=1,
              max_words=6, progress=False, version=2)
    utts = build_corpus(tmp_path / "a", **kw)
    rows = [json.loads(line) for line in (tmp_path / "a" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == len(utts) == 4 + 2 + 2  # awb 2+1+1, en1 1+1, two variants of one awb utterance
    assert set(rows[0]) == {"id", "voice", "text", "path", "duration", "sample_rate", "split"}
    assert {r["voice"] for r in rows if r["split"] == "train"} == {"flite_awb", "flite_awb_p+2", "flite_awb_p+4"}
    for r in rows:
        assert (tmp_path / "a" / r["path"]).is_file() and r["duration"] > 0.3 and r["sample_rate"] == 16000
    info = json.loads((tmp_path / "a" / "build_info.json").read_text())
    assert info["utterances"] == 8 and info["seed"] == 0 and info["seconds"] >= 0
    assert (info["files_made"], info["files_reused"]) == (8, 0)

    # resume: nothing is synthesised again
    def no_synthesis(*args):
        raise AssertionError(f"resume synthesised again: {args}")

    monkeypatch.setattr(corpus, "synthesize", no_synthesis)
    assert build_corpus(tmp_path / "a", **kw) == utts
    monkeypatch.undo()

    # a resumed build re-makes a deleted variant exactly as the clean build made it
    variant = next(u for u in utts if u.voice == "flite_awb_p+4")
    before, _ = sf.read(str(tmp_path / "a" / variant.path))
    (tmp_path / "a" / variant.path).unlink()
    assert build_corpus(tmp_path / "a", **kw) == utts
    assert np.array_equal(sf.read(str(tmp_path / "a" / variant.path))[0], before)

    # determinism: a second build elsewhere gives the same manifest and the same samples
    utts_b = build_corpus(tmp_path / "b", **kw)
    assert [u.to_dict() for u in utts_b] == [u.to_dict() for u in utts]
    for u in utts:
        a, _ = sf.read(str(tmp_path / "a" / u.path))
        b, _ = sf.read(str(tmp_path / "b" / u.path))
        assert np.array_equal(a, b)
