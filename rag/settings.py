"""Every knob of the pipeline in one typed tree, and where each value comes from.

    Settings
    ├── ingest      what a build accepts and how papers are read (the longest file, OCR)
    ├── chunking    how papers are cut (fixed when the index is built; its manifest records them)
    ├── encoder     which runtime runs e5 (onnxruntime or torch)
    ├── retrieval   candidate depth, fusion and the weight of each signal
    ├── scoring     how the answer's sentences are ranked
    ├── answer      how many quotes, from how deep, and the relevance floor
    ├── refusal     each refusal rule on or off (rag.abstain.rules)
    └── abstain     the evidence thresholds, per question language

Values are layered, each layer overriding the one before: the code's defaults (the dataclasses
below), the packaged tree (`rag/data/settings.json`, which lists every knob), the index's own
`settings.json` (written by `rag calibrate`; it may hold only some sections), and the command line
(`--set answer.max_quotes=2`). `rag config` prints the effective tree and the source of each value.
The calibration (the `abstain` thresholds and the record of how they were chosen) is the one of the
last file read: an index with its own settings.json uses its own, or none.

Each field's `doc` says what it does and its unit; `rag config` prints it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, get_type_hints

SETTINGS_FILE = "settings.json"  # the index's overrides; == rag.indexing.store.SETTINGS, kept by rebuilds
# `calibration.source` of the thresholds `rag index` writes (rag.abstain.adaptive): fitted to the
# index's pseudo-questions, or the packaged ones carried by an index's own settings.json.
FITTED_SOURCE = "pseudo-questions"
PACKAGED_SOURCE = "packaged thresholds"
LANGS = ("zh", "en")


class SettingsError(ValueError):
    """A settings file or override that cannot be used; the message names it and the fix."""


def knob(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


def _check_range(name: str, value: float, lo: float, hi: float | None = None) -> None:
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo:g} and {hi:g}" if hi is not None else f"at least {lo:g}"
        raise ValueError(f"{name} must be {bound}, got {value}.")


@dataclass(frozen=True)
class ChunkerSettings:
    max_chars: int = knob(400, "longest chunk, in characters")
    overlap_chars: int = knob(80, "overlap between the windows of a long section, in characters")

    def __post_init__(self) -> None:
        if self.max_chars < 50:
            raise ValueError(f"max_chars must be at least 50, got {self.max_chars}.")
        if not 0 <= self.overlap_chars < self.max_chars // 2:
            raise ValueError(
                f"overlap_chars must be >= 0 and less than half of max_chars ({self.max_chars}), "
                f"got {self.overlap_chars}."
            )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class IngestSettings:
    # A 45 MB text made 91,820 chunks and an 8-hour build; a long paper is under 200,000 characters.
    max_file_chars: int = knob(
        1_000_000,
        "longest document a build indexes, in characters of normalised text; longer ones are refused",
    )
    ocr: bool = knob(True, "read PDF pages with no usable text layer (scans, garbage) by offline OCR")
    ocr_dpi: int = knob(200, "resolution a page is rendered at for OCR, in dots per inch (capped at 2000 px)")
    ocr_min_score: float = knob(0.7, "lowest recognition confidence of an OCR line that is kept, in [0, 1]")

    def __post_init__(self) -> None:
        _check_range("max_file_chars", self.max_file_chars, 1)
        _check_range("ocr_dpi", self.ocr_dpi, 50, 600)
        _check_range("ocr_min_score", self.ocr_min_score, 0, 1)

    def to_dict(self) -> dict:
        return asdict(self)


ENCODER_RUNTIMES = ("auto", "onnx", "torch")


@dataclass(frozen=True)
class EncoderSettings:
    # The export reproduces torch's vectors (cosine >= 0.9999, checked when it is made), so an index
    # built by one runtime answers queries from the other.
    runtime: str = knob(
        "auto",
        '"auto" (onnxruntime when the model exports and passes its check, else torch), "onnx" (fail if it '
        'cannot) or "torch"',
    )
    # numpy's BLAS workers busy-wait on the cores e5 runs on next (rag/encode/threads.py); a user's
    # OPENBLAS_NUM_THREADS / OMP_NUM_THREADS keeps its count either way.
    limit_blas_threads: bool = knob(
        True,
        "set numpy's and faiss's BLAS to one thread beside onnxruntime, whose threads then spin; false "
        "leaves the BLAS threads as they are and onnxruntime's asleep",
    )

    def __post_init__(self) -> None:
        if self.runtime not in ENCODER_RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(ENCODER_RUNTIMES)}, got {self.runtime!r}.")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RetrievalSettings:
    candidates: int = knob(50, "how deep each source list (e5, cross-lingual, BM25) is read, in chunks")
    fusion: str = knob(
        "zscore", '"zscore" (language-aware weighted sum of signals) or "rrf" (reciprocal rank)'
    )
    rrf_k: int = knob(60, "the k of reciprocal-rank fusion (fusion = rrf only)")
    w_chunk: float = knob(1.0, "weight of e5 similarity to the chunk vector (z-score units)")
    w_sentence: float = knob(1.0, "weight of e5 similarity to the chunk's best sentence")
    # The cross-lingual encoder ranks questions against passages less well than e5 (eval/ablation.py):
    # any weight from 0.3 to 0.7 beat 1.0 on both halves of the gold questions; 0.3 also kept Recall@5.
    w_xl_chunk: float = knob(0.3, "weight of cross-lingual similarity to the chunk vector")
    w_xl_sentence: float = knob(0.3, "weight of cross-lingual similarity to the chunk's best sentence")
    w_bm25_zh: float = knob(0.5, "weight of BM25 for a Chinese question")
    w_bm25_en: float = knob(0.25, "weight of BM25 for an English question (via glossary and induced words)")
    by_language: bool = knob(True, "standardise dense scores within each passage language")
    glossary: bool = knob(False, "expand the BM25 query with glossary terms (no gain over the lexicon)")
    lexicon: bool = knob(True, "add an English question's induced Chinese words to its BM25 query")
    induce_english: bool = knob(
        True,
        "add a Chinese question's induced English words to its BM25 and e5 queries, over a corpus "
        "at least refusal.language_share English",
    )
    lexicon_threshold: float = knob(0.5, "cosine a corpus word needs to be induced from a phrase")
    lexicon_dense: bool = knob(True, "also append the induced words to the question's e5 query")
    # e5's time grows with its input: English retrieval p50 60 ms with all induced words, 48 ms with 12.
    lexicon_dense_max: int = knob(12, "most induced words appended to the e5 query, closest first")
    drug_names: bool = knob(True, "find an English drug name's Chinese by its sound, not the lexicon")
    romanised_names: bool = knob(
        True, "find a Chinese name an English question writes in pinyin (Zhao Peng) in characters, by sound"
    )
    romanised_words: bool = knob(
        True, "... and its other capitalised pinyin words that are not everyday English (Gushi, Laitan)"
    )
    # A kept phrase with its two nearest words is about 350 bytes: 20,000 phrases are about 7 MB.
    phrase_cache: int = knob(
        20_000, "phrases (English, or a Chinese question's words) whose induced words are kept (0: none kept)"
    )
    # 4,096 rows of 512 floats are 8 MB, and the mean over them barely moves.
    background_sentences: int = knob(
        4096, "sentences sampled for the cross-lingual evidence's mean similarity to the index"
    )
    evidence_by_paper: bool = knob(
        True, "a Chinese question's evidence measure by its best hit's paper's language, not the corpus's"
    )

    def __post_init__(self) -> None:
        if self.fusion not in ("zscore", "rrf"):
            raise ValueError(f"fusion must be 'zscore' or 'rrf', got {self.fusion!r}.")
        _check_range("candidates", self.candidates, 1)
        _check_range("background_sentences", self.background_sentences, 1)
        _check_range("phrase_cache", self.phrase_cache, 0)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes) -> RetrievalSettings:
        return replace(self, **changes)


@dataclass(frozen=True)
class ScoringSettings:
    use_retrieval_signals: bool = knob(
        True, "score sentences with retrieval's e5 query and induced words (off: e5 on the question + words)"
    )
    dense_weight: float = knob(0.6, "share of e5 in a sentence's relevance in [0, 1]; the rest is word share")
    rank_bonus: float = knob(0.15, "order bonus for the best chunk's sentences, without retrieval's signals")
    glossary_weight: float = knob(2.0, "weight of a glossary term among the question's words (a word is 1)")
    # Word overlap also rewards sentences that merely restate the question's topic.
    lexical_weight_z: float = knob(0.5, "weight of the standardised word share (e5 counts 1)")
    rank_bonus_z: float = knob(1.0, "bonus for the best chunk's sentences, in standard deviations")
    quantity_bonus_z: float = knob(1.0, "bonus for a number when the question asks for one, in std devs")
    # "How many people are affected by X?" is answered by "X is rare" or "1 in 10,000 people", seldom
    # by "about half of people with X …" (eval/README.md, "Figures of how often").
    frequency_number_share: float = knob(
        0.0,
        "share of quantity_bonus_z a bare number gets for a question asking how often (frequency words, rates: all)",
    )
    # "How long did each session last?" is answered by "approximately one hour", not by "fifteen
    # participants" (eval/README.md, "Measures with units").
    measure_number_share: float = knob(
        0.0,
        "share of quantity_bonus_z a number without the unit asked for gets (how long, mean age, cost); 1: "
        "as before, any number for a question with a quantity word (how long), no bonus without one (mean age)",
    )
    # The answer often sits next to the sentence that matches the question.
    lift_neighbours: bool = knob(True, "a sentence scores at least neighbour_share of an adjacent one")
    neighbour_share: float = knob(0.6, "share of the better adjacent sentence's score a sentence gets")
    context_share: float = knob(0.5, "share of e5 similarity from the sentence read in place (0: off)")
    # Off: on it lifted CMRC's and MedQuAD's answer hit and cost one refusal on heldout (eval/README.md).
    focus_share: float = knob(
        0.0, "share of e5 similarity from the question without its document's title words (0: off)"
    )
    # The opening sentence of a paper restates its subject and wins any question naming it (eval/README).
    topic_share: float = knob(
        0.5,
        "ranking: share of a sentence's e5 similarity to its paper's title taken off, within the paper, "
        "when the question names the paper's subject and asks more than it (0: off)",
    )
    title_word_share: float = knob(
        1.0,
        "ranking by retrieval's signals: weight of a question word the sentence's paper title holds (1: as any)",
    )
    join_continuations: bool = knob(True, "quote a sentence with the next one when that one points back")
    max_quote_chars: int = knob(400, "longest quote such a join may make, in characters")
    whole_sentences: bool = knob(
        True, "quote a clause cut at a semicolon as its whole sentence, within max_quote_chars"
    )

    def __post_init__(self) -> None:
        _check_range("dense_weight", self.dense_weight, 0.0, 1.0)
        _check_range("context_share", self.context_share, 0.0, 1.0)
        _check_range("focus_share", self.focus_share, 0.0, 1.0)
        _check_range("neighbour_share", self.neighbour_share, 0.0, 1.0)
        _check_range("title_word_share", self.title_word_share, 0.0, 1.0)
        _check_range("topic_share", self.topic_share, 0.0, 1.0)
        _check_range("frequency_number_share", self.frequency_number_share, 0.0, 1.0)
        _check_range("measure_number_share", self.measure_number_share, 0.0, 1.0)


@dataclass(frozen=True)
class AnswerSettings:
    max_quotes: int = knob(3, "most quotes in one answer")
    min_score: float = knob(0.2, "relevance in [0, 1] the best sentence needs, else the answer is refused")
    candidate_chunks: int = knob(5, "chunks whose sentences may be quoted, best first")
    part_chunks: int = knob(
        10, "a question asking two things: chunks searched for a part the quotes leave out (0: off)"
    )
    # The candidates are already the best chunks' sentences, and the answer is often the second or
    # third sentence, so only a clearly weaker one is left out.
    follow_z: float = knob(2.5, "a further quote must be within this many std devs of the best one")
    follow_ratio: float = knob(0.7, "... or, without retrieval's signals, this share of its score")
    max_glosses: int = knob(4, "most glossed terms shown under a quote")

    def __post_init__(self) -> None:
        _check_range("max_quotes", self.max_quotes, 1, 10)
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be between 0 and 1 (a relevance score), got {self.min_score}.")
        _check_range("candidate_chunks", self.candidate_chunks, 1)
        if self.part_chunks < 0:
            raise ValueError(f"part_chunks must be 0 (off) or more, got {self.part_chunks}.")


@dataclass(frozen=True)
class RefusalSettings:
    unknown_names: bool = knob(True, "refuse a question naming something no indexed paper mentions")
    unknown_drug_names: bool = knob(True, "... drug names included (by their ending and sound)")
    absent_terms: bool = knob(True, "refuse a question whose key term (a rare word, a name) no document has")
    absent_names: bool = knob(
        True, "refuse an English question naming a Chinese person in pinyin whom no document names"
    )
    common_zipf: float = knob(
        4.0, "Zipf frequency (wordfreq) from which an English word is everyday language"
    )
    language_share: float = knob(
        0.3, "share of the corpus's letters from which its terms in a script are judged"
    )
    judge_by_paper: bool = knob(
        True, "judge a name or term only in the scripts of the best hit's paper (and foreign-script words)"
    )
    evidence: bool = knob(True, "refuse below the calibrated evidence threshold of the question's language")
    adapt_thresholds: bool = knob(
        True, "rag index moves the Chinese threshold to the index's pseudo-questions (not over rag calibrate)"
    )
    covered_terms: bool = knob(
        True,
        "no evidence refusal when the best paper writes all the question's rare terms (at least covered_min)",
    )
    covered_share: float = knob(
        0.05, "covered_terms: rare terms are written by at most this share of documents"
    )
    covered_min: int = knob(2, "covered_terms: how many rare terms the question must have")
    covered_title: bool = knob(
        False, "covered_terms: one rare term is enough when it is the best paper's title (its subject)"
    )
    missing_rate: bool = knob(True, "refuse a question asking for a rate when no chosen quote states one")
    missing_measure: bool = knob(
        True,
        "refuse a question asking for a time, age, length, price, weight, area or dose when no quote states one",
    )
    unquoted_names: bool = knob(True, "refuse quotes that leave out a drug, disease or acronym asked about")
    # On since the ranking contrasts sentences with their paper's title: the answer it then prefers often
    # points back ("该研究共入组41例…") to the sentence that names the drug (eval/README.md).
    names_in_place: bool = knob(True, "unquoted_names: a quote also names what the sentence before it names")
    uncovered_terms: bool = knob(
        True, "refuse quotes whose English papers never write a rare English word of the question"
    )
    uncovered_share: float = knob(
        0.05, "uncovered_terms judges words that at most this share of the documents write (at least one)"
    )


@dataclass(frozen=True)
class AbstainSettings:
    zh: float | None = knob(None, "evidence threshold for Chinese questions in [0, 1] (none: not checked)")
    en: float | None = knob(None, "evidence threshold for English questions in [0, 1] (none: not checked)")

    def __post_init__(self) -> None:
        for lang in LANGS:
            t = getattr(self, lang)
            if t is not None and not (isinstance(t, int | float) and 0 <= t <= 1):
                raise ValueError(f"the {lang} threshold must be in [0, 1], got {t!r}.")

    def thresholds(self) -> dict[str, float]:
        """Language -> threshold, for the languages that have one."""
        return {lang: float(t) for lang in LANGS if (t := getattr(self, lang)) is not None}


@dataclass(frozen=True)
class Settings:
    ingest: IngestSettings = field(default_factory=IngestSettings)
    chunking: ChunkerSettings = field(default_factory=ChunkerSettings)
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    refusal: RefusalSettings = field(default_factory=RefusalSettings)
    abstain: AbstainSettings = field(default_factory=AbstainSettings)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return asdict(self)

    def with_(self, **sections: Any) -> Settings:
        """A copy with whole sections, or knobs by "section.knob": `s.with_(**{"answer.max_quotes": 2})`."""
        return apply(self, sections, source=None)[0]


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in fields(Settings)}  # type: ignore[misc]

# Keys an older settings.json kept under "answer", and where they live now.
_LEGACY_ANSWER_KEYS = {
    "refuse_unknown_names": ("refusal", "unknown_names"),
    "refuse_missing_rate": ("refusal", "missing_rate"),
    "refuse_unquoted_names": ("refusal", "unquoted_names"),
}


def knobs(section: type) -> dict[str, Any]:
    """Knob name -> its dataclass field, for one section class."""
    return {f.name: f for f in fields(section)}


_BOOL_WORDS = {"true": True, "on": True, "1": True, "false": False, "off": False, "0": False}


def _coerce(section: str, name: str, value: Any, where: str) -> Any:
    """`value` checked (and converted from command-line text) against the knob's declared type."""
    hint = get_type_hints(SECTIONS[section])[name]
    text, number = isinstance(value, str), isinstance(value, int | float) and not isinstance(value, bool)
    optional = hint == (float | None)
    if optional and (value is None or (text and value.lower() in ("none", "null"))):
        return None
    try:
        if hint is bool and (isinstance(value, bool) or (text and value.lower() in _BOOL_WORDS)):
            return value if isinstance(value, bool) else _BOOL_WORDS[value.lower()]
        if hint is int and (text or (number and float(value).is_integer())):
            return int(value)
        if (hint is float or optional) and (text or number):
            return float(value)
        if hint is str and text:
            return value
    except ValueError:
        pass
    kind = {bool: "true or false", int: "a whole number", str: "a string"}.get(hint, "a number")
    raise SettingsError(f"{where}: {section}.{name} must be {kind}, got {value!r}")


def apply(
    settings: Settings,
    changes: Mapping[str, Any],
    source: str | None,
    sources: dict[str, str] | None = None,
    where: str = "settings",
) -> tuple[Settings, dict[str, str]]:
    """`settings` with `changes` applied: {"answer": {"max_quotes": 2}} or {"answer.max_quotes": 2}.
    Each changed knob's source is recorded as `source` in (a copy of) `sources`."""
    sources = dict(sources or {})
    grouped: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        section, _, name = key.partition(".")
        if section not in SECTIONS:
            raise SettingsError(f"{where}: unknown section {section!r}; known: {list(SECTIONS)}")
        if name:
            grouped.setdefault(section, {})[name] = value
        elif isinstance(value, SECTIONS[section]):
            grouped.setdefault(section, {}).update(asdict(value))
        elif isinstance(value, Mapping):
            grouped.setdefault(section, {}).update(value)
        else:
            raise SettingsError(f'{where}: "{section}" must be an object of knobs, got {value!r}')
    out = settings
    for section, values in grouped.items():
        known = knobs(SECTIONS[section])
        unknown = sorted(set(values) - set(known))
        if unknown:  # a misspelt key would otherwise be ignored without a word
            raise SettingsError(
                f"{where}: unknown {section} setting(s) {unknown}; known: {list(known)}"
                f" (`rag config` lists every knob)"
            )
        typed = {k: _coerce(section, k, v, where) for k, v in values.items()}
        try:
            new = replace(getattr(out, section), **typed)
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"{where}: {section}: {exc}") from None
        out = replace(out, **{section: new})
        if source is not None:
            sources.update({f"{section}.{k}": source for k in typed})
    return out, sources


@dataclass(frozen=True)
class LoadedSettings:
    """The effective tree for an index, with where each value came from and the calibration in force."""

    settings: Settings
    sources: dict[str, str]  # "section.knob" -> "default" | "packaged" | "index" | "command line"
    calibration: dict[str, Any]  # of the thresholds in force ({} when none)
    calibration_source: str  # the file the thresholds came from, or "none"
    notes: tuple[str, ...] = ()  # shown with every answer, e.g. "not calibrated for this model"

    @property
    def abstain(self) -> dict[str, float]:
        return self.settings.abstain.thresholds()


def packaged_settings() -> Traversable:
    """The packaged settings tree (it may be missing in a broken install)."""
    return resources.files("rag").joinpath("data", SETTINGS_FILE)


def default_settings_path() -> Path:
    """Where `rag calibrate --save-default` writes the packaged tree (the source tree in a dev install)."""
    return Path(__file__).resolve().parent / "data" / SETTINGS_FILE


def parse_file(raw: str, where: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A settings file's knob changes (by section) and its calibration block (None when it has none)."""
    fix = f"fix {where} or run `rag calibrate` to write it again"
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{where}: bad JSON ({exc.msg} at line {exc.lineno}); {fix}") from None
    if not isinstance(data, dict):
        raise SettingsError(f'{where}: expected {{"answer": {{"min_score": ...}}, ...}}; {fix}')
    unknown = sorted(set(data) - set(SECTIONS) - {"calibration"})
    if unknown:
        raise SettingsError(f"{where}: unknown section(s) {unknown}; known: {list(SECTIONS)}; {fix}")
    if not all(isinstance(data[s], dict) for s in data):
        raise SettingsError(
            f'{where}: each section must be an object, e.g. {{"answer": {{"min_score": 0.2}}}}; {fix}'
        )
    calibration = data.get("calibration")
    if calibration is not None and not isinstance(calibration, dict):
        raise SettingsError(f'{where}: "calibration" must be an object; {fix}')
    changes = {s: dict(v) for s, v in data.items() if s in SECTIONS}
    for old, (section, name) in _LEGACY_ANSWER_KEYS.items():
        if old in changes.get("answer", {}):
            changes.setdefault(section, {})[name] = changes["answer"].pop(old)
    abstain = changes.get("abstain", {})
    if not isinstance(abstain, dict) or not all(
        lang in LANGS and isinstance(t, int | float) and 0 <= t <= 1 for lang, t in abstain.items()
    ):
        raise SettingsError(f'{where}: "abstain" must map "zh"/"en" to thresholds in [0, 1]; {fix}')
    return changes, calibration


def _layer(
    settings: Settings, sources: dict[str, str], raw: str, where: str, source: str
) -> tuple[Settings, dict[str, str], dict[str, Any]]:
    """`settings` with one file's knobs applied, and the file's calibration record ({}: none)."""
    changes, calibration = parse_file(raw, where)
    # Each file brings its own calibration: thresholds calibrated on other papers do not carry over to an
    # index with its own settings.json, and a language the file gives no threshold has none.
    changes["abstain"] = {lang: changes.get("abstain", {}).get(lang) for lang in LANGS}
    try:
        settings, sources = apply(settings, changes, source, sources, where)
    except SettingsError as exc:
        raise SettingsError(f"{exc}; fix it or run `rag calibrate` to write it again") from None
    return settings, sources, calibration or {}


def load_settings(
    index_dir: str | Path | None = None,
    model_id: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    chunking: Mapping[str, Any] | None = None,
) -> LoadedSettings:
    """The effective tree: defaults, then the packaged tree, then `index_dir/settings.json`, then the
    `chunking` the index was built with (its manifest), then `overrides` (the command line).

    Notes say when the thresholds in force were calibrated for a model other than `model_id`."""
    settings = Settings()
    sources = {f"{s}.{k}": "default" for s, cls in SECTIONS.items() for k in knobs(cls)}
    calibration: dict[str, Any] | None = None
    calibration_source = "none"
    packaged = packaged_settings()
    if packaged.is_file():
        where = "rag/data/settings.json (packaged)"
        settings, sources, calibration = _layer(
            settings, sources, packaged.read_text("utf-8"), where, "packaged"
        )
        calibration_source = where
    own = Path(index_dir) / SETTINGS_FILE if index_dir is not None else None
    stale: tuple[str, ...] = ()
    if own is not None and own.is_file():
        raw = own.read_text(encoding="utf-8")
        packaged_abstain, packaged_sources = settings.abstain, dict(sources)
        packaged_calibration, packaged_source = calibration, calibration_source
        settings, sources, calibration = _layer(settings, sources, raw, str(own), "index")
        calibration_source = str(own)
        if _fitted_to_another(calibration, packaged_calibration):
            # Thresholds `rag index` fitted from an older packaged calibration: the packaged ones
            # now (the index's other knobs stay), until a re-index fits them again.
            settings = replace(settings, abstain=packaged_abstain)
            sources.update({k: v for k, v in packaged_sources.items() if k.startswith("abstain.")})
            calibration, calibration_source = packaged_calibration, packaged_source
            stale = (
                f"the thresholds in {own} were fitted to an older packaged calibration; the packaged "
                f"ones are used; run `rag index` to fit them to this index again",
            )
    if chunking:
        settings, sources = apply(settings, {"chunking": chunking}, "index", sources, "the index manifest")
    if overrides:
        settings, sources = apply(settings, overrides, "command line", sources, "the command line")
    notes: tuple[str, ...] = stale
    if calibration is None:
        target = f" --index {index_dir}" if index_dir is not None else ""
        notes += (f"abstention is not calibrated (no {own or SETTINGS_FILE}); run `rag calibrate{target}`",)
    elif model_id is not None and calibration.get("model_id") != model_id:
        # Still used: a threshold for another model beats none, but the user should know.
        # The thresholds in force, not answer.min_score (calibration sets that to 0).
        shown = ", ".join(f"{lang} {t:g}" for lang, t in settings.abstain.thresholds().items()) or "none"
        notes += (
            f"abstention thresholds ({shown}) were calibrated for model "
            f"{calibration.get('model_id') or '?'}, not {model_id}, so it may refuse too often or too "
            f"rarely; run `rag calibrate --index {index_dir}`",
        )
    return LoadedSettings(settings, sources, calibration or {}, calibration_source, notes)


def _fitted_to_another(record: Mapping[str, Any] | None, packaged: Mapping[str, Any] | None) -> bool:
    """Whether an index's thresholds were written by `rag index` (rag.abstain.adaptive) from a packaged
    calibration other than the one installed now."""
    if not record or record.get("source") not in (FITTED_SOURCE, PACKAGED_SOURCE):
        return False
    return (record.get("base") or {}).get("date") != (packaged or {}).get("date")


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """`--set section.knob=value` arguments -> {"section.knob": "value"} (values typed by `apply`)."""
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or "." not in key:
            raise SettingsError(
                f"--set {pair!r}: expected SECTION.KNOB=VALUE, e.g. --set answer.max_quotes=2 "
                f"(`rag config` lists every knob)"
            )
        out[key.strip()] = value.strip()
    return out


def describe(loaded: LoadedSettings) -> list[dict[str, Any]]:
    """One row per knob: section, name, value, source and doc (what `rag config` prints)."""
    rows = []
    for section, cls in SECTIONS.items():
        values = getattr(loaded.settings, section)
        for name, f in knobs(cls).items():
            rows.append(
                {
                    "knob": f"{section}.{name}",
                    "value": getattr(values, name),
                    "source": loaded.sources.get(f"{section}.{name}", "default"),
                    "doc": f.metadata.get("doc", ""),
                    "default": f.default if f.default is not MISSING else None,
                }
            )
    return rows
