"""Corpus v3's sentence bank: where the text comes from, its written and spoken forms, its split.

Stage: the text side of the offline corpus (docs/paper_vs_code.md §3). Two sources, both read or
generated at plan time (nothing is committed but the hand-written natural set):

1. ``wordnet-examples`` — the usage examples in WordNet 3.0's glosses [1] (Debian ``wordnet-base``,
   WordNet 3.0 licence, BSD-style), kept when they are sentence-like (a finite verb, a pronoun
   subject, or an imperative), 3–30 words, made of plain characters, and every spoken word is in
   the CMU dictionary (:func:`keep_example`);
2. ``grammar`` — the project's own generator (:mod:`minicosy.data.grammar`, frames in
   :mod:`minicosy.data.frames`) over the WordNet lexicon, which also writes numbers, dates,
   times, money and abbreviations the way people type them.

Every sentence has a **written** form (``Dr. Lee paid $12.50.``) and a **spoken** form, the
written one through :func:`minicosy.text.normalize.normalize_english` (``doctor Lee paid twelve
dollars and fifty cents.``) — the same normaliser the TTS front end applies to user text, so
training and inference text agree. Engines read the spoken form; the manifest stores it.

The **natural** set (``data/text/natural.txt``) was written by hand for the project and comes
from neither source; :func:`bank` drops any generated or WordNet sentence whose spoken words equal
a natural one, and :func:`split_bank` cuts the rest into disjoint train/valid/test pools.

References:
    [1] Miller, "WordNet: a lexical database for English", CACM 38(11), 1995.
    [2] Du et al., "CosyVoice 2", arXiv 2412.10117, §3 (training data; ours is a stand-in).
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter
from pathlib import Path

from minicosy.data.sentences import words
from minicosy.utils import DEFAULT_CORPUS_DIR, REPO_ROOT

NATURAL_PATH = REPO_ROOT / "data" / "text" / "natural.txt"
CACHE_DIR = DEFAULT_CORPUS_DIR / ".textbank"
MIN_WORDS, MAX_WORDS = 3, 30
#: Size of the v3 bank (train + valid + test pools): 32 train voices × 2,000 sentences fit in it.
N_BANK = 66_000
_PLAIN = re.compile(r"[A-Za-z0-9 ,.?!'$%:;&\"-]+")
_AUX = frozenset("""is are was were am be been being has have had do does did will would can could should
may might must shall i you he she we they it there let please""".split())  # noqa: SIM905
_DETERMINERS = frozenset(
    [
        "a",
        "an",
        "the",
        "his",
        "her",
        "my",
        "your",
        "our",
        "their",
        "its",
        "this",
        "that",
        "these",
        "those",
        "some",
        "any",
        "no",
        "every",
        "each",
    ]
)


def spoken(written: str) -> str:
    """The spoken form the engines read: ``normalize_english(written)``."""
    from minicosy.text.normalize import normalize_english

    return normalize_english(written)


def key(text: str) -> str:
    """Identity of a sentence for de-duplication and split checks: its lower-case spoken words."""
    return " ".join(words(spoken(text)))


def finish(text: str, mark: str = ".") -> str:
    """Tidy spaces, capitalise the first letter, end with ``mark`` unless a mark is there."""
    text = re.sub(r"\s+", " ", text).strip().rstrip(",;:")
    if not text:
        return text
    first = 1 if text[0] == '"' else 0
    text = text[:first] + text[first].upper() + text[first + 1:]
    return text if text[-1] in ".?!" or (text[-1] == '"' and text[-2] in ".?!") else text + mark


@functools.lru_cache(maxsize=1)
def _finite_forms() -> frozenset:
    """Third-person and past forms of WordNet's tagged verbs: a word that makes a clause."""
    from minicosy.data.grammar import Vocab
    from minicosy.data.lexicon import load_lexicon

    v = Vocab(load_lexicon())
    out = set(_AUX)
    for x, _ in v.pools[("verb", "*")]:
        out.add(v.third(x.word))
        if v.past(x.word):
            out.add(v.past(x.word))
    return frozenset(out)


def keep_example(text: str, known) -> tuple[str, str] | None:
    """A WordNet gloss example as a finished ``(written, spoken)`` pair, or ``None`` when it is unfit.

    Unfit: odd characters, fewer than 3 or more than 30 spoken words, a spoken word not in
    ``known`` (the CMU dictionary), or not sentence-like (no finite verb, pronoun subject or
    leading imperative verb: "a detailed plan" is a phrase, "the plan worked" a sentence).
    """
    if not _PLAIN.fullmatch(text) or text.count('"') % 2:
        return None
    written = finish(text)
    said_text = spoken(written)
    said = words(said_text)
    if not MIN_WORDS <= len(said) <= MAX_WORDS or any(w not in known for w in said):
        return None
    finite = _finite_forms()
    # a verb form right after a determiner is an adjective or a noun ("a detailed plan", "his plans")
    clause = any(w in finite and said[i] not in _DETERMINERS for i, w in enumerate(said[1:]))
    if not clause and said[0] not in _AUX and said[0] + "s" not in finite:
        return None
    return written, said_text


def wordnet_sentences(known) -> list[tuple[str, str]]:
    """Every usable gloss example (:func:`keep_example`) as ``(written, spoken)``, WordNet file order."""
    from minicosy.data.lexicon import gloss_examples

    return [w for w in (keep_example(t, known) for t in gloss_examples()) if w]


def generate(n: int, seed: int = 0, exclude=frozenset()) -> list[str]:
    """``n`` distinct written sentences from the grammar (spoken keys never in ``exclude``).

    Deterministic; the list for a smaller ``n`` is a prefix of the list for a larger one.
    """
    from minicosy.data.frames import FRAMES, KIND_WEIGHTS
    from minicosy.data.grammar import Maker, Vocab
    from minicosy.data.lexicon import cmudict_words, load_lexicon

    rng = random.Random(f"minicosy-grammar-{seed}")
    maker, known = Maker(rng, Vocab(load_lexicon())), cmudict_words()
    kinds, weights = list(KIND_WEIGHTS), list(KIND_WEIGHTS.values())
    out, seen, tries = [], set(exclude), 0
    while len(out) < n:
        tries += 1
        if tries > 20 * n + 1000:
            raise ValueError(f"the grammar made only {len(out)} distinct sentences; ask for fewer.")
        text, mark = rng.choice(FRAMES[rng.choices(kinds, weights)[0]])(maker)
        written = finish(text, mark)
        said = words(spoken(written))
        k = " ".join(said)
        if k in seen or not MIN_WORDS <= len(said) <= MAX_WORDS or any(w not in known for w in said):
            continue
        seen.add(k)
        out.append(written)
    return out


def load_natural(path: str | Path = NATURAL_PATH) -> list[str]:
    """The hand-written natural test set: one written sentence a line (``#`` lines are comments).

    Raises:
        ValueError: the file is missing, or a line repeats another's spoken words.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"natural test set not found at {path}; it is part of the repository "
                         "(data/text/natural.txt): restore it with git.")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    dup = [k for k, c in Counter(map(key, lines)).items() if c > 1]
    if dup:
        raise ValueError(f"{path}: sentences repeat ({dup[:3]}); keep one of each.")
    return lines


def _fingerprint() -> str:
    """Hash of everything the bank depends on: this code, the normaliser, natural.txt, WordNet."""
    import hashlib

    from minicosy.data.lexicon import WORDNET_DIR

    here = Path(__file__).resolve().parent
    files = [here / f for f in ("textbank.py", "grammar.py", "frames.py", "lexicon.py", "sentences.py", "words.py")]
    files += [here.parent / "text" / "normalize.py", NATURAL_PATH]
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    for f in sorted(Path(WORDNET_DIR).glob("*")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def bank(seed: int = 0, n: int = N_BANK, cache: bool = True) -> tuple[dict, ...]:
    """The v3 sentence bank: ``n`` entries ``{written, text, source}``, distinct spoken words.

    All usable WordNet examples first, then grammar sentences up to ``n``; sentences equal to a
    natural one (by :func:`key`) are left out. Building takes about 20 s on one core, so the
    result is cached in memory and in ``data/corpus/.textbank/`` (keyed by a hash of the code,
    the natural set and the WordNet files: any change rebuilds it).
    """
    import json

    path = CACHE_DIR / f"v3-seed{seed}-n{n}-{_fingerprint()}.json"
    if cache and path.is_file():
        return tuple(json.loads(path.read_text(encoding="utf-8")))
    out = _build_bank(seed, n)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
    return tuple(out)


def _build_bank(seed: int, n: int) -> list[dict]:
    from minicosy.data.lexicon import cmudict_words

    natural = {key(s) for s in load_natural()}
    out, seen = [], set(natural)
    for w, said in wordnet_sentences(cmudict_words()):
        k = " ".join(words(said))
        if k not in seen and len(out) < n:
            seen.add(k)
            out.append({"written": w, "text": said, "source": "wordnet-examples"})
    for w in generate(n - len(out), seed, exclude=frozenset(seen)):
        out.append({"written": w, "text": spoken(w), "source": "grammar"})
    return out


def split_bank(seed: int = 0, n_valid: int = 200, n_test: int = 200, n: int = N_BANK) -> dict[str, list[dict]]:
    """Disjoint ``train``/``valid``/``test`` pools of the bank (seeded shuffle), plus ``natural``.

    Raises:
        ValueError: negative sizes, or pools that leave no training sentence.
    """
    entries = list(bank(seed, n))
    if min(n_valid, n_test) < 0 or n_valid + n_test >= len(entries):
        raise ValueError(f"n_valid and n_test must be ≥ 0 and leave training sentences of the {len(entries)}.")
    random.Random(f"minicosy-split-v3-{seed}").shuffle(entries)
    natural = [{"written": w, "text": spoken(w), "source": "natural"} for w in load_natural()]
    return {"test": entries[:n_test], "valid": entries[n_test:n_test + n_valid],
            "train": entries[n_test + n_valid:], "natural": natural}


# ----------------------------------------------------------------------------- measurements

#: Words left out of the frequent-word target: profanity, and spellings the normaliser rewrites
#: (``Dr.`` is spoken "doctor", so "dr" can never occur in spoken text).
NOT_TARGETS = frozenset(
    [
        "fuck",
        "fucking",
        "shit",
        "dr",
        "st",
        "mrs",
        "mr",
        "ms",
        "etc",
        "vs",
        "inc",
        "http",
        "www",
        "com",
        "lol",
        "usa",
        "uk",
    ]
)


def frequent_words(n: int = 2000) -> list[str]:
    """The ``n`` most frequent English words (``wordfreq``, CC BY-SA 4.0 data) that are targets.

    A target is alphabetic, at least two letters (``a`` and ``i`` excepted), in the CMU dictionary
    and not in :data:`NOT_TARGETS`. Used only to *measure* coverage, never to pick text.

    Raises:
        ValueError: ``wordfreq`` is not installed.
    """
    try:
        import wordfreq
    except ImportError as exc:
        raise ValueError("frequent-word coverage needs `wordfreq`: pip install -e . "
                         "(it is a dependency of minicosy).") from exc
    from minicosy.data.lexicon import cmudict_words

    known = cmudict_words()
    ok = [w for w in wordfreq.top_n_list("en", 3 * n) if w.isalpha() and (len(w) > 1 or w in "ai")
          and w in known and w not in NOT_TARGETS]
    return ok[:n]


def text_stats(jobs, n_frequent: int = 2000) -> dict:
    """What the v3 text gives a model, from :func:`minicosy.data.corpus.plan_corpus` jobs.

    Returns:
        ``train_sentences`` / ``train_words`` (distinct spoken sentences and word types read in
        training), ``natural_token_coverage`` / ``test_token_coverage`` (share of the word tokens
        of those splits that occur in training), ``frequent_coverage`` and ``frequent_missing``
        (of :func:`frequent_words`), ``length_histogram`` (train sentences by word count, bins
        of 3), ``sources`` (distinct train sentences per source), ``per_split`` sentence counts.
    """
    by_split: dict[str, dict] = {}
    for j in jobs:
        by_split.setdefault(j["split"], {})[j["text"]] = j.get("source", "templates-v2")
    train = by_split.get("train", {})
    vocab = Counter(w for t in train for w in words(t))

    def coverage(split):
        toks = [w for t in by_split.get(split, {}) for w in words(t)]
        return round(sum(w in vocab for w in toks) / len(toks), 4) if toks else None

    hist = Counter(min(len(words(t)) // 3 * 3, 30) for t in train)
    out = {"train_sentences": len(train), "train_words": len(vocab),
           "natural_token_coverage": coverage("natural"), "test_token_coverage": coverage("test"),
           "length_histogram": {f"{b}-{b + 2}": hist[b] for b in sorted(hist)},
           "sources": dict(Counter(train.values())),
           "per_split": {s: len(d) for s, d in by_split.items()}}
    try:
        top = frequent_words(n_frequent)
    except ValueError:
        return out
    missing = [w for w in top if w not in vocab]
    return out | {"frequent_coverage": round(1 - len(missing) / len(top), 4), "frequent_missing": missing}
