"""Tests for corpus v3's text (minicosy.data.lexicon, grammar, frames, textbank) and its plan."""

import random
import re

import pytest

from minicosy.data import textbank as tb
from minicosy.data.corpus import HELDOUT_VOICES, TRAIN_VOICES, VOICES, plan_corpus
from minicosy.data.sentences import words
from minicosy.text.normalize import normalize_english

lexicon = pytest.importorskip("minicosy.data.lexicon")
try:
    lexicon.check_wordnet()
    lexicon.cmudict_words()
except ValueError as exc:  # pragma: no cover - CI installs wordnet-base and pocketsphinx
    pytest.skip(str(exc), allow_module_level=True)


@pytest.fixture(scope="module")
def bank():
    return tb.bank(0)


@pytest.fixture(scope="module")
def plan():
    return plan_corpus(seed=0, variants=())


def test_lexicon_reads_wordnet():
    lex = lexicon.load_lexicon()
    verbs = {x.word: x for x in lex.lemmas["verb"]}
    assert verbs["eat"].lexname == "verb.consumption" and 8 in verbs["eat"].frames
    assert verbs["sleep"].frames & lexicon.FRAME_INTRANS
    assert lex.lemmas["noun"][0].count > lex.lemmas["noun"][1000].count > 0  # most frequent first
    assert "went" in lex.irregular["verb"]["go"] and lex.exceptions["noun"]["children"] == "child"
    assert len(lexicon.gloss_examples()) > 40_000


def test_missing_wordnet_names_the_package(tmp_path):
    with pytest.raises(ValueError, match="wordnet-base"):
        lexicon.check_wordnet(tmp_path)


def test_bank_size_sources_and_distinct(bank):
    assert len(bank) == tb.N_BANK
    assert len({tb.key(e["text"]) for e in bank}) == len(bank)
    sources = {e["source"] for e in bank}
    assert sources == {"wordnet-examples", "grammar"}
    assert sum(e["source"] == "wordnet-examples" for e in bank) > 20_000


def test_written_to_spoken_round_trip(bank):
    """The stored text is the written form through the TTS front end's normaliser, and normalising
    it again changes nothing: training text equals what inference feeds the model."""
    for e in random.Random(0).sample(list(bank), 3000):
        assert e["text"] == normalize_english(e["written"])
        assert normalize_english(e["text"]) == e["text"]
        assert not re.search(r"\d|\$|%", e["text"]), e
        assert tb.MIN_WORDS <= len(words(e["text"])) <= tb.MAX_WORDS


def test_written_forms_hold_numbers_money_dates_and_abbreviations(bank):
    grammar = [e["written"] for e in bank if e["source"] == "grammar"]
    for pattern in (r"\$\d", r"\d:\d\d", r"\d%", r"\b(Dr|Mr|Mrs)\. ", r"(January|March|May) \d+(st|nd|rd|th)",
                    r'^"', r"\?$", r"!$"):
        assert sum(bool(re.search(pattern, w)) for w in grammar) > 100, pattern


def test_cmudict_covers_the_vocabulary(bank):
    vocab = {w for e in bank for w in words(e["text"])}
    known = lexicon.cmudict_words()
    assert len(vocab) >= 15_000
    assert sum(w not in known for w in vocab) / len(vocab) <= 0.02


def test_generate_deterministic_and_prefix():
    a = tb.generate(300, seed=0)
    assert tb.generate(300, seed=0) == a and tb.generate(100, seed=0) == a[:100]
    assert tb.generate(100, seed=1) != a[:100]


def test_keep_example_filters_fragments_and_odd_text():
    known = lexicon.cmudict_words()
    assert tb.keep_example("the children behaved well", known) == ("The children behaved well.",
                                                                   "The children behaved well.")
    assert tb.keep_example("a detailed plan", known) is None          # a phrase, not a sentence
    assert tb.keep_example("he xqzzy the plonk", known) is None       # words the judge cannot know
    assert tb.keep_example("see (above) now", known) is None          # odd characters
    assert tb.keep_example(" ".join(["he ran"] * 16), known) is None   # over 30 words


def test_natural_set():
    nat = tb.load_natural()
    assert len(nat) >= 170
    known = lexicon.cmudict_words()
    for s in nat:
        said = words(tb.spoken(s))
        assert 3 <= len(said) <= 30, s
        assert all(w in known for w in said), s
    assert sum(bool(re.search(r"\d", s)) for s in nat) >= 30  # numbers written as people write them


def test_natural_rejects_duplicates(tmp_path):
    (tmp_path / "n.txt").write_text("# comment\nSee you at 5.\nsee you at five\n")
    with pytest.raises(ValueError, match="repeat"):
        tb.load_natural(tmp_path / "n.txt")
    with pytest.raises(ValueError, match="natural.txt"):
        tb.load_natural(tmp_path / "missing.txt")


def test_plan_v3_splits_disjoint_and_natural_for_every_voice(plan):
    keys = {s: {tb.key(j["text"]) for j in plan if j["split"] == s} for s in ("train", "valid", "test", "natural")}
    for other in ("valid", "test", "natural"):
        assert not keys["train"] & keys[other], other
    assert not keys["valid"] & keys["test"]
    n_nat = len(tb.load_natural())
    for v in VOICES:
        assert sum(j["voice"] == v.id and j["split"] == "natural" for j in plan) == n_nat
    for vid in HELDOUT_VOICES:
        assert not any(j["voice"] == vid and j["split"] == "train" for j in plan)
    for j in plan:
        assert set(j) == {"voice", "split", "index", "text", "written", "source", "variants"}


def test_plan_v3_counts_and_distinct_sentences(plan):
    train = [j["text"] for j in plan if j["split"] == "train"]
    assert len(train) == 1900 * len(TRAIN_VOICES)
    assert len(set(train)) == len(train)  # disjoint windows while the pool lasts
    # the pool is large enough for 34 train voices to read different sentences
    assert len(tb.split_bank(0)["train"]) >= 34 * 1900


def test_text_stats(plan):
    s = tb.text_stats(plan)
    assert s["train_sentences"] == len({j["text"] for j in plan if j["split"] == "train"})
    assert s["natural_token_coverage"] > 0.95 and s["per_split"]["natural"] == len(tb.load_natural())
    assert sum(s["length_histogram"].values()) == s["train_sentences"]
    assert sum(s["sources"].values()) == s["train_sentences"]
    if "frequent_coverage" in s:
        assert s["frequent_coverage"] >= 0.98


def test_plan_rejects_unknown_version():
    with pytest.raises(ValueError, match="version"):
        plan_corpus(version=4)


def test_build_skips_a_sentence_the_engine_fails_on(tmp_path, monkeypatch):
    import shutil

    import numpy as np

    from minicosy.data import corpus

    if not shutil.which("flite") or not shutil.which("sox"):
        pytest.skip("flite/sox not installed")
    plan = plan_corpus(per_voice=2, n_valid=0, n_test=0, voices=["flite_awb"], variants=(), natural=False)

    def fake(voice, text):
        if text == plan[0]["text"]:
            raise ValueError("engine crashed")
        return np.full(1600, 0.1, np.float32), 16000

    monkeypatch.setattr(corpus, "synthesize", fake)
    utts = corpus.build_corpus(tmp_path, plan=plan, jobs=1, progress=False)
    info = __import__("json").loads((tmp_path / "build_info.json").read_text())
    assert len(utts) == 1 and info["failed"] == 1 and info["failures"][0]["text"] == plan[0]["text"]
