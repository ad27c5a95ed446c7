"""Whether two sentences state the same fact, within a language or across it, and the English
abstract's counterpart of a Chinese sentence."""

from __future__ import annotations

import functools
import re

from rag.answer.candidates import Sentence, quotable
from rag.ingest.chunking import find_sections
from rag.ingest.headings import ABSTRACT_LABELS_BY_LANG
from rag.ingest.sentences import sentence_spans
from rag.lang import HAN
from rag.terms.concepts import concept_keys
from rag.terms.glossary import Glossary
from rag.types import Document

CITATION_RE = re.compile(r"\[\d+(?:\s*[-–,]\s*\d+)*\]")  # "[12]", "[3-5]", "[1, 4]"
_EN_ABSTRACT = {(label,) for label in ABSTRACT_LABELS_BY_LANG["en"]}
_ZH_ABSTRACT = {(label,) for label in ABSTRACT_LABELS_BY_LANG["zh"]}


@functools.lru_cache(maxsize=256)
def _sections(text: str, lang: str) -> tuple:
    """A document's sections, parsed once per document (str hashes are cached, so lookups are cheap)."""
    return tuple(find_sections(text, lang))


def fact_signature(text: str, glossary: Glossary | None) -> frozenset[str]:
    """Language-neutral marks of a fact: glossary concepts, gene/acronym names and numbers."""
    text = CITATION_RE.sub(" ", text)
    keys, rest = concept_keys(text, glossary)
    # Gene and acronym names ("ALK", "TP53", "ROS-1" = "ROS1"), not ordinary capitalised words.
    words = (w.replace("-", "") for w in re.findall(r"[A-Za-z][A-Za-z0-9]*(?:-?\d+)?", rest))
    names = {w.lower() for w in words if re.search(r"[A-Z0-9]", w[1:])}
    numbers = {n for n in re.findall(r"(?<![A-Za-z0-9.-])\d+(?:\.\d+)?", rest) if len(n) >= 2}
    return frozenset(keys) | frozenset(names) | frozenset(numbers)


def same_fact(a: str, b: str, glossary: Glossary | None) -> bool:
    """Whether two sentences (often a Chinese one and an English one) state the same fact."""
    sa, sb = fact_signature(a, glossary), fact_signature(b, glossary)
    shared = len(sa & sb)
    # Jaccard, not overlap with the smaller set: two topic terms (VTE, NSCLC) do not make a fact.
    return shared >= 2 and shared >= 0.5 * len(sa | sb)


def near_duplicate(a: str, b: str) -> bool:
    """Same-language near-duplicates (the abstract repeating the body): Jaccard >= 0.5 of shingles."""
    sa, sb = _shingles(a), _shingles(b)
    return bool(sa and sb) and len(sa & sb) / len(sa | sb) >= 0.5


def _shingles(text: str) -> set[str]:
    """Character bigrams of Chinese runs and whole English words (letter bigrams of unrelated English
    sentences overlap by about 0.3)."""
    grams = set(re.findall(r"[a-z0-9]+", text.lower()))
    for run in re.findall(f"[{HAN}]+", text):
        grams.update(run[i : i + 2] for i in range(len(run) - 1))
    return grams


def english_counterpart(sentence: Sentence, doc: Document, glossary: Glossary | None) -> Sentence | None:
    """The English abstract's sentence stating the same fact as a Chinese sentence, or None.

    The English abstract translates the Chinese one, so a sentence of the Chinese abstract is matched
    by relative position: accepted outright when both abstracts have as many sentences or for the
    first and last sentences (anchors even when a translator split one), otherwise when the two share
    a term, name or number. Any Chinese sentence is also matched by `same_fact`.
    """
    sections = _sections(doc.text, doc.lang)
    en_abs = next((sec for sec in sections if sec.path in _EN_ABSTRACT), None)
    if en_abs is None:
        return None
    en = _quotable_spans(doc.text, en_abs.start, en_abs.end)
    zh_abs = next((x for x in sections if x.path in _ZH_ABSTRACT and x.start <= sentence.start < x.end), None)
    if zh_abs and en:
        zh = _quotable_spans(doc.text, zh_abs.start, zh_abs.end)
        i = next((k for k, (s, _) in enumerate(zh) if s == sentence.start), None)
        if i is not None:
            j = len(en) - 1 if i == len(zh) - 1 else min(len(en) - 1, int((i + 0.5) * len(en) / len(zh)))
            anchored = len(zh) == len(en) or i in (0, len(zh) - 1)
            shared = fact_signature(sentence.text, glossary) & fact_signature(
                doc.text[slice(*en[j])], glossary
            )
            if anchored or shared:
                return _en_sentence(doc, en[j], en_abs.path[0], sentence.chunk_pos)
    for span in en:
        if same_fact(sentence.text, doc.text[slice(*span)], glossary):
            return _en_sentence(doc, span, en_abs.path[0], sentence.chunk_pos)
    return None


def _quotable_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    return [(s, e) for s, e in sentence_spans(text, start, end) if quotable(text[s:e])]


def _en_sentence(doc: Document, span: tuple[int, int], section: str, pos: int) -> Sentence:
    s, e = span
    return Sentence(doc.doc_id, doc.title, section, s, e, doc.text[s:e], "en", pos)
