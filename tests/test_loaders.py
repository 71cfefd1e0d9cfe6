"""Tests for minicosy.data.loaders: LJSpeech, LibriTTS and wav+txt folders → manifest.jsonl.

Every corpus is fabricated in ``tmp_path`` from short sine/noise WAVs.
"""

import argparse
import re

import numpy as np
import pytest
import soundfile as sf

from minicosy.data import loaders
from minicosy.data.loaders import assign_split, import_corpus, read_folder, read_libritts, read_ljspeech
from minicosy.data.manifest import read_manifest


def _wav(path, seconds=0.25, sr=22050, kind="sine"):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 330 * t) if kind == "sine" else 0.1 * np.random.default_rng(0).standard_normal(len(t))
    sf.write(str(path), x.astype(np.float32), sr, subtype="PCM_16")
    return path


@pytest.fixture
def ljspeech(tmp_path):
    root = tmp_path / "LJSpeech-1.1"
    lines = ["LJ001-0001|It has 3 doors.|It has three doors.",
             "LJ001-0002|Printing, in the only sense.|Printing, in the only sense.",
             "LJ001-0003|Dr. Smith paid $5.|",  # no normalised column: the raw text is normalised
             "LJ002-0001|A short line.|A short line."]
    _wav(root / "wavs" / "LJ001-0001.wav", 0.5)
    _wav(root / "wavs" / "LJ001-0002.wav", 0.25, kind="noise")
    _wav(root / "wavs" / "LJ001-0003.wav", 0.3)
    _wav(root / "wavs" / "LJ002-0001.wav", 0.2)
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def libritts(tmp_path):
    root = tmp_path / "LibriTTS" / "train-clean-100"
    texts = {("84", "121123", "84_121123_000007_000001"): "The same sentence twice.",
             ("84", "121123", "84_121123_000008_000000"): "Chapter 12 begins here.",
             ("174", "50561", "174_50561_000011_000000"): "The same sentence twice.",
             ("174", "84280", "174_84280_000003_000002"): "Another one from a second chapter."}
    for (spk, chap, utt), text in texts.items():
        _wav(root / spk / chap / f"{utt}.wav", 0.3, sr=24000)
        (root / spk / chap / f"{utt}.normalized.txt").write_text(text, encoding="utf-8")
        (root / spk / chap / f"{utt}.original.txt").write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "my_voice"
    for i, text in enumerate(["Hello world.", "I was born in 1990.", "Two plus 2 is four."]):
        _wav(root / f"clip{i}.wav", 0.2 + 0.1 * i, sr=16000)
        (root / f"clip{i}.txt").write_text(text + "\n", encoding="utf-8")
    return root


def test_ljspeech(ljspeech, tmp_path):
    utts = import_corpus("ljspeech", ljspeech, tmp_path / "out")
    assert [u.id for u in utts] == ["LJ001-0001", "LJ001-0002", "LJ001-0003", "LJ002-0001"]
    by_id = {u.id: u for u in utts}
    assert by_id["LJ001-0001"].text == "It has three doors."
    assert not re.search(r"\d", by_id["LJ001-0003"].text) and "five" in by_id["LJ001-0003"].text
    assert {u.voice for u in utts} == {"ljspeech"}
    u = by_id["LJ001-0001"]
    assert (u.sample_rate, u.duration) == (22050, 0.5)
    assert read_manifest(tmp_path / "out") == sorted(utts, key=lambda x: x.id)
    for u in utts:
        assert u.audio_path(tmp_path / "out").is_file()


def test_libritts_voices_and_sentence_level_split(libritts, tmp_path):
    utts = import_corpus("libritts", libritts.parent, tmp_path / "out", valid_frac=0.3, test_frac=0.3)
    assert {u.voice for u in utts} == {"84", "174"}
    same = [u for u in utts if u.text == "The same sentence twice."]
    assert len(same) == 2 and same[0].split == same[1].split
    assert next(u for u in utts if u.id.endswith("000008_000000")).text == "Chapter twelve begins here."
    assert all(u.sample_rate == 24000 for u in utts)
    # the subset folder works as a root too
    assert len(import_corpus("libritts", libritts, tmp_path / "out2")) == 4


def test_folder(folder, tmp_path):
    utts = import_corpus("folder", folder, tmp_path / "out")
    assert [u.id for u in utts] == ["my_voice-clip0", "my_voice-clip1", "my_voice-clip2"]
    assert {u.voice for u in utts} == {"my_voice"}
    assert all(not re.search(r"\d", u.text) for u in utts)
    assert import_corpus("folder", folder, tmp_path / "out", voice="anna")[0].voice == "anna"


def test_paths_relative_inside_out_absolute_outside(folder, tmp_path):
    inside = import_corpus("folder", folder, folder)  # manifest next to the audio
    assert inside[0].path == "clip0.wav"
    outside = import_corpus("folder", folder, tmp_path / "elsewhere")
    assert outside[0].path == str((folder / "clip0.wav").resolve())


def test_split_deterministic_and_fractions():
    texts = [f"sentence number {i} of many" for i in range(2000)]
    a = [assign_split(t, seed=0) for t in texts]
    assert a == [assign_split(t, seed=0) for t in texts]
    assert a != [assign_split(t, seed=1) for t in texts]
    assert 0.01 < a.count("test") / 2000 < 0.04 and 0.01 < a.count("valid") / 2000 < 0.04
    assert assign_split("Hello, World!") == assign_split("hello world")  # case/punctuation-blind
    with pytest.raises(ValueError):
        assign_split("x", valid_frac=0.7, test_frac=0.5)


def test_heldout_voices_never_train(libritts, tmp_path):
    utts = import_corpus("libritts", libritts, tmp_path / "out", heldout=["84"])
    assert {u.split for u in utts if u.voice == "84"} <= {"valid", "test"}


def test_bad_layouts(tmp_path, ljspeech, folder, libritts):
    with pytest.raises(ValueError, match="LJSpeech"):
        read_ljspeech(tmp_path)
    (ljspeech / "metadata.csv").write_text("LJ009-0009|Missing audio.|Missing audio.\n")
    with pytest.raises(ValueError, match="missing"):
        read_ljspeech(ljspeech)
    (ljspeech / "metadata.csv").write_text("just one field\n")
    with pytest.raises(ValueError, match="id\\|text"):
        read_ljspeech(ljspeech)
    with pytest.raises(ValueError, match="LibriTTS"):
        read_libritts(folder)
    with pytest.raises(ValueError, match="not found"):
        read_libritts(tmp_path / "nope")
    (folder / "clip0.txt").unlink()
    with pytest.raises(ValueError, match="clip0.txt"):
        read_folder(folder)
    with pytest.raises(ValueError, match="no .wav"):
        read_folder(libritts)
    with pytest.raises(ValueError, match="unknown format"):
        import_corpus("vctk", folder, tmp_path / "out")


def test_empty_transcript_and_bad_audio(tmp_path):
    root = tmp_path / "v"
    _wav(root / "a.wav")
    (root / "a.txt").write_text("  \n")
    with pytest.raises(ValueError, match="empty"):
        import_corpus("folder", root, tmp_path / "out")
    (root / "a.txt").write_text("Fine text.")
    (root / "b.wav").write_bytes(b"RIFF garbage")
    (root / "b.txt").write_text("Broken audio.")
    with pytest.raises(ValueError, match="cannot read audio"):
        import_corpus("folder", root, tmp_path / "out")


def test_cli(folder, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    data = parser.add_subparsers().add_parser("data")
    loaders.register_cli({"data": data.add_subparsers()})
    args = parser.parse_args(["data", "import", "--format", "folder", str(folder), "--out", str(tmp_path / "m")])
    assert args.func(args) == 0
    assert "imported 3 utterances" in capsys.readouterr().out
    assert len(read_manifest(tmp_path / "m" / "manifest.jsonl")) == 3
