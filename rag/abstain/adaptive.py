"""Thresholds that follow the index, without labelled questions (`rag index` runs this after a build).

The packaged Chinese evidence threshold (`abstain.zh`) was calibrated on the bundled papers' gold
questions. e5's similarities sit at another level on another corpus: on Chinese Wikipedia the best
threshold was 0.874 where the bundled papers need 0.9. What moves with the corpus can be measured on
the corpus itself: pseudo-questions made from its sentences (a share of a sentence's words and a
question ending, `data/calibration/pseudo.json`), scored on the whole index (standing for answerable
questions) and on the other documents only (the sentence's own left out: a question about a subject
near the corpus that it does not cover). The score at which the two error rates meet is the index's
equal-error point; the threshold moves from the packaged one by the difference between that point and
the reference point measured on the bundled index. On the bundled index itself it stays as packaged.

Only the Chinese threshold moves: English evidence is the cross-lingual measure, calibrated on English
questions about Chinese papers, which pseudo-questions in the papers' own language do not imitate.
A calibration on gold questions (`rag calibrate`) overrides this one and is never replaced.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rag.lang import HAN_RE
from rag.settings import FITTED_SOURCE, PACKAGED_SOURCE, SETTINGS_FILE, load_settings

__all__ = [
    "PseudoSpec",
    "adapted_settings",
    "equal_error_point",
    "measure",
    "pseudo_questions",
    "Stopped",
    "write_adapted",
]

SOURCE, PACKAGED = FITTED_SOURCE, PACKAGED_SOURCE


K = 5  # the passages `rag ask` judges by default


class Stopped(Exception):
    """The measure was asked to stop (an upload cancelled meanwhile)."""


@dataclass(frozen=True)
class PseudoSpec:
    """How pseudo-questions are made and how many (the fields of `data/calibration/pseudo.json`)."""

    n_questions: int
    seed: int
    keep_share: float
    min_words: int
    min_each: int  # fewer scored questions on either side than this: the threshold is not moved
    candidates: int  # hits searched, so that K remain once the sentence's own document is left out
    max_shift: float  # a larger move is taken for a corpus unlike any it was checked on: not made
    ending: str
    min_han: int
    max_chars: int
    reference: float | None  # the bundled index's equal-error point
    reference_model: str | None  # the model it was measured with: other models' scores sit elsewhere
    reference_base: str | None  # the date of the packaged calibration it goes with

    @classmethod
    def packaged(cls) -> PseudoSpec:
        data = json.loads(
            resources.files("rag").joinpath("data", "calibration", "pseudo.json").read_text("utf-8")
        )
        zh, ref = data["zh"], data["reference"]
        return cls(
            n_questions=int(data["n_questions"]),
            seed=int(data["seed"]),
            keep_share=float(data["keep_share"]),
            min_words=int(data["min_words"]),
            min_each=int(data["min_each"]),
            candidates=int(data["candidates"]),
            max_shift=float(data["max_shift"]),
            ending=str(zh["ending"]),
            min_han=int(zh["min_han"]),
            max_chars=int(zh["max_chars"]),
            reference=ref["zh"],
            reference_model=ref["model_id"],
            reference_base=ref["calibration_date"],
        )


def pseudo_questions(index: Any, spec: PseudoSpec) -> list[tuple[str, str]]:
    """(doc id, pseudo-question) from the index's Chinese sentences. The same papers give the same
    list however the index grew (a fresh build or uploads): the pool is sorted before it is shuffled."""
    from rag.terms.lexical import _jieba

    texts, rows, chunks = index.extras.sentence_texts, index.extras.sentences, index.chunks
    pool = sorted(
        {
            (chunks[int(row[0])].doc_id, int(row[1]), text.strip())
            for row, text in zip(rows, texts, strict=True)
            if len(HAN_RE.findall(text)) >= spec.min_han and len(text.strip()) <= spec.max_chars
        }
    )
    rng = random.Random(spec.seed)
    rng.shuffle(pool)
    tokenizer, out = _jieba(), []
    for doc_id, _, text in pool[: spec.n_questions]:
        words = [w for w in tokenizer.lcut(text.rstrip("。！？；")) if w.strip()]
        if len(words) < spec.min_words:
            continue
        keep = sorted(rng.sample(range(len(words)), max(spec.min_words, int(len(words) * spec.keep_share))))
        out.append((doc_id, "".join(words[i] for i in keep) + spec.ending))
    return out


def equal_error_point(answerable: Sequence[float], unanswerable: Sequence[float]) -> float:
    """The score t, among the scores given, where the share of answerable scores below t comes
    closest to the share of unanswerable ones at or above it (the lowest such score on a tie)."""
    a, u = np.sort(np.asarray(answerable, float)), np.sort(np.asarray(unanswerable, float))
    if not len(a) or not len(u):
        raise ValueError("equal_error_point needs scores on both sides")
    cuts = np.unique(np.concatenate([a, u]))
    gap = np.searchsorted(a, cuts, "left") / len(a) - (len(u) - np.searchsorted(u, cuts, "left")) / len(u)
    i = int(np.argmin(np.abs(gap)))
    return float(cuts[i])


def measure(pipeline: Any, spec: PseudoSpec, stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """The index's equal-error point and its counts; "point" is None when too few questions on a side.

    Answerable: the question on the whole index's top K, as `ask` would judge it (its own document
    may be missed, as a real question's may). Unanswerable: the top K of the other documents.
    `stop` is asked before each question; when it says so, `Stopped` is raised."""
    answerable, unanswerable = [], []
    for doc_id, question in pseudo_questions(pipeline.index, spec):
        if stop is not None and stop():
            raise Stopped
        query = pipeline.analyse(question)
        hits = pipeline.search(query, spec.candidates, "hybrid")
        own, others = hits[:K], [h for h in hits if h.chunk.doc_id != doc_id][:K]
        if own and pipeline.retriever.evidence_key(query, own) == "zh":
            answerable.append(pipeline.evidence(query, own))
        if others and pipeline.retriever.evidence_key(query, others) == "zh":
            unanswerable.append(pipeline.evidence(query, others))
    enough = min(len(answerable), len(unanswerable)) >= spec.min_each
    return {
        "point": round(equal_error_point(answerable, unanswerable), 4) if enough else None,
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
    }


def adapted_settings(
    pipeline: Any,
    base: dict[str, float],
    base_calibration: dict[str, Any],
    spec: PseudoSpec | None = None,
    stop: Callable[[], bool] | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """Settings for the index's settings.json (`abstain` and the `calibration` record) and a line
    saying what was done; (None, why) when the packaged thresholds stay."""
    spec = spec or PseudoSpec.packaged()
    if base.get("zh") is None or spec.reference is None:
        return None, "no packaged Chinese threshold or reference point"
    if pipeline.index.model_id != spec.reference_model:
        return (
            None,
            f"the reference point was measured with {spec.reference_model}, not {pipeline.index.model_id}",
        )
    if base_calibration.get("date") != spec.reference_base:
        return None, "the packaged calibration is newer than the reference point (measure it again)"
    found = measure(pipeline, spec, stop)
    if found["point"] is None:
        return (
            None,
            f"too few Chinese sentences ({found['n_answerable']} + {found['n_unanswerable']} questions)",
        )
    shift = round(found["point"] - spec.reference, 4)
    if abs(shift) > spec.max_shift:
        return (
            None,
            f"the index's point {found['point']:g} lies {shift:+g} from the reference, beyond ±{spec.max_shift:g}",
        )
    zh = round(min(max(base["zh"] + shift, 0.0), 1.0), 4)
    abstain = {**base, "zh": zh}
    record = {
        "source": SOURCE,
        "base": _base_record(base, base_calibration),
        "zh": {**found, "reference": spec.reference, "shift": shift},
        "model_id": pipeline.index.model_id,
        "written": abstain,  # thresholds edited by hand later are the user's: kept
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    line = (
        f"zh {zh:g} (packaged {base['zh']:g}, moved by {shift:+g} from {found['n_answerable']} + "
        f"{found['n_unanswerable']} pseudo-questions)"
    )
    return {"abstain": abstain, "calibration": record}, line


def _base_record(base: dict[str, float], calibration: dict[str, Any]) -> dict[str, Any]:
    return {"thresholds": dict(base), "gold": calibration.get("gold"), "date": calibration.get("date")}


def _ours(own: dict[str, Any]) -> bool:
    """Whether the file's thresholds are an earlier run's, unedited since."""
    record = own.get("calibration", {})
    return record.get("source") in (SOURCE, PACKAGED) and own.get("abstain") == record.get("written")


def write_adapted(
    index_dir: str | Path,
    embedder: Any = None,
    crosslingual: Any = None,
    spec: PseudoSpec | None = None,
    overrides: dict[str, Any] | None = None,
    stop: Callable[[], bool] | None = None,
) -> str:
    """Move the index's Chinese threshold to its pseudo-questions (its settings.json); a line saying
    what was done. Kept as they are: thresholds from `rag calibrate` or written by hand.

    The base is the packaged tree's thresholds, never the index's own (an earlier adaptation would
    otherwise move them twice). Other sections of the index's settings.json are kept. `embedder` and
    `crosslingual` are the encoders that built the index (None: loaded as `rag ask` loads them);
    `overrides` are the command line's `--set`; `stop` as for `measure` (nothing is written)."""
    from rag.abstain.calibration import write_settings
    from rag.indexing.index import Index
    from rag.indexing.store import read_manifest
    from rag.pipeline import Pipeline

    index_dir = Path(index_dir)
    path = index_dir / SETTINGS_FILE
    own = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    earlier: dict[str, Any] = {}  # an earlier run's record: replaced below, or dropped
    if _ours(own):
        earlier = own.pop("calibration")
        own.pop("abstain", None)
    elif "abstain" in own or "calibration" in own:
        where = own.get("calibration", {}).get("gold") or path
        return f"abstention thresholds: set by {where} (rag calibrate or by hand), kept"
    packaged = load_settings()
    base = packaged.settings.abstain.thresholds()
    spec = spec or PseudoSpec.packaged()
    if not load_settings(index_dir, overrides=overrides).settings.refusal.adapt_thresholds:
        why = "refusal.adapt_thresholds is off"
    else:
        # What the measure depends on: a re-index that changed nothing is not measured again (12 s).
        measured_for = {
            "built_at": read_manifest(index_dir).get("built_at"),
            "spec": asdict(spec),
            "base": _base_record(base, packaged.calibration),
            "overrides": dict(overrides or {}),
        }
        if earlier.get("measured_for") == measured_for:
            shown = ", ".join(f"{lang} {t:g}" for lang, t in earlier["written"].items())
            return f"abstention thresholds: {shown} (as measured for this build before)"
        pipeline = (
            Pipeline(Index.load(index_dir, embedder, crosslingual), embedder, overrides=overrides)
            if embedder is not None
            else Pipeline.load(index_dir, overrides=overrides)
        )
        adapted, why = adapted_settings(pipeline, base, packaged.calibration, spec, stop)
        if adapted is not None:
            adapted["calibration"]["measured_for"] = measured_for
            write_settings(path, {**own, **adapted})
            return f"abstention thresholds: {why}"
    if not own:  # no file of the index's own: the packaged tree is in force
        path.unlink(missing_ok=True)
    else:
        # A settings.json of the index's own brings its thresholds (rag.settings): the packaged ones.
        record = {
            "source": PACKAGED,
            "base": _base_record(base, packaged.calibration),
            # Without it, a note would say the thresholds were calibrated for another model.
            "model_id": packaged.calibration.get("model_id"),
            "written": base,
        }
        write_settings(path, {**own, "abstain": base, "calibration": record})
    return f"abstention thresholds: the packaged ones ({why})"


def adapt_after_build(
    index_dir: str | Path, embedder: Any, crosslingual: Any, overrides: dict[str, Any] | None = None
) -> tuple[bool, str]:
    """`write_adapted` right after a build (`rag index`, the app's first build): whether it worked and
    the line to show. A failure costs nothing but the adaptation: the index is built and in place, and
    answers with the thresholds it had."""
    try:
        return True, write_adapted(index_dir, embedder, crosslingual, overrides=overrides)
    except Exception as exc:
        return False, (
            f"abstention thresholds: not adapted to this index ({exc}); the index is built and answers "
            "with the thresholds it had. Run `rag index` again to retry."
        )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m rag.abstain.adaptive INDEX`: print the index's equal-error point (the reference of
    data/calibration/pseudo.json is this figure for the bundled index)."""
    from rag.pipeline import Pipeline

    args = list(sys.argv[1:] if argv is None else argv)
    index_dir = Path(args[0] if args else "index")
    print(json.dumps(measure(Pipeline.load(index_dir), PseudoSpec.packaged())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
