"""What a request brings: its text (checked and cleaned) and its voice prompt (``VoiceReference``).

Stage: top layer, the input side of :mod:`minicosy.pipeline`. Bad input raises ``ValueError`` saying
what to do, before any model runs: the text policy is :func:`speakable`, the prompt policy
:class:`VoiceReference` (mono float audio of 1–20 s, at least 8 kHz, not silent, with a transcript
whose length fits its duration). Streaming text (an iterator of strings) is cut into sentences on
the fly by :func:`stream_sentences`.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from minicosy.audio import check_waveform
from minicosy.text.chars import UNK_ID
from minicosy.text.normalize import normalize_english

MIN_PROMPT_S, MAX_PROMPT_S = 1.0, 20.0  # 3–10 s is the sweet spot; 20 s already fills a third of the tiny LM
MIN_PROMPT_RATE = 8000  # Hz; the speech tokenizer refuses less
MIN_CPS, MAX_CPS = 4.0, 40.0  # plausible transcript characters per second (the corpus reads 12–26)
SILENCE_PEAK = 1e-3  # −60 dBFS: a prompt quieter than this everywhere is silence
MAX_WORDS = 30  # words per sentence piece (split_sentences): keeps prompt + text inside the LM context

# ----------------------------------------------------------------------------- text


def strip_unreadable(text: str, tokenizer) -> tuple[str, list[str]]:
    """Replace by spaces the non-ASCII characters the tokenizer cannot read; returns ``(text, removed)``."""
    ok: dict[str, bool] = {}
    out, removed = [], []
    for c in text:
        if c.isascii():
            out.append(c)
            continue
        if c not in ok:
            ids = tokenizer.encode(c)
            # spaces, punctuation and combining accents are the normaliser's business; the rest must
            # become ids the tokenizer knows (é → e, ½ → one half, Ａ → a)
            ok[c] = unicodedata.category(c)[0] in "ZPM" or (bool(ids) and UNK_ID not in ids)
        out.append(c if ok[c] else " ")
        if not ok[c] and c not in removed:
            removed.append(c)
    return "".join(out), removed


def speakable(text: str, tokenizer) -> str:
    """Check text and remove the characters the model cannot read, with a warning naming them.

    Policy: a non-ASCII character stays if the normaliser turns it into something the tokenizer
    knows (``é`` → ``e``, ``½``, full-width letters, curly quotes, dashes); letters of other
    scripts (Cyrillic, CJK ...) and symbols the normaliser would drop (emoji) are replaced by a
    space and listed in a ``UserWarning``. Text left without a single letter is refused.

    Raises:
        ValueError: not a string, empty or whitespace, or nothing speakable left.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}.")
    if not text.strip():
        raise ValueError("text is empty (or only whitespace); give at least one word to speak.")
    clean, removed = strip_unreadable(text, tokenizer)
    if not any(c.isascii() and c.isalpha() for c in normalize_english(clean)):
        raise ValueError(f"nothing speakable in the text {text[:40]!r}: this model reads English letters only. "
                         "Transliterate other scripts and spell symbols out in words.")
    if removed:
        warnings.warn(f"removed characters this model cannot read: {''.join(removed[:20])!r} (it reads English; "
                      "transliterate other scripts)", UserWarning, stacklevel=3)
    return clean


def as_mono(audio, name: str) -> np.ndarray:
    """Audio policy: float32 ``(T,)``; any float dtype is cast; ``(C, T)`` / ``(T, C)`` with ``C ≤ 8`` is
    downmixed (the mean of the channels); integers, NaN/Inf, empty audio are refused."""
    a = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else audio
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a NumPy array or a torch tensor, got {type(a).__name__}.")
    if a.ndim == 2 and min(a.shape) <= 8 and np.issubdtype(a.dtype, np.floating):
        a = a.mean(axis=0 if a.shape[0] <= a.shape[1] else 1)
    check_waveform(a, name=name)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected mono (T,) or a few channels, got shape {a.shape}.")
    return np.ascontiguousarray(a, dtype=np.float32)


_WORD = re.compile(r"\s*\S+(?=\s)")  # a complete word: the text after it has started
_SENTENCE_END = re.compile(r"[.?!][\"')\]]*$")


def stream_words(pieces: Iterable[str]) -> Iterator[str]:
    """Re-cut a text stream into complete words, each with the whitespace before it."""
    buf = ""
    for piece in pieces:
        if not isinstance(piece, str):
            raise ValueError(f"the text stream must yield str pieces, got {type(piece).__name__}.")
        buf += piece
        pos = 0
        for m in _WORD.finditer(buf):
            yield m.group()
            pos = m.end()
        buf = buf[pos:]
    if buf.strip():
        yield buf


def stream_sentences(pieces: Iterable[str], max_words: int = MAX_WORDS) -> Iterator[Iterator[str]]:
    """A text stream → a stream of sentences, each an iterator of words (consume each before the next).

    A sentence ends at a word ending in ``. ? !`` or after ``max_words`` words — a simpler rule
    than :func:`~minicosy.text.normalize.split_sentences` (no abbreviation list), since a stream
    cannot look ahead.
    """
    words = stream_words(pieces)
    for first in words:
        def sentence(w=first) -> Iterator[str]:
            n = 0
            while w is not None:
                yield w.lstrip() if n == 0 else w
                n += 1
                if _SENTENCE_END.search(w) or n >= max_words:
                    return
                w = next(words, None)

        yield sentence()


# ----------------------------------------------------------------------------- the voice prompt


@dataclass
class VoiceReference:
    """A reference recording (and optionally its transcript) to clone a voice from.

    Input policy (each refused case raises ``ValueError`` saying what to do):

    * ``audio``: ``(T,)`` float; float64 (or any float) is cast to float32; two-dimensional audio
      with one side of at most 8 is taken as channels and **downmixed** (the mean); integer PCM,
      NaN/Inf and empty audio are refused.
    * ``sample_rate`` ≥ 8 kHz, any rate: resampled to 16 kHz (tokenizer) and 24 kHz (mel). Below
      16 kHz the prompt has no content above half its rate and the clone sounds muffled: a warning.
    * duration 1–20 s (3–10 s is best); a prompt silent everywhere (peak < −60 dBFS) is refused.
    * ``transcript``: ``None`` (flow-prompt-only mode) or the words spoken, at 4–40 normalised
      characters per second of audio — outside that it cannot be the transcript of this clip.
    """

    audio: np.ndarray
    sample_rate: int
    transcript: str | None = None

    def __post_init__(self):
        self.audio = as_mono(self.audio, "voice audio")
        if not isinstance(self.sample_rate, (int, np.integer)) or self.sample_rate < MIN_PROMPT_RATE:
            raise ValueError(f"voice sample_rate must be an integer ≥ {MIN_PROMPT_RATE} Hz, got {self.sample_rate!r}.")
        self.sample_rate = int(self.sample_rate)
        s = self.duration_ms / 1000
        if not MIN_PROMPT_S <= s <= MAX_PROMPT_S:
            raise ValueError(f"the voice prompt lasts {s:.2f} s; give a clip of {MIN_PROMPT_S:g}–{MAX_PROMPT_S:g} s "
                             "(3–10 s of clean speech works best): trim or record another.")
        if float(np.abs(self.audio).max()) < SILENCE_PEAK:
            raise ValueError("the voice prompt is silent (peak below −60 dBFS): record the speaker again or check "
                             "the file (a muted input, or integer PCM read as tiny floats).")
        if self.sample_rate < 16000:
            warnings.warn(f"the voice prompt is {self.sample_rate} Hz: it is resampled, but it holds nothing above "
                          f"{self.sample_rate // 2} Hz, so the cloned voice will sound muffled.", UserWarning, stacklevel=3)
        if self.transcript is not None:
            if not isinstance(self.transcript, str) or not self.transcript.strip():
                raise ValueError("the voice transcript is empty: give the words spoken in the clip, or "
                                 "transcript=None (the flow then imitates the voice, the LM reads without a prompt).")
            n = len(normalize_english(self.transcript, lowercase=True))
            cps = n / s
            if not MIN_CPS <= cps <= MAX_CPS:
                raise ValueError(f"the transcript has {n} characters for {s:.2f} s of audio ({cps:.1f} characters/s, "
                                 f"plausible: {MIN_CPS:g}–{MAX_CPS:g}); it cannot be what the clip says. Give the "
                                 "exact words of this clip, or transcript=None.")

    @classmethod
    def from_file(cls, path: str | Path, transcript: str | None = None) -> "VoiceReference":
        """Read a WAV/FLAC/OGG at its own rate (several channels are averaged)."""
        import soundfile as sf

        from minicosy.audio import load_audio

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"voice prompt file not found: {path}")
        try:
            rate = sf.info(str(path)).samplerate
        except Exception as exc:  # libsndfile's own error types
            raise ValueError(f"cannot read the voice prompt {path}: {exc}. Give a WAV/FLAC/OGG recording.") from exc
        return cls(load_audio(path, rate), rate, transcript)

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.audio.shape[0] / self.sample_rate
