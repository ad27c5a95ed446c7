"""Extractive answers: 1-3 verbatim sentences of the retrieved chunks, cited [n], framed in the
question's language, or an abstention that points to the nearest passages.

Every quote is checked against the stored document text before it is shown; a quote that fails is
dropped and the failure is recorded in `Answer.notes`. Scoring lives in `rag.answer.scoring`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from typing import TYPE_CHECKING

from rag.answer.candidates import ScoredSentence, Sentence, candidate_sentences, next_start, with_continuation
from rag.answer.facts import english_counterpart, near_duplicate, same_fact
from rag.answer.scoring import lift_neighbours, score_sentences
from rag.ingest.headings import parse_heading
from rag.lang import HAN_RE
from rag.query.answer_type import asks_rate, states_rate
from rag.query.names import Name, unquoted
from rag.query.parts import question_parts, uncovered_parts
from rag.terms.glossary import Glossary
from rag.types import Answer, Document, Hit, Quote

if TYPE_CHECKING:
    from rag.answer.signals import SentenceSignals

DEFAULT_MIN_SCORE = 0.2  # placeholder: the lead calibrates the threshold on held-out questions
# A second or third quote must score at least this share of the best one and share a word or term
# with the question: dense similarity alone rarely picks a second answer.
FOLLOW_RATIO = 0.7
# With retrieval's standardised signals: within this many standard deviations of the best one. The
# candidates are already the best chunks' sentences, and in the gold evaluation the answer was often
# the second or third sentence (eval/results/report.md), so only a clearly weaker one is left out.
FOLLOW_Z = 2.5
MAX_GLOSSES = 4
_NEAREST, _EXCERPT_CHARS = 3, 60
_LANGS = ("zh", "en")


@dataclass(frozen=True)
class AnswerSettings:
    max_quotes: int = 3
    min_score: float = DEFAULT_MIN_SCORE  # abstain when the best sentence's relevance is below this
    candidate_chunks: int = 5
    # A question asking two things: a part the quotes leave out gets its best sentence from this many
    # chunks (rag.query.parts); 0 turns this off. The pipeline retrieves this deep for such questions.
    part_chunks: int = 10
    # Refuse a question naming something no indexed paper mentions (rag.query.unknown_names).
    refuse_unknown_names: bool = True
    # Refuse a question asking for a rate when no chosen sentence states one (rag.query.answer_type).
    refuse_missing_rate: bool = True
    # Refuse when the chosen sentences leave out a drug, disease or acronym the question names
    # (rag.query.names).
    refuse_unquoted_names: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_quotes <= 10:
            raise ValueError(f"max_quotes must be between 1 and 10, got {self.max_quotes}.")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be between 0 and 1 (a relevance score), got {self.min_score}.")
        if self.candidate_chunks < 1:
            raise ValueError(f"candidate_chunks must be at least 1, got {self.candidate_chunks}.")
        if self.part_chunks < 0:
            raise ValueError(f"part_chunks must be 0 (off) or more, got {self.part_chunks}.")


@functools.cache
def templates(lang: str) -> dict[str, str]:
    """Answer framing for one language, from rag/templates/{lang}.json."""
    if lang not in _LANGS:
        raise ValueError(f"lang must be one of {_LANGS}, got {lang!r}.")
    return json.loads(resources.files("rag").joinpath("templates", f"{lang}.json").read_text("utf-8"))


def verify_quote(quote: Quote, documents: Mapping[str, Document]) -> bool:
    """True when the quote is exactly the stored text of its document at its offsets."""
    doc = documents.get(quote.doc_id)
    # Offsets are checked before slicing: negative ones would slice from the end and might match.
    return (
        doc is not None
        and 0 <= quote.start < quote.end <= len(doc.text)
        and doc.text[quote.start : quote.end] == quote.text
    )


def compose_answer(
    question: str,
    lang: str,
    hits: Sequence[Hit],
    documents: Mapping[str, Document],
    *,
    settings: AnswerSettings,
    glossary: Glossary | None = None,
    embedder=None,
    signals: SentenceSignals | None = None,
    names: Sequence[Name] = (),
) -> Answer:
    """An extractive answer to `question` from `hits`, framed in `lang` ("zh" or "en").
    `signals` (retrieval's encoders, `rag.answer.signals`) choose the sentences when given;
    `names` are the drugs and diseases the question names (`rag.query.names.question_names`)."""
    t = templates(lang)
    sentences, notes = candidate_sentences(hits, documents, settings.candidate_chunks)
    scored = lift_neighbours(score_sentences(question, sentences, glossary, embedder, signals), documents)
    best = max((s.relevance for s in scored), default=0.0)
    if not scored or best < settings.min_score:
        return abstain_answer(
            question, lang, hits, documents, glossary, [*notes, f"best evidence score {best:.3f}"]
        )
    chosen = _select(scored, lang, settings, glossary, documents)
    if settings.part_chunks:
        scoring = _Scoring(glossary, embedder, signals)
        chosen = _answer_parts(question, lang, chosen, hits, documents, settings, scoring)
    quotes: list[Quote] = []
    lines = [t["intro"]]
    for s, is_counterpart in chosen:
        quote = Quote(len(quotes) + 1, s.doc_id, s.title, s.section, s.start, s.end, s.text)
        if not verify_quote(quote, documents):
            notes.append(f"dropped a quote from {s.doc_id} at {s.start}:{s.end}: it is not the stored text")
            continue
        quotes.append(quote)
        lines.append(t["counterpart_line" if is_counterpart else "quote_line"].format(text=s.text, n=quote.n))
        glosses = _glosses(s.text, lang, glossary)
        if glosses:
            lines.append(t["gloss_line"].format(items=_gloss_items(glosses, t)))
    if not quotes:
        return abstain_answer(
            question, lang, hits, documents, glossary, [*notes, "no quote survived verification"]
        )
    if settings.refuse_missing_rate and asks_rate(question) and not any(states_rate(q.text) for q in quotes):
        note = "the question asks for a rate and no sentence chosen to answer it states one"
        return abstain_answer(question, lang, hits, documents, glossary, [*notes, note])
    missing = unquoted(names, quotes, documents) if settings.refuse_unquoted_names else []
    if missing:
        note = f"the question names {', '.join(missing)}, and no sentence chosen to answer it does"
        return abstain_answer(question, lang, hits, documents, glossary, [*notes, note])
    lines += ["", t["sources"]]
    lines += [
        t["source_line"].format(n=q.n, where=_where(documents[q.doc_id], q.section, lang)) for q in quotes
    ]
    return Answer(question, lang, False, "\n".join(lines), tuple(quotes), tuple(hits), tuple(notes))


def _select(
    scored: Sequence[ScoredSentence],
    lang: str,
    settings: AnswerSettings,
    glossary: Glossary | None,
    documents: Mapping[str, Document],
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
        weaker = cand.score < (top.score - FOLLOW_Z if top.standardised else FOLLOW_RATIO * top.score)
        if chosen and (weaker or cand.lexical == 0.0):
            continue
        _add(with_continuation(s, documents[s.doc_id]), chosen, lang, glossary, documents)
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


@dataclass(frozen=True)
class _Scoring:
    glossary: Glossary | None
    embedder: object
    signals: SentenceSignals | None

    def __call__(self, question: str, sentences: Sequence[Sentence]) -> list[ScoredSentence]:
        return score_sentences(question, sentences, self.glossary, self.embedder, self.signals)


def _answer_parts(
    question: str,
    lang: str,
    chosen: list[tuple[Sentence, bool]],
    hits: Sequence[Hit],
    documents: Mapping[str, Document],
    settings: AnswerSettings,
    score: _Scoring,
) -> list[tuple[Sentence, bool]]:
    """For a question asking two things, the best sentence of each part the quotes leave out, while
    there is room (`rag.query.parts`). Scoring a part costs an encoder call, so it is done only then.

    Such a sentence must still match the whole question (a word or term in common, relevance at
    least `min_score`), as a second quote must."""
    parts = question_parts(question)
    missing = uncovered_parts(parts, [s.text for s, _ in chosen], score.glossary) if parts else []
    if not missing:
        return chosen
    sentences, _ = candidate_sentences(hits, documents, settings.part_chunks)
    if not sentences:
        return chosen
    out = list(chosen)
    for part in missing:
        if sum(not twin for _, twin in out) >= settings.max_quotes:
            break
        best = max(lift_neighbours(score(part, sentences), documents), key=lambda x: x.score)
        s = best.sentence
        # Word share and relevance are the sentence's own (not standardised over the candidates).
        match = score(question, [s])[0]
        if match.lexical == 0.0 or match.relevance < settings.min_score:
            continue
        _add(with_continuation(s, documents[s.doc_id]), out, lang, score.glossary, documents)
    return _merge_adjacent(out, documents)


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


def _glosses(text: str, lang: str, glossary: Glossary | None) -> list[tuple[str, str]]:
    """Key terms of a passage in the other language: English glosses of its Chinese terms for an
    English question; Chinese terms for its English names for a Chinese question. A term the passage
    already names in both languages ("组织因子(tissue factor, TF)") needs no gloss."""
    if glossary is None:
        return []
    matches = glossary.matches(text)
    in_zh = {m.zh for m in matches if text[m.start : m.end] == m.zh}
    in_en = {m.zh for m in matches if text[m.start : m.end] != m.zh}
    if lang == "en":
        pairs = [(zh, en) for zh, en in glossary.en_terms_for(text) if zh not in in_en]
    else:
        pairs = [(text[m.start : m.end], m.zh) for m in matches if m.zh in in_en - in_zh]
    return list(dict.fromkeys(pairs))[:MAX_GLOSSES]


def _gloss_items(glosses: list[tuple[str, str]], t: dict[str, str]) -> str:
    return t["gloss_sep"].join(t["gloss_item"].format(term=a, gloss=b) for a, b in glosses)


def display_title(doc: Document, lang: str) -> str:
    """The document's title in the answer's language, or "" when the catalog gives none (the Quote
    still carries the original title)."""
    title, zh_title = doc.title, bool(HAN_RE.search(doc.title))
    if lang == "en":
        if not zh_title:
            return title
        m = re.search(r"\(([A-Za-z][^()]*)\)\s*$", title)
        return m.group(1) if m else doc.meta.get("topic_en") or ""
    if zh_title:
        return re.sub(r"\s*\([A-Za-z][^()]*\)\s*$", "", title)
    return doc.meta.get("title_zh") or ""


def display_section(section: str, lang: str) -> str:
    """The innermost section label in the answer's language: kept when it is in that language,
    otherwise reduced to its number or a known label ("摘要" -> "Chinese abstract")."""
    t = templates(lang)
    leaf = section.split(" > ")[-1].strip()
    known = {"摘要": "section_zh_abstract", "(引言)": "section_intro", "(Introduction)": "section_intro"}
    known |= dict.fromkeys(("Abstract", "ABSTRACT", "Summary", "SUMMARY"), "section_en_abstract")
    if leaf in known:
        return t[known[leaf]]
    if leaf in ("(正文)", "(Text)") or bool(HAN_RE.search(leaf)) != (lang == "zh"):
        num = re.match(r"\d+(?:\.\d+)*", leaf)
        return t["section_number"].format(num=num.group()) if num else ""
    return leaf


def _where(doc: Document | None, section: str, lang: str) -> str:
    parts = [display_title(doc, lang) if doc else "", display_section(section, lang)]
    return templates(lang)["where_sep"].join(p for p in parts if p)


def _excerpt(text: str) -> str:
    lines = text.split("\n")
    while len(lines) > 1 and parse_heading(lines[0]):
        lines = lines[1:]  # the chunk's heading is already named as its section
    flat = " ".join(" ".join(lines).split())
    return flat if len(flat) <= _EXCERPT_CHARS else flat[:_EXCERPT_CHARS] + "…"


def abstain_answer(
    question: str,
    lang: str,
    hits: Sequence[Hit],
    documents: Mapping[str, Document],
    glossary: Glossary | None,
    notes: list[str],
) -> Answer:
    """The abstention message and the nearest passages: an excerpt when a passage is in the
    question's language, otherwise its key terms glossed, so the answer stays in one language."""
    t = templates(lang)
    lines = [t["abstain"]]
    if hits:
        lines.append(t["nearest"])
    for h in sorted(hits, key=lambda h: h.rank)[:_NEAREST]:
        line = t["nearest_line"].format(where=_where(documents.get(h.chunk.doc_id), h.chunk.section, lang))
        if h.chunk.lang == lang:
            line += t["nearest_excerpt"].format(excerpt=_excerpt(h.chunk.text))
        elif glosses := _glosses(h.chunk.text, lang, glossary)[:3]:
            line += t["nearest_terms"].format(items=_gloss_items(glosses, t))
        lines.append(line)
    return Answer(question, lang, True, "\n".join(lines), (), tuple(hits), tuple(notes))
