"""Concepts of a text for word-share scoring: glossary terms (any of their names, either language)
and the remaining words (`rag.terms.lexical.tokenize`)."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from rag.terms.glossary import Glossary
from rag.terms.lexical import tokenize


def concept_keys(text: str, glossary: Glossary | None) -> tuple[list[str], str]:
    """Glossary concepts in `text` ("g:静脉血栓栓塞" for VTE, venous thromboembolism or 静脉血栓栓塞) and
    the text with those spans blanked, so their words are not counted twice."""
    if glossary is None:
        return [], text
    keys, rest = [], list(text)
    for m in glossary.matches(text):
        keys.append("g:" + (m.zh or m.terms[0].abbr or m.terms[0].en))
        rest[m.start : m.end] = " " * (m.end - m.start)
    return keys, "".join(rest)


def question_concepts(
    question: str, glossary: Glossary | None, glossary_weight: float = 2.0
) -> dict[str, float]:
    """Concept key -> weight for a question; a glossary term carries `glossary_weight` (a word 1)."""
    keys, rest = concept_keys(question, glossary)
    weights = {k: glossary_weight for k in keys}
    for token in tokenize(rest):
        weights.setdefault("t:" + token, 1.0)
    return weights


def sentence_keys(text: str, glossary: Glossary | None) -> set[str]:
    keys, _ = concept_keys(text, glossary)
    return set(keys) | {"t:" + t for t in _tokens(text)}


@functools.lru_cache(maxsize=20_000)
def _tokens(text: str) -> tuple[str, ...]:
    """`tokenize`, kept per sentence: every answer scores the same corpus sentences again."""
    return tuple(tokenize(text))


def lexical_score(concepts: Mapping[str, float], keys: set[str]) -> float:
    """Weighted share of the question's concepts present in the sentence, in [0, 1]."""
    total = sum(concepts.values())
    return sum(w for k, w in concepts.items() if k in keys) / total if total else 0.0
