"""Tests for minicosy.text.normalize: number words, normalisation rules, sentence splitting."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicosy.text.normalize import (
    MAX_NUMBER,
    check_text,
    decimal_to_words,
    digits_to_words,
    normalize_english,
    number_to_words,
    ordinal_to_words,
    split_sentences,
    year_to_words,
)


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"), (25, "twenty five"),
    (100, "one hundred"), (105, "one hundred five"), (999, "nine hundred ninety nine"),
    (1000, "one thousand"), (1905, "one thousand nine hundred five"),
    (10_001, "ten thousand one"), (2_000_000, "two million"),
    (1_000_000_000_000, "one trillion"), (-25, "minus twenty five"),
    (123_456_789_012, "one hundred twenty three billion four hundred fifty six million "
                      "seven hundred eighty nine thousand twelve"),
])
def test_number_to_words(n, words):
    assert number_to_words(n) == words


def _words_to_number(words: str) -> int:
    """Independent inverse of number_to_words, used to check it on random integers."""
    small = {w: i for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split())}
    small.update({w: 10 * (i + 2) for i, w in enumerate(
        "twenty thirty forty fifty sixty seventy eighty ninety".split())})
    scales = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
    sign, total, group = 1, 0, 0
    for w in words.split():
        if w == "minus":
            sign = -1
        elif w == "hundred":
            group *= 100
        elif w in scales:
            total += group * scales[w]
            group = 0
        else:
            group += small[w]
    return sign * (total + group)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-MAX_NUMBER, max_value=MAX_NUMBER))
def test_number_to_words_inverts(n):
    words = number_to_words(n)
    assert _words_to_number(words) == n
    assert re.fullmatch(r"[a-z]+( [a-z]+)*", words)  # plain words: no hyphens, no "and"
    assert " and " not in words


@pytest.mark.parametrize("bad", [MAX_NUMBER + 1, -(MAX_NUMBER + 1), 2.5, "3", True])
def test_number_to_words_rejects(bad):
    with pytest.raises(ValueError):
        number_to_words(bad)


@pytest.mark.parametrize("n, words", [
    (1, "first"), (2, "second"), (3, "third"), (4, "fourth"), (5, "fifth"), (8, "eighth"),
    (9, "ninth"), (11, "eleventh"), (12, "twelfth"), (20, "twentieth"), (21, "twenty first"),
    (42, "forty second"), (100, "one hundredth"), (1000, "one thousandth"),
])
def test_ordinals(n, words):
    assert ordinal_to_words(n) == words


@pytest.mark.parametrize("year, words", [
    (1999, "nineteen ninety nine"), (1905, "nineteen oh five"), (1900, "nineteen hundred"),
    (2000, "two thousand"), (2007, "two thousand seven"), (2024, "twenty twenty four"),
    (1066, "ten sixty six"), (999, "nine hundred ninety nine"),
])
def test_years(year, words):
    assert year_to_words(year) == words


def test_decimals_and_digits():
    assert decimal_to_words("3.5") == "three point five"
    assert decimal_to_words("3.14") == "three point one four"
    assert decimal_to_words("-0.05") == "minus zero point zero five"
    assert digits_to_words("0725") == "zero seven two five"
    with pytest.raises(ValueError):
        decimal_to_words("3.")
    with pytest.raises(ValueError):
        digits_to_words("12a")


@pytest.mark.parametrize("raw, expected", [
    ("I have 3 cats.", "I have three cats."),
    ("The 3rd and the 21st time.", "The third and the twenty first time."),
    ("It costs $5.", "It costs five dollars."),
    ("It costs $1.", "It costs one dollar."),
    ("Pay $5.50 now", "Pay five dollars and fifty cents now"),
    ("Only $0.01?", "Only one cent?"),
    ("A $2.5 million deal", "A two point five million dollars deal"),
    ("About £3 or €20", "About three pounds or twenty euros"),
    ("Sales rose 20% and 3.5% later", "Sales rose twenty percent and three point five percent later"),
    ("Pi is 3.14", "Pi is three point one four"),
    ("Meet at 3:00 or 3:05 or 14:30.", "Meet at three o'clock or three oh five or fourteen thirty."),
    ("It was -7 outside", "It was minus seven outside"),
    ("We sold 1,500 books", "We sold one thousand five hundred books"),
    ("Born in 1999.", "Born in nineteen ninety nine."),
    ("Since 1905, we grew", "Since nineteen oh five, we grew"),
    ("On May 3rd, 2021 we met", "On May third, twenty twenty one we met"),
    ("on june 14 1990", "on june fourteenth nineteen ninety"),
    ("We saw 1999 birds", "We saw one thousand nine hundred ninety nine birds"),
    ("Music of the 1980s", "Music of the nineteen eighties"),
    ("Mr. Brown met Dr. Lee", "mister Brown met doctor Lee"),
    ("Fruit, e.g. apples, etc.", "Fruit, for example apples, et cetera"),
    ("Room No. 5", "Room number five"),
    ("\u201cHi,\u201d she said \u2014 twice\u2026", "Hi, she said, twice."),
    ("It\u2019s a well-known fact", "It's a well known fact"),
    ("Cats & dogs @ home", "Cats and dogs at home"),
    ("  lots   of \t space \n here  ", "lots of space here"),
    ("Wait... what?!", "Wait. what?"),
    ("Junk *#~^ symbols <>|", "Junk number symbols"),
    ("time: now; later", "time, now, later"),
    ("the dogs' bowls and 'quotes'", "the dogs' bowls and quotes"),
])
def test_normalize_english(raw, expected):
    assert normalize_english(raw) == expected


def test_normalize_keeps_other_scripts_and_lowercases():
    assert normalize_english("Hello 你好!") == "Hello 你好!"
    assert normalize_english("Hello World", lowercase=True) == "hello world"
    # A number too long to spell is read digit by digit instead of raising.
    assert normalize_english("code 12345678901234567890") == "code " + digits_to_words(
        "12345678901234567890")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_normalize_output_alphabet(text):
    """Never raises; output has no digits, no junk symbols, no doubled spaces."""
    out = normalize_english(text)
    assert all(c.isalpha() or c in " .,?!'" for c in out)
    assert "  " not in out and out == out.strip()
    assert normalize_english(out) == out  # idempotent on its own output


def test_split_sentences_basic():
    text = "Hello there. How are you? I am fine! Mr. Smith agrees."
    assert split_sentences(text) == ["Hello there.", "How are you?", "I am fine!",
                                     "Mr. Smith agrees."]


def test_split_sentences_long():
    clause = " ".join(["word"] * 8)
    long_sentence = ", ".join([clause] * 6) + "."  # 48 words, commas every 8
    pieces = split_sentences(long_sentence, max_words=20)
    assert [len(p.split()) for p in pieces] == [16, 16, 16]
    assert pieces[0].endswith(",")
    run_on = " ".join(["w"] * 45)  # no punctuation at all: hard chunks
    assert [len(p.split()) for p in split_sentences(run_on, max_words=20)] == [20, 20, 5]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .,?!;\n")), max_size=200),
       st.integers(min_value=1, max_value=12))
def test_split_sentences_preserves_words(text, max_words):
    pieces = split_sentences(text, max_words=max_words)
    assert " ".join(pieces).split() == text.split()
    assert all(1 <= len(p.split()) <= max_words for p in pieces)


def test_split_sentences_rejects_bad_max_words():
    with pytest.raises(ValueError, match="max_words"):
        split_sentences("a b", max_words=0)


def test_check_text():
    assert check_text("  hello  ") == "hello"
    with pytest.raises(ValueError, match="empty"):
        check_text("   \n\t ")
    with pytest.raises(ValueError, match="split_sentences"):
        check_text("word " * 1000, max_chars=100)
    with pytest.raises(ValueError, match="str"):
        check_text(None)
