"""Real corpora → the minicosy manifest (LJSpeech, LibriTTS, a folder of wav + txt).

Stage: data (docs/paper_vs_code.md §3, last paragraph). The offline engine corpus (``minicosy.data.corpus``)
is enough to learn and test every stage on CPU; users with a GPU and a real corpus on disk can
import it here and train the same code on it. Nothing is copied or resampled: the manifest
points at the original audio files (resampling happens at load time, ``minicosy.audio``).

Layouts:

* **LJSpeech** [1]: ``metadata.csv`` with ``id|text|normalized text`` lines and
  ``wavs/<id>.wav``; one voice (``ljspeech``).
* **LibriTTS** [2]: ``<speaker>/<chapter>/<utt>.wav`` with ``<utt>.normalized.txt``
  (the root may be the corpus or one subset such as ``train-clean-100``); voice = speaker id.
* **folder**: ``x.wav`` (or ``.flac``) next to ``x.txt``; one voice, named after the folder.

Transcripts go through ``minicosy.text.normalize.normalize_english`` so numbers are spelled out as
in the engine corpus. The split is deterministic and *sentence-level*: a hash of the
normalised text (with the seed) picks the split, so an utterance id never changes split
between runs and a sentence read by several speakers sits in one split only. Voices named in
``heldout`` get valid/test only (zero-shot evaluation on unseen speakers).

References:
    [1] Ito & Johnson, "The LJ Speech Dataset", 2017.
    [2] Zen et al., "LibriTTS: A Corpus Derived from LibriSpeech for Text-to-Speech",
        Interspeech 2019, arXiv 1904.02882.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from minicosy.data.manifest import Utterance, write_manifest

FORMATS = ("ljspeech", "libritts", "folder")
AUDIO_EXTS = (".wav", ".flac")


def _normalize(text: str) -> str:
    from minicosy.text.normalize import normalize_english

    return normalize_english(text)


def assign_split(text: str, seed: int = 0, valid_frac: float = 0.02, test_frac: float = 0.02) -> str:
    """``train``/``valid``/``test`` from a hash of the text: deterministic, sentence-level.

    u = SHA-1(seed, lower-cased words of text) / 2^160 ∈ [0, 1);
    test if u < test_frac, valid if u < test_frac + valid_frac, else train.
    """
    if valid_frac < 0 or test_frac < 0 or valid_frac + test_frac > 1:
        raise ValueError(f"valid_frac={valid_frac}, test_frac={test_frac}: need both ≥ 0 and a sum ≤ 1.")
    key = " ".join(re.findall(r"[a-z0-9']+", text.lower()))
    u = int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest(), 16) / 2 ** 160
    if u < test_frac:
        return "test"
    return "valid" if u < test_frac + valid_frac else "train"


# ----------------------------------------------------------------------------- readers
# Each reader returns (utterance id, voice, raw transcript, audio path) tuples.


def read_ljspeech(src: str | Path) -> list[tuple[str, str, str, Path]]:
    """LJSpeech: ``metadata.csv`` (``id|text|normalized``) + ``wavs/<id>.wav``."""
    src = Path(src)
    meta = src / "metadata.csv"
    if not meta.is_file() or not (src / "wavs").is_dir():
        raise ValueError(f"{src} is not an LJSpeech folder: expected metadata.csv and wavs/ inside it.")
    rows = []
    with open(meta, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.split("|")
            if len(parts) < 2 or not parts[0]:
                raise ValueError(f"{meta}:{n}: expected `id|text|normalized text`, got {line[:80]!r}.")
            text = parts[2] if len(parts) > 2 and parts[2].strip() else parts[1]
            wav = src / "wavs" / f"{parts[0]}.wav"
            if not wav.is_file():
                raise ValueError(f"{meta}:{n}: audio {wav} is missing.")
            rows.append((parts[0], "ljspeech", text, wav))
    if not rows:
        raise ValueError(f"{meta} lists no utterances.")
    return rows


def read_libritts(src: str | Path) -> list[tuple[str, str, str, Path]]:
    """LibriTTS: ``<speaker>/<chapter>/<utt>.wav`` + ``<utt>.normalized.txt``; voice = speaker."""
    src = Path(src)
    if not src.is_dir():
        raise ValueError(f"LibriTTS folder not found: {src}")
    rows = []
    for wav in sorted(src.rglob("*.wav")):
        txt = wav.with_suffix(".normalized.txt")
        if not txt.is_file():
            continue
        speaker = wav.parent.parent.name
        if wav.parent.parent == src.parent or not speaker:
            continue
        rows.append((wav.stem, speaker, txt.read_text(encoding="utf-8").strip(), wav))
    if not rows:
        raise ValueError(f"{src} is not a LibriTTS folder: expected speaker/chapter/utt.wav files with "
                         "utt.normalized.txt beside them.")
    return rows


def read_folder(src: str | Path, voice: str | None = None) -> list[tuple[str, str, str, Path]]:
    """A folder of ``x.wav`` (or ``x.flac``) + ``x.txt``; voice = ``voice`` or the folder name."""
    src = Path(src)
    if not src.is_dir():
        raise ValueError(f"folder not found: {src}")
    audio = sorted(p for p in src.iterdir() if p.suffix.lower() in AUDIO_EXTS)
    if not audio:
        raise ValueError(f"{src} holds no .wav or .flac files.")
    missing = [p.name for p in audio if not p.with_suffix(".txt").is_file()]
    if missing:
        raise ValueError(f"{len(missing)} audio file(s) in {src} have no transcript beside them "
                         f"(e.g. {missing[0]} needs {Path(missing[0]).stem}.txt).")
    voice = voice or src.resolve().name
    return [(p.stem, voice, p.with_suffix(".txt").read_text(encoding="utf-8").strip(), p) for p in audio]


# ----------------------------------------------------------------------------- import


def import_corpus(fmt: str, src: str | Path, out: str | Path, seed: int = 0, valid_frac: float = 0.02,
                  test_frac: float = 0.02, voice: str | None = None, heldout=()) -> list[Utterance]:
    """Read a real corpus, normalise transcripts, split, and write ``out/manifest.jsonl``.

    Args:
        fmt: ``ljspeech``, ``libritts`` or ``folder``.
        src: the corpus folder.
        out: where the manifest goes; audio paths are stored relative to it when the audio
            lies inside it, absolute otherwise.
        heldout: voices that get valid/test utterances only (half each, by the same hash).

    Raises:
        ValueError: unknown format, a bad layout, unreadable audio or an empty transcript.
    """
    import soundfile as sf

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}.")
    if fmt == "ljspeech":
        rows = read_ljspeech(src)
    elif fmt == "libritts":
        rows = read_libritts(src)
    else:
        rows = read_folder(src, voice)
    out = Path(out).resolve()
    heldout = set(heldout)
    utts = []
    for uid, vid, raw, wav in rows:
        text = _normalize(raw)
        if not text:
            raise ValueError(f"{wav}: the transcript is empty; remove the file or write its text.")
        try:
            info = sf.info(str(wav))
        except Exception as exc:
            raise ValueError(f"cannot read audio {wav}: {exc}") from exc
        if info.frames == 0:
            raise ValueError(f"audio {wav} holds no samples.")
        if vid in heldout:
            split = "valid" if assign_split(text, seed, 0.5, 0.5) == "valid" else "test"
        else:
            split = assign_split(text, seed, valid_frac, test_frac)
        wav = wav.resolve()
        path = os.path.relpath(wav, out) if out in wav.parents else str(wav)
        utts.append(Utterance(id=uid if fmt != "folder" else f"{vid}-{uid}", voice=vid, text=text,
                              path=Path(path).as_posix(), duration=round(info.frames / info.samplerate, 4),
                              sample_rate=int(info.samplerate), split=split))
    write_manifest(out / "manifest.jsonl", utts)
    return utts


def _cmd_import(args) -> int:
    heldout = [v for v in (args.heldout or "").split(",") if v]
    utts = import_corpus(args.format, args.src, args.out, args.seed, args.valid_frac, args.test_frac,
                         args.voice, heldout)
    counts = {s: sum(u.split == s for u in utts) for s in ("train", "valid", "test")}
    hours = sum(u.duration for u in utts) / 3600
    print(f"imported {len(utts)} utterances ({hours:.2f} h, {len({u.voice for u in utts})} voices; "
          f"{counts}) → {Path(args.out) / 'manifest.jsonl'}")
    return 0


def register_cli(groups) -> None:
    p = groups["data"].add_parser("import", help="write a manifest for LJSpeech, LibriTTS or a wav+txt folder")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("src", help="the corpus folder")
    p.add_argument("--out", required=True, help="folder for manifest.jsonl")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--valid-frac", type=float, default=0.02)
    p.add_argument("--test-frac", type=float, default=0.02)
    p.add_argument("--voice", default=None, help="voice id for --format folder (default: folder name)")
    p.add_argument("--heldout", default=None, help="comma-separated voices kept out of training")
    p.set_defaults(func=_cmd_import)
