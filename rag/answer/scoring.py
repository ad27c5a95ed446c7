"""Scoring the sentences of retrieved chunks against a question, for extractive answers.

A sentence's relevance (in [0, 1]) mixes two signals:
- dense: cosine between the question and the sentence (when an embedder is given), clipped at 0;
- lexical: the weighted share of the question's concepts found in the sentence. A concept is a
  glossary term (matched through any of its names, so "venous thromboembolism" in an English question
  finds 静脉血栓栓塞 or VTE in a Chinese sentence) or a remaining question word (`rag.terms.lexical.tokenize`).
Quotes are then ordered by relevance plus a small bonus for a better-ranked chunk.

With retrieval's signals (`rag.answer.signals`) the order is instead a sum of standardised signals:
e5 similarity to the question as retrieval embedded it (less `topic_share` of the sentence's likeness
to its paper's title, centred within the paper: `SignalColumns.topic`), standardised within the
sentence's language, plus half the standardised lexical share (counting the question's induced
Chinese words), plus a bonus for a better-ranked chunk. Raw e5 cosines of sentences differ by
hundredths; standardising makes every signal count, and comparing within a language keeps English
abstract sentences from winning an English question by language alone.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from rag.answer.candidates import ScoredSentence, Sentence, next_start, rows_by_doc
from rag.answer.facts import CITATION_RE
from rag.query.answer_type import states_how_often, states_measure, states_quantity
from rag.retrieve.fusion import standardise
from rag.settings import ScoringSettings
from rag.terms.concepts import lexical_score, sentence_keys
from rag.terms.glossary import Glossary
from rag.terms.lexical import fold_plural
from rag.types import Document

if TYPE_CHECKING:
    from rag.answer.signals import SentenceSignals
    from rag.query.analysis import QueryAnalysis

_DEFAULT = ScoringSettings()


def combine(dense: float | None, lexical: float, settings: ScoringSettings = _DEFAULT) -> float:
    """Relevance in [0, 1]: with an embedder, `dense_weight` of e5 and the rest word share; without, words."""
    w = settings.dense_weight
    return lexical if dense is None else w * max(0.0, dense) + (1 - w) * lexical


def score_sentences(
    query: QueryAnalysis,
    sentences: Sequence[Sentence],
    glossary: Glossary | None,
    embedder=None,
    signals: SentenceSignals | None = None,
    settings: ScoringSettings = _DEFAULT,
) -> list[ScoredSentence]:
    """Score every sentence; the embedder is called once for the question and once for all sentences.
    With `signals` (retrieval's encodings), those score the sentences and the embedder is not used."""
    if not sentences:
        return []
    if signals is not None:
        return _score_with_signals(query, sentences, glossary, signals, settings)
    dense: list[float | None] = [None] * len(sentences)
    if embedder is not None:
        q = np.asarray(embedder.embed_queries([query.text]), dtype=np.float32)[0]
        p = np.asarray(embedder.embed_passages([s.text for s in sentences]), dtype=np.float32)
        dense = [float(v) for v in np.clip(p @ q, -1.0, 1.0)]
    out = []
    for s, d in zip(sentences, dense, strict=True):
        lex = lexical_score(query.concepts, sentence_keys(s.text, glossary))
        rel = min(1.0, max(0.0, combine(d, lex, settings)))
        # Ties go to the better-ranked chunk: at most `rank_bonus` is added for the best one.
        bonus = settings.rank_bonus / (1 + s.chunk_pos)
        out.append(ScoredSentence(s, max(0.0, d or 0.0), lex, rel, rel + bonus))
    return out


def _score_with_signals(
    query: QueryAnalysis,
    sentences: Sequence[Sentence],
    glossary: Glossary | None,
    signals: SentenceSignals,
    settings: ScoringSettings,
) -> list[ScoredSentence]:
    cols = signals(query, [s.text for s in sentences], sentences)
    concepts = dict(query.concepts)
    for word in cols.extra_words:
        # As the sentence's keys hold it: an induced English word is written ("patients"), BM25's
        # token is folded ("patient").
        concepts.setdefault("t:" + fold_plural(word), 1.0)
    keys = [sentence_keys(s.text, glossary) for s in sentences]
    lexical = np.array([lexical_score(concepts, k) for k in keys])
    ranked = lexical
    if settings.title_word_share < 1.0:
        share = settings.title_word_share
        ranked = np.array(
            [
                _ranking_share(concepts, k, _title_keys(s.title, glossary), share)
                for s, k in zip(sentences, keys, strict=True)
            ]
        )
    langs = np.array([s.lang for s in sentences])
    # On the standardised scale the word share counts `lexical_weight_z` of e5 (word overlap also
    # rewards sentences that merely restate the question's topic); the best chunk gets `rank_bonus_z`.
    score = settings.lexical_weight_z * standardise(ranked)
    dense = np.asarray(cols.dense, np.float64)
    if cols.topic is not None and settings.topic_share:
        dense = dense - settings.topic_share * _within_document(np.asarray(cols.topic, np.float64), sentences)
    score += standardise(dense, langs)
    score += settings.rank_bonus_z / (1 + np.array([s.chunk_pos for s in sentences]))
    by_unit = bool(query.asks_measure) and settings.measure_number_share < 1.0
    if query.asks_quantity or query.asks_frequency or by_unit:
        # "How many / what rate / which year" is answered by a sentence that states a number, "how
        # many people are affected" also by one that says how often ("X is rare"), "how long" by one
        # with a unit of time or length.
        has = np.array([has_quantity(s.text, query.asks_frequency) for s in sentences], dtype=np.float64)
        if query.asks_frequency and settings.frequency_number_share < 1.0:
            # A bare number ("about half of people with X…") says less about how often X occurs than
            # "X is rare", "1 in 10,000 people" or a percentage.
            says = np.array([states_how_often(CITATION_RE.sub(" ", s.text)) for s in sentences], dtype=bool)
            has = np.where(says, 1.0, settings.frequency_number_share * has)
        elif by_unit:
            says = np.array([states_measure(s.text, query.asks_measure) for s in sentences], dtype=bool)
            has = np.where(says, 1.0, settings.measure_number_share * has)
        score += settings.quantity_bonus_z * has
    out = []
    for s, d, lex, z in zip(sentences, cols.dense, lexical, score, strict=True):
        rel = min(1.0, max(0.0, combine(float(d), float(lex), settings)))
        out.append(ScoredSentence(s, max(0.0, float(d)), float(lex), rel, float(z), standardised=True))
    return out


def _within_document(values: np.ndarray, sentences: Sequence[Sentence]) -> np.ndarray:
    """`values` less the mean of their document's candidates: the contrast inside each paper."""
    out = values.copy()
    for at in rows_by_doc(sentences).values():
        out[at] -= values[at].mean()
    return out


def _ranking_share(
    concepts: Mapping[str, float], keys: AbstractSet[str], title: AbstractSet[str], share: float
) -> float:
    """The word share with the question's words that the sentence's own paper title holds weighed by
    `share`: every sentence of an article on 新西兰鸲鹟 writes the name, so it tells them apart no more
    than by chance, and the answer sentence often refers back to it (牠们…, 本鱼…) instead."""
    total = sum(concepts.values())
    got = sum(w * (share if k in title else 1.0) for k, w in concepts.items() if k in keys)
    return got / total if total else 0.0


@functools.lru_cache(maxsize=4096)  # per title and glossary: every answer from a paper asks again
def _title_keys(title: str, glossary: Glossary | None) -> frozenset[str]:
    return frozenset(sentence_keys(title, glossary))


def lift_neighbours(
    scored: Sequence[ScoredSentence], documents: Mapping[str, Document], share: float = 0.6
) -> list[ScoredSentence]:
    """Standardised scores raised to `share` of the better adjacent sentence's score (adjacent: one
    follows the other, `next_start`). The answer often sits next to the sentence that matches the
    question ("…进入单细胞休眠状态。DTC 进入 G0 期…"); on the gold questions this raised the hit rate on
    both halves of the pairs (0.84 -> 0.85, 0.80 -> 0.82)."""
    if not scored or not scored[0].standardised:
        return list(scored)
    # Where each sentence's successor would start, computed once: it keys both directions.
    keys = [
        (x.sentence.doc_id, next_start(documents[x.sentence.doc_id].text, x.sentence.end)) for x in scored
    ]
    by_start = {(x.sentence.doc_id, x.sentence.start): x.score for x in scored}
    by_next = {key: x.score for key, x in zip(keys, scored, strict=True)}
    out = []
    for x, after in zip(scored, keys, strict=True):
        s = x.sentence
        near = [v for v in (by_next.get((s.doc_id, s.start)), by_start.get(after)) if v is not None]
        best = max([x.score, *(share * v for v in near)])
        out.append(x if best == x.score else replace(x, score=best))
    return out


def has_quantity(text: str, frequency: bool = False) -> bool:
    """Whether a sentence states an amount (`states_quantity`; with `frequency`, "rare" counts) other
    than a citation mark ("[12]")."""
    return states_quantity(CITATION_RE.sub(" ", text), frequency)
