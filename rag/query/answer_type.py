"""Does an answer give the kind of figure the question asks for?

A question asking for a rate ("5年总生存率是多少", "what is the objective response rate") is
answered by a sentence that states one: a percentage, a fraction such as 5/6, or a multiple
("提升 1.463 倍"). When the papers discuss the topic but never give that rate, the best sentences
are about the topic and similarity cannot tell; the missing figure can. Such an answer is refused
rather than shown: quoting sentences that do not contain the figure would look like an answer.
"""

from __future__ import annotations

import re

# "率" covers 生存率, 缓解率, 发生率; "N-year survival" is a rate by convention.
_ASKS_RATE = re.compile(
    r"率|比例|占比|百分之|百分比|"
    r"\b(?:rates?|proportion|percentage|percent|fraction)\b|\b\d+-year (?:[a-z-]+ )?survival\b",
    re.IGNORECASE,
)
_STATES_RATE = re.compile(
    r"[%％‰]|百分之|\bper ?cent\b|\d\s*/\s*\d|\d\s*倍|\b\d+(?:\.\d+)?-?fold\b|\b\d+(?:\.\d+)? times\b",
    re.IGNORECASE,
)


def asks_rate(question: str) -> bool:
    """Whether the question asks for a rate, share or proportion."""
    return bool(_ASKS_RATE.search(question))


def states_rate(text: str) -> bool:
    """Whether the text states a rate: a percentage, a fraction or a multiple."""
    return bool(_STATES_RATE.search(text))
