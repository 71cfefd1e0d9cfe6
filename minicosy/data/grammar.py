"""A sentence grammar over the WordNet lexicon: corpus v3's generated sentences, written as people type.

Stage: the text side of the offline corpus (docs/paper_vs_code.md §3). Version 2's templates
(:mod:`minicosy.data.sentences`) combined 1,783 hand-listed words; this grammar draws nouns,
verbs, adjectives and adverbs from WordNet (:mod:`minicosy.data.lexicon`), each weighted by its
SemCor frequency so that common words come often and rare ones still appear, and combines them
through a few dozen *frames* — statements, questions, requests, exclamations, dialogue lines
(``"Wait for me," said Anna.``), and lines with numbers, dates, times, money, percentages and
abbreviations written the way people write them (``$12.50``, ``7:45``, ``March 3rd, 2025``,
``Dr. Lee``). The *written* form is what a frame returns; :mod:`minicosy.data.textbank` turns it
into the *spoken* form through :func:`minicosy.text.normalize.normalize_english`, the same
normaliser the TTS front end applies to user input.

Semantics are kept plausible by WordNet's classes: a ``verb.consumption`` verb takes a
``noun.food`` object, ``verb.communication`` verbs take a person, motion verbs go *to* a
``noun.location`` and so on (the class pairs are :data:`OBJECTS`).

# simplification: the grammar knows nothing about count vs mass nouns or verb argument
# structure beyond WordNet's frames; some sentences are odd ("She polished the patience."),
# which costs the LM little — it learns to read text, not to judge it.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §3 (training data; ours is a stand-in).
    [2] Miller, "WordNet: a lexical database for English", CACM 38(11), 1995.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re

from minicosy.data.lexicon import (
    FRAME_INTRANS,
    FRAME_PERSON,
    FRAME_THING,
    Lexicon,
    cmudict_words,
)
from minicosy.data.sentences import article, plural
from minicosy.data.words import (
    _DOUBLE,
    _IRREGULAR,
    _PLURAL,
    CITIES,
    DAYS,
    MONTHS,
    NAMES_F,
    NAMES_M,
)

#: Surnames for ``Dr. Lee`` / ``Mrs. Brown`` (common ones, all in cmudict).
SURNAMES = """Smith Johnson Brown Lee Miller Davis Wilson Moore Taylor Clark Lewis Walker Hall Allen
Young King Wright Scott Green Baker Adams Nelson Hill Campbell Mitchell Roberts Carter Phillips
Evans Turner Parker Collins Edwards Stewart Morris Murphy Cook Rogers Morgan Cooper Peterson Reed
Bailey Bell Kelly Howard Ward Cox Richardson Wood Watson Brooks Bennett Gray James Hughes Price
Sanders Myers Long Ross Foster Powell Jenkins Perry Russell Sullivan Fisher Hayes Ford Graham
Wallace West Cole Hunter Palmer Stone Wells Patel Chen Wong Garcia Lopez Nguyen Kim""".split()  # noqa: SIM905
TITLES = ["Mr.", "Mrs.", "Ms.", "Dr.", "Prof."]

#: Noun classes that are concrete enough to be handled, seen, bought ...
CONCRETE = ("noun.artifact", "noun.food", "noun.animal", "noun.plant", "noun.object", "noun.substance")
ABSTRACT = ("noun.act", "noun.communication", "noun.cognition", "noun.attribute", "noun.state",
            "noun.event", "noun.feeling")
#: Verb class → noun classes its object may come from.
OBJECTS = {"verb.consumption": ("noun.food",), "verb.contact": ("noun.artifact", "noun.object", "noun.food"),
           "verb.possession": ("noun.artifact", "noun.food", "noun.possession"),
           "verb.creation": ("noun.artifact", "noun.food", "noun.communication"),
           "verb.perception": CONCRETE + ("noun.person", "noun.location"),
           "verb.cognition": ("noun.cognition", "noun.communication", "noun.act", "noun.attribute"),
           "verb.communication": ("noun.communication", "noun.cognition", "noun.act"),
           "verb.change": ("noun.artifact", "noun.state", "noun.attribute", "noun.substance"),
           "verb.motion": ("noun.artifact", "noun.object"), "verb.social": ("noun.act", "noun.group"),
           "verb.emotion": CONCRETE + ABSTRACT, "verb.competition": ("noun.act", "noun.event"),
           "verb.stative": ("noun.artifact", "noun.attribute", "noun.possession"),
           "verb.body": ("noun.artifact", "noun.body")}
WH = ["what", "where", "when", "why", "how", "who"]


class Vocab:
    """Weighted word pools built once from a :class:`Lexicon`; every form is in cmudict."""

    def __init__(self, lex: Lexicon, min_count: int = 1, power: float = 0.7):
        self.known = cmudict_words()
        self.lex, self.pools = lex, {}
        for pos in ("noun", "verb", "adj", "adv"):
            for x in lex.lemmas[pos]:
                if x.count >= min_count and self._forms_ok(x):
                    w = (x.count + 1) ** power
                    self.pools.setdefault((pos, x.lexname), []).append((x, w))
                    self.pools.setdefault((pos, "*"), []).append((x, w))
                    for frame, tag in ((FRAME_INTRANS, "intrans"), (FRAME_THING, "thing"), (FRAME_PERSON, "person")):
                        if pos == "verb" and x.frames & frame:
                            self.pools.setdefault(("verb", tag, x.lexname), []).append((x, w))
                            self.pools.setdefault(("verb", tag), []).append((x, w))
        self.cum = {k: list(itertools.accumulate(w for _, w in v)) for k, v in self.pools.items()}

    def _forms_ok(self, x) -> bool:
        if len(x.word) < 2 or x.word not in self.known:
            return False
        if x.pos == "noun":
            return self.plural(x.word) is None or self.plural(x.word) in self.known
        if x.pos == "verb":
            forms = [self.third(x.word), self.gerund(x.word)] + ([self.past(x.word)] if self.past(x.word) else [])
            return all(f in self.known for f in forms)
        return x.pos != "adv" or x.word.endswith("ly") or x.count >= 20

    def draw(self, rng: random.Random, *key) -> str:
        """A lemma from pool ``key`` (e.g. ``("noun", "noun.food")``), frequency weighted."""
        pool, cum = self.pools[key], self.cum[key]
        return pool[bisect.bisect(cum, rng.random() * cum[-1]) if len(pool) > 1 else 0][0].word

    def has(self, *key) -> bool:
        return key in self.pools

    # word forms: WordNet's exception lists first, then the v2 rules of minicosy.data.sentences
    def plural(self, noun: str) -> str | None:
        forms = self.lex.irregular["noun"].get(noun)
        if noun in _PLURAL:
            return _PLURAL[noun]
        return forms[0] if forms else plural(noun)

    def _exc(self, verb: str, suffix: str) -> str | None:
        forms = self.lex.irregular["verb"].get(verb, [])
        return next((f for f in forms if f.endswith(suffix) and f.startswith(verb[:2])), None)

    def past(self, verb: str) -> str | None:
        """Simple past, or ``None`` for an irregular verb whose past we cannot tell from its participle."""
        if verb in _IRREGULAR:
            return _IRREGULAR[verb][0]
        forms = self.lex.irregular["verb"].get(verb, [])
        if any(not f.endswith(("ed", "ing", "s")) for f in forms):
            return None
        if self._exc(verb, "ed"):
            return self._exc(verb, "ed")
        if verb.endswith("e"):
            return verb + "d"
        if re.search(r"[^aeiou]y$", verb):
            return verb[:-1] + "ied"
        return verb + verb[-1] + "ed" if verb in _DOUBLE else verb + "ed"

    def participle(self, verb: str) -> str | None:
        """Past participle ("eat" → "eaten"), ``None`` where :meth:`past` is ``None``."""
        return _IRREGULAR[verb][1] if verb in _IRREGULAR else self.past(verb)

    def third(self, verb: str) -> str:
        return {"be": "is", "have": "has", "do": "does", "go": "goes"}.get(verb) or plural(verb)

    def gerund(self, verb: str) -> str:
        if self._exc(verb, "ing"):
            return self._exc(verb, "ing")
        if verb in _DOUBLE:
            return verb + verb[-1] + "ing"
        if verb.endswith("ie"):
            return verb[:-2] + "ying"
        if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")) and verb != "be":
            return verb[:-1] + "ing"
        return verb + "ing"


class Maker:
    """Phrases for the frames: one ``random.Random`` and one :class:`Vocab`."""

    def __init__(self, rng: random.Random, vocab: Vocab):
        self.r, self.v = rng, vocab

    def pick(self, seq):
        return self.r.choice(seq)

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def noun(self, *classes) -> str:
        cls = self.pick([c for c in classes if self.v.has("noun", c)] or ["*"])
        return self.v.draw(self.r, "noun", cls)

    def adj(self) -> str:
        return self.v.draw(self.r, "adj", "adj.all")

    def adv(self) -> str:
        return self.v.draw(self.r, "adv", "adv.all")

    def np(self, *classes, det: str | None = None, adj: float = 0.35, plural_ok: bool = True) -> str:
        """A noun phrase: "the old lamp", "an apple", "my three cups", "some flour"."""
        noun = self.noun(*classes)
        a = self.adj() + " " if self.chance(adj) else ""
        det = det or self.pick(["the", "the", "a", "my", "your", "this", "that", "our", "his", "her", "PL"])
        pl = self.v.plural(noun)
        if det == "PL" and plural_ok and pl and pl != noun:
            return f"{self.pick(['some', 'the', 'these', 'those', 'many', 'a few', self.count()])} {a}{pl}"
        det = "the" if det == "PL" else det
        return f"{article(a or noun)} {a}{noun}" if det == "a" else f"{det} {a}{noun}"

    def name(self) -> tuple[str, str]:
        """A person: a first name, a title + surname, or "my" + a person noun; with its pronoun."""
        k = self.r.random()
        if k < 0.45:
            return (self.pick(NAMES_F), "she") if self.chance(0.5) else (self.pick(NAMES_M), "he")
        if k < 0.65:
            title = self.pick(TITLES)
            pro = {"Mr.": "he", "Mrs.": "she", "Ms.": "she"}.get(title, self.pick(["he", "she"]))
            return f"{title} {self.pick(SURNAMES)}", pro
        return f"{self.pick(['my', 'your', 'our', 'the', 'her', 'his'])} {self.noun('noun.person')}", \
            self.pick(["he", "she"])

    def subject(self) -> tuple[str, str]:
        """(subject, person): person ∈ {"3s", "3p", "1s", "2", "1p"}."""
        k = self.r.random()
        if k < 0.5:
            return self.name()[0], "3s"
        if k < 0.6:
            pl = self.v.plural(self.noun("noun.person"))
            return f"the {pl}", "3p"
        return self.pick([("I", "1s"), ("you", "2"), ("we", "1p"), ("they", "3p"), ("she", "3s"), ("he", "3s")])

    def conj(self, verb: str, person: str) -> str:
        if verb == "be":
            return {"1s": "am", "3s": "is"}.get(person, "are")
        return self.v.third(verb) if person == "3s" else verb

    def verb_obj(self, tag: str = "thing") -> tuple[str, str]:
        """(verb, object) that go together by class: eat + a food, tell + a person ..."""
        if tag == "person":
            return self.v.draw(self.r, "verb", "person"), self.name()[0]
        verb = self.v.draw(self.r, "verb", "thing")
        lexname = next(x.lexname for x, _ in self.v.pools[("verb", "thing")] if x.word == verb)
        return verb, self.np(*OBJECTS.get(lexname, CONCRETE))

    def past_verb_obj(self) -> tuple[str, str]:
        for _ in range(20):
            verb, obj = self.verb_obj(self.pick(["thing", "thing", "person"]))
            if self.v.past(verb):
                return self.v.past(verb), obj
        return "found", self.np(*CONCRETE)

    def intrans(self) -> str:
        return self.v.draw(self.r, "verb", "intrans")

    # ---------------------------------------------------------------- written numbers
    def count(self, lo: int = 2, hi: int = 12) -> str:
        """A small count written as digits or as a word, the way people mix them."""
        n = self.r.randint(lo, hi)
        words = [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
        ]
        return words[n] if n <= 12 and self.chance(0.5) else str(n)

    def money(self) -> str:
        cur = self.pick(["$", "$", "$", "£", "€"])
        whole = self.pick([self.r.randint(1, 20), self.r.randint(1, 99), self.r.randint(100, 2500)])
        if self.chance(0.5):
            return f"{cur}{whole:,}.{self.r.choice(['99', '50', '25', '95', '05', str(self.r.randint(10, 99))])}"
        return f"{cur}{whole:,}"

    def clock(self) -> str:
        h, m = self.r.randint(1, 12), self.pick(["00", "15", "30", "45", "05", "10", "20", "40", "50"])
        if self.chance(0.2):
            return f"{h} o'clock"
        return f"{h}:{m}" + self.pick(["", "", " am", " pm", " in the morning", " in the evening"])

    def date(self) -> str:
        day, month = self.r.randint(1, 28), self.pick(MONTHS)
        suf = "th" if 4 <= day <= 20 or day > 23 else {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd"}[day]
        if self.chance(0.5):
            return f"{month} {day}{suf}, {self.r.randint(1950, 2030)}"
        return f"{month} {day}{suf}"

    def percent(self) -> str:
        return f"{self.r.randint(2, 95)}%" if self.chance(0.7) else f"{self.r.randint(1, 9)}.{self.r.randint(1, 9)}%"

    def when(self) -> str:
        return self.pick(["today", "tomorrow", "tonight", "yesterday", "this morning", "last week", "next week",
                          "on " + self.pick(DAYS), "at " + self.clock(), "on " + self.date(), "in " + self.pick(MONTHS),
                          "in " + str(self.r.randint(1960, 2029)), "every day", "after lunch", "later", "soon"])

    def city(self) -> str:
        return self.pick(CITIES)
