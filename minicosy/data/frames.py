"""Sentence frames of the corpus v3 grammar: each one a kind of line people say or write.

Stage: the text side of the offline corpus (docs/paper_vs_code.md §3). A frame takes a
:class:`minicosy.data.grammar.Maker` and returns ``(written text without its final mark, mark)``.
Frames are grouped by the kind of sentence they make (:data:`KINDS`): statements, questions,
requests, exclamations, dialogue lines, and lines with written numbers, times, dates, money,
percentages and abbreviations, plus connective frames (``although``, ``unless``, ``whether`` ...)
that carry the function words every English sentence needs. :func:`minicosy.data.grammar` draws
words, :mod:`minicosy.data.textbank` draws frames, weighting each kind by :data:`KIND_WEIGHTS`.

References:
    [1] Du et al., "CosyVoice 2", arXiv 2412.10117, §3 (training data; ours is a stand-in).
"""

from __future__ import annotations

from minicosy.data.grammar import ABSTRACT, CONCRETE, WH
from minicosy.data.sentences import article

_MODALS = ["will", "can", "should", "might", "must", "could", "would", "may"]
_ADVERBIALS = ["again", "right now", "at home", "at work", "together", "for a while", "after all",
               "once more", "as usual", "in the end", "by now", "on time", "for good"]
_PLACES = ("noun.location", "noun.artifact")


# ----------------------------------------------------------------------------- statements


def st_present(m):
    s, p = m.subject()
    v, o = m.verb_obj()
    return f"{s} {m.pick(['', '', 'often ', 'usually ', 'never ', 'always ', 'sometimes '])}{m.conj(v, p)} {o}", "."


def st_past(m):
    s, _ = m.subject()
    v, o = m.past_verb_obj()
    return f"{s} {v} {o} {m.when()}", "."


def st_modal(m):
    s, _ = m.subject()
    v, o = m.verb_obj(m.pick(["thing", "person"]))
    return f"{s} {m.pick(_MODALS)} {m.pick(['', 'not ', 'probably ', 'really ', 'also '])}{v} {o}", "."


def st_progressive(m):
    s, p = m.subject()
    tail = m.pick(_ADVERBIALS + [m.when(), "in the " + m.noun(*_PLACES)])
    return f"{s} {m.conj('be', p)} {m.v.gerund(m.intrans())} {tail}", "."


def st_perfect(m):
    s, p = m.subject()
    v, o = m.verb_obj()
    past = m.v.participle(v)
    have = "has" if p == "3s" else "have"
    return (f"{s} {have} {m.pick(['already', 'just', 'never', 'not yet'])} {past} {o}", ".") if past \
        else (f"{s} {have} to {v} {o}", ".")


def st_is_adj(m):
    np = m.np(*(CONCRETE + ABSTRACT), det=m.pick(["the", "this", "that", "your", "my"]), adj=0)
    return (
        f"{np} {m.pick(['is', 'was', 'seems', 'looks', 'feels'])} "
        f"{m.pick(['', 'very ', 'quite ', 'rather ', 'too '])}{m.adj()}",
        ".",
    )


def st_there(m):
    return (f"there {m.pick(['is', 'was'])} {m.np(*CONCRETE, det='a')} "
            f"{m.pick(['in', 'on', 'near', 'behind', 'under', 'beside'])} {m.np(*_PLACES, det='the', adj=0)}"), "."


def st_adverb(m):
    s, p = m.subject()
    return f"{s} {m.conj(m.intrans(), p)} {m.adv()}", "."


def st_motion(m):
    s, _ = m.subject()
    return (f"{s} {m.pick(['went', 'drove', 'walked', 'flew', 'moved', 'came back'])} to "
            f"{m.pick([m.city(), 'the ' + m.noun('noun.location', 'noun.artifact')])} {m.when()}"), "."


def st_likes(m):
    s, p = m.subject()
    return (
        f"{s} {m.conj(m.pick(['like', 'love', 'hate', 'enjoy', 'prefer', 'avoid']), p)} {m.v.gerund(m.intrans())}",
        ".",
    )


def st_wants(m):
    s, p = m.subject()
    v, o = m.verb_obj()
    return f"{s} {m.conj(m.pick(['want', 'need', 'try', 'hope', 'plan', 'forget', 'decide']), p)} to {v} {o}", "."


def st_made_of(m):
    return f"{m.np('noun.artifact', det='the', adj=0.2)} is made of {m.noun('noun.substance')}", "."


def st_gave(m):
    s, _ = m.subject()
    return f"{s} {m.pick(['gave', 'sent', 'showed', 'lent', 'sold', 'brought'])} {m.name()[0]} {m.np(*CONCRETE)}", "."


def st_belief(m):
    s, p = m.subject()
    s2, _ = m.subject()
    v, o = m.verb_obj()
    verb = m.conj(m.pick(['think', 'know', 'believe', 'feel', 'hope', 'guess', 'suppose', 'say']), p)
    return f"{s} {verb} that {s2} {m.pick(_MODALS)} {v} {o}", "."


# ----------------------------------------------------------------------------- connectives


def cx_because(m):
    s, p = m.subject()
    s2, _ = m.subject()
    v, o = m.past_verb_obj()
    conj = m.pick(["because", "although", "while", "since", "though", "even though", "as soon as", "until",
                   "before", "after", "unless", "whenever", "so that", "once", "just as", "even if"])
    return f"{s} {m.conj(m.intrans(), p)} {conj} {s2} {v} {o}", "."


def cx_if(m):
    s, _ = m.subject()
    v, o = m.verb_obj()
    cond = m.pick(["it rains", "you are ready", "we have time", "the weather is good", "nobody minds",
                   "anyone calls", "the price goes down", "it is possible", "you agree", "things go well"])
    return f"{m.pick(['if', 'unless', 'as long as', 'in case', 'when', 'once'])} {cond}, {s} will {v} {o}", "."


def cx_however(m):
    s, p = m.subject()
    s2, _ = m.subject()
    v, o = m.verb_obj()
    link = m.pick(["however", "instead", "meanwhile", "otherwise", "therefore", "still", "besides", "then",
                   "of course", "in fact", "actually", "anyway", "as a result", "for example", "on the other hand"])
    return f"{s} {m.conj(m.intrans(), p)}, {link}, {s2} {m.pick(_MODALS)} {v} {o}", "."


def cx_prep(m):
    s, _ = m.subject()
    v, o = m.past_verb_obj()
    prep = m.pick(["without", "with", "during", "within", "against", "among", "across", "toward", "beyond",
                   "through", "throughout", "despite", "around", "along", "above", "below", "between",
                   "inside", "outside", "near", "behind", "beside", "under", "over", "upon", "into",
                   "onto", "past", "via", "per", "except", "including", "regarding"])
    return f"{s} {v} {o} {prep} {m.np(*(CONCRETE + ABSTRACT + ('noun.location', 'noun.person')), adj=0.2)}", "."


def cx_and(m):
    """Two clauses in one sentence: the long tail of the length histogram (up to 30 words)."""
    a, _ = m.pick([st_past, st_present, st_modal, st_there, st_gave])(m)
    b, _ = m.pick([st_past, st_progressive, st_wants, st_belief, cx_prep, st_motion])(m)
    return f"{a}, {m.pick(['and', 'but', 'so', 'and then', 'while', 'because', 'or else'])} {b}", "."


def cx_both(m):
    a, b = m.np(*CONCRETE, det="the", adj=0), m.np(*CONCRETE, det="the", adj=0)
    pair = m.pick([("both", "and"), ("either", "or"), ("neither", "nor"), ("not only", "but also")])
    s, _ = m.subject()
    return f"{s} {m.pick(['wanted', 'needed', 'liked', 'noticed', 'lost', 'kept'])} {pair[0]} {a} {pair[1]} {b}", "."


def cx_quant(m):
    q = m.pick(["most", "all", "some", "many", "few", "none", "several", "each", "half", "both",
                "any", "much", "more", "less", "enough", "plenty"])
    pl = m.v.plural(m.noun(*CONCRETE, "noun.person"))
    return f"{q} of the {pl} {m.pick(['are', 'were', 'seem', 'look'])} {m.adj()}", "."


# ----------------------------------------------------------------------------- questions


def q_do(m):
    s, p = m.subject()
    v, o = m.verb_obj(m.pick(["thing", "person"]))
    return f"{'does' if p == '3s' else 'do'} {s} {m.pick(['really ', 'still ', '', 'ever '])}{v} {o}", "?"


def q_did(m):
    s, _ = m.subject()
    v, o = m.verb_obj()
    return f"did {s} {v} {o} {m.when()}", "?"


def q_wh(m):
    s, _ = m.subject()
    v, o = m.verb_obj()
    wh = m.pick([w for w in WH if w != "who"] + ["which day", "how often", "how long", "at what time"])
    return f"{wh} {m.pick(['did', 'will', 'should', 'can', 'could', 'would'])} {s} {v} {o}", "?"


def q_who(m):
    v, o = m.past_verb_obj()
    return f"{m.pick(['who', 'which of you', 'who else', 'whoever'])} {v} {o}", "?"


def q_is(m):
    np = m.np(*(CONCRETE + ABSTRACT), det=m.pick(["the", "this", "that", "your"]), adj=0)
    return f"{m.pick(['is', 'was', 'is not', 'was not'])} {np} {m.pick(['too ', 'very ', 'a bit ', ''])}{m.adj()}", "?"


def q_have(m):
    return (
        f"have you ever {m.pick(['seen', 'tried', 'used', 'heard of', 'wanted', 'owned', 'made'])} "
        f"{m.np(*CONCRETE, det='a')}",
        "?",
    )


def q_how_many(m):
    pl = m.v.plural(m.noun(*CONCRETE))
    return (
        f"how {m.pick(['many', 'much'])} {pl} {m.pick(['do we need', 'are left', 'did you buy', 'will there be'])}",
        "?",
    )


def q_tag(m):
    np = m.np(*CONCRETE, det="the", adj=0)
    adj = m.adj()
    return (
        f"{np} "
        f"{m.pick([('is ' + adj + ', is it not'), ('was ' + adj + ', was it not'), ('looks ' + adj + ', right')])}",
        "?",
    )


# ----------------------------------------------------------------------------- requests


def rq_please(m):
    v, o = m.verb_obj(m.pick(["thing", "thing", "person"]))
    opener = m.pick(["please", "could you please", "can you", "would you", "would you mind if we", "let's",
                     "do not", "try to", "remember to", "make sure you", "go and", "help me"])
    mark = "?" if opener.split()[0] in ("could", "can", "would") else "."
    return f"{opener} {v} {o}{m.pick(['', ' for me', ' now', ' later', ' ' + m.when()])}", mark


def rq_imperative(m):
    v, o = m.verb_obj()
    return f"{v} {o} {m.pick(['first', 'carefully', 'slowly', 'right away', 'again', 'before you leave'])}", "."


def rq_dont(m):
    return f"{m.pick(['do not', 'never', 'please do not'])} {m.intrans()} {m.pick(_ADVERBIALS)}", "."


# ----------------------------------------------------------------------------- exclamations


def ex_what(m):
    a = m.adj()
    return f"what {article(a)} {a} {m.noun(*CONCRETE, 'noun.event')}", "!"


def ex_how(m):
    return f"how {m.adj()} {m.pick(['it is', 'that was', 'this looks', 'you are', 'they were'])}", "!"


_INTERJECTIONS = ['oh no', 'look', 'hey', 'wow', 'watch out', 'hurry up', 'come on', 'well done', 'thank goodness']


def ex_short(m):
    v, o = m.verb_obj()
    return (
        f"{m.pick(_INTERJECTIONS)}, "
        f"{m.pick(['I', 'we', 'you'])} {m.pick(['forgot to', 'have to', 'need to', 'must not'])} {v} {o}",
        "!",
    )


# ----------------------------------------------------------------------------- dialogue


def dl_said(m):
    v, o = m.verb_obj()
    n, _ = m.name()
    line = f"{m.pick(['I will', 'We should', 'You must', 'Let us', 'I can', 'I did not'])} {v} {o}"
    verb = m.pick(["said", "asked", "replied", "whispered", "shouted", "added", "explained", "answered"])
    return f'"{line}," {verb} {n}', "."


def dl_says(m):
    n, _ = m.name()
    n2, _ = m.name()
    v, o = m.verb_obj()
    return f"{n} {m.pick(['says', 'told me', 'said', 'thinks'])} that {n2} {m.pick(_MODALS)} {v} {o}", "."


def dl_reply(m):
    v, o = m.verb_obj()
    return (
        f"{m.pick(['yes', 'no', 'sure', 'okay', 'well', 'sorry', 'thanks', 'right', 'really', 'maybe'])}, "
        f"{m.pick(['I think', 'I guess', 'I know', 'I hope', 'it seems', 'honestly'])} we {m.pick(_MODALS)} {v} {o}"
    ), "."


def dl_phone(m):
    n, _ = m.name()
    return m.pick([(f"hello, this is {n}, can I speak to {m.name()[0]}", "?"),
                   (f"hi {n}, I am calling about {m.np(*(CONCRETE + ABSTRACT), det='the', adj=0)}", "."),
                   (f"sorry, {n} is not here right now, can I take a message", "?"),
                   (f"could you ask {n} to call me back {m.when()}", "?")])


# ----------------------------------------------------------------------------- numbers, dates, money, abbreviations


def nu_costs(m):
    return (
        f"{m.np('noun.artifact', 'noun.food', det=m.pick(['the', 'this', 'that']))} "
        f"{m.pick(['costs', 'cost', 'was', 'is'])} {m.money()}",
        ".",
    )


def nu_paid(m):
    s, _ = m.subject()
    return (
        f"{s} {m.pick(['paid', 'spent', 'saved', 'owes', 'earned', 'lost'])} {m.money()} {m.pick(['for', 'on'])} "
        f"{m.np(*CONCRETE, det='a')}",
        ".",
    )


def nu_count(m):
    s, p = m.subject()
    pl = m.v.plural(m.noun(*CONCRETE))
    verb = m.pick([m.conj(m.pick(['need', 'have', 'want', 'keep']), p), 'bought', 'found', 'counted', 'ordered'])
    return f"{s} {verb} {m.count(2, 99)} {pl}", "."


def nu_time(m):
    thing = m.pick(["the meeting", "the train", "the bus", "the class", "the show", "dinner", "the game",
                    "the concert", "my flight", "the lesson", "the party", "the interview", "the store"])
    return f"{thing} {m.pick(['starts', 'leaves', 'opens', 'closes', 'ends', 'begins'])} at {m.clock()}", "."


def nu_date(m):
    n, _ = m.name()
    return m.pick(
        [
            (f"{n} was born on {m.date()}", "."),
            (f"the {m.noun('noun.event', 'noun.act')} is on {m.date()}", "."),
            (f"we moved to {m.city()} in {m.r.randint(1950, 2029)}", "."),
            (f"is the deadline {m.date()} or later", "?"),
        ]
    )


def nu_percent(m):
    return (
        f"{m.pick(['about', 'almost', 'only', 'nearly', 'over'])} {m.percent()} of the "
        f"{m.v.plural(m.noun('noun.person'))} "
        f"{m.pick(['agreed', 'voted', 'said yes', 'stayed home', 'came back'])}",
        ".",
    )


def nu_ordinal(m):
    n, _ = m.name()
    k = m.r.randint(1, 30)
    suf = "th" if 4 <= k <= 20 or k > 23 else {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd"}[k]
    return (
        f"{n} {m.pick(['lives on the', 'works on the', 'finished', 'came', 'celebrated the'])} {k}{suf} "
        f"{m.pick(['floor', 'time', 'place', 'birthday', 'of the month'])}",
        ".",
    )


def nu_measure(m):
    unit = m.pick(["miles", "kilometers", "pounds", "kilos", "hours", "minutes", "meters", "feet", "cups", "liters"])
    num = m.pick(
        [
            str(m.r.randint(2, 500)),
            f"{m.r.randint(1, 9)}.{m.r.randint(1, 9)}",
            f"{m.r.randint(1, 9)},{m.r.randint(100, 999)}",
        ]
    )
    return f"{m.np(*CONCRETE, det='the', adj=0)} {m.pick(['is', 'was', 'weighs', 'takes'])} about {num} {unit}", "."


def nu_abbrev(m):
    title = m.pick(["Dr.", "Mr.", "Mrs.", "Ms.", "Prof."])
    return m.pick(
        [
            (
                f"{title} {m.pick(['Lee', 'Brown', 'Patel', 'Chen', 'Smith', 'Kim', 'Garcia'])} will see you at "
                f"{m.clock()}",
                ".",
            ),
            (f"we visited St. {m.pick(['Louis', 'Paul', 'Andrews', 'Albans', 'Helens', 'Ives'])} {m.when()}", "."),
            (f"bring {m.v.plural(m.noun('noun.artifact'))}, {m.v.plural(m.noun('noun.artifact'))}, etc.", ""),
            (f"take something warm, e.g. {m.np('noun.artifact', det='a', adj=0)}", "."),
            (f"the office is in room No. {m.r.randint(1, 400)}", "."),
        ]
    )



# ----------------------------------------------------------------------------- everyday words WordNet lacks
#: Frequent modern words (checked against a word-frequency list by ``minicosy data text-stats``) that
#: WordNet's 2006 lexicon and SemCor counts miss; a few frames carry them.
_CASUAL = ["yeah", "okay", "ok", "awesome", "cool", "great", "sure", "right", "fine", "yes", "no"]
_MODERN = ["website", "app", "videos", "online", "digital", "email", "phone", "laptop", "festival", "awards",
           "centre", "environmental", "social media", "podcast", "password", "download", "update"]
_MORE_NAMES = ["Chris", "Richard", "Steve", "Jennifer", "Jessica", "Matthew", "Joshua", "Ashley", "Brandon"]


def dl_casual(m):
    n = m.pick(_MORE_NAMES + [m.name()[0]])
    going = m.pick(["I am gonna", "I wanna", "we gotta", "I am going to", "we need to", "I want to"])
    return f"{m.pick(_CASUAL)}, {n}, {going} {m.intrans()} {m.pick(_ADVERBIALS)}", m.pick([".", "!"])


def st_modern(m):
    n = m.pick(_MORE_NAMES + [m.name()[0]])
    return (f"{n} {m.pick(['posted', 'shared', 'found', 'watched', 'checked'])} "
            f"{m.pick(['the', 'our', 'that'])} {m.pick(_MODERN)} "
            f"{m.pick(['about', 'for', 'from'])} {m.np(*(CONCRETE + ABSTRACT), adj=0.2)}"), "."


KINDS = {"statement": "st_", "connective": "cx_", "question": "q_", "request": "rq_", "exclamation": "ex_",
         "dialogue": "dl_", "numbers": "nu_"}
#: kind → its frames, in name order.
FRAMES = {kind: [fn for name, fn in sorted(globals().items()) if name.startswith(prefix) and callable(fn)]
          for kind, prefix in KINDS.items()}
#: Share of each kind among generated sentences (statements and connectives carry most words).
KIND_WEIGHTS = {"statement": 0.30, "connective": 0.17, "question": 0.16, "request": 0.09,
                "exclamation": 0.05, "dialogue": 0.09, "numbers": 0.14}
