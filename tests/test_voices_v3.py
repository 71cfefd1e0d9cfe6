"""Tests for corpus v3's voices: the version-3 block of the voice table, the VTLP pseudo-speakers
(``minicosy.data.vtlp``), the probe's pure helpers, and (marked ``engines``) each new voice reading."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

from minicosy import voice_probe
from minicosy.data import corpus, vtlp
from minicosy.data.corpus import (
    HELDOUT_VOICES,
    TRAIN_VOICES,
    VARIANTS,
    VOICE_BY_ID,
    VOICES,
    apply_variant,
    is_variant,
    split_voice_id,
    synthesize,
)

ROOT = Path(__file__).resolve().parents[1]
V3 = voice_probe.V3_VOICES


# ----------------------------------------------------------------------------- the table


def test_v3_block_appends_distinct_train_voices():
    assert len(VOICES) == 20 + len(V3) and len(V3) >= 12
    assert len(TRAIN_VOICES) >= 28 and TRAIN_VOICES[16:] == V3
    assert HELDOUT_VOICES == ["mbrola_us3", "mbrola_en1", "pico_en_gb", "rhvoice_lyubov"]
    assert len({v.id for v in VOICES}) == len(VOICES)
    assert len({(v.engine, v.name) for v in VOICES}) == len(VOICES)  # no engine voice twice
    assert {VOICE_BY_ID[v].register for v in V3} == {"low", "high"}


def test_reserved_and_heldout_voices_stay_out_of_training():
    for v in VOICES[20:] + voice_probe.CANDIDATES:
        assert "kdlpc" not in v.name and "kdlpc" not in v.packages  # reserved for an independent evaluation
        assert v.name != "clb" and v.role == "train"
        held = {VOICE_BY_ID[h].name for h in HELDOUT_VOICES}
        assert v.name not in held and not any(h in v.name for h in ("us3", "en1"))


def test_every_v3_package_is_installed_by_the_debian_script():
    line = next(ln for ln in (ROOT / "scripts/install_debian.sh").read_text().splitlines() if ln.startswith("PKGS="))
    pkgs = set(line.split("=", 1)[1].strip('"').split())
    for v in VOICES[20:] + voice_probe.CANDIDATES:
        assert set(v.packages.split()) <= pkgs, v.id
        assert v.engine in corpus.ENGINE_BINARY


# ----------------------------------------------------------------------------- variant names


@pytest.mark.parametrize("suffix", ["v+8", "v-8", "v+12", "v-16", "p+2", "s-8"])
def test_variant_suffixes_parse_on_every_train_voice(suffix):
    for base in TRAIN_VOICES:
        vid = corpus.variant_voice_id(base, suffix)
        assert split_voice_id(vid) == (base, suffix) and is_variant(vid)
        assert split_voice_id(base) == (base, None) and not is_variant(base)


def test_vtlp_variants_warp_formants_only():
    vt = {k: v for k, v in VARIANTS.items() if k.startswith("v")}
    assert set(vt) == {"v-16", "v-12", "v-8", "v-4", "v+4", "v+8", "v+12", "v+16"}
    for k, v in vt.items():
        assert v.effects == () and v.warp == pytest.approx(1 + int(k[1:]) / 100)
    assert all(v.warp == 1.0 for k, v in VARIANTS.items() if k not in vt)
    for setting in corpus.DEFAULT_VARIANTS.values():
        assert set(setting) <= set(VARIANTS)


# ----------------------------------------------------------------------------- VTLP on a known signal


def _vowel(sr=16000, f0=120.0, formants=(500, 1500, 2500), seconds=1.0):
    """An impulse train at ``f0`` through three two-pole resonators (bandwidth 80 Hz): a synthetic vowel."""
    n = int(sr * seconds)
    x = np.zeros(n)
    x[:: int(round(sr / f0))] = 1.0
    for f in formants:
        r = np.exp(-np.pi * 80 / sr)
        x = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / sr), r * r], x)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def _f0(wav, sr, lo=60, hi=400):
    """F0 from the autocorrelation peak of the middle half second."""
    x = wav[len(wav) // 4: len(wav) // 4 + sr // 2].astype(np.float64)
    ac = np.correlate(x, x, "full")[len(x) - 1:]
    lag = np.arange(sr // hi, sr // lo)
    return sr / lag[np.argmax(ac[lag])]


@pytest.mark.parametrize("alpha", [0.88, 0.92, 1.08, 1.12])
def test_warp_moves_formants_by_alpha_and_keeps_pitch_and_length(alpha):
    sr = 16000
    x = _vowel(sr)
    y = vtlp.warp_formants(x, sr, alpha)
    assert y.shape == x.shape and y.dtype == np.float32
    assert vtlp.estimate_warp(x, y, sr) == pytest.approx(alpha, abs=0.015)
    assert _f0(x, sr) == pytest.approx(120, rel=0.02)
    assert _f0(y, sr) == pytest.approx(_f0(x, sr), rel=0.01)
    # the control: a warp of 1 changes nothing but rounding
    assert np.abs(vtlp.warp_formants(x, sr, 1.0) - x).max() < 1e-4


def test_estimate_warp_reads_a_resampled_vowel():
    sr = 16000
    x, y = _vowel(sr), _vowel(sr, formants=(550, 1650, 2750))  # every formant × 1.1, same F0
    assert vtlp.estimate_warp(x, y, sr) == pytest.approx(1.1, abs=0.015)


def test_vtlp_variant_is_deterministic_and_tidied():
    sr = 22050
    x = _vowel(sr, f0=210.0, formants=(700, 1800, 2900))
    a, b = apply_variant(x, sr, "v+8"), apply_variant(x.copy(), sr, "v+8")
    assert np.array_equal(a, b) and len(a) == len(x)
    assert np.abs(a).max() == pytest.approx(0.9, abs=1e-4)
    assert not np.array_equal(a, apply_variant(x, sr, "v-8"))


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="warp factor"):
        vtlp.warp_formants(_vowel(), 16000, 2.0)
    with pytest.raises(ValueError, match="waveform"):
        vtlp.warp_formants(np.zeros((2, 10)), 16000, 1.08)
    with pytest.raises(ValueError, match="unknown variant"):
        apply_variant(_vowel(), 16000, "v+9")
    with pytest.raises(ValueError, match="unknown engine"):
        synthesize(corpus.Voice("x", "nope", "x", 16000, "train", "low", "x"), "hello")


# ----------------------------------------------------------------------------- probe helpers


def test_choose_greedy_takes_intelligible_distinct_voices():
    names = ["old", "a", "b", "c", "d"]
    m = np.array([[1.0, 0.70, 0.85, 0.60, 0.50],
                  [0.70, 1.0, 0.60, 0.79, 0.60],
                  [0.85, 0.60, 1.0, 0.60, 0.60],
                  [0.60, 0.79, 0.60, 1.0, 0.60],
                  [0.50, 0.60, 0.60, 0.60, 1.0]])
    wer = {"old": 0.1, "a": 0.3, "b": 0.1, "c": 0.2, "d": 0.9}
    # b is too close to the old voice; c (best WER left) is taken first, then a is too close to c
    assert voice_probe.choose_greedy(wer, names, m, ["old"], ["a", "b", "c", "d"], 0.78) == ["c", "d"]
    assert voice_probe.choose_greedy(wer, names, m, ["old"], ["a", "b", "c", "d"], 0.80) == ["c", "a", "d"]
    assert voice_probe.nearest_other(names, m, "a", names) == ("c", 0.79)


def test_build_estimate_counts_voices_and_variants():
    est = voice_probe.build_estimate({"x": 0.1, "y": 0.3}, 0.05, 1200, variants_per_voice=2,
                                      variant_fraction=0.5, jobs=2)
    # 600 sentences a voice: (600·0.1 + 600·0.05) + (600·0.3 + 600·0.05) = 300 s of CPU
    assert est["cpu_minutes"] == 5.0 and est["wall_minutes"] == 2.5


def test_committed_probe_matches_the_table():
    path = ROOT / "results/voices_v3_probe.json"
    r = json.loads(path.read_text())
    assert r["v3_voices"] == V3 and r["greedy_choice_at_0.78"][: len(V3)] != []
    for vid in V3:
        d = r["voices"][vid]
        assert d["nearest_train_similarity"] < 0.80, vid  # the corpus v3 rule for new voices
        assert d["sample_rate"] == VOICE_BY_ID[vid].rate, vid
    names, m = r["matrix_voices"], np.asarray(r["similarity"])
    assert np.allclose(m, m.T) and set(TRAIN_VOICES + HELDOUT_VOICES) <= set(names)


# ----------------------------------------------------------------------------- engines

needs_engines = pytest.mark.skipif(not all(shutil.which(b) for b in ("espeak-ng", "text2wave", "sox")),
                                   reason="Debian TTS engines not installed")


@pytest.mark.engines
@needs_engines
@pytest.mark.parametrize("vid", V3)
def test_v3_voice_reads_at_its_declared_rate(vid):
    wav, sr = synthesize(vid, "Please close the window.")
    assert sr == VOICE_BY_ID[vid].rate
    assert 0.5 < len(wav) / sr < 5 and np.abs(wav).max() == pytest.approx(0.9, abs=1e-3)
    y = apply_variant(wav, sr, "v+8")
    assert len(y) == len(wav) and np.array_equal(y, apply_variant(wav, sr, "v+8"))
