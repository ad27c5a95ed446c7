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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rag.lang import HAN_RE

__all__ = [
    "PseudoSpec",
    "adapted_settings",
    "equal_error_point",
    "measure",
    "pseudo_questions",
    "write_adapted",
]

SOURCE = "pseudo-questions"
PACKAGED = "packaged thresholds"  # written where an index's own settings.json must carry them


@dataclass(frozen=True)
class PseudoSpec:
    """How pseudo-questions are made and how many (the fields of `data/calibration/pseudo.json`)."""

    n_questions: int
    seed: int
    keep_share: float
    min_words: int
    min_each: int  # fewer scored questions on either side than this: the threshold is not moved
    candidates: int  # hits searched, so that five remain once the sentence's own document is left out
    ending: str
    min_han: int
    max_chars: int
    reference: float | None  # the bundled index's equal-error point

    @classmethod
    def packaged(cls) -> PseudoSpec:
        data = json.loads(
            resources.files("rag").joinpath("data", "calibration", "pseudo.json").read_text("utf-8")
        )
        zh = data["zh"]
        return cls(
            n_questions=int(data["n_questions"]),
            seed=int(data["seed"]),
            keep_share=float(data["keep_share"]),
            min_words=int(data["min_words"]),
            min_each=int(data["min_each"]),
            candidates=int(data["candidates"]),
            ending=str(zh["ending"]),
            min_han=int(zh["min_han"]),
            max_chars=int(zh["max_chars"]),
            reference=data["reference"]["zh"],
        )


def pseudo_questions(index: Any, spec: PseudoSpec) -> list[tuple[str, str]]:
    """(doc id, pseudo-question) from the index's Chinese sentences; the same index gives the same list."""
    from rag.terms.lexical import _jieba

    texts, rows, chunks = index.extras.sentence_texts, index.extras.sentences, index.chunks
    pool = [
        (chunks[int(row[0])].doc_id, text.strip())
        for row, text in zip(rows, texts, strict=True)
        if len(HAN_RE.findall(text)) >= spec.min_han and len(text.strip()) <= spec.max_chars
    ]
    rng = random.Random(spec.seed)
    rng.shuffle(pool)
    tokenizer, out = _jieba(), []
    for doc_id, text in pool[: spec.n_questions]:
        words = [w for w in tokenizer.lcut(text.rstrip("。！？；")) if w.strip()]
        if len(words) < spec.min_words:
            continue
        keep = sorted(rng.sample(range(len(words)), max(spec.min_words, int(len(words) * spec.keep_share))))
        out.append((doc_id, "".join(words[i] for i in keep) + spec.ending))
    return out


def equal_error_point(answerable: Sequence[float], unanswerable: Sequence[float]) -> float:
    """The score t where the share of answerable scores below t meets the share of unanswerable ones at
    or above it (the midpoint of the scores where the two cross)."""
    a, u = np.sort(np.asarray(answerable, float)), np.sort(np.asarray(unanswerable, float))
    if not len(a) or not len(u):
        raise ValueError("equal_error_point needs scores on both sides")
    cuts = np.unique(np.concatenate([a, u]))
    gap = np.searchsorted(a, cuts, "left") / len(a) - (len(u) - np.searchsorted(u, cuts, "left")) / len(u)
    i = int(np.argmin(np.abs(gap)))
    return float(cuts[i])


def measure(pipeline: Any, spec: PseudoSpec) -> dict[str, Any]:
    """The index's equal-error point and its counts; "point" is None when too few questions on a side."""
    answerable, unanswerable = [], []
    for doc_id, question in pseudo_questions(pipeline.index, spec):
        query = pipeline.analyse(question)
        hits = pipeline.search(query, spec.candidates, "hybrid")
        own, others = hits[:5], [h for h in hits if h.chunk.doc_id != doc_id][:5]
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
    pipeline: Any, base: dict[str, float], base_calibration: dict[str, Any], spec: PseudoSpec | None = None
) -> dict[str, Any] | None:
    """Settings for the index's settings.json (`abstain` and the `calibration` record), or None when the
    threshold stays as it is: no packaged Chinese threshold or reference point, or too few Chinese
    sentences (or documents) to make pseudo-questions of."""
    spec = spec or PseudoSpec.packaged()
    if base.get("zh") is None or spec.reference is None:
        return None
    found = measure(pipeline, spec)
    if found["point"] is None:
        return None
    shift = found["point"] - spec.reference
    zh = round(min(max(base["zh"] + shift, 0.0), 1.0), 4)
    record = {
        "source": SOURCE,
        "base": _base_record(base, base_calibration),
        "zh": {**found, "reference": spec.reference, "shift": round(shift, 4)},
        "model_id": pipeline.index.model_id,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return {"abstain": {**base, "zh": zh}, "calibration": record}


def _base_record(base: dict[str, float], calibration: dict[str, Any]) -> dict[str, Any]:
    return {"thresholds": dict(base), "gold": calibration.get("gold"), "date": calibration.get("date")}


def write_adapted(
    index_dir: str | Path, embedder: Any = None, crosslingual: Any = None, spec: PseudoSpec | None = None
) -> str:
    """Move the index's Chinese threshold to its pseudo-questions (its settings.json), unless a gold
    calibration is in force there or `refusal.adapt_thresholds` is off; a line saying what was done.

    The base is the packaged tree's thresholds, never the index's own (an earlier adaptation would
    otherwise move them twice). Other sections of the index's settings.json are kept. `embedder` and
    `crosslingual` are the encoders that built the index (None: loaded as `rag ask` loads them)."""
    from rag.abstain.calibration import write_settings
    from rag.indexing.index import Index
    from rag.pipeline import Pipeline
    from rag.settings import SETTINGS_FILE, load_settings

    index_dir = Path(index_dir)
    path = index_dir / SETTINGS_FILE
    own = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    ours = own.get("calibration", {}).get("source") in (SOURCE, PACKAGED)
    if ("abstain" in own or "calibration" in own) and not ours:
        where = own.get("calibration", {}).get("gold") or path
        return f"abstention thresholds: set by {where} (rag calibrate or by hand), kept"
    if not load_settings(index_dir).settings.refusal.adapt_thresholds:
        return "abstention thresholds: the packaged ones (refusal.adapt_thresholds is off)"
    packaged = load_settings()
    base = packaged.settings.abstain.thresholds()
    pipeline = (
        Pipeline(Index.load(index_dir, embedder, crosslingual), embedder)
        if embedder is not None
        else Pipeline.load(index_dir)
    )
    adapted = adapted_settings(pipeline, base, packaged.calibration, spec)
    if ours:  # an earlier run's: replaced
        own.pop("calibration")
        own.pop("abstain", None)
    if adapted is None:
        why = "abstention thresholds: the packaged ones (too few Chinese sentences to adapt them)"
        if not own:  # no file of the index's own: the packaged tree is in force
            path.unlink(missing_ok=True)
            return why
        # A settings.json of the index's own brings its thresholds (rag.settings): the packaged ones.
        record = {
            "source": PACKAGED,
            "base": _base_record(base, packaged.calibration),
            "model_id": packaged.calibration.get(
                "model_id"
            ),  # else a note says "calibrated for another model"
        }
        write_settings(path, {**own, "abstain": base, "calibration": record})
        return why
    write_settings(path, {**own, **adapted})
    zh = adapted["calibration"]["zh"]
    return (
        f"abstention thresholds: zh {adapted['abstain']['zh']:g} (packaged {base['zh']:g}, moved by "
        f"{zh['shift']:+g} from {zh['n_answerable']} + {zh['n_unanswerable']} pseudo-questions)"
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
