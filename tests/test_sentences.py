"""Tests for minicosy.data.sentences: the generated text corpus and its sentence-level split."""

import re
from pathlib import Path

import pytest

from minicosy.data.sentences import (
    MAX_WORDS,
    MIN_WORDS,
    TEMPLATES,
    article,
    generate_sentences,
    gerund,
    participle,
    past,
    plural,
    split_sentences_pool,
    third,
    vocabulary,
    words,
)


@pytest.fixture(scope="module")
def pool():
    return generate_sentences(4000, seed=0)


def test_count_and_distinct(pool):
    assert len(pool) == 4000
    assert len(set(pool)) == 4000


def test_length_bounds_and_form(pool):
    for s in pool:
        assert MIN_WORDS <= len(words(s)) <= MAX_WORDS, s
        assert s[0].isupper() and s[-1] in ".?!", s
        assert "  " not in s


def test_no_digits_or_odd_characters(pool):
    for s in pool:
        assert not re.search(r"\d", s), s
        assert re.fullmatch(r"[A-Za-z ,.?!']+", s), s


def test_deterministic_and_prefix(pool):
    assert generate_sentences(4000, seed=0) == pool
    assert generate_sentences(500, seed=0) == pool[:500]
    assert generate_sentences(500, seed=1) != pool[:500]


def test_every_template_used_and_articles_agree(pool):
    assert len(TEMPLATES) >= 40
    # "an" only before a vowel letter, "a" never before one (the sentences use no "a hour"/"a one").
    for s in pool:
        assert not re.search(r"\ban [^aeiouAEIOU]", s), s
        assert not re.search(r"\b[Aa] [aeiouAEIOU]", s), s


def test_vocabulary_size(pool):
    vocab = vocabulary(pool)
    assert len(vocab) >= 1500  # a moderate everyday vocabulary
    assert sum(vocab.values()) == sum(len(words(s)) for s in pool)


def test_vocabulary_in_pocketsphinx_dictionary(pool):
    """The WER judge (pocketsphinx) must know ≥ 98% of the words it will hear."""
    pocketsphinx = pytest.importorskip("pocketsphinx")
    dict_path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    known = {line.split(" ", 1)[0] for line in dict_path.read_text(encoding="utf-8").splitlines()}
    vocab = vocabulary(pool)
    missing = [w for w in vocab if w not in known]
    assert len(missing) / len(vocab) <= 0.02, missing


def test_split_disjoint_and_deterministic(pool):
    pools = split_sentences_pool(pool, seed=0, n_valid=200, n_test=150)
    assert [len(pools[k]) for k in ("train", "valid", "test")] == [3650, 200, 150]
    train, valid, test = (set(pools[k]) for k in ("train", "valid", "test"))
    assert not (train & valid or train & test or valid & test)
    assert train | valid | test == set(pool)
    assert split_sentences_pool(list(reversed(pool)), seed=0, n_valid=200, n_test=150) == pools
    assert split_sentences_pool(pool, seed=1, n_valid=200, n_test=150)["test"] != pools["test"]


def test_split_removes_duplicates():
    pools = split_sentences_pool(["A b c d."] * 3 + ["E f g h.", "I j k l."], seed=0, n_valid=1, n_test=1)
    assert sorted(sum(pools.values(), [])) == ["A b c d.", "E f g h.", "I j k l."]


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_generate_rejects_bad_n(bad):
    with pytest.raises(ValueError):
        generate_sentences(bad)


def test_split_rejects_too_large():
    with pytest.raises(ValueError, match="generate more"):
        split_sentences_pool(["One two three four."] * 5, n_valid=1, n_test=0)
    with pytest.raises(ValueError):
        split_sentences_pool(["a b c d", "e f g h", "i j k l"], n_valid=-1, n_test=0)


@pytest.mark.parametrize("fn,word,expected", [
    (plural, "box", "boxes"), (plural, "city", "cities"), (plural, "toy", "toys"),
    (plural, "child", "children"), (plural, "knife", "knives"), (plural, "post office", "post offices"),
    (third, "watch", "watches"), (third, "carry", "carries"), (third, "go", "goes"), (third, "play", "plays"),
    (past, "walk", "walked"), (past, "bake", "baked"), (past, "carry", "carried"), (past, "stop", "stopped"),
    (past, "eat", "ate"), (participle, "eat", "eaten"), (participle, "walk", "walked"),
    (gerund, "make", "making"), (gerund, "run", "running"), (gerund, "see", "seeing"), (gerund, "tie", "tying"),
    (article, "apple", "an"), (article, "pear", "a"), (article, "hour", "an"), (article, "uniform", "a"),
])
def test_morphology(fn, word, expected):
    assert fn(word) == expected
