"""A question, analysed once: made at the start of `Pipeline.ask` and passed to retrieval, sentence
scoring and the refusal rules, so that none of them analyses it again or reads another's state.

The analysis holds what the text says (language, concepts, parts, the names it mentions, the answer
type it asks for) and how the encoders see it: the cross-lingual vector, the words induced in the
other language (Chinese for an English question, English for a Chinese one over English papers), and
the e5 vector of the query retrieval embeds. What it knows of the corpus
(which names the papers write, the papers' drug names, the lexicon) comes from the index.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from rag.lang import question_lang
from rag.query.absent_terms import CorpusMentions, zipf
from rag.query.answer_type import asks_frequency, asks_measure, asks_quantity, asks_rate
from rag.query.names import Name, paper_acronyms, question_names
from rag.query.parts import question_parts
from rag.query.unknown_names import UnknownNames
from rag.settings import Settings
from rag.terms.concepts import question_concepts
from rag.terms.drug_names import DrugNames
from rag.terms.lexicon import Lexicon, PhraseCache
from rag.terms.romanised import ChineseSpellings, romanised_names, romanised_words

if TYPE_CHECKING:
    from rag.encode.embedding import Embedder
    from rag.indexing.index import Index
    from rag.terms.glossary import Glossary


@dataclass(frozen=True, eq=False)
class QueryAnalysis:
    asked: str  # as the user typed it
    text: str  # what is searched and answered: the question stripped, or a condensed follow-up
    lang: str  # "zh" or "en"
    concepts: Mapping[str, float]  # weighted concept keys: glossary terms ("g:…") and words ("t:…")
    parts: tuple[str, ...]  # the things a question asking two things asks (empty: one thing)
    names: tuple[Name, ...]  # drugs, diseases and acronyms it names (for the unquoted-names rule)
    unknown_names: tuple[str, ...]  # names it uses that no indexed paper mentions
    absent_terms: tuple[str, ...]  # key terms (rare words, Chinese proper nouns) no indexed text has
    asks_rate: bool  # a rate or share (发生率, what proportion)
    asks_quantity: bool  # any number: a count, rate, dose, ratio or year
    asks_frequency: bool = False  # how often something occurs (how many people are affected, prevalence)
    asks_measure: tuple[str, ...] = ()  # measures with units asked for: ("duration", "length"), "money"
    written_terms: tuple[str, ...] = ()  # its English key terms the corpus writes (UncoveredTerms)
    # Chinese personal names written in pinyin ("Zhao Peng") that no document writes, in characters
    # (by sound) or in Latin letters (rag.terms.romanised).
    absent_names: tuple[str, ...] = ()
    # Words of the corpus in the other language, induced from the question's own (rag.terms.lexicon):
    # Chinese ones for an English question, English ones for a Chinese question over a corpus at least
    # refusal.language_share English (`QueryAnalyser.induces_english`).
    induced: tuple[str, ...] = ()
    dense_query: str = ""  # the text e5 embeds in hybrid mode (the question + its closest induced words)
    e5: np.ndarray | None = field(default=None, repr=False)  # e5 vector of dense_query
    crosslingual: np.ndarray | None = field(default=None, repr=False)  # cross-lingual vector of text

    @property
    def encoded(self) -> bool:
        return self.e5 is not None


def analyse_text(
    text: str,
    lang: str | None = None,
    glossary: Glossary | None = None,
    glossary_weight: float = 2.0,
    names: tuple[Name, ...] = (),
) -> QueryAnalysis:
    """What the text alone says, without the corpus or the encoders: `QueryAnalyser` adds those.
    `lang` None: detected."""
    return QueryAnalysis(
        asked=text,
        text=text,
        lang=lang or question_lang(text),
        concepts=question_concepts(text, glossary, glossary_weight),
        parts=tuple(question_parts(text)),
        names=tuple(names),
        unknown_names=(),
        absent_terms=(),
        asks_rate=asks_rate(text),
        asks_quantity=asks_quantity(text),
        asks_frequency=asks_frequency(text),
        asks_measure=asks_measure(text),
    )


class _NoDrugNames:
    """Stands in for the papers' drug names when the unknown-drug check is off."""

    def find_zh(self, question: str, common_word=None) -> list[str]:
        return []

    def find_en(self, question: str, english_words=None) -> list[str]:
        return []


class QueryAnalyser:
    """Makes `QueryAnalysis` objects for one index. What it reads of the corpus is read once, lazily."""

    def __init__(
        self, index: Index, embedder: Embedder, settings: Settings, glossary: Callable[[], Glossary]
    ) -> None:
        """`embedder` is the one retrieval embeds queries with; `glossary` returns the index's glossary."""
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self._glossary = glossary
        self._drugs: DrugNames | None = None
        self._unknown: UnknownNames | None = None
        self._acronyms: frozenset[str] | None = None
        self._mentions: CorpusMentions | None = None
        self._spellings: ChineseSpellings | None = None
        self.phrases = PhraseCache(settings.retrieval.phrase_cache)

    def analyse(self, text: str, *, asked: str | None = None, encode: bool = True) -> QueryAnalysis:
        """The analysis of `text` (already checked); `encode` False leaves out the encoders (the dense
        and bm25 retrieval modes do not use them)."""
        glossary = self._glossary()
        analysis = analyse_text(
            text, glossary=glossary, glossary_weight=self.settings.scoring.glossary_weight
        )
        refusal = self.settings.refusal
        if refusal.unquoted_names:
            names = question_names(text, self.drug_names(), acronyms=self.acronyms(), glossary=glossary)
            analysis = replace(analysis, names=tuple(names))
        if refusal.unknown_names:
            analysis = replace(
                analysis, unknown_names=tuple(self.unknown_checker().find(text, analysis.lang))
            )
        if refusal.absent_terms:
            analysis = replace(analysis, absent_terms=tuple(self.mentions().absent(text)))
        if refusal.uncovered_terms:
            written = self.mentions().written_key_terms(text, refusal.uncovered_share)
            analysis = replace(analysis, written_terms=tuple(written))
        if refusal.absent_names and analysis.lang == "en":
            analysis = replace(analysis, absent_names=tuple(self.absent_names(text)))
        if asked is not None:
            analysis = replace(analysis, asked=asked)
        return self.encode(analysis) if encode else analysis

    def part(self, text: str) -> QueryAnalysis:
        """One part of a question asking two things, encoded (its names are the whole question's)."""
        weight = self.settings.scoring.glossary_weight
        return self.encode(analyse_text(text, glossary=self._glossary(), glossary_weight=weight))

    def encode(self, a: QueryAnalysis) -> QueryAnalysis:
        """`a` with its encodings: the cross-lingual vector and induced words in one encoder call,
        then e5 on the dense query."""
        xl_vector, induced = self.crosslingual(a.text, a.lang, a.names)
        dense_query = self.dense_query(a.text, induced)
        e5 = np.asarray(self.embedder.embed_queries([dense_query])[0])
        return replace(a, induced=tuple(induced), dense_query=dense_query, e5=e5, crosslingual=xl_vector)

    def dense_query(self, text: str, induced: list[str]) -> str:
        """What e5 embeds for retrieval: the text and its closest induced words."""
        s = self.settings.retrieval
        return " ".join([text, *induced[: s.lexicon_dense_max]]) if s.lexicon_dense and induced else text

    def crosslingual(
        self, text: str, lang: str, names: Sequence[Name] = ()
    ) -> tuple[np.ndarray | None, list[str]]:
        """The cross-lingual vector of `text` and the corpus words in the other language induced from
        its phrases: Chinese ones for English, English ones for Chinese (`induces_english`)."""
        s, ex, xl = self.settings.retrieval, self.index.extras, self.index.crosslingual
        if xl is None or ex.xl_index is None:
            return None, []
        named: dict[str, str] = {}
        if s.lexicon and lang == "en" and ex.lexicon is not None:
            lexicon = ex.lexicon
            # A drug name's Chinese is found by its sound (rag.terms.drug_names): the lexicon has no
            # vector for a name it never saw and maps it to whatever is near (everolimus -> 紫杉醇).
            named = self._chinese_drug_names(text) if s.drug_names else {}
            if s.romanised_names:
                named.update(self._chinese_names(text, s.romanised_words))
            phrases = [p for p in lexicon.phrases(text) if not named.keys() & set(p.split())]
        elif self.induces_english(lang):
            # A drug name the lexicon never saw maps to whatever is near (利伐沙班 -> an author's
            # surname): the words holding it induce nothing, as for English questions. The names are
            # the analysis's (`refusal.unquoted_names`, on by default); a name's first characters
            # before the two `zh_drug_endings` reads may still induce.
            drugs = [n.text for n in names if not (n.disease or n.acronym)]
            lexicon, phrases = ex.english_lexicon, Lexicon.chinese_words(text, leave_out=drugs)
        else:
            lexicon, phrases = None, []
        known = self.phrases.get(phrases)
        todo = list(dict.fromkeys(p for p in phrases if p not in known))
        # The question and its new phrases in one encoder call; the phrases seen before cost nothing.
        vectors = xl.embed_queries([text, *todo])
        if todo:
            new = dict(zip(todo, lexicon.nearest(vectors[1:]), strict=True))
            self.phrases.put(new)
            known.update(new)
        induced = Lexicon.merge((known[p] for p in phrases), s.lexicon_threshold)
        named_words = list(dict.fromkeys(named.values()))
        induced = [*named_words, *(w for w in induced if w not in named_words)]
        return vectors[0], induced

    def induces_english(self, lang: str) -> bool:
        """Whether a question in `lang` gets English corpus words induced: a Chinese question, when
        English is one of the corpus's scripts (`refusal.language_share` of its words, as the
        term rules judge it). Over Chinese papers with English abstracts (the bundled ones) English
        words pulled Chinese questions toward the abstracts; over English or mixed folders BM25 has
        nothing else to match a Chinese question with."""
        s, ex = self.settings.retrieval, self.index.extras
        return (
            s.induce_english
            and lang == "zh"
            and ex.english_lexicon is not None
            and len(ex.english_lexicon) > 0
            and "en" in self.mentions().scripts
        )

    def _chinese_drug_names(self, text: str) -> dict[str, str]:
        """English drug names of the text -> the papers' Chinese name for each, where one sounds alike."""
        found = {}
        for word in dict.fromkeys(re.findall(r"[a-z]+", text.lower())):
            names = self.drug_names().chinese_names(word)
            if names:
                found[word] = names[0]
        return found

    def _chinese_names(self, text: str, words: bool = True) -> dict[str, str]:
        """The words of the text's romanised Chinese names (and, with `words`, of its other pinyin
        words that are not everyday English: Gushi, Laitan) -> the corpus's Chinese spelling of each,
        where it writes one ("zhao", "peng" -> 赵鹏; "gushi" -> 固始). Of several, a word that is not
        everyday Chinese comes first: a name is a rare word, and its homophones are often common
        ones (gushi: 固始 or 故事, "story"); then the most written."""
        common = self.settings.refusal.common_zipf
        names = romanised_names(text)
        # Names are searched even when wordfreq rates them everyday English: it rates a phrase by its
        # words, so "Li Na" (4.03) scores as "Hong Kong" (4.21). A homophone of Hong Kong the corpus
        # writes (洪孔) is searched for too: one word more for BM25, never a refusal.
        others = (
            [w for w in romanised_words(text, names) if zipf(w.text.lower(), "en") < common] if words else []
        )
        found = {}
        for name in [*names, *others]:
            spellings = self.spellings().spellings(name)
            if spellings:
                rare = [w for w in spellings if zipf(w, "zh") < common]
                spelling = (rare or spellings)[0]
                found.update(dict.fromkeys(name.words, spelling))
        return found

    def absent_names(self, text: str) -> list[str]:
        """The text's romanised Chinese names that no document writes in either script. A name that is
        everyday English as a whole ("Hong Kong" parses as surname Hong + Kong) is no test."""
        common = self.settings.refusal.common_zipf
        return list(self.spellings().absent(text, lambda name: zipf(name.lower(), "en") >= common))

    def spellings(self) -> ChineseSpellings:
        """Finds romanised names in the corpus text, made on first use."""
        if self._spellings is None:
            self._spellings = ChineseSpellings(self.mentions().text)
        return self._spellings

    def drug_names(self) -> DrugNames:
        """The papers' drug names, read from the documents on first use."""
        if self._drugs is None:
            self._drugs = DrugNames(d.text for d in self.index.documents.values())
        return self._drugs

    def acronyms(self) -> frozenset[str]:
        """The gene, marker and acronym names the papers write, read once."""
        if self._acronyms is None:
            self._acronyms = paper_acronyms(d.text for d in self.index.documents.values())
        return self._acronyms

    def mentions(self) -> CorpusMentions:
        """What the indexed documents write, read once."""
        if self._mentions is None:
            r = self.settings.refusal
            texts = (f"{d.title}\n{d.text}" for d in self.index.documents.values())
            self._mentions = CorpusMentions(texts, r.language_share, r.common_zipf)
        return self._mentions

    def unknown_checker(self) -> UnknownNames:
        if self._unknown is None:
            drugs = self.drug_names() if self.settings.refusal.unknown_drug_names else _NoDrugNames()
            texts = (d.text for d in self.index.documents.values())
            self._unknown = UnknownNames(texts, drugs, self.settings.refusal.language_share)
        return self._unknown
