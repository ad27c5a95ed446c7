"""Questions that ask two things: "关键促凝分子是什么？肿瘤中哪些因素会让它上调？", "既能提示…又与…相关",
"which … is protective, and which are risk factors".

Scored as a whole, such a question is answered by sentences about its first or its broader part, and
the sentence answering the other part ranks low, often in a passage retrieval ranks 6th to 10th (it
matches only half the question). The answerer therefore looks for each part's best sentence on its
own (`rag.answer.compose`), and only for a part that the chosen quotes leave out.

Parts are split at question marks and semicolons, at commas between clauses that each ask something,
at 既…又…, and in English at "and" before a question word or verb ("…, and what", "… and is
associated"). Clauses before the first asking clause ("服用依维莫司出现2级口腔黏膜炎时，…") are the shared
setting and open every part.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rag.knowledge import language
from rag.lang import HAN_RE
from rag.terms.concepts import question_concepts, sentence_keys
from rag.terms.glossary import Glossary

_ZH, _EN = language("zh"), language("en")  # rag/data/lang/*.json


def _words(words: Iterable[str]) -> str:
    """Literal words (or marks) as one alternation."""
    return "|".join(map(re.escape, words))


def _char_class(chars: str) -> str:
    """Characters escaped for the inside of a [...] class."""
    return re.sub(r"([\\\]^-])", r"\\\1", chars)


_ASKS_ZH = re.compile(_words(_ZH["question_words"]))
_ASKS_EN = re.compile(rf"\b(?:{_words(_EN['question_words'])})\b", re.I)
_CLAUSE_ZH = re.compile(f"[^{_char_class(_ZH['part_marks'])}]+")
_BOTH, _AND = map(re.escape, _ZH["both_and"])  # 既 … 又 …
_BOTH_ZH = re.compile(f"{_BOTH}(.+?){_AND}(.+)")
# Where an English question divides: ?, ;, and "and" before a word that opens a question or a predicate.
_SPLIT_EN = re.compile(
    rf"{_words(_EN['part_marks'])}|,?\s+{re.escape(_EN['part_conjunction'])}\s+"
    rf"(?=(?:{_words(_EN['part_openers'])})\b)",
    re.I,
)


def question_parts(question: str) -> list[str]:
    """The parts of a question that asks two or more things, each readable alone; [] for one question."""
    if HAN_RE.search(question):
        return _zh_parts(question)
    pieces = [p.strip() for p in _SPLIT_EN.split(question)]
    parts = [p for p in pieces if p and _ASKS_EN.search(p)]
    return parts if len(parts) >= 2 else []


def _zh_parts(question: str) -> list[str]:
    both = _BOTH_ZH.search(question)
    if both:
        head = question[: both.start()]
        return [head + both.group(1).strip("，, "), head + both.group(2).strip()]
    clauses = [c.strip() for c in _CLAUSE_ZH.findall(question) if c.strip()]
    asking = [i for i, c in enumerate(clauses) if _ASKS_ZH.search(c)]
    if len(asking) < 2:
        return []
    setting = "，".join(clauses[: asking[0]])
    return [f"{setting}，{clauses[i]}" if setting else clauses[i] for i in asking]


def uncovered_parts(parts: list[str], quotes: Iterable[str], glossary: Glossary | None) -> list[str]:
    """The parts none of whose own words or terms (those no other part has) any quote contains. A part
    with no words of its own ("严重程度如何") cannot be told apart by words and counts as covered."""
    keys = [sentence_keys(text, glossary) for text in quotes]
    concepts = [set(question_concepts(p, glossary)) for p in parts]
    out = []
    for i, part in enumerate(parts):
        own = concepts[i].difference(*(c for j, c in enumerate(concepts) if j != i))
        if own and not any(own & k for k in keys):
            out.append(part)
    return out
