"""Extractive answers: choosing 1-3 verbatim sentences of the retrieved chunks to quote.

`draft_answer` scores the candidate sentences (`rag.answer.scoring`), chooses the quotes, gives a
part of a two-part question that the quotes leave out its own best sentence, and checks every quote
against the stored document text: a quote that fails is dropped, and the failure is noted. Whether
the draft may be shown is for the refusal rules to say (`rag.abstain.rules`); the text the user reads
is made by `rag.answer.framing`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rag.answer.candidates import (
    ScoredSentence,
    Sentence,
    SentenceTable,
    candidate_sentences,
    next_start,
    whole_sentence,
    with_continuation,
)
from rag.answer.facts import english_counterpart, near_duplicate, same_fact
from rag.answer.framing import abstain_answer, frame_answer
from rag.answer.scoring import lift_neighbours, score_sentences
from rag.query.parts import uncovered_parts
from rag.settings import AnswerSettings, ScoringSettings
from rag.types import Answer, Document, Hit, Quote, Refusal

if TYPE_CHECKING:
    from rag.answer.signals import SentenceSignals
    from rag.query.analysis import QueryAnalysis
    from rag.terms.glossary import Glossary


@dataclass(frozen=True)
class Draft:
    """The quotes chosen for an answer, verified, before the refusal rules judge them."""

    quotes: tuple[tuple[Quote, bool], ...]  # each with whether it is an English-abstract counterpart
    best: float  # the best candidate's relevance, in [0, 1]
    candidates: int  # sentences scored (0: the hits held none worth quoting)
    notes: tuple[str, ...]  # chunks that did not match their document, quotes dropped

    @property
    def verified(self) -> tuple[Quote, ...]:
        return tuple(q for q, _ in self.quotes)


@dataclass(frozen=True)
class Scorer:
    """What scoring sentences takes: the glossary, an embedder (without retrieval's signals), the
    signals, and the settings."""

    glossary: Glossary | None
    embedder: object = None
    signals: SentenceSignals | None = None
    settings: ScoringSettings = ScoringSettings()
    table: SentenceTable | None = None  # the index's sentences (Index.sentences_of); None: split here

    def __call__(
        self, query: QueryAnalysis, sentences: Sequence[Sentence], documents
    ) -> list[ScoredSentence]:
        scored = score_sentences(query, sentences, self.glossary, self.embedder, self.signals, self.settings)
        if not self.settings.lift_neighbours:
            return scored
        return lift_neighbours(scored, documents, self.settings.neighbour_share)


def verify_quote(quote: Quote, documents: Mapping[str, Document]) -> bool:
    """True when the quote is exactly the stored text of its document at its offsets."""
    doc = documents.get(quote.doc_id)
    return doc is not None and quote.matches(doc.text)


def draft_answer(
    query: QueryAnalysis,
    hits: Sequence[Hit],
    documents: Mapping[str, Document],
    *,
    settings: AnswerSettings,
    scorer: Scorer,
    analyse_part: Callable[[str], QueryAnalysis] | None = None,
) -> Draft:
    """The verified quotes for `query` from `hits`. `analyse_part` encodes one part of a question
    asking two things (`QueryAnalyser.part`); without it, parts are not searched for."""
    sentences, notes = candidate_sentences(hits, documents, settings.candidate_chunks, scorer.table)
    scored = scorer(query, sentences, documents)
    best = max((s.relevance for s in scored), default=0.0)
    if not scored or best < settings.min_score:
        return Draft((), best, len(scored), tuple(notes))
    chosen = _select(scored, query.lang, settings, scorer.glossary, documents, scorer.settings)
    if settings.part_chunks and analyse_part is not None:
        chosen = _answer_parts(query, chosen, hits, documents, settings, scorer, analyse_part)
    quotes: list[tuple[Quote, bool]] = []
    for s, is_counterpart in chosen:
        place = documents[s.doc_id].page_and_ocr(s.start) if s.doc_id in documents else (None, False)
        quote = Quote(len(quotes) + 1, s.doc_id, s.title, s.section, s.start, s.end, s.text, *place)
        if not verify_quote(quote, documents):
            notes.append(f"dropped a quote from {s.doc_id} at {s.start}:{s.end}: it is not the stored text")
            continue
        quotes.append((quote, is_counterpart))
    return Draft(tuple(quotes), best, len(scored), tuple(notes))


def compose_answer(
    query: QueryAnalysis,
    hits: Sequence[Hit],
    documents: Mapping[str, Document],
    *,
    settings: AnswerSettings,
    scorer: Scorer,
    judge: Callable[[Draft], Refusal | None] | None = None,
    analyse_part: Callable[[str], QueryAnalysis] | None = None,
) -> Answer:
    """The extractive answer, framed in the question's language, or a refusal: `judge` (the refusal
    rules of the quotes stage, `rag.abstain.rules`) may refuse the draft."""
    draft = draft_answer(query, hits, documents, settings=settings, scorer=scorer, analyse_part=analyse_part)
    refusal = judge(draft) if judge is not None else None
    if refusal is not None:
        return abstain_answer(query.text, query.lang, hits, documents, scorer.glossary, draft.notes, refusal)
    return frame_answer(
        query.text,
        query.lang,
        hits,
        documents,
        draft.quotes,
        draft.notes,
        scorer.glossary,
        settings.max_glosses,
    )


def _continued(s: Sentence, documents: Mapping[str, Document], scoring: ScoringSettings) -> Sentence:
    if scoring.whole_sentences:
        s = whole_sentence(s, documents[s.doc_id], scoring.max_quote_chars)
    if not scoring.join_continuations:
        return s
    return with_continuation(s, documents[s.doc_id], scoring.max_quote_chars)


def _answer_parts(
    query: QueryAnalysis,
    chosen: list[tuple[Sentence, bool]],
    hits: Sequence[Hit],
    documents: Mapping[str, Document],
    settings: AnswerSettings,
    scorer: Scorer,
    analyse_part: Callable[[str], QueryAnalysis],
) -> list[tuple[Sentence, bool]]:
    """For a question asking two things, the best sentence of each part the quotes leave out, while
    there is room (`rag.query.parts`). Scoring a part costs an encoder call, so it is done only then.

    Such a sentence must still match the whole question (a word or term in common, relevance at
    least `min_score`), as a second quote must."""
    parts = list(query.parts)
    missing = uncovered_parts(parts, [s.text for s, _ in chosen], scorer.glossary) if parts else []
    if not missing:
        return chosen
    sentences, _ = candidate_sentences(hits, documents, settings.part_chunks, scorer.table)
    if not sentences:
        return chosen
    out = list(chosen)
    for part in missing:
        if sum(not twin for _, twin in out) >= settings.max_quotes:
            break
        best = max(scorer(analyse_part(part), sentences, documents), key=lambda x: x.score)
        s = best.sentence
        # Word share and relevance are the sentence's own (not standardised over the candidates).
        match = score_sentences(
            query, [s], scorer.glossary, scorer.embedder, scorer.signals, scorer.settings
        )[0]
        if match.lexical == 0.0 or match.relevance < settings.min_score:
            continue
        _add(_continued(s, documents, scorer.settings), out, query.lang, scorer.glossary, documents)
    return _merge_adjacent(out, documents)


def _select(
    scored: Sequence[ScoredSentence],
    lang: str,
    settings: AnswerSettings,
    glossary: Glossary | None,
    documents: Mapping[str, Document],
    scoring: ScoringSettings,
) -> list[tuple[Sentence, bool]]:
    """The sentences to quote, best first, each with whether it is an English-abstract counterpart.

    The same fact counts once; only for an English question is the English abstract's version of a
    Chinese quote welcome, right after it. That version restates a chosen quote, so it does not count
    against `max_quotes`.
    """
    ordered = sorted(scored, key=lambda s: -s.score)
    top = ordered[0]
    chosen: list[tuple[Sentence, bool]] = []
    for cand in ordered:
        s = cand.sentence
        if sum(not twin for _, twin in chosen) >= settings.max_quotes or cand.relevance < settings.min_score:
            continue
        weaker = cand.score < (
            top.score - settings.follow_z if top.standardised else settings.follow_ratio * top.score
        )
        if chosen and (weaker or cand.lexical == 0.0):
            continue
        _add(_continued(s, documents, scoring), chosen, lang, glossary, documents)
    return _merge_adjacent(chosen, documents)


def _add(
    s: Sentence,
    chosen: list[tuple[Sentence, bool]],
    lang: str,
    glossary: Glossary | None,
    documents: Mapping[str, Document],
) -> None:
    """Append `s` unless it repeats a chosen quote; for an English question, with its English twin."""
    if any(_duplicate(s, c, lang, glossary, documents) for c, _ in chosen):
        return
    chosen.append((s, False))
    if lang == "en" and s.lang == "zh":
        twin = english_counterpart(s, documents[s.doc_id], glossary)
        if twin and not any(_overlap(twin, c) or near_duplicate(twin.text, c.text) for c, _ in chosen):
            chosen.append((twin, True))


def _merge_adjacent(
    chosen: list[tuple[Sentence, bool]], documents: Mapping[str, Document]
) -> list[tuple[Sentence, bool]]:
    """Chosen sentences that follow each other in the text (same line, only spaces between) become one
    quote, in the place of the better one: a reader should see one passage, not [1] and [2] cut from
    it. A strong match lifts its neighbours (`lift_neighbours`), so such pairs are common."""
    out = list(chosen)
    merged = True
    while merged:
        merged = False
        for i, (a, twin_a) in enumerate(out):
            j = next(
                (j for j, (b, twin_b) in enumerate(out) if twin_b == twin_a and _adjacent(a, b, documents)),
                None,
            )
            if j is not None:
                b = out[j][0]
                text = documents[a.doc_id].text
                out[min(i, j)] = (replace(a, end=b.end, text=text[a.start : b.end]), twin_a)
                del out[max(i, j)]
                merged = True
                break
    return out


def _adjacent(a: Sentence, b: Sentence, documents: Mapping[str, Document]) -> bool:
    """Whether `b` follows `a` on the same line."""
    return a.doc_id == b.doc_id and next_start(documents[a.doc_id].text, a.end) == b.start


def _overlap(a: Sentence, b: Sentence) -> bool:
    return a.doc_id == b.doc_id and a.start < b.end and b.start < a.end


def _duplicate(
    a: Sentence, b: Sentence, lang: str, glossary: Glossary | None, documents: Mapping[str, Document]
) -> bool:
    """Whether `a` repeats `b`. Across languages only for a Chinese question: an English question
    welcomes the English version of a Chinese fact."""
    if _overlap(a, b):
        return True
    if a.lang == b.lang:
        return near_duplicate(a.text, b.text)
    if lang != "zh":
        return False
    zh, en = (a, b) if a.lang == "zh" else (b, a)
    twin = english_counterpart(zh, documents[zh.doc_id], glossary) if zh.doc_id == en.doc_id else None
    return same_fact(a.text, b.text, glossary) or (twin is not None and _overlap(twin, en))
