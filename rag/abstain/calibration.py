"""Answer settings that live with the index (`settings.json`), and calibrating the abstention threshold.

The extractive answerer abstains when the best sentence's evidence score is below `min_score`. That
score's scale depends on the embedding model, so the threshold is chosen on gold questions
(`rag calibrate`) and stored next to the vectors it was measured with::

    {"answer": {"min_score": 0.71, "max_quotes": 3, "candidate_chunks": 5},
     "calibration": {"gold": "eval/gold.jsonl", "n_answerable": 10, "n_unanswerable": 4, "f1": 0.9,
                     "model_id": "...", "date": "..."}}

An index without `settings.json` uses the packaged default (rag/data/settings.json), with a note when
that default was calibrated for another model.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Protocol

from rag.answer.compose import AnswerSettings
from rag.evaluate.gold import GoldItem
from rag.evaluate.metrics import abstention_prf
from rag.lang import detect_lang
from rag.terms.glossary import Glossary
from rag.types import Answer, Document, Hit

__all__ = [
    "SETTINGS_FILE",
    "LoadedSettings",
    "SettingsError",
    "calibrate",
    "choose_threshold",
    "default_settings_path",
    "evidence_scores",
    "packaged_settings",
    "read_settings",
    "settings_dict",
    "write_settings",
]

SETTINGS_FILE = "settings.json"  # == rag.indexing.store.SETTINGS, which rebuilds carry over
_ANSWER_KEYS = tuple(f.name for f in fields(AnswerSettings))


class SettingsError(ValueError):
    """A settings.json that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class LoadedSettings:
    answer: AnswerSettings
    source: str  # the file read, or "built-in" when even the packaged default is missing
    calibration: dict[str, Any]
    abstain: dict[str, float] = field(default_factory=dict)  # per question language: evidence threshold
    notes: tuple[str, ...] = ()  # shown with every answer, e.g. "not calibrated for this model"


def packaged_settings() -> Traversable:
    """The packaged default settings file (it may be missing in a broken install)."""
    return resources.files("rag").joinpath("data", SETTINGS_FILE)


def default_settings_path() -> Path:
    """Where `rag calibrate --save-default` writes the packaged default (the source tree in a dev install)."""
    return Path(__file__).resolve().parent.parent / "data" / SETTINGS_FILE


def _parse(raw: str, where: str) -> tuple[AnswerSettings, dict[str, Any], dict[str, float]]:
    fix = f"fix {where} or run `rag calibrate` to write it again"
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{where}: bad JSON ({exc.msg} at line {exc.lineno}); {fix}") from None
    if not isinstance(data, dict) or not isinstance(data.get("answer"), dict):
        raise SettingsError(f'{where}: expected {{"answer": {{"min_score": ...}}, ...}}; {fix}')
    answer = data["answer"]
    unknown = sorted(set(answer) - set(_ANSWER_KEYS))
    if unknown:  # a misspelt key would otherwise be ignored without a word
        raise SettingsError(f"{where}: unknown answer setting(s) {unknown}; known: {list(_ANSWER_KEYS)}")
    try:
        settings = AnswerSettings(**answer)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{where}: {exc} {fix}") from None
    calibration = data.get("calibration") or {}
    if not isinstance(calibration, dict):
        raise SettingsError(f'{where}: "calibration" must be an object; {fix}')
    abstain = data.get("abstain") or {}
    if not isinstance(abstain, dict) or not all(
        lang in ("zh", "en") and isinstance(t, (int, float)) and 0 <= t <= 1 for lang, t in abstain.items()
    ):
        raise SettingsError(f'{where}: "abstain" must map "zh"/"en" to thresholds in [0, 1]; {fix}')
    return settings, calibration, {lang: float(t) for lang, t in abstain.items()}


def read_settings(index_dir: str | Path, model_id: str) -> LoadedSettings:
    """The index's settings.json if present, else the packaged default; notes when the threshold was
    calibrated for a model other than `model_id` (the index's)."""
    own = Path(index_dir) / SETTINGS_FILE
    if own.is_file():
        where = str(own)
        settings, calibration, abstain = _parse(own.read_text(encoding="utf-8"), where)
    else:
        packaged = packaged_settings()
        if not packaged.is_file():
            note = (
                f"abstention is not calibrated (no {own} and no packaged default); "
                f"run `rag calibrate --index {index_dir}`"
            )
            return LoadedSettings(AnswerSettings(), "built-in", {}, notes=(note,))
        where = "rag/data/settings.json (packaged default)"
        settings, calibration, abstain = _parse(packaged.read_text(encoding="utf-8"), where)
    calibrated_for = calibration.get("model_id")
    notes = ()
    if calibrated_for != model_id:
        # Still used: a threshold for another model beats none, but the user should know.
        notes = (
            f"abstention threshold {settings.min_score:g} was calibrated for model {calibrated_for or '?'}, "
            f"not {model_id}, so it may refuse too often or too rarely; run `rag calibrate --index {index_dir}`",
        )
    return LoadedSettings(settings, where, calibration, abstain=abstain, notes=notes)


def settings_dict(
    answer: AnswerSettings, calibration: Mapping[str, Any], abstain: Mapping[str, float] | None = None
) -> dict[str, Any]:
    out = {"answer": asdict(answer), "calibration": dict(calibration)}
    if abstain:
        out["abstain"] = dict(abstain)
    return out


def write_settings(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write settings JSON atomically: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ---- choosing the threshold ---------------------------------------------------------------------


def choose_threshold(
    scores_answerable: Sequence[float],
    scores_unanswerable: Sequence[float],
    refused_anyway: tuple[int, int] = (0, 0),
) -> tuple[float, dict[str, Any]]:
    """The `min_score` that maximises abstention F1 (positive = unanswerable; abstain when score < t).

    `refused_anyway` counts (answerable, unanswerable) questions refused whatever the threshold (they
    name something the papers never mention): they count in the F1 but not in the search.

    Every cut between two neighbouring distinct scores is tried, and the threshold is put at the
    midpoint of that gap, as far as possible from the scores on either side. Ties in F1 go to the cut
    that refuses fewer answerable questions, then to the wider gap. With no unanswerable question the
    best cut refuses nothing (F1 counts as 1.0, see `abstention_prf`): the threshold sits halfway
    below the weakest answerable score. Scores are in [0, 1]; 0 and 1 bound the outer gaps.
    """
    ans = [float(s) for s in scores_answerable]
    una = [float(s) for s in scores_unanswerable]
    forced_ans, forced_una = refused_anyway
    if not ans and not una and not forced_ans + forced_una:
        raise ValueError(
            "choose_threshold needs at least one score; pass the evidence scores of gold questions"
        )
    if any(not 0.0 <= s <= 1.0 for s in (*ans, *una)):
        raise ValueError("evidence scores must lie in [0, 1]; pass Retriever.evidence values")
    values = sorted(set(ans) | set(una)) or [0.0]
    # Gap i lies between values[i-1] and values[i]; a threshold in (lo, hi] abstains on scores <= lo.
    gaps = [(0.0, values[0], True)] + [(values[i - 1], values[i], False) for i in range(1, len(values))]
    if values[-1] < 1.0:  # a score of 1.0 can never be refused (min_score <= 1)
        gaps.append((values[-1], 1.0, False))
    gold = [False] * len(ans) + [True] * len(una) + [False] * forced_ans + [True] * forced_una
    best: tuple | None = None
    for lo, hi, first in gaps:
        t = lo if first and lo == hi else (lo + hi) / 2
        pred = [s < t for s in (*ans, *una)] + [True] * (forced_ans + forced_una)
        prf = abstention_prf(pred, gold)
        refused = sum(pred[: len(ans)]) + forced_ans
        key = (prf.f1, -refused, hi - lo)
        if best is None or key > best[0]:
            best = (key, t, lo, hi, prf, refused, sum(pred[len(ans) : len(ans) + len(una)]) + forced_una)
    _, t, lo, hi, prf, refused, caught = best
    t = _readable(t, lo, hi)
    stats = {
        "threshold": t,
        "f1": prf.f1,
        "precision": prf.precision,
        "recall": prf.recall,
        "n_answerable": len(ans) + forced_ans,
        "n_unanswerable": len(una) + forced_una,
        "wrongly_refused": refused,  # answerable questions that would be refused
        "wrongly_answered": len(una) + forced_una - caught,  # unanswerable questions answered
        "gap": [lo, hi],
    }
    return t, stats


def _readable(t: float, lo: float, hi: float) -> float:
    """t rounded to 4 places when that keeps it inside its gap (lo, hi], so settings.json stays legible."""
    r = round(t, 4)
    return r if lo < r <= hi or (lo == hi == r) else t


# ---- scoring gold questions ------------------------------------------------------------------


class ScoringPipeline(Protocol):
    """What calibration needs from `rag.pipeline.Pipeline`."""

    answer_settings: AnswerSettings

    @property
    def documents(self) -> dict[str, Document]: ...

    @property
    def glossary(self) -> Glossary | None: ...

    @property
    def answer_embedder(self) -> Any: ...

    @property
    def retriever(self) -> Any: ...

    def retrieve(self, question: str, k: int = ..., mode: str = ...) -> list[Hit]: ...

    def unknown_names(self, question: str, lang: str) -> list[str]: ...

    def compose(
        self, question: str, lang: str, hits: list[Hit], documents: dict[str, Document]
    ) -> Answer: ...


def evidence_scores(
    pipeline: ScoringPipeline,
    gold_items: Sequence[GoldItem],
    k: int = 5,
    mode: str = "hybrid",
    progress: Callable[[int, int, GoldItem], None] | None = None,
) -> list[tuple[GoldItem, float]]:
    """(item, evidence score) for each gold question, on the hits `pipeline.ask` would use (same k, mode).

    The score is `Retriever.evidence`: the best sentence's similarity under the encoder that suits the
    question's language (see rag.retrieve.retriever), which is what the pipeline compares to the threshold.
    """
    return [(item, score) for item, score, _ in _scored_hits(pipeline, gold_items, k, mode, progress)]


def _scored_hits(
    pipeline: ScoringPipeline,
    gold_items: Sequence[GoldItem],
    k: int,
    mode: str,
    progress: Callable[[int, int, GoldItem], None] | None,
) -> list[tuple[GoldItem, float, list[Hit]]]:
    """`evidence_scores` with the hits kept, so calibration can ask the answerer without retrieving again."""
    out = []
    for i, item in enumerate(gold_items, 1):
        if progress:
            progress(i, len(gold_items), item)
        hits = pipeline.retrieve(item.question, k=k, mode=mode)
        out.append((item, pipeline.retriever.evidence(item.question, detect_lang(item.question), hits), hits))
    return out


def calibrate(
    pipeline: ScoringPipeline,
    gold_items: Sequence[GoldItem],
    gold_path: str,
    model_id: str,
    k: int = 5,
    mode: str = "hybrid",
    progress: Callable[[int, int, GoldItem], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Settings for settings.json: one abstention threshold per question language, and the stats.

    Per language, because the evidence score comes from a different encoder for each (and even one
    encoder's similarities sit at different levels across languages).
    """
    with_hits = _scored_hits(pipeline, gold_items, k, mode, progress)
    scored = [(item, score) for item, score, _ in with_hits]
    # Questions naming something the papers never mention are refused before the threshold applies,
    # and the answerer refuses some by itself (a rate asked, none stated): neither should move it.
    named = [bool(pipeline.unknown_names(item.question, detect_lang(item.question))) for item, _ in scored]
    by_answerer = [
        not n and _answerer_refuses(pipeline, item.question, hits)
        for (item, _, hits), n in zip(with_hits, named, strict=True)
    ]
    refused_first = [a or b for a, b in zip(named, by_answerer, strict=True)]
    thresholds: dict[str, float] = {}
    per_lang: dict[str, dict[str, Any]] = {}
    for lang in ("zh", "en"):
        mine = [
            (item, s)
            for (item, s), n in zip(scored, refused_first, strict=True)
            if detect_lang(item.question) == lang and not n
        ]
        forced = [
            item
            for (item, _), n in zip(scored, refused_first, strict=True)
            if detect_lang(item.question) == lang and n
        ]
        ans = [s for item, s in mine if item.answerable]
        una = [s for item, s in mine if not item.answerable]
        refused_anyway = (sum(i.answerable for i in forced), sum(not i.answerable for i in forced))
        if ans or una or forced:
            thresholds[lang], per_lang[lang] = choose_threshold(ans, una, refused_anyway)
    gold_unanswerable = [not item.answerable for item, _ in scored]
    refused = [
        n or s < thresholds.get(detect_lang(item.question), 0.0)
        for (item, s), n in zip(scored, refused_first, strict=True)
    ]
    prf = abstention_prf(refused, gold_unanswerable)
    stats = {
        "f1": prf.f1,
        "precision": prf.precision,
        "recall": prf.recall,
        "n_answerable": sum(not u for u in gold_unanswerable),
        "n_unanswerable": sum(gold_unanswerable),
        "wrongly_refused": sum(r and not u for r, u in zip(refused, gold_unanswerable, strict=True)),
        "wrongly_answered": sum(u and not r for r, u in zip(refused, gold_unanswerable, strict=True)),
        "by_lang": {lang: {k_: v for k_, v in st.items() if k_ != "gap"} for lang, st in per_lang.items()},
    }
    # The evidence gate decides abstention; the answerer's own relevance floor is then only a quote filter.
    answer = AnswerSettings(**{**asdict(pipeline.answer_settings), "min_score": 0.0})
    calibration = {
        "gold": gold_path,
        "n_answerable": stats["n_answerable"],
        "n_unanswerable": stats["n_unanswerable"],
        "f1": _r(stats["f1"]),
        "precision": _r(stats["precision"]),
        "recall": _r(stats["recall"]),
        "wrongly_refused": stats["wrongly_refused"],
        "refused_for_unknown_names": sum(named),
        "refused_by_the_answerer": sum(by_answerer),
        "model_id": model_id,
        "k": k,
        "mode": mode,
        "signal": "best-sentence similarity: e5 for Chinese questions; cross-lingual encoder for English,"
        " less the question's mean similarity to the index's sentences; questions naming something no"
        " document mentions are refused first",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return settings_dict(answer, calibration, thresholds), {**stats, "scores": scored}


def _answerer_refuses(pipeline: ScoringPipeline, question: str, hits: list[Hit]) -> bool:
    return pipeline.compose(question, detect_lang(question), hits, pipeline.documents).abstained


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
