"""Refusal rules: one ordered list that `Pipeline.ask`, `rag calibrate` and `rag eval` all use.

Each rule looks at the analysed question, the hits and, once quotes are chosen, the draft answer, and
returns a `Refusal` (a reason code, the detail for the notes, and the values of its message in
rag/templates/{zh,en}.json) or None. The first rule that refuses decides. Rules of the "question"
stage judge before any quote is chosen (so an LLM generator is not asked either); rules of the
"quotes" stage judge the extractive draft.

    unknown_names         the question names something no indexed paper mentions
    absent_terms          a key term of the question (a rare word, a name) is in no indexed text
    absent_names          a Chinese person an English question names in pinyin is named by no
                          document, in characters (found by sound) or in Latin letters
    evidence              the best sentence's evidence is below the calibrated threshold
                          (unless the best paper writes the question's rare terms: coverage.py)
    no_relevant_sentence  no candidate sentence reaches the answer's relevance floor
    no_verified_quote     no chosen quote matched the stored text
    missing_rate          a rate is asked and no quote states one (how often: also in words, "rare")
    missing_measure       a time, age, length, price, weight, area or dose is asked and no quote states one
                          (a number with a unit of its kind, or one of the kind's marks: "$", "twice daily")
    unquoted_names        a drug, disease or acronym asked about is in no quote nor its paper's abstract
                          (asked only in a script the quoted papers write)
    uncovered_terms       a rare English word of the question is in the corpus but in none of the
                          English papers quoted
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from rag.abstain.coverage import TermCoverage
from rag.lang import HAN_RE
from rag.query.absent_terms import corpus_scripts, fold_latin, writes_en
from rag.query.answer_type import states_how_often, states_measure, states_rate
from rag.query.names import unquoted
from rag.types import Document, Hit, Refusal

if TYPE_CHECKING:
    from rag.answer.compose import Draft
    from rag.query.analysis import QueryAnalysis
    from rag.settings import Settings

QUESTION, QUOTES = "question", "quotes"


class RefusalRule(Protocol):
    code: str
    stage: str  # QUESTION: judged before quotes are chosen; QUOTES: judges the draft

    def check(self, query: QueryAnalysis, hits: Sequence[Hit], draft: Draft | None) -> Refusal | None: ...


def _not_in_corpus(
    code: str, words: Sequence[str], verb: str, field: str, relative: str = "which"
) -> Refusal | None:
    """The refusal of a question whose `words` no indexed document mentions (None when there are none);
    `relative` is "whom" for people."""
    if not words:
        return None
    joined = ", ".join(words)
    note = f"the question {verb} {joined}, {relative} no indexed document mentions"
    return Refusal(code, note, ((field, joined),))


def _judged(
    words: Sequence[str],
    query: QueryAnalysis,
    hits: Sequence[Hit],
    paper_scripts: Callable[[str], frozenset[str] | None] | None = None,
) -> list[str]:
    """The words of the question that no paper writes and whose absence proves something: all of them
    when the passage retrieval ranks first is in the question's language; else only those written in
    that passage's script. A question words in its own language what its answer's paper writes in
    another: in a folder of Chinese and English papers, an English question about a Chinese paper
    uses English words only the other papers could hold, while "omapatrilat" in a Chinese question
    about English papers is a word an English paper would write.

    With `paper_scripts` (`refusal.judge_by_paper`), the best passage's paper decides, not the
    passage: a Chinese paper is often retrieved by its English abstract, and its body writes in
    Chinese what an English question asks in English. A word is judged when its script makes up
    `language_share` of that paper, or when it is not in the question's own script (a Latin name in
    a Chinese question is kept in Latin by Chinese papers too)."""
    if paper_scripts is not None and hits:
        scripts = paper_scripts(hits[0].chunk.doc_id)
        if scripts is not None:
            return [w for w in words if (sc := _script(w)) in scripts or sc != query.lang]
    passage_lang = hits[0].chunk.lang if hits else query.lang
    if passage_lang == query.lang:
        return list(words)
    return [w for w in words if bool(HAN_RE.search(w)) == (passage_lang == "zh")]


@dataclass(frozen=True)
class UnknownNames:
    """Names judged by `_judged`: in the scripts of the best passage's paper."""

    paper_scripts: Callable[[str], frozenset[str] | None] | None = None
    code = "unknown_names"
    stage = QUESTION

    def check(self, query: QueryAnalysis, hits: Sequence[Hit], draft: Draft | None) -> Refusal | None:
        words = _judged(query.unknown_names, query, hits, self.paper_scripts)
        return _not_in_corpus(self.code, words, "names", "names")


@dataclass(frozen=True)
class AbsentTerms:
    """Terms judged by `_judged`: in the scripts of the best passage's paper."""

    paper_scripts: Callable[[str], frozenset[str] | None] | None = None
    code = "absent_terms"
    stage = QUESTION

    def check(self, query: QueryAnalysis, hits: Sequence[Hit], draft: Draft | None) -> Refusal | None:
        words = _judged(query.absent_terms, query, hits, self.paper_scripts)
        return _not_in_corpus(self.code, words, "asks about", "terms")


@dataclass(frozen=True)
class AbsentNames:
    """Romanised Chinese names no document writes (`QueryAnalysis.absent_names`). Both scripts were
    looked in, so no script is judged: an English question about Chinese papers names their people
    in Latin letters, and a paper that names them writes them in one script or the other. A paper
    writing the surname alone as a word ("Wang L") may name the person, and a hyphenated given name
    (Wade-Giles, Korean) need not spell its characters' pinyin: neither counts as absent."""

    code = "absent_names"
    stage = QUESTION

    def check(self, query: QueryAnalysis, hits: Sequence[Hit], draft: Draft | None) -> Refusal | None:
        return _not_in_corpus(self.code, query.absent_names, "names", "names", "whom")


@dataclass(frozen=True)
class EvidenceThreshold:
    """Refuses below the calibrated threshold of the question's language. The caller passes the k hits
    asked for: a deeper search for a two-part question must not lower the bar."""

    thresholds: Mapping[str, float]
    evidence: Callable[[QueryAnalysis, Sequence[Hit]], float]  # Retriever.evidence
    source: str = ""  # where the thresholds were calibrated (LoadedSettings.calibration_source)
    # which threshold (Retriever.evidence_key); None: the question's language
    key: Callable[[QueryAnalysis, Sequence[Hit]], str] | None = None
    # Rare terms of the question the best paper writes (TermCoverage.covered): if any, a low score is
    # not taken for a missing answer.
    covered: Callable[[QueryAnalysis, Sequence[Hit]], Sequence[str]] | None = None
    code = "evidence"
    stage = QUESTION

    def check(self, query: QueryAnalysis, hits: Sequence[Hit], draft: Draft | None) -> Refusal | None:
        kind = self.key(query, hits) if self.key is not None else query.lang
        threshold = self.thresholds.get(kind)
        if threshold is None or not hits:
            return None
        evidence = self.evidence(query, hits)
        if evidence >= threshold or self.waives(query, hits):
            return None
        note = f"evidence {evidence:.3f} below the calibrated threshold {threshold:.3f} for {query.lang} questions"
        if kind != query.lang:
            note += " (judged as a cross-lingual question: its best paper is mostly in another language)"
        if self.source:
            # A threshold made on other papers may not suit this index: the user should see whose it is.
            note += f" (calibration: {self.source})"
        return Refusal(self.code, note)

    def waives(self, query: QueryAnalysis, hits: Sequence[Hit]) -> Sequence[str]:
        """The rare terms of the question the best paper writes, for which no threshold applies ([]: none)."""
        return self.covered(query, hits) if self.covered is not None else []


@dataclass(frozen=True)
class NoRelevantSentence:
    min_score: float
    code = "no_relevant_sentence"
    stage = QUOTES

    def check(self, query: QueryAnalysis, hits: Sequence[Hit], draft: Draft | None) -> Refusal | None:
        if draft is None or (draft.candidates and draft.best >= self.min_score):
            return None
        return Refusal(self.code, f"best evidence score {draft.best:.3f}")


@dataclass(frozen=True)
class NoVerifiedQuote:
    code = "no_verified_quote"
    stage = QUOTES

    def check(self, query: QueryAnalysis, hits: Sequence[Hit], draft: Draft | None) -> Refusal | None:
        if draft is None or draft.quotes:
            return None
        return Refusal(self.code, "no quote survived verification")


@dataclass(frozen=True)
class MissingRate:
    """A rate asked and none quoted. A rate of how often something occurs (发病率, prevalence:
    `asks_frequency`) is also answered in words: "X is rare; its prevalence is unknown" (the
    frequency words of rag/data/domain/medical.json). A bare number is not enough ("2型糖尿病")."""

    code = "missing_rate"
    stage = QUOTES

    def check(self, query: QueryAnalysis, hits: Sequence[Hit], draft: Draft | None) -> Refusal | None:
        if draft is None or not query.asks_rate:
            return None
        states = states_how_often if query.asks_frequency else states_rate
        if any(states(q.text) for q in draft.verified):
            return None
        return Refusal(
            self.code, "the question asks for a rate and no sentence chosen to answer it states one"
        )


@dataclass(frozen=True)
class MissingMeasure:
    """A measure asked for with its unit ("How long did each session last?", "平均住院日是多少天？") and
    none quoted: a near-topic question about a fact the papers do not give gets sentences about the
    topic, often with other numbers (counts, years), and only the missing unit shows that they do not
    answer. The kinds and units are the `measures` of rag/data/lang/*.json."""

    code = "missing_measure"
    stage = QUOTES

    def check(self, query: QueryAnalysis, hits: Sequence[Hit], draft: Draft | None) -> Refusal | None:
        if draft is None or not query.asks_measure:
            return None
        if any(states_measure(q.text, query.asks_measure) for q in draft.verified):
            return None
        kinds = " or ".join(query.asks_measure)
        return Refusal(
            self.code,
            f"the question asks for a measure ({kinds}) and no sentence chosen to answer it states one",
        )


@dataclass(frozen=True)
class UnquotedNames:
    """A quote counts when it, or its paper's title or abstract, names the name (`rag.query.names`).
    A name is asked of the quotes only in a script their papers write: a Chinese question's
    噬血细胞性淋巴组织细胞增生症 cannot be quoted from an English page, which names it in English. A
    Chinese name needs a paper written in Chinese (`language_share` of it, as the term rules judge
    scripts: a scanned English page's OCR may hold a stray Han glyph); a Latin name (MTTP, EGFR) only
    a Latin letter, since Chinese papers write gene, drug and trial names in Latin too."""

    documents: Mapping[str, Document]
    in_place: bool = False  # a quote also names what the sentence before it names
    language_share: float = 0.3  # refusal.language_share
    # doc id -> the scripts its paper is written in (`_paper_scripts`; `refusal_rules` shares one with
    # the term rules); made from `language_share` when not given
    paper_scripts: Callable[[str], frozenset[str] | None] | None = None
    _latin: dict[str, bool] = field(default_factory=dict, init=False, compare=False, repr=False)
    code = "unquoted_names"
    stage = QUOTES

    def __post_init__(self) -> None:
        if self.paper_scripts is None:
            object.__setattr__(self, "paper_scripts", _paper_scripts(self.documents, self.language_share))

    def check(self, query: QueryAnalysis, hits: Sequence[Hit], draft: Draft | None) -> Refusal | None:
        if draft is None:
            return None
        papers = list(dict.fromkeys(q.doc_id for q in draft.verified))
        asked = [n for n in query.names if any(_script(n.text) in self._written(d) for d in papers)]
        missing = unquoted(asked, draft.verified, self.documents, self.in_place)
        if not missing:
            return None
        names = ", ".join(missing)
        note = f"the question names {names}, and no sentence chosen to answer it does"
        return Refusal(self.code, note, (("names", names),))

    def _written(self, doc_id: str) -> frozenset[str]:
        """The scripts whose names a paper can quote ("zh": written in Chinese, "en": any Latin
        letter); an unknown paper counts as writing both."""
        doc = self.documents.get(doc_id)
        if doc is None:
            return frozenset({"zh", "en"})
        zh = "zh" in (self.paper_scripts(doc_id) or ())
        if doc_id not in self._latin:  # kept per paper: the same papers are quoted again and again
            self._latin[doc_id] = bool(re.search("[A-Za-z]", f"{doc.title}\n{doc.text}"))
        return frozenset({"zh"} if zh else ()) | frozenset({"en"} if self._latin[doc_id] else ())


@dataclass(frozen=True)
class UncoveredTerms:
    """ "How common is celiac disease in Finland?" over pages where Finland is written only about other
    conditions: the celiac page is quoted for its prevalence worldwide. A rare word of the question
    that a few documents write (`CorpusMentions.written_key_terms`) but no quoted paper does names
    something the quotes are not about. Not judged when Chinese makes up `language_share` of a quoted
    paper: a Chinese paper may name in Chinese what an English question words in English. Chinese words are
    not judged: jieba's word boundaries are guesses (王连…被封为平阳亭侯 cut as 封为平), and a paper
    writes a guessed piece only by chance."""

    documents: Mapping[str, Document]
    language_share: float = 0.3  # refusal.language_share
    _texts: dict[str, str] = field(default_factory=dict, init=False, compare=False, repr=False)
    code = "uncovered_terms"
    stage = QUOTES

    def check(self, query: QueryAnalysis, hits: Sequence[Hit], draft: Draft | None) -> Refusal | None:
        if draft is None or not query.written_terms or not draft.verified:
            return None
        papers = [self.documents.get(d) for d in dict.fromkeys(q.doc_id for q in draft.verified)]
        if any(doc is None for doc in papers):
            return None
        texts = [self._text(doc) for doc in papers]
        if not all(texts):  # a paper with Chinese in it may write the word in Chinese
            return None
        missing = [w for w in query.written_terms if not any(writes_en(w, t) for t in texts)]
        if not missing:
            return None
        terms = ", ".join(_as_asked(w, query.text) for w in missing)
        note = f"the question asks about {terms}, which the corpus writes but no paper quoted does"
        return Refusal(self.code, note, (("terms", terms),))

    def _text(self, doc: Document) -> str:
        """The paper's title and text as the question's words are read (accents folded, lower-cased),
        or "" when Chinese makes up `language_share` of it: `Document.lang` says "en" up to half Han,
        and a Chinese paper with a long English abstract may write the word only in Chinese. Kept
        per paper: the same papers are quoted again and again."""
        text = self._texts.get(doc.doc_id)
        if text is None:
            text = fold_latin(unicodedata.normalize("NFKC", f"{doc.title}\n{doc.text}")).lower()
            if "zh" in corpus_scripts(text, self.language_share):
                text = ""
            self._texts[doc.doc_id] = text
        return text


def _as_asked(word: str, question: str) -> str:
    """`word` (lower-cased, accents folded) as the question writes it: "Finland", not "finland"."""
    asked = fold_latin(unicodedata.normalize("NFKC", question))
    found = re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}", asked, re.IGNORECASE)
    return found.group() if found else word


def _script(word: str) -> str:
    return "zh" if HAN_RE.search(word) else "en"


def _paper_scripts(
    documents: Mapping[str, Document], language_share: float
) -> Callable[[str], frozenset[str] | None]:
    """doc id -> the scripts its paper is written in (`corpus_scripts`), or None for an unknown id."""
    cache: dict[str, frozenset[str]] = {}  # one entry per paper: a paper's text is read once

    def scripts(doc_id: str) -> frozenset[str] | None:
        doc = documents.get(doc_id)
        if doc is None:
            return None
        if doc_id not in cache:
            cache[doc_id] = corpus_scripts(
                unicodedata.normalize("NFKC", f"{doc.title}\n{doc.text}"), language_share
            )
        # No script at all (numbers only, a failed OCR): the paper says nothing; the passage decides.
        return cache[doc_id] or None

    return scripts


def refusal_rules(
    settings: Settings,
    documents: Mapping[str, Document],
    evidence: Callable[[QueryAnalysis, Sequence[Hit]], float],
    calibration_source: str = "",
    evidence_key: Callable[[QueryAnalysis, Sequence[Hit]], str] | None = None,
    writing: Callable[[str], frozenset[str]] | None = None,
) -> tuple[RefusalRule, ...]:
    """The rules the settings switch on, in the order they are judged; `calibration_source` (where the
    evidence thresholds were calibrated) goes into the evidence rule's notes."""
    r = settings.refusal
    rules: list[RefusalRule] = []
    scripts = _paper_scripts(documents, r.language_share)  # one per-paper cache for every rule
    paper_scripts = scripts if r.judge_by_paper else None
    if r.unknown_names:
        rules.append(UnknownNames(paper_scripts))
    if r.absent_terms:
        rules.append(AbsentTerms(paper_scripts))
    if r.absent_names:
        rules.append(AbsentNames())
    if r.evidence:
        covered = None
        if r.covered_terms and writing is not None:
            covered = TermCoverage(
                writing,
                len(documents),
                max_share=r.covered_share,
                min_terms=r.covered_min,
                common_zipf=r.common_zipf,
                by_title=r.covered_title,
            ).covered
        rules.append(
            EvidenceThreshold(
                settings.abstain.thresholds(), evidence, calibration_source, evidence_key, covered
            )
        )
    rules += [NoRelevantSentence(settings.answer.min_score), NoVerifiedQuote()]
    if r.missing_rate:
        rules.append(MissingRate())
    if r.missing_measure:
        rules.append(MissingMeasure())
    if r.unquoted_names:
        rules.append(UnquotedNames(documents, r.names_in_place, r.language_share, scripts))
    if r.uncovered_terms:
        rules.append(UncoveredTerms(documents, r.language_share))
    return tuple(rules)


def first_refusal(
    rules: Sequence[RefusalRule],
    stage: str,
    query: QueryAnalysis,
    hits: Sequence[Hit],
    draft: Draft | None = None,
    skip: tuple[str, ...] = (),
) -> Refusal | None:
    """The first refusal among the rules of `stage` (those whose code is in `skip` left out)."""
    for rule in rules:
        if rule.stage == stage and rule.code not in skip:
            refusal = rule.check(query, hits, draft)
            if refusal is not None:
                return refusal
    return None
