"""A real English lexicon for the corpus v3 text: WordNet 3.0 (Debian ``wordnet-base``) + cmudict.

Stage: the text side of the offline corpus (docs/paper_vs_code.md §3). Version 2 of the corpus
spoke 1,783 hand-listed words; a text-speech LM trained on it garbles ordinary sentences it never
saw. Version 3 draws its words from WordNet [1], a lexical database that lists about 150,000
English lemmas with their part of speech, groups each sense into a *lexicographer file* (a coarse
semantic class: ``noun.food``, ``noun.person``, ``verb.motion`` ...), gives each verb its
*sentence frames* (``Somebody ----s something``), and counts how often each sense was tagged in
the Brown-corpus SemCor texts (``cntlist.rev``) — a usable word frequency. Its glosses also hold
about 48,000 short usage examples written by the lexicographers ("the children behaved well").

This module only *reads*: :func:`load_lexicon` (lemmas by part of speech with frequency, class
and frames, plus the irregular forms of ``*.exc``) and :func:`gloss_examples`. Which words go
into which sentence is :mod:`minicosy.data.grammar`'s business, the sentence bank is
:mod:`minicosy.data.textbank`'s.

The CMU pronouncing dictionary that pocketsphinx ships (:func:`cmudict_words`) is the filter
every v3 word passes: the engines read it well and the WER judge can recognise it [2].

Licences: WordNet 3.0 licence (BSD-style, Princeton University: use, copy, modify and
distribute with its copyright notice); cmudict: BSD-2-Clause. Neither is copied into the repo:
both are read where Debian / the pocketsphinx wheel installed them.

References:
    [1] Miller, "WordNet: a lexical database for English", CACM 38(11), 1995; file formats in
        ``man 5 wndb`` and ``man 5 cntlist``.
    [2] CMU Pronouncing Dictionary (``cmudict-en-us.dict`` in the pocketsphinx wheel).
"""

from __future__ import annotations

import functools
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

#: Where Debian's ``wordnet-base`` installs the database (``MINICOSY_WORDNET`` overrides it).
WORDNET_DIR = Path(os.environ.get("MINICOSY_WORDNET", "/usr/share/wordnet"))

#: WordNet part-of-speech file suffixes and the ``ss_type`` digit of a sense key.
POS_FILES = {"noun": "noun", "verb": "verb", "adj": "adj", "adv": "adv"}
_SS_TYPE = {"1": "noun", "2": "verb", "3": "adj", "4": "adv", "5": "adj"}

#: Lexicographer file numbers (``man 5 lexnames``) → class names (the ones the grammar uses).
LEXNAMES = {0: "adj.all", 1: "adj.pert", 2: "adv.all", 3: "noun.Tops", 4: "noun.act", 5: "noun.animal",
            6: "noun.artifact", 7: "noun.attribute", 8: "noun.body", 9: "noun.cognition",
            10: "noun.communication", 11: "noun.event", 12: "noun.feeling", 13: "noun.food",
            14: "noun.group", 15: "noun.location", 16: "noun.motive", 17: "noun.object",
            18: "noun.person", 19: "noun.phenomenon", 20: "noun.plant", 21: "noun.possession",
            22: "noun.process", 23: "noun.quantity", 24: "noun.relation", 25: "noun.shape",
            26: "noun.state", 27: "noun.substance", 28: "noun.time", 29: "verb.body",
            30: "verb.change", 31: "verb.cognition", 32: "verb.communication", 33: "verb.competition",
            34: "verb.consumption", 35: "verb.contact", 36: "verb.creation", 37: "verb.emotion",
            38: "verb.motion", 39: "verb.perception", 40: "verb.possession", 41: "verb.social",
            42: "verb.stative", 43: "verb.weather", 44: "adj.ppl"}

#: Verb frames (``man 5 wndb``) the grammar uses: intransitive, "something", "somebody".
FRAME_INTRANS, FRAME_THING, FRAME_PERSON = frozenset({2}), frozenset({8, 11}), frozenset({9, 10})


@dataclass
class Lemma:
    word: str                 # the lemma, lower case, single word ("apple")
    pos: str                  # "noun" | "verb" | "adj" | "adv"
    count: int                # SemCor tag count summed over its senses (0: never tagged)
    lexname: str              # class of its most frequent sense ("noun.food")
    frames: frozenset = field(default_factory=frozenset)  # verb frames of its first sense


@dataclass
class Lexicon:
    lemmas: dict              # pos → list[Lemma], most frequent first (ties: alphabetical)
    exceptions: dict          # pos → {inflected form: base} from the *.exc files
    irregular: dict           # pos → {base: [inflected forms]} (the inverse of ``exceptions``)

    def by_class(self, pos: str, lexname: str, min_count: int = 1) -> list[Lemma]:
        """Lemmas of one part of speech and class with at least ``min_count`` SemCor tags."""
        return [x for x in self.lemmas[pos] if x.lexname == lexname and x.count >= min_count]


def check_wordnet(root: Path = WORDNET_DIR) -> Path:
    """The WordNet folder, or a ``ValueError`` saying which Debian package to install."""
    root = Path(root)
    need = ["cntlist.rev"] + [f"{k}.{p}" for p in POS_FILES.values() for k in ("index", "data")]
    missing = [n for n in need if not (root / n).is_file()]
    if missing:
        raise ValueError(f"WordNet not found in {root} (missing {missing[:3]}): install the Debian package "
                         "`wordnet-base` (scripts/install_debian.sh does), or point MINICOSY_WORDNET at a "
                         "folder holding the WordNet 3.0 database files.")
    return root


def _sense_counts(root: Path) -> dict:
    """``(lemma, pos)`` → (total tag count, {lex_filenum: count}) from ``cntlist.rev``."""
    totals: dict = defaultdict(lambda: [0, defaultdict(int)])
    for line in (root / "cntlist.rev").read_text(encoding="latin-1").splitlines():
        key, _, count = line.split(" ")
        lemma, _, rest = key.partition("%")
        ss_type, lexfile = rest.split(":")[:2]
        entry = totals[(lemma, _SS_TYPE[ss_type])]
        entry[0] += int(count)
        entry[1][int(lexfile)] += int(count)
    return totals


def _data_synsets(root: Path, pos: str):
    """Yield ``(offset, lex_filenum, words, frames, gloss)`` for each synset of ``data.<pos>``.

    ``frames`` is a set of frame numbers for verbs (those that apply to all words, or to the word
    itself: one set per word), empty for the other parts of speech.
    """
    with open(root / f"data.{POS_FILES[pos]}", encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):  # the licence header
                continue
            head, _, gloss = line.partition(" | ")
            t = head.split()
            n_words = int(t[3], 16)
            words = [re.sub(r"\(.*\)$", "", t[4 + 2 * i]) for i in range(n_words)]  # "big(a)" → "big"
            k = 4 + 2 * n_words
            n_ptr = int(t[k])
            k += 1 + 4 * n_ptr
            frames = [set() for _ in words]
            if pos == "verb" and k < len(t):
                for j in range(int(t[k])):
                    f_num, w_num = int(t[k + 2 + 3 * j]), int(t[k + 3 + 3 * j], 16)
                    for i in (range(len(words)) if w_num == 0 else [w_num - 1]):
                        frames[i].add(f_num)
            yield int(t[0]), int(t[1]), words, frames, gloss.strip()


def _first_sense_frames(root: Path) -> dict:
    """Verb lemma → frames of its first (most frequent) sense, via ``index.verb``'s offset order."""
    by_offset = {}
    for offset, _, words, frames, _ in _data_synsets(root, "verb"):
        by_offset[offset] = {w.lower(): fr for w, fr in zip(words, frames)}
    out = {}
    with open(root / "index.verb", encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):
                continue
            t = line.split()
            lemma, n_syn = t[0], int(t[2])
            first = int(t[len(t) - n_syn])
            out[lemma] = frozenset(by_offset.get(first, {}).get(lemma, ()))
    return out


def _exceptions(root: Path) -> tuple[dict, dict]:
    exc, irr = {}, {}
    for pos, name in POS_FILES.items():
        path = root / f"{name}.exc"
        exc[pos], irr[pos] = {}, defaultdict(list)
        if not path.is_file():
            continue
        for line in path.read_text(encoding="latin-1").splitlines():
            form, *bases = line.split()
            exc[pos][form] = bases[0]
            for b in bases:
                irr[pos][b].append(form)
    return exc, {p: dict(d) for p, d in irr.items()}


@functools.lru_cache(maxsize=2)
def load_lexicon(root: Path = WORDNET_DIR) -> Lexicon:
    """Read WordNet: single-word, lower-case lemmas of each part of speech with their frequency.

    A lemma's class is that of its most frequently tagged sense (the first sense when none is
    tagged); multi-word lemmas (``perk_up``) and lemmas with digits or capitals are left out.

    Raises:
        ValueError: WordNet is not installed (names the Debian package).
    """
    root = check_wordnet(root)
    counts = _sense_counts(root)
    frames = _first_sense_frames(root)
    lemmas = {}
    for pos, name in POS_FILES.items():
        first_class = {}
        for _, lexfile, words, _, _ in _data_synsets(root, pos):
            for w in words:
                first_class.setdefault(w.lower(), lexfile)
        out = []
        with open(root / f"index.{name}", encoding="latin-1") as f:
            for line in f:
                word = line.split(" ", 1)[0]
                if line.startswith("  ") or not re.fullmatch(r"[a-z]+", word):
                    continue
                total, by_file = counts.get((word, pos), (0, {}))
                lexfile = max(by_file, key=lambda k: (by_file[k], -k)) if by_file else first_class.get(word, 0)
                out.append(Lemma(word, pos, total, LEXNAMES.get(lexfile, "?"), frames.get(word, frozenset())))
        lemmas[pos] = sorted(out, key=lambda x: (-x.count, x.word))
    exc, irr = _exceptions(root)
    return Lexicon(lemmas, exc, irr)


def gloss_examples(root: Path = WORDNET_DIR) -> list[str]:
    """The quoted usage examples of every WordNet gloss, in file order, duplicates removed.

    ``"cause to be alert and energetic; "Coffee and tea stimulate me""`` → ``Coffee and tea stimulate me``.
    """
    root = check_wordnet(root)
    out = {}
    for pos in POS_FILES:
        for _, _, _, _, gloss in _data_synsets(root, pos):
            for ex in re.findall(r'"([^"]+)"', gloss):
                out.setdefault(ex.strip(), None)
    return list(out)


@functools.lru_cache(maxsize=1)
def cmudict_words() -> frozenset:
    """Lower-case words of pocketsphinx's CMU dictionary (variants ``word(2)`` folded).

    Raises:
        ValueError: pocketsphinx is not installed (it is in the ``eval`` extra).
    """
    try:
        import pocketsphinx
    except ImportError as exc:
        raise ValueError("the corpus v3 text filter needs pocketsphinx's CMU dictionary: "
                         "pip install -e '.[eval]' (scripts/install_python.sh does).") from exc
    path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    words = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        w = line.split(" ", 1)[0]
        words.add(re.sub(r"\(\d+\)$", "", w))
    return frozenset(words)
