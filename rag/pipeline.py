"""The question-answering pipeline: load an index, retrieve, answer with verified quotes.

ask = check the question -> detect its language -> (with a chat model and history: condense the
follow-up) -> retrieve k hits -> generator (extractive by default; an LLM generator falls back to it).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.abstain.rules import QUESTION, QUOTES, first_refusal, refusal_rules
from rag.answer.compose import Scorer, compose_answer
from rag.answer.framing import abstain_answer, templates
from rag.answer.generate import Compose, ExtractiveGenerator, Generator
from rag.answer.signals import SentenceSignals
from rag.encode.cache import CachedPassageEmbedder
from rag.indexing.index import Index
from rag.lang import question_lang
from rag.query.absent_terms import load_word_frequencies
from rag.query.analysis import QueryAnalyser, QueryAnalysis
from rag.retrieve.retriever import MODES, Retriever
from rag.settings import (
    FITTED_SOURCE,
    AnswerSettings,
    EncoderSettings,
    LoadedSettings,
    Settings,
    load_settings,
)
from rag.terms.glossary import Glossary
from rag.types import Answer, Chunk, Document, Hit, Refusal

if TYPE_CHECKING:
    from rag.encode.embedding import Embedder

__all__ = ["MODES", "GeneratorFactory", "Pipeline", "QuestionError", "check_question"]

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 1000
_TRANSLATION_CACHE = 256  # eval asks each question once per mode: translate it once

# A generator, or a function making one from the pipeline's extractive composer, so that an LLM
# generator can fall back to it: `lambda extractive: generator_from_args(args, extractive)`.
GeneratorFactory = Callable[[Compose], Generator]


# An index from before sentences were embedded in place still answers, with the sentences' own vectors.
OLD_INDEX_NOTE = (
    "the index has no in-place sentence vectors (built by an older version): answers pick sentences "
    "less well; rebuild it with `rag index` (unchanged papers are not embedded again)"
)


def calibrated_by(record: Mapping[str, Any]) -> str:
    """What set the thresholds in force, from their calibration record (rag.abstain.calibration, .adaptive)."""
    if record.get("gold"):
        return f"gold questions ({record['gold']})"
    if record.get("source") == FITTED_SOURCE:
        shift = record.get("zh", {}).get("shift", 0.0)
        return f"pseudo-questions of this index (zh moved by {shift:+g} from the packaged threshold)"
    return str(record.get("source") or "none")


class QuestionError(ValueError):
    """The question cannot be asked as given; the message says how to fix it."""


def check_question(question: str) -> str:
    """The question stripped, or a QuestionError whose message (in both languages, as the question's
    language is not known yet) says how to fix it."""
    question = (question or "").strip()
    if not question:
        raise QuestionError(_both("question_empty"))
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(_both("question_too_long", n=len(question), limit=MAX_QUESTION_CHARS))
    # Punctuation or emoji alone ("？？？!!!") has nothing to search for; an answer would be a guess.
    if not any(ch.isalnum() for ch in question):
        raise QuestionError(_both("question_no_words", text=question[:40]))
    return question


def _both(key: str, **values: object) -> str:
    return " / ".join(templates(lang)[key].format(**values) for lang in ("en", "zh"))


def embedder_for(
    manifest_model_id: str, model: str | None, encoder: EncoderSettings | None = None
) -> Embedder:
    """The embedder to query an index with: the one named, else the one the index was built with,
    run as `encoder` says (either runtime reads an index the other built)."""
    from rag.encode.embedding import SentenceTransformerEmbedder
    from rag.encode.models import DEFAULT_MODEL

    if model is None:
        model = DEFAULT_MODEL if manifest_model_id.startswith(DEFAULT_MODEL) else manifest_model_id
    encoder = encoder or EncoderSettings()
    return SentenceTransformerEmbedder(model, runtime=encoder.runtime, limit_blas=encoder.limit_blas_threads)


@dataclass(frozen=True)
class _Prepared:
    """A question made ready for the generator."""

    query: QueryAnalysis  # the question as asked, condensed when a follow-up, analysed once
    hits: list[Hit]  # k of them; more for a question asking two things (AnswerSettings.part_chunks)
    notes: tuple[str, ...]
    k: int  # the hits asked for


@dataclass(eq=False)
class _State:
    """What follows one index folder. An ask reads one state from start to end (`Pipeline._pin`), so
    an upload swapping in a new index never mixes two indexes in one answer."""

    index: Index
    loaded: LoadedSettings
    settings: Settings
    settings_notes: tuple[str, ...]
    answer_embedder: Any
    retriever: Retriever = field(init=False)
    analyser: QueryAnalyser = field(init=False)
    sentence_signals: SentenceSignals | None = field(init=False)
    rules: list = field(init=False)
    _glossary: Glossary | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def glossary(self) -> Glossary:
        if self._glossary is None:
            with self._lock:  # mined once even when several questions arrive together
                if self._glossary is None:
                    self._glossary = getattr(self.index, "glossary", None) or Glossary.build(
                        self.index.documents.values()
                    )
        return self._glossary


# (pipeline, state) an ask in this thread (or generator step) has pinned; see Pipeline._pin.
_PINNED: contextvars.ContextVar[tuple[Pipeline, _State] | None] = contextvars.ContextVar(
    "rag_pipeline_state", default=None
)


class Pipeline:
    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        answer_settings: AnswerSettings | None = None,
        generator: Generator | GeneratorFactory | None = None,
        chat_model: Any = None,
        *,
        overrides: Mapping[str, Any] | None = None,
        translate_queries: bool = False,
        llm_timeout: float = 30,
    ) -> None:
        """Settings: the index's (`rag.settings.load_settings`: packaged, then index/settings.json, then
        `overrides`, e.g. {"answer.max_quotes": 2}). `answer_settings` replaces that section and also
        means no calibrated thresholds. `chat_model` (any object with LangChain's `.invoke`) condenses follow-ups and, with
        `translate_queries`, adds a Chinese translation to English questions before searching."""
        self.embedder = embedder
        self._fixed = (overrides, answer_settings)
        self.chat_model = chat_model
        self.translate_queries = translate_queries
        self.llm_timeout = llm_timeout
        self._translations: dict[str, str] = {}
        self._translations_lock = threading.Lock()
        self._state = self._derive(index)
        if generator is None:
            generator = ExtractiveGenerator(self.compose)
        elif not hasattr(generator, "generate"):
            generator = generator(self.compose)
        self.generator: Generator = generator

    @classmethod
    def load(
        cls,
        index_dir: str | Path,
        model: str | None = None,
        embedder: Embedder | None = None,
        generator: Generator | GeneratorFactory | None = None,
        chat_model: Any = None,
        *,
        answer_settings: AnswerSettings | None = None,
        overrides: Mapping[str, Any] | None = None,
        translate_queries: bool = False,
        llm_timeout: float = 30,
    ) -> Pipeline:
        """Open an index; the model is loaded lazily, on the first question."""
        from rag.indexing.store import read_manifest

        if embedder is None:
            manifest = read_manifest(Path(index_dir))
            encoder = load_settings(index_dir, manifest["model_id"], overrides).settings.encoder
            embedder = embedder_for(manifest["model_id"], model, encoder)
        return cls(
            Index.load(index_dir, embedder),
            embedder,
            answer_settings,
            generator,
            chat_model,
            overrides=overrides,
            translate_queries=translate_queries,
            llm_timeout=llm_timeout,
        )

    def _derive(self, index: Index) -> _State:
        """State that follows the index folder: the settings, glossary, caches, retriever and rules."""
        overrides, answer = self._fixed
        loaded = load_settings(index.index_dir, index.model_id, overrides, index.manifest.get("chunker"))
        tree = loaded.settings
        if answer is not None:
            tree = replace(tree, answer=answer, abstain=type(tree.abstain)())
            loaded = replace(loaded, calibration={}, calibration_source="none", notes=())
        notes = loaded.notes if index.context_vectors is not None else (*loaded.notes, OLD_INDEX_NOTE)
        texts = getattr(index, "sentence_texts", None)
        vectors = getattr(index, "sentence_vectors", None)
        # The embedder that scores sentences: the index's sentence vectors first, the model for the
        # rest. Retrieval shares it, and so its query cache.
        answer_embedder = (
            CachedPassageEmbedder(self.embedder, texts, vectors)
            if texts is not None and vectors is not None
            else self.embedder
        )
        state = _State(index, loaded, tree, tuple(notes), answer_embedder)
        state.retriever = Retriever(index, answer_embedder, tree.retrieval)
        state.analyser = QueryAnalyser(index, answer_embedder, tree, state.glossary)
        state.sentence_signals = (
            SentenceSignals(
                index,
                answer_embedder,
                tree.scoring.context_share,
                tree.scoring.focus_share,
                topic=tree.scoring.topic_share > 0,
            )
            if tree.scoring.use_retrieval_signals
            else None
        )
        state.rules = refusal_rules(
            tree,
            index.documents,
            state.retriever.evidence,
            loaded.calibration_source,
            state.retriever.evidence_key,
            index.documents_writing,
        )
        return state

    def reload(self, warm: bool = False) -> None:
        """Re-open the index folder after it was rebuilt (e.g. after an upload).

        The new state replaces the old one in one assignment: an ask in flight finishes on the index it
        started with, the next one sees the new index whole. `warm` searches and judges a question on
        the new state first (no answer is generated, so no LLM is called), so its lazily read tables
        (drug names, corpus mentions) do not land on a user."""
        old = self._state
        index_dir = old.index.index_dir
        xl = old.index.crosslingual
        if xl is not None:
            from rag.indexing.store import read_manifest

            if read_manifest(index_dir).get("crosslingual_model_id") != xl.model_id:
                xl = None  # Index.load picks the encoder the new index names
        state = self._derive(Index.load(index_dir, self.embedder, crosslingual=xl))
        if warm:
            try:
                self.warm(state)
            except Exception:  # the new index is on disk and whole: a cold first question beats the old one
                logger.exception("warming the reloaded index failed; it is swapped in cold")
        self._state = state

    def warm(self, state: _State | None = None) -> None:
        """Search and judge a question in each language on `state` (the current one by default), and
        read wordfreq's lists, so the lazily loaded parts (the models, jieba, drug names, corpus
        mentions, word frequencies, pinyin readings: up to 0.7 s) do not land on a user's first
        question. No LLM is called: nothing is generated, and the search skips the LLM query
        translation. The English text names a person in pinyin, so the readings are read too."""
        with self._pin(state):
            for text in ("warm-up for Wang Yu: aspirin", "预热问题是什么？"):
                query = self.analyse(text)
                self.question_refusal(query, self.retriever.search(query, 1), 1)
        load_word_frequencies()

    # Every attribute below reads the state pinned for this ask (see _pin), else the current one.
    def _now(self) -> _State:
        pinned = _PINNED.get()
        return pinned[1] if pinned is not None and pinned[0] is self else self._state

    @contextlib.contextmanager
    def _pin(self, state: _State | None = None) -> Iterator[_State]:
        """Read one state from here to the end of the block, whatever reload does meanwhile."""
        pinned = _PINNED.get()
        if pinned is not None and pinned[0] is self and state in (None, pinned[1]):
            yield pinned[1]
            return
        state = state or self._state
        token = _PINNED.set((self, state))
        try:
            yield state
        finally:
            _PINNED.reset(token)

    @property
    def index(self) -> Index:
        return self._now().index

    @property
    def loaded(self) -> LoadedSettings:
        return self._now().loaded

    @property
    def settings(self) -> Settings:
        return self._now().settings

    @property
    def settings_notes(self) -> tuple[str, ...]:
        return self._now().settings_notes

    @property
    def retriever(self) -> Retriever:
        return self._now().retriever

    @property
    def analyser(self) -> QueryAnalyser:
        return self._now().analyser

    @property
    def sentence_signals(self) -> SentenceSignals | None:
        return self._now().sentence_signals

    @property
    def rules(self) -> list:
        return self._now().rules

    @property
    def answer_settings(self) -> AnswerSettings:
        return self.settings.answer

    @property
    def abstain(self) -> dict[str, float]:
        """Per question language: the evidence threshold in force."""
        return self.settings.abstain.thresholds()

    @property
    def documents(self) -> dict[str, Document]:
        return self.index.documents

    @property
    def chunks(self) -> list[Chunk]:
        return self.index.chunks

    @property
    def glossary(self) -> Glossary:
        """The index's mined glossary; an index without one gets it mined once, on first use."""
        return self._now().glossary()

    @property
    def answer_embedder(self) -> Any:
        """The embedder that scores sentences: the index's sentence vectors first, the model for the rest."""
        return self._now().answer_embedder

    @property
    def streams(self) -> bool:
        """Whether answers arrive as a draft first (an LLM generator) rather than whole."""
        return not isinstance(self.generator, ExtractiveGenerator)

    def status(self) -> dict:
        with self._pin():
            return self._status()

    def _status(self) -> dict:
        m = self.index.manifest
        return {
            "index_dir": str(self.index.index_dir),
            "model": m["model_id"],
            "documents": len(self.index.documents),
            "chunks": len(self.index.chunks),
            "built_at": m.get("built_at", ""),
            "generator": self.generator_name(),
            "translate_queries": self._translating(),
            "min_score": self.answer_settings.min_score,
            "abstain": dict(self.abstain),  # per question language: evidence threshold
            "calibration": self.loaded.calibration_source,
            "calibrated_by": calibrated_by(self.loaded.calibration),
            "refusal_rules": [r.code for r in self.rules],
        }

    def generator_name(self) -> str:
        """ "extractive", or the LLM generator and its model, e.g. "LLMGenerator(qwen2.5:7b-instruct)"."""
        if not self.streams:
            return "extractive"
        model = getattr(self.generator, "chat_model", None)
        name = getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__
        return (
            f"{type(self.generator).__name__}({name})" if model is not None else type(self.generator).__name__
        )

    # --- asking ------------------------------------------------------------------------------------

    def analyse(self, question: str, *, encode: bool = True) -> QueryAnalysis:
        """The question checked (QuestionError when empty or too long) and analysed."""
        return self.analyser.analyse(check_question(question), encode=encode)

    def retrieve(self, question: str, k: int = 10, mode: str = "hybrid") -> list[Hit]:
        with self._pin():
            return self.search(self.analyse(question, encode=mode == "hybrid"), k, mode)

    def search(self, query: QueryAnalysis, k: int = 10, mode: str = "hybrid") -> list[Hit]:
        """The k best chunks for an analysed question."""
        return self._search(query, k, mode)[0]

    def evidence(self, query: QueryAnalysis, hits: Sequence[Hit]) -> float:
        """The evidence score the evidence rule compares with its threshold (`Retriever.evidence`)."""
        return self.retriever.evidence(query, hits)

    def ask(
        self,
        question: str,
        k: int = 5,
        mode: str = "hybrid",
        history: Sequence[tuple[str, str]] | None = None,
    ) -> Answer:
        """Answer a question; `history` holds (question, answer) pairs of earlier turns, for follow-ups.

        Thread-safe: several questions may be answered at once, also while `reload` swaps the index."""
        with self._pin():
            p = self._prepare(question, k, mode, history)
            refusal = self.question_refusal(p.query, p.hits, p.k)
            if refusal is not None:
                return self._finish(self._refuse(p.query, p.hits, refusal), p)
            q = p.query
            return self._finish(self.generator.generate(q.text, q.lang, p.hits, self.documents, query=q), p)

    def ask_stream(
        self,
        question: str,
        k: int = 5,
        mode: str = "hybrid",
        history: Sequence[tuple[str, str]] | None = None,
    ) -> Iterator[str | Answer]:
        """Draft text pieces (unverified: show them as a draft), then the final Answer that replaces them.

        The question is checked and retrieval done before this returns, so a QuestionError is raised here.
        Every step reads the state the question was prepared on, whichever thread runs it.
        """
        with self._pin() as state:
            prepared = self._prepare(question, k, mode, history)
        return self._steps(state, self._stream(prepared))

    def _steps(self, state: _State, pieces: Iterator[str | Answer]) -> Iterator[str | Answer]:
        while True:
            with self._pin(state):
                piece = next(pieces, None)
            if piece is None:
                return
            yield piece

    def _stream(self, p: _Prepared) -> Iterator[str | Answer]:
        refusal = self.question_refusal(p.query, p.hits, p.k)
        if refusal is not None:
            yield self._finish(self._refuse(p.query, p.hits, refusal), p)
            return
        q = p.query
        for piece in self.generator.stream(q.text, q.lang, p.hits, self.documents, query=q):
            yield self._finish(piece, p) if isinstance(piece, Answer) else piece

    def question_refusal(
        self, query: QueryAnalysis, hits: Sequence[Hit], k: int = 5, skip: tuple[str, ...] = ()
    ) -> Refusal | None:
        """The refusal of the rules judged before any quote is chosen, or None. The evidence rule is
        judged on the k best hits: a deeper search for a two-part question must not lower the bar."""
        return first_refusal(self.rules, QUESTION, query, list(hits)[:k], None, skip)

    def compose(
        self,
        question: str,
        lang: str,
        hits: list[Hit],
        documents: dict[str, Document],
        query: QueryAnalysis | None = None,
    ) -> Answer:
        """The extractive answer (the default generator, and the fallback of an LLM one), or its refusal
        by the rules that judge the chosen quotes."""
        with self._pin() as st:
            if query is None:
                query = st.analyser.analyse(question)
            scorer = Scorer(
                st.glossary(),
                st.answer_embedder,
                st.sentence_signals,
                st.settings.scoring,
                st.index.sentences_of,
            )
            rules = st.rules
            return compose_answer(
                query,
                hits,
                documents,
                settings=st.settings.answer,
                scorer=scorer,
                judge=lambda draft: first_refusal(rules, QUOTES, query, hits, draft),
                # Without retrieval's signals a part needs no encoding: its words and e5 on its text do.
                analyse_part=st.analyser.part if st.sentence_signals is not None else self._plain_part,
            )

    def _plain_part(self, text: str) -> QueryAnalysis:
        return self.analyser.analyse(text, encode=False)

    def _refuse(
        self, query: QueryAnalysis, hits: Sequence[Hit], refusal: Refusal, notes: Sequence[str] = ()
    ) -> Answer:
        return abstain_answer(query.text, query.lang, hits, self.documents, self.glossary, notes, refusal)

    def _prepare(
        self, question: str, k: int, mode: str, history: Sequence[tuple[str, str]] | None
    ) -> _Prepared:
        question = check_question(question)
        standalone, notes = question, []
        if self.chat_model is not None and history:
            from rag.answer.llm import condense_question

            lang = question_lang(question)
            # condense_question returns the question itself on any failure, never "" or an over-long text.
            standalone = condense_question(self.chat_model, list(history), question, lang, self.llm_timeout)
            if standalone != question:
                notes.append(f"follow-up read as: {standalone}")
        query = self.analyser.analyse(standalone, asked=question)
        # A question asking two things searches deeper: a passage answering one part ranks lower.
        depth = max(k, self.answer_settings.part_chunks) if query.parts else k
        hits, search_notes = self._search(query, depth, mode)
        notes = (*notes, *search_notes, *self.settings_notes)
        return _Prepared(query, hits, notes, k)

    def _finish(self, answer: Answer, p: _Prepared) -> Answer:
        # The answer belongs to the question the user typed; the condensed form is in the notes.
        return replace(answer, question=p.query.asked, notes=(*answer.notes, *p.notes))

    def _translating(self) -> bool:
        return self.translate_queries and self.chat_model is not None

    def _search(self, query: QueryAnalysis, k: int, mode: str) -> tuple[list[Hit], list[str]]:
        notes = []
        if query.lang == "en" and self._translating():
            zh = self._translate(query.text)
            if zh != query.text:
                # Both languages in one query: the translation finds the Chinese body text, the
                # English words still find the English abstracts (and survive a poor translation).
                query = self.analyser.analyse(f"{query.text}\n{zh}", encode=query.encoded)
                notes.append(f"searched with a Chinese translation: {zh}")
        return self.retriever.search(query, k, mode), notes

    def _translate(self, question: str) -> str:
        from rag.answer.llm import translate_for_retrieval

        with self._translations_lock:
            if question in self._translations:
                return self._translations[question]
        # The LLM call is outside the lock: a slow server must not hold other questions.
        zh = translate_for_retrieval(self.chat_model, question, self.llm_timeout)
        if zh != question:  # a failure (the question back) is not kept: the server may be back next time
            with self._translations_lock:
                if len(self._translations) >= _TRANSLATION_CACHE:
                    self._translations.pop(next(iter(self._translations)))
                self._translations[question] = zh
        return zh
