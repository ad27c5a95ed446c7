"""Does an answer give the kind of figure the question asks for?

A question asking for a rate ("5年总生存率是多少", "what is the objective response rate") is
answered by a sentence that states one: a percentage, a fraction such as 5/6, or a multiple
("提升 1.463 倍"). When the papers discuss the topic but never give that rate, the best sentences
are about the topic and similarity cannot tell; the missing figure can. Such an answer is refused
rather than shown: quoting sentences that do not contain the figure would look like an answer.
"""

from __future__ import annotations

import re

from rag.knowledge import domain_blocks, language


def _rate_patterns() -> tuple[str, str]:
    """The patterns of a question asking for a rate and of a text stating one, from the rate words of
    every language (rag/data/domain/medical.json). "率" covers 生存率, 缓解率, 发生率; "N-year
    survival" is a rate by convention. Words of a language that spaces them are matched whole."""
    asks, percents, multiples = [], [], []
    for lang, rates in domain_blocks("rates"):
        if language(lang).get("word_boundaries"):
            asks.append(rf"\b(?:{'|'.join(rates['asks'])})\b")
            asks += [rf"\b{phrase}\b" for phrase in rates["asks_phrases"]]
            percents += [rf"\b{word}\b" for word in rates["percent_words"]]
            multiples += [rf"\b\d+(?:\.\d+)?{word}\b" for word in rates["multiples"]]
        else:
            asks += [*rates["asks"], *rates["asks_phrases"]]
            percents += rates["percent_words"]
            multiples += [rf"\d{word}" for word in rates["multiples"]]
    # A percentage, a fraction such as 5/6, or a multiple ("提升 1.463 倍", "2.5-fold").
    states = ["[%％‰]", *percents, r"\d\s*/\s*\d", *multiples]
    return "|".join(asks), "|".join(states)


def _quantity_pattern() -> str:
    """A question asking for any number (a count, rate, share, dose, ratio or year), from the quantity
    words of every language; words of a language that spaces them are matched whole."""
    asks = []
    for lang, quantities in domain_blocks("quantities"):
        whole = language(lang).get("word_boundaries")
        asks += [rf"\b(?:{word})\b" if whole else word for word in quantities["asks"]]
    return "|".join(asks)


_ASKS_RATE, _STATES_RATE, _ASKS_QUANTITY = (
    re.compile(pattern, re.IGNORECASE) for pattern in (*_rate_patterns(), _quantity_pattern())
)


def asks_rate(question: str) -> bool:
    """Whether the question asks for a rate, share or proportion."""
    return bool(_ASKS_RATE.search(question))


def asks_quantity(question: str) -> bool:
    """Whether the question asks for a number: a count, rate, share, dose, ratio or year. Neither
    encoder nor word overlap sees this answer type, so sentence scoring favours a number for it."""
    return bool(_ASKS_QUANTITY.search(question))


def states_rate(text: str) -> bool:
    """Whether the text states a rate: a percentage, a fraction or a multiple."""
    return bool(_STATES_RATE.search(text))
