"""The corpus manifest: one JSON object per line, the contract between data and training.

Every corpus minicosy builds or imports (the offline TTS-engine corpus, LJSpeech, LibriTTS,
a folder of ``x.wav`` + ``x.txt``) is described by a ``manifest.jsonl`` with these fields:

=============  ==========================================================================
``id``         unique utterance id, e.g. ``flite_awb-train-00012``
``voice``      speaker / voice id, e.g. ``flite_awb`` or the pseudo-speaker ``flite_awb_p+3``
``text``       the transcript, already normalised (numbers spelled out)
``path``       audio file, relative to the manifest's folder (absolute paths also accepted)
``duration``   seconds
``sample_rate`` native rate of the file in Hz (loaders resample on the fly)
``split``      ``train``, ``valid``, ``test`` or ``natural`` (corpus v3: the hand-written
               sentences of ``data/text/natural.txt``, read by every voice, never trained on)
=============  ==========================================================================
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable

SPLITS = ("train", "valid", "test", "natural")


@dataclass
class Utterance:
    id: str
    voice: str
    text: str
    path: str
    duration: float
    sample_rate: int
    split: str

    def audio_path(self, root: str | Path) -> Path:
        """Absolute path of the audio file, given the manifest's folder ``root``."""
        p = Path(self.path)
        return p if p.is_absolute() else Path(root) / p

    def to_dict(self) -> dict:
        return asdict(self)


_FIELDS = [f.name for f in fields(Utterance)]


def write_manifest(path: str | Path, utterances: Iterable[Utterance]) -> Path:
    """Write utterances as JSON lines (sorted by id so rebuilds give identical files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(utterances, key=lambda u: u.id)
    ids = [u.id for u in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"manifest {path}: utterance ids are not unique.")
    with open(path, "w", encoding="utf-8") as f:
        for u in rows:
            f.write(json.dumps(u.to_dict(), ensure_ascii=False) + "\n")
    return path


def read_manifest(path: str | Path, split: str | None = None,
                  voices: Iterable[str] | None = None) -> list[Utterance]:
    """Read a ``manifest.jsonl``; optionally keep one split and/or some voices.

    Raises:
        ValueError: missing file, a line that is not JSON, or missing fields — with the line number.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise ValueError(f"manifest not found: {path}. Build a corpus with `minicosy data build` "
                         "or import one with `minicosy data import`.")
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}.")
    keep = set(voices) if voices is not None else None
    out: list[Utterance] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not valid JSON ({exc}).") from exc
            missing = [k for k in _FIELDS if k not in row]
            if missing:
                raise ValueError(f"{path}:{n}: missing fields {missing}.")
            u = Utterance(**{k: row[k] for k in _FIELDS})
            if split is not None and u.split != split:
                continue
            if keep is not None and u.voice not in keep:
                continue
            out.append(u)
    return out


def manifest_root(path: str | Path) -> Path:
    """The folder that relative ``path`` fields are resolved against."""
    path = Path(path)
    return path if path.is_dir() else path.parent
