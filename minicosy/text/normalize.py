"""Text normalisation: English text → words a TTS model can read.

CosyVoice 2 feeds raw BPE tokens to its LM, with no grapheme-to-phoneme front end [1, §2.2],
so everything the model must *say* has to be written as words: ``"$5"`` becomes
``"five dollars"``, ``"3rd"`` becomes ``"third"``. The official code delegates this to
WeTextProcessing / wetext [2]; minicosy uses the small, readable rule set below, which covers
the text its own corpus generator writes plus the common cases a learner will type.

Pipeline of :func:`normalize_english` (each step is a public or private function here):

1. unicode → ASCII punctuation (curly quotes, dashes, ellipsis, NBSP) and NFKC folding;
2. abbreviations (``Mr.`` → ``mister``, ``e.g.`` → ``for example``);
3. clock times (``3:05`` → ``three oh five``), currency (``$5.50`` → ``five dollars and fifty
   cents``), percent (``7%`` → ``seven percent``);
4. ordinals (``21st`` → ``twenty first``), decades (``1990s`` → ``nineteen nineties``);
5. years — the rule: a four-digit number 1100–2099 is read as a year (``1999`` →
   ``nineteen ninety nine``, ``1905`` → ``nineteen oh five``, ``2005`` → ``two thousand five``)
   only when the word before it is one of :data:`YEAR_CUES` (``in``, ``since``, ``of`` ...);
   otherwise it is a cardinal (``1999 people`` → ``one thousand nine hundred ninety nine``);
   a full date ``May 3rd, 2021`` reads ``May third, twenty twenty one``;
6. decimals (``3.14`` → ``three point one four``), negatives, thousands separators, cardinals;
7. symbols (``&`` → ``and``), then everything that is not a letter, a space or one of
   ``. , ? ! '`` is dropped, and whitespace is collapsed.

Number words never contain hyphens (``twenty five``, not ``twenty-five``) so that every output
word is a plain dictionary word.

:func:`split_sentences` cuts long input into pieces that can be synthesised one by one, and
:func:`check_text` rejects empty or absurdly long input with a message saying what to do.

References:
    [1] Du et al., "CosyVoice 2: Scalable Streaming Speech Synthesis with Large Language
        Models", arXiv 2412.10117, 2024.
    [2] FunAudioLLM/CosyVoice, ``cosyvoice/cli/frontend.py`` (text_normalize).
"""

from __future__ import annotations

import re
import unicodedata

# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
         "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand")]

#: Largest magnitude :func:`number_to_words` accepts (999 trillion ...).
MAX_NUMBER = 10**15 - 1


def _below_thousand(n: int) -> list[str]:
    """Words for 1 <= n <= 999 (no "and": 105 → "one hundred five")."""
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
    if n:
        words.append(_ONES[n])
    return words


def number_to_words(n: int) -> str:
    """Spell an integer in English words, space separated, no hyphens, no "and".

    >>> number_to_words(1905)
    'one thousand nine hundred five'
    >>> number_to_words(-25)
    'minus twenty five'

    Args:
        n: an integer with ``|n| <= MAX_NUMBER`` (10^15 - 1).

    Raises:
        ValueError: ``n`` is not an integer or is too large; spell it digit by digit with
            :func:`digits_to_words` instead.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"number_to_words expects an int, got {type(n).__name__} {n!r}; "
                         "convert it with int() or use decimal_to_words for decimals.")
    if abs(n) > MAX_NUMBER:
        raise ValueError(f"{n} is too large to spell (|n| must be <= {MAX_NUMBER}); "
                         "use digits_to_words to read it digit by digit.")
    if n == 0:
        return "zero"
    if n < 0:
        return "minus " + number_to_words(-n)
    words: list[str] = []
    for value, name in _SCALES:
        if n >= value:
            words += _below_thousand(n // value) + [name]
            n %= value
    if n:
        words += _below_thousand(n)
    return " ".join(words)


def digits_to_words(digits: str) -> str:
    """Read a string of digits one by one: ``"0725"`` → ``"zero seven two five"``."""
    if not digits.isdigit():
        raise ValueError(f"digits_to_words expects only the digits 0-9, got {digits!r}.")
    return " ".join(_ONES[int(d)] for d in digits)


_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                      "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def ordinal_to_words(n: int) -> str:
    """Spell an ordinal: 1 → "first", 22 → "twenty second", 100 → "one hundredth"."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):  # twenty → twentieth
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join(words[:-1] + [last])


def decimal_to_words(text: str) -> str:
    """Read a decimal literal digit by digit after the point.

    ``"3.14"`` → ``"three point one four"``, ``"-0.5"`` → ``"minus zero point five"``.
    """
    m = re.fullmatch(r"(-?)(\d*)\.(\d+)", text)
    if m is None:
        raise ValueError(f"not a decimal number: {text!r}; expected digits '.' digits, e.g. '3.5'.")
    sign, whole, frac = m.groups()
    whole_words = _int_or_digits(whole) if whole else "zero"
    return ("minus " if sign else "") + f"{whole_words} point {digits_to_words(frac)}"


def year_to_words(year: int) -> str:
    """Read a year the way people say it.

    1999 → "nineteen ninety nine", 1905 → "nineteen oh five", 1900 → "nineteen hundred",
    2000 → "two thousand", 2007 → "two thousand seven", 2024 → "twenty twenty four".
    Years outside 1000–9999 fall back to :func:`number_to_words`.
    """
    if not 1000 <= year <= 9999:
        return number_to_words(year)
    hi, lo = divmod(year, 100)
    if year % 1000 < 10 and hi % 10 == 0:  # 2000..2009, 1000..1009
        return number_to_words(year)
    if lo == 0:
        return f"{number_to_words(hi)} hundred"
    if lo < 10:
        return f"{number_to_words(hi)} oh {_ONES[lo]}"
    return f"{number_to_words(hi)} {number_to_words(lo)}"


def _int_or_digits(digits: str) -> str:
    """Cardinal words for a digit string, or digit-by-digit if it is too long to spell."""
    value = int(digits)
    return number_to_words(value) if value <= MAX_NUMBER else digits_to_words(digits)


def _plural_decade(words: str) -> str:
    """"nineteen ninety" → "nineteen nineties", "two thousand" → "two thousands"."""
    head, _, last = words.rpartition(" ")
    last = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return f"{head} {last}".strip()


# ---------------------------------------------------------------------------------------------
# Text rules
# ---------------------------------------------------------------------------------------------

_UNICODE_PUNCT = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": " - ", "\u2014": " - ",
    "\u2015": " - ", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ", "\u3002": ".", "\uff0c": ",", "\uff1f": "?", "\uff01": "!",
}

#: Abbreviations expanded by :func:`normalize_english` (matched case-insensitively, with the dot).
ABBREVIATIONS = {
    "mr.": "mister", "mrs.": "missus", "ms.": "miss", "dr.": "doctor", "prof.": "professor",
    "st.": "saint", "jr.": "junior", "sr.": "senior", "capt.": "captain", "gen.": "general",
    "lt.": "lieutenant", "sgt.": "sergeant", "mt.": "mount", "ft.": "fort",
    "e.g.": "for example", "i.e.": "that is", "etc.": "et cetera", "vs.": "versus",
    "approx.": "approximately", "dept.": "department", "no.": "number",
}

#: Words that, right before a four-digit number 1100–2099, make it read as a year.
YEAR_CUES = frozenset({"in", "since", "by", "from", "until", "till", "of", "year", "during",
                       "before", "after", "around", "circa", "spring", "summer", "autumn",
                       "fall", "winter", "january", "february", "march", "april", "may", "june",
                       "july", "august", "september", "october", "november", "december"})

_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"),
             "£": ("pound", "pounds", "penny", "pence"),
             "€": ("euro", "euros", "cent", "cents")}
_SYMBOLS = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "#": " number ",
            "°": " degrees "}
_NUM = r"\d+(?:,\d{3})*"  # 1234 or 1,234,567


def normalize_unicode(text: str) -> str:
    """Curly quotes, dashes, ellipsis and full-width punctuation → ASCII; NFKC folding."""
    text = "".join(_UNICODE_PUNCT.get(c, c) for c in text)
    return unicodedata.normalize("NFKC", text)


def expand_abbreviations(text: str) -> str:
    """``Dr. Smith`` → ``doctor Smith``; ``No.`` only before a number."""
    def repl(m: re.Match) -> str:
        return ABBREVIATIONS[m.group(0).lower()]
    keys = sorted((k for k in ABBREVIATIONS if k != "no."), key=len, reverse=True)
    pattern = r"(?<![\w.])(?:" + "|".join(re.escape(k) for k in keys) + r")"
    text = re.sub(pattern, repl, text, flags=re.IGNORECASE)
    return re.sub(r"(?<![\w.])no\.(?=\s*\d)", "number", text, flags=re.IGNORECASE)


def _money(m: re.Match) -> str:
    unit1, units, sub1, subs = _CURRENCY[m.group(1)]
    whole, frac, scale = m.group(2).replace(",", ""), m.group(3), m.group(4)
    if scale:  # "$2.5 million" → "two point five million dollars"
        amount = decimal_to_words(f"{whole}.{frac}") if frac else _int_or_digits(whole)
        return f" {amount} {scale.lower()} {units} "
    parts = []
    if int(whole) or not frac:
        parts.append(f"{_int_or_digits(whole)} {unit1 if int(whole) == 1 else units}")
    if frac:
        cents = int((frac + "0")[:2]) if len(frac) <= 2 else None
        if cents is None:  # "$1.234": not a price, read as a decimal
            return f" {decimal_to_words(f'{whole}.{frac}')} {units} "
        if cents:
            parts.append(f"{number_to_words(cents)} {sub1 if cents == 1 else subs}")
    return " " + " and ".join(parts) + " "


def _year_or_number(m: re.Match) -> str:
    cue, num = m.group(1), m.group(2)
    value = int(num)
    if cue.lower() in YEAR_CUES and 1100 <= value <= 2099:
        return f"{cue} {year_to_words(value)}"
    return f"{cue} {number_to_words(value)}"


def _clock(m: re.Match) -> str:
    """"3:00" → "three o'clock", "3:05" → "three oh five", "14:30" → "fourteen thirty"."""
    hour, minute = int(m.group(1)), int(m.group(2))
    if minute == 0:
        return f"{number_to_words(hour)} o'clock"
    if minute < 10:
        return f"{number_to_words(hour)} oh {_ONES[minute]}"
    return f"{number_to_words(hour)} {number_to_words(minute)}"


_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november"
           "|december")
# "May 3rd, 2021" / "May 3 2021" → "May third, twenty twenty one" (ordinal day, year as a year)
_DATE = r"\b(" + _MONTHS + r")\s+(\d{1,2})(?:st|nd|rd|th)?(,?)\s+(\d{4})\b"


def _date(m: re.Match) -> str:
    month, day, comma, year = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
    return f"{month} {ordinal_to_words(day)}{comma} {year_to_words(year)}"


def normalize_numbers(text: str) -> str:
    """Spell times, currency, percent, ordinals, decades, years, decimals and cardinals as words."""
    text = re.sub(r"\b([01]?\d|2[0-3]):([0-5]\d)\b", _clock, text)
    text = re.sub(_DATE, _date, text, flags=re.IGNORECASE)
    scales = r"(?:\s*(thousand|million|billion|trillion)\b)?"
    text = re.sub(r"([$£€])\s?(" + _NUM + r")(?:\.(\d+))?" + scales, _money, text,
                  flags=re.IGNORECASE)
    text = re.sub(r"(" + _NUM + r"(?:\.\d+)?)\s?%",
                  lambda m: f"{m.group(1)} percent", text)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b",
                  lambda m: " " + ordinal_to_words(int(m.group(1))) + " "
                  if int(m.group(1)) <= MAX_NUMBER else m.group(0), text, flags=re.IGNORECASE)
    text = re.sub(r"\b(1[1-9]|20)(\d0)'?s\b",
                  lambda m: _plural_decade(year_to_words(int(m.group(1) + m.group(2)))), text)
    text = re.sub(r"\b([A-Za-z]+)\s+(\d{4})\b(?![.,]\d)", _year_or_number, text)
    text = re.sub(r"(?<![\w.])(-?)(" + _NUM + r")\.(\d+)\b",
                  lambda m: " " + decimal_to_words(m.group(1) + m.group(2).replace(",", "")
                                                   + "." + m.group(3)) + " ", text)
    text = re.sub(r"(?<![\w-])-(?=\d)", " minus ", text)
    text = re.sub(_NUM, lambda m: " " + _int_or_digits(m.group(0).replace(",", "")) + " ", text)
    return text


def _keep_apostrophes(text: str) -> str:
    """Keep ' inside words (don't) and after a plural s (dogs'); drop quote-like uses."""
    text = re.sub(r"(?<![A-Za-z])'([^']*?)'(?![A-Za-z])", r" \1 ", text)  # 'quoted' span
    return re.sub(r"(?<![A-Za-z])'|'(?![A-Za-z])(?<![sS]')", " ", text)


def normalize_english(text: str, lowercase: bool = False) -> str:
    """Normalise English text for TTS: numbers and symbols as words, clean punctuation.

    Keeps letters (any script), spaces and the sentence punctuation ``. , ? ! '``; maps
    ``; :`` to ``,``; drops every other symbol; collapses whitespace. Never raises on a string.

    >>> normalize_english("Dr. Smith paid $5.50 for 3 “apples” in 1999 — 20% off!")
    'doctor Smith paid five dollars and fifty cents for three apples in nineteen ninety nine, twenty percent off!'

    Args:
        text: any string.
        lowercase: also lower-case the result.
    """
    text = normalize_unicode(text)
    text = expand_abbreviations(text)
    text = normalize_numbers(text)
    text = re.sub(r"\s+-+\s+|\s-+|-+\s|--+", " , ", text)  # spaced dash: a pause
    for sym, words in _SYMBOLS.items():
        text = text.replace(sym, words)
    text = re.sub(r"[;:]", ",", text)
    text = _keep_apostrophes(text)
    # Drop anything that is not a letter, whitespace or . , ? ! ' (hyphen in a word → space).
    text = "".join(c if (c.isalpha() or c in ".,?!'" or c.isspace()) else " " for c in text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([.,?!])", r"\1", text)          # "word ," → "word,"
    text = re.sub(r"([.,?!])[.,?!]*,", r"\1", text)      # ".," → "."
    text = re.sub(r",+([.?!])", r"\1", text)             # ",." → "."
    text = re.sub(r"([?!])[.?!]+", r"\1", text)          # "?!." → "?"
    text = re.sub(r"\.{2,}", ".", text)
    text = re.sub(r"([.,?!])(?=[^\s.,?!'])", r"\1 ", text)
    text = re.sub(r"^[\s.,?!]+", "", text).strip()
    return text.lower() if lowercase else text


def normalize_transcript(text: str) -> str:
    """The one normaliser for *transcripts*: what the judges score and what the CTC head spells.

    Lower-case ASCII letters and in-word apostrophes separated by single spaces: accents are
    stripped (café → cafe), curly apostrophes straightened, quote marks dropped, and every other
    character (punctuation, digits, other scripts) becomes a word break. Unlike
    :func:`normalize_english` (the TTS front end, which *spells out* numbers before synthesis)
    it never adds words: it compares what was said with what was heard.

    >>> normalize_transcript("  Don't stop — it's a ‘well-known’ café. 42")
    "don't stop it's a well known cafe"
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a transcript string, got {type(text).__name__}.")
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"[^a-z']", " ", text)
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)  # quotes, not apostrophes
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# Sentence splitting and input checks
# ---------------------------------------------------------------------------------------------

def _ends_sentence(word: str) -> bool:
    if not word or word[-1] not in ".?!":
        return False
    if word.lower() in ABBREVIATIONS or re.fullmatch(r"[A-Za-z]\.", word):
        return False  # "Dr." and initials such as "J." do not end a sentence
    return True


def _pack(chunks: list[list[str]], max_words: int) -> list[list[str]]:
    """Greedily join clause chunks into pieces of at most max_words words; hard-cut longer ones."""
    out: list[list[str]] = []
    cur: list[str] = []
    for chunk in chunks:
        if len(chunk) > max_words:
            if cur:
                out.append(cur)
                cur = []
            out += [chunk[i:i + max_words] for i in range(0, len(chunk), max_words)]
        elif len(cur) + len(chunk) <= max_words:
            cur = cur + chunk
        else:
            out.append(cur)
            cur = list(chunk)
    if cur:
        out.append(cur)
    return out


def split_sentences(text: str, max_words: int = 30) -> list[str]:
    """Split text into pieces of at most ``max_words`` words, to synthesise one at a time.

    Sentences end at words ending in ``. ? !`` (not after abbreviations or initials). A sentence
    longer than ``max_words`` is cut after commas/semicolons/colons (clauses are packed
    greedily), and a clause that is still too long is cut into hard chunks of ``max_words``.
    The words are never changed: ``" ".join(pieces).split() == text.split()``.

    Raises:
        ValueError: ``max_words < 1``.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}.")
    sentences: list[list[str]] = [[]]
    for word in text.split():
        sentences[-1].append(word)
        if _ends_sentence(word):
            sentences.append([])
    pieces: list[list[str]] = []
    for sent in sentences:
        if not sent:
            continue
        if len(sent) <= max_words:
            pieces.append(sent)
            continue
        clauses: list[list[str]] = [[]]
        for word in sent:
            clauses[-1].append(word)
            if word[-1] in ",;:":
                clauses.append([])
        pieces += _pack([c for c in clauses if c], max_words)
    return [" ".join(p) for p in pieces]


#: Default cap on one synthesis request (characters), see :func:`check_text`.
MAX_CHARS = 2000


def check_text(text: str, max_chars: int = MAX_CHARS) -> str:
    """Validate text before synthesis and return it stripped.

    Raises:
        ValueError: not a string, empty / whitespace-only, or longer than ``max_chars``.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}.")
    stripped = text.strip()
    if not stripped:
        raise ValueError("text is empty (or only whitespace); give at least one word to speak.")
    if len(stripped) > max_chars:
        raise ValueError(
            f"text is {len(stripped)} characters, more than max_chars={max_chars}; split it with "
            "minicosy.text.normalize.split_sentences(text) and synthesise the pieces one by one "
            "(or raise max_chars).")
    return stripped
