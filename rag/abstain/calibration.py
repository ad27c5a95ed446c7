"""Calibrating the abstention thresholds on gold questions (`rag calibrate`).

The evidence score's scale depends on the embedding model and on the question's language, so one
threshold per language is chosen on gold questions and stored next to the vectors it was measured
with, in the index's settings.json (`rag.settings` layers it over the packaged tree)::

    {"answer": {"min_score": 0.0}, "abstain": {"zh": 0.9, "en": 0.19},
     "calibration": {"gold": "eval/gold.jsonl", "n_answerable": 10, "n_unanswerable": 4, "f1": 0.9,
                     "model_id": "...", "date": "...", "refused_by_rule": {...}}}

A question that another refusal rule refuses (`rag.abstain.rules`) is refused whatever the threshold:
it counts in the F1 but does not move the threshold.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from rag.evaluate.gold import GoldItem
from rag.evaluate.metrics import abstention_prf
from rag.types import Answer, Document, Hit, Refusal

__all__ = ["calibrate", "choose_threshold", "evidence_scores", "settings_dict", "write_settings"]


def settings_dict(
    calibration: Mapping[str, Any], abstain: Mapping[str, float] | None = None, min_score: float = 0.0
) -> dict[str, Any]:
    """What `rag calibrate` writes: the relevance floor, the thresholds and the calibration's record."""
    out: dict[str, Any] = {"answer": {"min_score": min_score}, "calibration": dict(calibration)}
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
    answered_anyway: tuple[int, int] = (0, 0),
) -> tuple[float, dict[str, Any]]:
    """The `min_score` that maximises abstention F1 (positive = unanswerable; abstain when score < t).

    `refused_anyway` counts (answerable, unanswerable) questions refused whatever the threshold (they
    name something the papers never mention): they count in the F1 but not in the search.
    `answered_anyway` counts those the evidence rule leaves unjudged (`EvidenceThreshold.waives`),
    answered whatever the threshold: likewise.

    Every cut between two neighbouring distinct scores is tried, and the threshold is put at the
    midpoint of that gap, as far as possible from the scores on either side. Ties in F1 go to the cut
    that refuses fewer answerable questions, then to the wider gap. With no unanswerable question the
    best cut refuses nothing (F1 counts as 1.0, see `abstention_prf`): the threshold sits halfway
    below the weakest answerable score. Scores are in [0, 1]; 0 and 1 bound the outer gaps.
    """
    ans = [float(s) for s in scores_answerable]
    una = [float(s) for s in scores_unanswerable]
    forced_ans, forced_una = refused_anyway
    free_ans, free_una = answered_anyway
    if not ans and not una and not forced_ans + forced_una + free_ans + free_una:
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
    gold += [False] * free_ans + [True] * free_una
    best: tuple | None = None
    for lo, hi, first in gaps:
        t = lo if first and lo == hi else (lo + hi) / 2
        pred = (
            [s < t for s in (*ans, *una)]
            + [True] * (forced_ans + forced_una)
            + [False] * (free_ans + free_una)
        )
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
        "n_answerable": len(ans) + forced_ans + free_ans,
        "n_unanswerable": len(una) + forced_una + free_una,
        "waived": free_ans + free_una,  # answered whatever the threshold: their papers write their rare terms
        "wrongly_refused": refused,  # answerable questions that would be refused
        "wrongly_answered": len(una) + forced_una + free_una - caught,  # unanswerable questions answered
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

    rules: Sequence[Any]

    @property
    def documents(self) -> dict[str, Document]: ...

    def analyse(self, question: str, *, encode: bool = True) -> Any: ...

    def search(self, query: Any, k: int = ..., mode: str = ...) -> list[Hit]: ...

    def evidence(self, query: Any, hits: Sequence[Hit]) -> float: ...

    def question_refusal(
        self, query: Any, hits: Sequence[Hit], k: int = ..., skip: tuple[str, ...] = ()
    ) -> Refusal | None: ...

    def compose(
        self, question: str, lang: str, hits: list[Hit], documents: dict[str, Document], query: Any = None
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
    question's language (see rag.retrieve.retriever), which is what the evidence rule compares to the
    threshold.
    """
    return [(item, score) for item, _, score, *_ in _scored(pipeline, gold_items, k, mode, progress)]


def _scored(
    pipeline: ScoringPipeline,
    gold_items: Sequence[GoldItem],
    k: int,
    mode: str,
    progress: Callable[[int, int, GoldItem], None] | None,
) -> list[tuple[GoldItem, str, float, Refusal | None, bool]]:
    """Each question's threshold key (`Retriever.evidence_key`: its language, except that a Chinese
    question whose best hit's paper is mostly English is judged as a cross-lingual one), evidence score,
    refusal by any rule but the evidence rule (None: none), and whether the evidence rule leaves it
    unjudged (`EvidenceThreshold.waives`: its best paper writes its rare terms), so no threshold acts on it."""
    out = []
    for i, item in enumerate(gold_items, 1):
        if progress:
            progress(i, len(gold_items), item)
        query = pipeline.analyse(item.question)
        hits = pipeline.search(query, k, mode)
        refusal = pipeline.question_refusal(query, hits, k, skip=("evidence",))
        if refusal is None:
            answer = pipeline.compose(query.text, query.lang, hits, pipeline.documents, query=query)
            refusal = answer.refusal
        # Grouped as the evidence rule judges it, so each threshold is chosen on the scores it is used on.
        key = pipeline.retriever.evidence_key(query, hits[:k])
        waived = any(bool(rule.waives(query, hits[:k])) for rule in pipeline.rules if hasattr(rule, "waives"))
        out.append((item, key, pipeline.evidence(query, hits), refusal, waived))
    return out


def _thresholds(
    scored: Sequence[tuple[GoldItem, str, float, Refusal | None, bool]],
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """Per threshold key, the threshold and its stats, from `_scored`'s rows: only the questions the
    threshold decides move it; those another rule refuses, or the evidence rule waives, only count."""
    thresholds: dict[str, float] = {}
    per_lang: dict[str, dict[str, Any]] = {}
    for lang in ("zh", "en"):
        mine = [(item, s) for item, q_lang, s, r, w in scored if q_lang == lang and r is None and not w]
        forced = [item for item, q_lang, _, r, _ in scored if q_lang == lang and r is not None]
        ans = [s for item, s in mine if item.answerable]
        una = [s for item, s in mine if not item.answerable]
        free = [item for item, q_lang, _, r, w in scored if q_lang == lang and r is None and w]
        refused_anyway = (sum(i.answerable for i in forced), sum(not i.answerable for i in forced))
        answered_anyway = (sum(i.answerable for i in free), sum(not i.answerable for i in free))
        if ans or una or forced or free:
            thresholds[lang], per_lang[lang] = choose_threshold(ans, una, refused_anyway, answered_anyway)
    return thresholds, per_lang


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
    scored = _scored(pipeline, gold_items, k, mode, progress)
    thresholds, per_lang = _thresholds(scored)
    gold_unanswerable = [not item.answerable for item, *_ in scored]
    refused = [r is not None or (not w and s < thresholds.get(lang, 0.0)) for _, lang, s, r, w in scored]
    prf = abstention_prf(refused, gold_unanswerable)
    by_rule = Counter(r.code for *_, r, _ in scored if r is not None)
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
    calibration = {
        "gold": gold_path,
        "n_answerable": stats["n_answerable"],
        "n_unanswerable": stats["n_unanswerable"],
        "f1": _r(stats["f1"]),
        "precision": _r(stats["precision"]),
        "recall": _r(stats["recall"]),
        "wrongly_refused": stats["wrongly_refused"],
        "refused_for_unknown_names": by_rule.get("unknown_names", 0),
        "refused_by_the_answerer": sum(n for code, n in by_rule.items() if code != "unknown_names"),
        "refused_by_rule": dict(sorted(by_rule.items())),
        "model_id": model_id,
        "k": k,
        "mode": mode,
        "signal": "best-sentence similarity: e5 for Chinese questions; cross-lingual encoder for English,"
        " less the question's mean similarity to the index's sentences; questions another refusal rule"
        " refuses are refused first",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    # The evidence rule decides abstention; the answerer's relevance floor is then only a quote filter.
    return settings_dict(calibration, thresholds), {**stats, "scores": [(i, s) for i, _, s, *_ in scored]}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
