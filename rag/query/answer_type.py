"""Does an answer give the kind of figure the question asks for?

A question asking for a rate ("5年总生存率是多少", "what is the objective response rate") is
answered by a sentence that states one: a percentage, a fraction such as 5/6, or a multiple
("提升 1.463 倍"). When the papers discuss the topic but never give that rate, the best sentences
are about the topic and similarity cannot tell; the missing figure can. Such an answer is refused
rather than shown: quoting sentences that do not contain the figure would look like an answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rag.knowledge import domain_blocks, language, languages


def _rate_patterns() -> tuple[str, str]:
    """The patterns of a question asking for a rate and of a text stating one, from the rate words of
    every language (rag/data/domain/medical.json). "率" covers 生存率, 缓解率, 发生率; "N-year
    survival" is a rate by convention. Words of a language that spaces them are matched whole."""
    asks, percents, multiples, fractions = [], [], [], []
    for lang, rates in domain_blocks("rates"):
        fractions += rates.get("fractions", [])
        if language(lang).get("word_boundaries"):
            asks.append(rf"\b(?:{'|'.join(rates['asks'])})\b")
            asks += [rf"\b{phrase}\b" for phrase in rates["asks_phrases"]]
            percents += [rf"\b{word}\b" for word in rates["percent_words"]]
            multiples += [rf"\b\d+(?:\.\d+)?{word}\b" for word in rates["multiples"]]
        else:
            asks += [*rates["asks"], *rates["asks_phrases"]]
            percents += rates["percent_words"]
            multiples += [rf"\d{word}" for word in rates["multiples"]]
    # A percentage, a fraction such as 5/6 or in words ("1 in 50,000", "每10万人", "万分之三"), or a
    # multiple ("提升 1.463 倍", "2.5-fold").
    states = ["[%％‰]", *percents, r"\d\s*/\s*\d", *fractions, *multiples]
    return "|".join(asks), "|".join(states)


def _words(lang: str, words: Iterable[str]) -> list[str]:
    """Pattern pieces of one language, matched whole in a language that spaces its words."""
    whole = language(lang).get("word_boundaries")
    return [rf"\b(?:{w})\b" if whole else w for w in words]


def _quantity_pattern() -> str:
    """A question asking for any number (a count, rate, share, dose, ratio or year), from the quantity
    words of every language; words of a language that spaces them are matched whole."""
    return "|".join(w for lang, q in domain_blocks("quantities") for w in _words(lang, q["asks"]))


def _states_quantity_pattern() -> str:
    """A text stating an amount: a digit, or a number word or ordinal of any language ("seven",
    "third", "五个", "十余例", "第二"); "澳门市划分为几个堂区？" is answered by "五个堂区"."""
    pieces = [r"\d"]
    for lang in languages():
        pieces += _words(lang, language(lang).get("number_words", ()))
    return _either(pieces)


def _frequency_patterns() -> tuple[str, str]:
    """A question asking how often something occurs ("How many people are affected by X?",
    "prevalence"), and a text saying how often ("rare", "common"): such a question is answered by
    "X is a rare condition; its prevalence is unknown" as often as by a figure. Only for such
    questions: "rare" answers no "when" or "what dose"."""
    blocks = [(lang, q["frequency"]) for lang, q in domain_blocks("quantities") if "frequency" in q]
    asks = [w for lang, f in blocks for w in _words(lang, f["asks"])]
    states = [w for lang, f in blocks for w in _words(lang, f["states"])]
    return _either(asks), _either(states)


def _either(patterns: list[str]) -> str:
    return "|".join(f"(?:{p})" for p in patterns) or "(?!)"


def _not_rate_pattern() -> str:
    """Words that hold a rate word and ask for no share (效率, heart rate: a value in its own units)."""
    return _either(
        [w for lang, rates in domain_blocks("rates") for w in _words(lang, rates.get("not_asks", ()))]
    )


def _yes_no_pattern() -> str:
    """A question answered yes or no ("是否…", "Is … ?"), from rag/data/lang/*.json."""
    return _either([p for lang in languages() for p in language(lang).get("yes_no", ())])


_ASKS_RATE, _STATES_RATE, _ASKS_QUANTITY, _NOT_RATE, _YES_NO, _STATES_QUANTITY, _ASKS_FREQ, _STATES_FREQ = (
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        *_rate_patterns(),
        _quantity_pattern(),
        _not_rate_pattern(),
        _yes_no_pattern(),
        _states_quantity_pattern(),
        *_frequency_patterns(),
    )
)


# The words that ask for a kind of answer ("what fraction", "incidence", "多少"): they say what is
# wanted, not what it is about.
ANSWER_TYPE_WORDS = re.compile(
    _either([p for p in (_rate_patterns()[0], _quantity_pattern()) if p]), re.IGNORECASE
)


# Vulgar fractions the normaliser keeps (rag/data/normalise.json): "1½ hours".
_FRACTIONS = "½⅓⅔¼¾⅕⅙⅛"


def _measure_patterns() -> dict[str, tuple[re.Pattern[str], re.Pattern[str]]]:
    """kind -> (a question asking for that measure, a text stating one), from the `measures` of every
    language (rag/data/lang/*.json), merged per kind. A text states a measure with a number and a unit
    of that kind in any language (Chinese papers write "3 d", English questions meet Chinese text), or
    with one of the kind's own `states` ("aged 63", "$"), matched as written. Question words of a
    language that spaces its words are matched whole."""
    asks: dict[str, list[str]] = {}
    states: dict[str, list[str]] = {}
    for lang in languages():
        data = language(lang)
        words = _either(list(data.get("measure_numbers", ())))
        # Digits may touch their unit ("45min", "3d") or close a bracket before it ("(12.5±3.2)d"); a
        # number word is a word of its own where words are spaced ("an hour", not the "an" + "d" of
        # "and"). A run of digits is matched from its start only: unanchored, each digit of a long run
        # would start the scan again.
        spaced = data.get("word_boundaries")
        digits = rf"(?<![\d,.{_FRACTIONS}])[\d{_FRACTIONS}][\d,.{_FRACTIONS}]*[)）]?[\s-]*"
        number = rf"{digits}|(?<![a-z])(?:{words})" + (r"[\s-]+" if spaced else r"\s*")
        for measure in data.get("measures", ()):
            kind = measure["kind"]
            asks.setdefault(kind, []).extend(_words(lang, measure["asks"]))
            units = _either(list(measure["units"]))
            # A Latin unit ends where its letters do: "1~5d即可" (a Han character is a word character,
            # so \b would not end it there).
            end = "(?![A-Za-z])" if spaced else ""
            states.setdefault(kind, []).append(rf"(?:{number})(?:{units}){end}")
            states[kind] += measure.get("states", ())  # as written: "$" has no word boundary
    return {
        kind: (
            re.compile(_either(asks[kind]), re.IGNORECASE),
            re.compile(_either(states[kind]), re.IGNORECASE),
        )
        for kind in asks
    }


_MEASURES = _measure_patterns()


def asks_measure(question: str) -> tuple[str, ...]:
    """The kinds of measure the question asks for (a duration, an age, a length, a price, a weight, a
    dose, an area: "How long did each session last?", "平均住院日是多少天？"), in the order of the data; none
    for a rate (the rate is the answer type then) or a yes/no question."""
    if asks_yes_no(question) or asks_rate(question):
        return ()
    return tuple(kind for kind, (asks, _) in _MEASURES.items() if asks.search(question))


def states_measure(text: str, kinds: Iterable[str]) -> bool:
    """Whether the text states a measure of one of the kinds: a number with its unit ("approximately
    one hour", "住院 12 天", "$1,200")."""
    return any(_MEASURES[kind][1].search(text) for kind in kinds if kind in _MEASURES)


def asks_yes_no(question: str) -> bool:
    """Whether the question is answered yes or no: by the sentence that concludes, not by a figure."""
    return bool(_YES_NO.search(question.strip()))


def asks_rate(question: str) -> bool:
    """Whether the question asks for a rate, share or proportion (a yes/no question about a rate asks
    whether, not how much)."""
    if asks_yes_no(question):
        return False
    return bool(_ASKS_RATE.search(_NOT_RATE.sub(" ", question)))


def asks_quantity(question: str) -> bool:
    """Whether the question asks for a number: a count, rate, share, dose, ratio or year. Neither
    encoder nor word overlap sees this answer type, so sentence scoring favours a number for it."""
    return not asks_yes_no(question) and bool(_ASKS_QUANTITY.search(question))


def states_rate(text: str) -> bool:
    """Whether the text states a rate: a percentage, a fraction or a multiple."""
    return bool(_STATES_RATE.search(text))


def states_frequency(text: str) -> bool:
    """Whether the text says in words how often something occurs ("rare", "罕见")."""
    return bool(_STATES_FREQ.search(text))


def states_how_often(text: str) -> bool:
    """Whether the text answers a question of how often something occurs: in words ("rare", "罕见")
    or as a rate (a percentage, a fraction such as "1 in 10,000", a multiple)."""
    return states_frequency(text) or states_rate(text)


def asks_frequency(question: str) -> bool:
    """Whether the question asks how often something occurs (how many people, how common, prevalence)."""
    return not asks_yes_no(question) and bool(_ASKS_FREQ.search(question))


def states_quantity(text: str, frequency: bool = False) -> bool:
    """Whether the text states an amount: a digit or a number word, or with `frequency` also a word
    saying how often something occurs (citation marks are the caller's to remove)."""
    return bool(_STATES_QUANTITY.search(text) or (frequency and _STATES_FREQ.search(text)))
