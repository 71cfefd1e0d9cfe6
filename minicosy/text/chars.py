"""A character-level text tokenizer for the tiny LM preset, with speaker-tag tokens.

Stage: text front end of the text-speech LM (CosyVoice 2 §2.2–2.3). The paper feeds BPE tokens
to the LM; the paper preset keeps :class:`minicosy.text.tokenizer.TextTokenizer` (with its CJK
masking). On a few hours of speech, though, a BPE id is seen too rarely to learn how it sounds:
the probe of docs/paper_vs_code.md §5 (same 4 × 256 LM, same data and budget) read its generated tokens back
at 65% CER with BPE text and 34% with characters.

# simplification: the tiny preset reads *characters* (a documented departure from the paper).

Vocabulary layout (fixed, so that the LM's text embedding has a known size before training):

=====================  ==============================================================
``0 <pad>``            padding (never produced by :meth:`CharTokenizer.encode`)
``1 <unk>``            any character outside the alphabet (after normalisation)
``2 ..``               :data:`ALPHABET`: space, apostrophe, ``. , ? !``, ``a``–``z``
then                   ``max_speakers`` speaker-tag slots ``<|spk:NAME|>``, filled in the
                       order :meth:`add_speaker` is called; unused slots keep their ids
=====================  ==============================================================

Speaker tags are the SFT mechanism of the paper (§2.3, "Speaker A<|endofprompt|>" prepended to
the text): one token per training voice, so that text-only synthesis has a defined voice. ICL
(a prompt utterance) needs no tag.

Text goes through :func:`minicosy.text.normalize.normalize_english` (numbers spelled out,
lower case) before it is mapped to ids, so digits never reach the LM. One rule beyond that: a
*leading* whitespace is kept as one space, so that encoding text piece by piece
(``encode("hello") + encode(" world")``) equals encoding it whole — what streaming text input
(:mod:`minicosy.lm.generate`) relies on.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §2.2 (text tokenizer), §2.3 (SFT tags).
    [2] Karpathy, minbpe (known-answer and round-trip test style).
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

from minicosy.text.normalize import normalize_english

PAD, UNK = "<pad>", "<unk>"
#: The characters that normalised English text is made of (normalize_english keeps . , ? ! ').
ALPHABET = " '.,?!" + "abcdefghijklmnopqrstuvwxyz"
PAD_ID, UNK_ID = 0, 1
FIRST_CHAR_ID = 2
#: Speaker-tag slots reserved by default (corpus v2: 16 train voices plus pitch pseudo-speakers).
MAX_SPEAKERS = 256


def speaker_token(name: str) -> str:
    """The printable form of a speaker tag: ``<|spk:flite_awb|>``."""
    return f"<|spk:{name}|>"


class CharTokenizer:
    """Characters → ids, with ``max_speakers`` speaker-tag ids after the alphabet.

    >>> tok = CharTokenizer()
    >>> tok.encode("Hi, 2 cats!")
    [15, 16, 5, 2, 27, 30, 22, 2, 10, 8, 27, 26, 7]
    >>> tok.decode(tok.encode("Hi, 2 cats!"))
    'hi, two cats!'

    Derivation: space = 2, ``'`` = 3, ``.`` = 4, ``,`` = 5, ``?`` = 6, ``!`` = 7, ``a`` = 8, so
    ``h`` = 8 + 7 = 15, ``i`` = 16, ``t`` = 27, ``w`` = 30, ``o`` = 22, ``c`` = 10, ``s`` = 26;
    "2" is spelled "two" by the normaliser.
    """

    def __init__(self, speakers: list[str] | None = None, max_speakers: int = MAX_SPEAKERS):
        self.max_speakers = int(max_speakers)
        self.speakers: list[str] = []
        self._char_to_id = {c: FIRST_CHAR_ID + i for i, c in enumerate(ALPHABET)}
        for s in speakers or []:
            self.add_speaker(s)

    # ------------------------------------------------------------------ sizes and ids

    @property
    def n_chars(self) -> int:
        return FIRST_CHAR_ID + len(ALPHABET)

    @property
    def vocab_size(self) -> int:
        """Every id the LM's text embedding must hold (tag slots included, used or not)."""
        return self.n_chars + self.max_speakers

    def add_speaker(self, name: str) -> int:
        """Give ``name`` a tag id (idempotent); returns it.

        Raises:
            ValueError: every slot is taken, or the name is empty.
        """
        if not name:
            raise ValueError("a speaker name must be a non-empty string.")
        if name in self.speakers:
            return self.speaker_id(name)
        if len(self.speakers) >= self.max_speakers:
            raise ValueError(f"all {self.max_speakers} speaker-tag slots are taken; build the tokenizer "
                             "with a larger max_speakers (the LM's text embedding grows with it).")
        self.speakers.append(name)
        return self.speaker_id(name)

    def speaker_id(self, name: str) -> int:
        """The tag id of a known speaker.

        Raises:
            ValueError: unknown speaker (the message lists the known ones).
        """
        if name not in self.speakers:
            known = ", ".join(self.speakers[:20]) + (" ..." if len(self.speakers) > 20 else "")
            raise ValueError(f"unknown speaker {name!r}: this model knows the tags [{known}]. Use one of "
                             "them, or give a prompt utterance instead (zero-shot, no tag needed).")
        return self.n_chars + self.speakers.index(name)

    # ------------------------------------------------------------------ encode / decode

    def normalize(self, text: str) -> str:
        """``normalize_english(text, lowercase=True)``, keeping one leading space if there was one."""
        out = normalize_english(text, lowercase=True)
        if out and text[:1].isspace():
            out = " " + out
        return out

    def encode(self, text: str) -> list[int]:
        """Normalise, then one id per character (``<unk>`` for characters outside the alphabet).

        Accents are stripped first (``café`` → ``cafe``); other scripts become ``<unk>``.
        """
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}.")
        norm = unicodedata.normalize("NFKD", self.normalize(text))
        norm = "".join(c for c in norm if not unicodedata.combining(c))
        return [self._char_to_id.get(c, UNK_ID) for c in norm]

    def decode(self, ids) -> str:
        """Ids → text; speaker tags print as ``<|spk:NAME|>``, ``<unk>`` as ``<unk>``, pads vanish."""
        out = []
        for i in ids:
            i = int(i)
            if i == PAD_ID:
                continue
            if i == UNK_ID:
                out.append(UNK)
            elif FIRST_CHAR_ID <= i < self.n_chars:
                out.append(ALPHABET[i - FIRST_CHAR_ID])
            elif self.n_chars <= i < self.n_chars + len(self.speakers):
                out.append(speaker_token(self.speakers[i - self.n_chars]))
            else:
                raise ValueError(f"id {i} is not in this tokenizer (vocab_size {self.vocab_size}, "
                                 f"{len(self.speakers)} speaker tags in use).")
        return "".join(out)

    # ------------------------------------------------------------------ save / load

    def to_dict(self) -> dict:
        return {"type": "minicosy.CharTokenizer", "alphabet": ALPHABET, "max_speakers": self.max_speakers,
                "speakers": list(self.speakers)}

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        if d.get("type") != "minicosy.CharTokenizer":
            raise ValueError("not a minicosy character tokenizer (its 'type' field is "
                             f"{d.get('type')!r}).")
        if d.get("alphabet") != ALPHABET:
            raise ValueError("this tokenizer was saved with another alphabet; ids would not match.")
        return cls(d.get("speakers", []), d.get("max_speakers", MAX_SPEAKERS))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "CharTokenizer":
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"character tokenizer file not found: {path}.")
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
