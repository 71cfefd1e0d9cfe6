"""Tests for the independent judges (minicosy/eval.py).

Known answers for the text normalisation and WER/CER arithmetic, exact identities for the
spectral distances, hand-computed similarity matrices, bad-input errors, and — with the
Debian TTS engines — the judges on real synthetic speech (espeak-ng + mbrola voices).
"""

import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import torch

from minicosy import judges as ev
from minicosy.audio import load_audio
from minicosy.data.manifest import Utterance, write_manifest
from minicosy.utils import FIXTURES_DIR

SR = 16000


def _noise(seconds=1.0, sr=SR, seed=0):
    return (0.3 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


# ----------------------------------------------------------------------------- text and WER


@pytest.mark.parametrize("raw, expected", [
    ("The cat sat.", "the cat sat"),
    ("  Hello,   WORLD!\n", "hello world"),
    ("Don't stop — it's a well-known fact.", "don't stop it's a well known fact"),
    ("\u2018quoted\u2019 and 'single' quotes", "quoted and single quotes"),
    ("It\u2019s fine", "it's fine"),
    ("!?...", ""),
    ("", ""),
])
def test_normalize_text(raw, expected):
    assert ev.normalize_text(raw) == expected


def test_wer_known_answers():
    # identical after normalisation → 0
    assert ev.wer("The cat sat.", "the CAT, sat") == 0.0
    # "a b c d" → "a x c": one substitution (b→x), one deletion (d) over 4 words
    assert ev.wer("a b c d", "a x c") == pytest.approx(2 / 4)
    # two insertions over 2 words
    assert ev.wer("a b", "a b c d") == pytest.approx(1.0)
    # an empty hypothesis deletes every word
    assert ev.wer("one two three", "") == 1.0
    assert ev.wer(["one two"], ["..."]) == 1.0
    # corpus level: errors and words are summed over utterances, (0 + 3) / (2 + 4)
    assert ev.wer(["a b", "c d e f"], ["a b", "c"]) == pytest.approx(0.5)
    # CER: one character substituted out of "abc"
    assert ev.cer("abc", "abd") == pytest.approx(1 / 3)


@pytest.mark.parametrize("refs, hyps", [(["a", "b"], ["a"]), ([], []), (["?!"], ["x"]), (["a"], [3])])
def test_wer_bad_input(refs, hyps):
    with pytest.raises(ValueError):
        ev.wer(refs, hyps)


# ----------------------------------------------------------------------------- bad audio


@pytest.mark.parametrize("judge", [ev.transcribe, ev.speaker_embedding])
@pytest.mark.parametrize("wav, sr, match", [
    (np.zeros(SR, np.float32), SR, "silent"),
    (np.zeros(0, np.float32), SR, "empty"),
    ([0.1, 0.2, 0.3], SR, "NumPy array or torch tensor"),
    ((_noise() * 32767).astype(np.int16), SR, "floating-point"),
    (np.stack([_noise(), _noise()]), SR, "mono"),
    (_noise(), 0, "sample_rate"),
    (_noise(), 16000.0, "sample_rate"),
])
def test_judges_reject_bad_audio(judge, wav, sr, match):
    with pytest.raises(ValueError, match=match):
        judge(wav, sr)


def test_intelligibility_scores_a_broken_synthesis_as_wer_one_instead_of_aborting():
    wav, text = load_audio(FIXTURES_DIR / "audio/flite_rms/flite_rms-test-00000.flac", SR), "unused"
    from minicosy.data.manifest import read_manifest

    text = next(u.text for u in read_manifest(FIXTURES_DIR) if u.id == "flite_rms-test-00000")
    res = ev.intelligibility([wav, np.zeros(SR, np.float32)], [text, text], SR)
    assert res["utterance_wer"][1] == 1.0 and res["hypotheses"][1] == ""
    assert res["unscorable"] == [{"index": 1, "reason": res["unscorable"][0]["reason"]}]
    assert "silent" in res["unscorable"][0]["reason"]
    assert res["utterance_wer"][0] < 1.0
    with pytest.raises(ValueError, match="silent"):  # the plain transcriber still refuses
        ev.transcribe_many([np.zeros(SR, np.float32)], SR)


# ----------------------------------------------------------------------------- spectral distances


def test_mel_l1_and_lsd_identities():
    x = _noise(1.0, sr=24000)
    assert ev.mel_l1(x, x, 24000) == 0.0
    assert ev.log_spectral_distance(x, x, 24000) == 0.0
    # lengths are aligned by trimming: a longer copy of x is still at distance 0
    assert ev.mel_l1(x, np.concatenate([x, _noise(0.3, 24000, seed=1)]), 24000) == 0.0
    # halving the amplitude shifts every log-mel bin by log 2 and every power bin by 10·log10 4 dB
    assert ev.mel_l1(x, 0.5 * x, 24000) == pytest.approx(math.log(2), abs=1e-4)
    assert ev.log_spectral_distance(x, 0.5 * x, 24000) == pytest.approx(10 * math.log10(4), abs=1e-6)
    # a tensor at another rate is resampled to the flow mel's 24 kHz
    y = torch.from_numpy(_noise(1.0, sr=SR))
    assert ev.mel_l1(y, y, SR) == 0.0
    # silence is a legitimate (bad) output for a distance, but an empty signal is an error
    assert ev.mel_l1(x, np.zeros_like(x), 24000) > 5.0
    with pytest.raises(ValueError, match="empty"):
        ev.mel_l1(x, np.zeros(0, np.float32), 24000)


# ----------------------------------------------------------------------------- similarity arithmetic


def _unit(*v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def test_similarity_matrix_known_values():
    e1, e2 = _unit(1, 0, 0), _unit(0, 1, 0)
    mid = _unit(1, 1, 0)  # cos(mid, e1) = cos(mid, e2) = 1/√2
    embs = {"b": [e2, e2, mid], "a": [e1, e1]}
    voices, m = ev.similarity_matrix(embs)
    assert voices == ["a", "b"] and m.shape == (2, 2)
    np.testing.assert_array_equal(m, m.T)
    r = 1 / math.sqrt(2)
    # a: the single pair (e1, e1) → 1;  b: pairs (e2,e2)=1, (e2,mid)=r twice → (1 + 2r) / 3
    assert m[0, 0] == pytest.approx(1.0)
    assert m[1, 1] == pytest.approx((1 + 2 * r) / 3)
    # a × b: 2 × (0, 0, r) → mean r / 3
    assert m[0, 1] == pytest.approx(r / 3)
    s = ev.similarity_summary(voices, m)
    assert s["same_voice_mean"] == pytest.approx((1 + (1 + 2 * r) / 3) / 2)
    assert s["different_voice_mean"] == pytest.approx(r / 3)
    assert s["nearest_other_voice"]["a"]["voice"] == "b"

    voices, c = ev.similarity_matrix(embs, mode="centroid")
    np.testing.assert_allclose(np.diag(c), 1.0)
    np.testing.assert_allclose(c, c.T)
    json.dumps(s)  # JSON-serialisable


def test_similarity_matrix_bad_input():
    with pytest.raises(ValueError, match="≥ 2"):
        ev.similarity_matrix({"a": [_unit(1, 0)], "b": [_unit(0, 1), _unit(0, 1)]})
    with pytest.raises(ValueError, match="mode"):
        ev.similarity_matrix({"a": [_unit(1, 0)]}, mode="pairs")
    with pytest.raises(ValueError):
        ev.similarity_matrix({})


def test_speaker_id_leave_one_out():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3]
    embs = {f"v{i}": c + 0.05 * rng.standard_normal((5, 8)) for i, c in enumerate(centres)}
    assert ev.speaker_id_accuracy(embs) == (15, 15)
    # an outlier that sits on another voice's centre is misidentified
    embs["v0"][0] = centres[1]
    assert ev.speaker_id_accuracy(embs) == (14, 15)


def test_transcribe_many_pool_matches_serial():
    # Short non-speech clips: what pocketsphinx makes of them does not matter, only that the
    # process pool returns the same strings, in order, as the serial loop.
    t = np.arange(int(0.25 * SR)) / SR
    clips = [(0.3 * np.sin(2 * np.pi * (120 + 40 * i) * t) + 0.01 * _noise(0.25, seed=i)).astype(np.float32)
             for i in range(8)]
    assert ev._auto_jobs(2, 8) == 2 and ev._auto_jobs(None, 3) == 1
    assert ev.transcribe_many(clips, SR, jobs=2) == ev.transcribe_many(clips, SR, jobs=1)


def test_transcripts_do_not_depend_on_what_was_transcribed_before():
    """The cached decoder is reset per utterance: one clip reads the same after other clips."""
    from minicosy.audio import load_audio
    from minicosy.utils import FIXTURES_DIR

    files = sorted((FIXTURES_DIR / "audio").glob("*/*.flac"))[:8]
    wavs = [load_audio(f, 16000) for f in files]
    first = [ev.transcribe(w, 16000) for w in wavs]
    again = []
    for w in wavs:
        for quiet in wavs[:4]:  # very quiet clips in between moved the decoder's normalisation before the reset
            ev.transcribe(0.02 * quiet, 16000)
        again.append(ev.transcribe(w, 16000))
    assert first == again


# ----------------------------------------------------------------------------- the judges on speech

SENTENCES = ["The weather is nice and warm today.", "Please open the window in the kitchen."]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two sentences in two espeak-ng + mbrola voices, as a tiny manifest."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    root = tmp_path_factory.mktemp("judges")
    rows = []
    for voice in ("mb-us1", "mb-us2"):
        for i, text in enumerate(SENTENCES):
            path = root / f"{voice}-{i}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True,
                           capture_output=True)
            rows.append(Utterance(id=f"{voice}-test-{i}", voice=voice, text=text, path=path.name,
                                  duration=0.0, sample_rate=SR, split="test"))
    write_manifest(root / "manifest.jsonl", rows)
    return root


@pytest.mark.engines
def test_wer_of_clear_speech(clips):
    wav = load_audio(clips / "mb-us1-0.wav", 24000)  # a non-16k rate exercises the resampling
    hyp = ev.transcribe(torch.from_numpy(wav), 24000)
    assert ev.wer(SENTENCES[0], hyp) <= 0.3, hyp


@pytest.mark.engines
def test_same_voice_more_similar_than_different(clips):
    a0, a1, b0 = (load_audio(clips / f, SR) for f in ("mb-us1-0.wav", "mb-us1-1.wav", "mb-us2-0.wav"))
    e = ev.speaker_embedding(a0, SR)
    assert e.shape == (256,) and e.dtype == np.float32
    assert np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)
    same, diff = ev.speaker_similarity(a0, a1, SR), ev.speaker_similarity(a0, b0, SR)
    assert same > diff + 0.05, (same, diff)


def _run_cli(argv):
    """Parse ``minicosy eval ...`` with only this module's commands registered (so the test does
    not depend on the other stages' modules) and run the handler."""
    import argparse

    parser = argparse.ArgumentParser(prog="minicosy")
    sub = parser.add_subparsers(dest="command")
    ev.register_cli({"eval": sub.add_parser("eval").add_subparsers(dest="eval_command"),
                     "data": sub.add_parser("data").add_subparsers(dest="data_command")})
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.engines
def test_groundtruth_report_and_cli(clips, tmp_path, capsys):
    out = tmp_path / "results.json"
    assert _run_cli(["eval", "groundtruth", "--manifest", str(clips / "manifest.jsonl"),
                     "--jobs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["voices"] == ["mb-us1", "mb-us2"] and report["n_utterances"] == 4
    assert 0.0 <= report["wer"]["overall"] <= 0.5
    sim = report["similarity"]
    assert sim["same_voice_mean"] > sim["different_voice_mean"]
    assert sim["speaker_id_total"] == 4
    assert "| mb-us1 | 2 |" in printed and "speaker ID" in printed
    assert ev.report_markdown(report) in printed

    assert _run_cli(["eval", "sim", str(clips / "mb-us1-0.wav"), str(clips / "mb-us1-1.wav")]) == 0
    assert 0.5 < float(capsys.readouterr().out) <= 1.0
    assert _run_cli(["eval", "wer", str(clips / "mb-us1-0.wav"), "--ref", SENTENCES[0]]) == 0
    assert "WER" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--ref"):
        _run_cli(["eval", "wer", str(clips / "mb-us1-0.wav"), "--ref", "a", "--ref", "b"])
    with pytest.raises(ValueError, match="max_per_voice"):
        ev.groundtruth_report(clips / "manifest.jsonl", max_per_voice=1)


@pytest.mark.skipif(not (FIXTURES_DIR / "manifest.jsonl").is_file(), reason="no committed fixture slice yet")
def test_groundtruth_report_on_fixtures():
    from minicosy.data.manifest import read_manifest

    # The two voices whose first two recordings (any split) are shortest: 4 utterances in all.
    by_voice = {}
    for u in sorted(read_manifest(FIXTURES_DIR / "manifest.jsonl"), key=lambda u: u.id):
        by_voice.setdefault(u.voice, []).append(u.duration)
    cost = {v: sum(d[:2]) for v, d in by_voice.items() if len(d) >= 2}
    voices = sorted(sorted(cost, key=lambda v: (cost[v], v))[:2])
    if len(voices) < 2:
        pytest.skip("the fixture slice has fewer than 2 voices with 2 recordings")
    report = ev.groundtruth_report(FIXTURES_DIR / "manifest.jsonl", split=None, max_per_voice=2,
                                   voices=voices, jobs=1)
    json.loads(json.dumps(report))
    assert report["voices"] == voices and report["n_utterances"] == 4
    assert all(0.0 <= v["wer"] for v in report["wer"]["per_voice"].values())
    sim = report["similarity"]
    assert sim["same_voice_mean"] > sim["different_voice_mean"]
    assert all(v in ev.report_markdown(report) for v in voices)
