"""The candidate sentences of an answer: the quotable sentences of the best chunks, with their offsets."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from rag.ingest.headings import parse_heading
from rag.ingest.sentences import chunk_sentences, points_back, sentence_spans
from rag.lang import HAN_RE, detect_lang
from rag.types import Chunk, Document, Hit

# Captions: "表1 ...", "Table 1. ...", and the caption text before a "表 1." that ends a sentence.
_CAPTION_RE = re.compile(r"^(?:表|图|Table|Fig(?:ure)?\.?)\s*\d|(?:表|图)\s*\d+\s*\.?$", re.I)


_SKIP_SECTION_RE = re.compile(r"关键词|关键字|Key\s?words|参考文献|References", re.I)
_MIN_CJK, _MIN_WORDS = 8, 6  # shorter sentences are fragments, not answers
_PROSE_CJK, _PROSE_WORDS = 20, 12  # this much text makes a sentence prose however many numbers it has


@dataclass(frozen=True)
class Sentence:
    doc_id: str
    title: str
    section: str
    start: int
    end: int
    text: str  # == documents[doc_id].text[start:end]
    lang: str
    chunk_pos: int  # position of its chunk among the hits, 0 = best
    row: int | None = None  # its row in the index's sentence table (None: not a row, e.g. extended)


def rows_by_doc(sentences: Sequence[Sentence]) -> dict[str, list[int]]:
    """The positions of `sentences` grouped by their paper, papers in the order first met."""
    out: dict[str, list[int]] = {}
    for i, s in enumerate(sentences):
        out.setdefault(s.doc_id, []).append(i)
    return out


# Where a chunk's sentences are: (row, start, end) per sentence, from the index's sentence table.
SentenceTable = Callable[[Chunk], Sequence[tuple[int, int, int]]]


@dataclass(frozen=True)
class ScoredSentence:
    sentence: Sentence
    dense: float
    lexical: float
    relevance: float  # how well the sentence matches the question, in [0, 1]
    score: float  # the order in which quotes are taken: relevance + rank bonus, or standardised signals
    standardised: bool = False  # score is a sum of z-scores (retrieval's signals were used)


def quotable(text: str, section: str = "") -> bool:
    """Whether a sentence can stand as a quote: not a heading, caption, table row, keyword list or
    reference, and not a short fragment."""
    if parse_heading(text) or _CAPTION_RE.search(text) or _SKIP_SECTION_RE.search(section):
        return False
    n_cjk, n_words = len(HAN_RE.findall(text)), len(re.findall(r"[A-Za-z]+", text))
    chars = [c for c in text if not c.isspace()]
    # Mostly digits is a table row, unless there is a real sentence's worth of words around them
    # ("…收治5例…年龄37~85岁,中位年龄61岁。").
    prose = n_cjk >= _PROSE_CJK or n_words >= _PROSE_WORDS
    if not prose and sum(c.isdigit() for c in chars) > 0.3 * len(chars):
        return False
    return n_cjk >= _MIN_CJK or n_words >= _MIN_WORDS


def candidate_sentences(
    hits: Sequence[Hit], documents: Mapping[str, Document], n_chunks: int, table: SentenceTable | None = None
) -> tuple[list[Sentence], list[str]]:
    """Quotable sentences of the top `n_chunks` hits (each once), and notes on chunks that were skipped.
    The sentences are the index's (`table`); without an index they are split as the index splits them."""
    out: dict[tuple[str, int, int], Sentence] = {}
    notes = []
    for pos, hit in enumerate(sorted(hits, key=lambda h: h.rank)[:n_chunks]):
        c = hit.chunk
        doc = documents.get(c.doc_id)
        if doc is None or doc.text[c.start : c.end] != c.text:
            # The index is older than the document: its offsets would point at other text.
            notes.append(f"chunk {c.id} does not match the stored document; rebuild the index")
            continue
        rows = (
            table(c)
            if table is not None
            else [(None, s, e) for s, e in chunk_sentences(doc.text, c.start, c.end)]
        )
        title = _squashed(doc.title)
        for row, s, e in rows:
            text = doc.text[s:e]
            # The title line names the subject and answers nothing; as a quote it only takes a place.
            if (c.doc_id, s, e) not in out and quotable(text, c.section) and _squashed(text) != title:
                out[(c.doc_id, s, e)] = Sentence(
                    c.doc_id, c.title, c.section, s, e, text, detect_lang(text), pos, row
                )
    return list(out.values()), notes


def _squashed(text: str) -> str:
    return " ".join(text.split()).casefold()


def next_start(text: str, end: int) -> int:
    """Where a sentence ending at `end` is followed on the same line: past spaces and tabs only, so a
    line break (a heading, a new paragraph) keeps two sentences apart."""
    while end < len(text) and text[end] in " \t":
        end += 1
    return end


_CLAUSE_END = re.compile(r"[;；][”’\"」)）]*$")


def whole_sentence(sentence: Sentence, doc: Document, max_chars: int = 400) -> Sentence:
    """The clause widened to its whole sentence: the sentence table cuts at semicolons (a clause
    scores apart from its neighbours), but a quote of "…can cause neurological problems;" reads as
    cut off. Kept as the clause when the whole sentence is longer than `max_chars`."""
    text = doc.text
    line_start = text.rfind("\n", 0, sentence.start) + 1
    line_end = text.find("\n", sentence.end)
    spans = sentence_spans(text, line_start, len(text) if line_end < 0 else line_end)
    start, end = sentence.start, sentence.end
    for s, e in reversed(spans):  # the clauses before it, back to the last full stop
        if e <= start and _CLAUSE_END.search(text[s:e]) and next_start(text, e) == start:
            start = s
    for s, e in spans:  # and the clauses after it, up to the next one
        if s >= end and _CLAUSE_END.search(text[start:end]) and next_start(text, end) == s:
            end = e
    if (start, end) == (sentence.start, sentence.end) or end - start > max_chars:
        return sentence
    return replace(sentence, start=start, end=end, text=text[start:end], row=None)


def with_continuation(sentence: Sentence, doc: Document, max_chars: int = 400) -> Sentence:
    """The sentence extended over the next one when that one opens by pointing back to it ("其计算方法
    是…", "It is…"): such a sentence often holds the answer but cannot stand alone as a quote."""
    line_end = doc.text.find("\n", sentence.end)
    spans = sentence_spans(doc.text, sentence.end, len(doc.text) if line_end < 0 else line_end)
    if not spans:
        return sentence
    start, end = spans[0]
    if not points_back(doc.text[start:end]) or end - sentence.start > max_chars:
        return sentence
    return replace(sentence, end=end, text=doc.text[sentence.start : end], row=None)
