"""Section 2: cold start, from process creation to the first answer, and to the app answering HTTP 200."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from bench.common import Section, Table, at_most, fmt, share
from bench.procs import EMBEDDER_SNIPPET, run_child, start_app, stop, wait_http

FIRST_ANSWER_TARGET_S = 5.0  # issue 21: cold start to first answer
LABELS = {
    "first_answer_s": "process created -> first answer (total)",
    "interpreter_s": "  interpreter start",
    "import_s": "  import rag.pipeline",
    "index_load_s": "  Pipeline.load (index files)",
    "first_ask_s": "  first ask (lazy model loads + query)",
    "second_ask_s": "second ask, warm (not in the total)",
}

# Stamps with time.time() so the parent can measure from just before the process was created.
CHILD = (
    "import time\n_t0 = time.time()\n"
    + EMBEDDER_SNIPPET
    + """
import json, sys
from rag.pipeline import Pipeline
_t_import = time.time()
p = Pipeline.load(sys.argv[1], embedder=_embedder(sys.argv[4] if len(sys.argv) > 4 else ""))
_t_load = time.time()
a = p.ask(sys.argv[2])
_t_ask = time.time()
p.ask(sys.argv[3])  # another question: the same one would come from the query cache
_t_second = time.time()
print(json.dumps({"t0": _t0, "import": _t_import, "load": _t_load, "ask": _t_ask, "second": _t_second,
                  "abstained": a.abstained}))
"""
)


def first_answer(
    python: str, repo: Path, index_dir: Path, questions: tuple[str, str], embedder_spec: str = ""
) -> dict:
    """Seconds of each cold-start stage of one fresh `python -c` process (it asks both questions)."""
    args = [str(index_dir), *questions] + ([embedder_spec] if embedder_spec else [])
    s, started = run_child(python, CHILD, args, repo, timeout=600)
    return {
        "first_answer_s": s["ask"] - started,
        "interpreter_s": s["t0"] - started,
        "import_s": s["import"] - s["t0"],
        "index_load_s": s["load"] - s["import"],
        "first_ask_s": s["ask"] - s["load"],  # lazy model + jieba load, then one query
        "second_ask_s": s["second"] - s["ask"],
    }


def app_ready(python: str, app: Path, index_dir: Path, docs_dir: Path, timeout: float = 300) -> dict:
    """Seconds from creating the app process to its / answering 200; {'error': ...} if it never does."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_app(python, app, index_dir.resolve(), docs_dir.resolve(), Path(tmp) / "app.log")
        try:
            ready = wait_http(proc, timeout)
            if ready is None:
                return {"error": f"no HTTP 200 within {timeout:.0f} s; log tail: {proc.log_tail()}"}
            return {"ready_s": ready}
        finally:
            stop(proc)


def run_coldstart(
    python: str,
    repo: Path,
    index_dir: Path,
    docs_dir: Path,
    questions: tuple[str, str],
    repeats: int = 1,
    app: Path | None = None,
    embedder_spec: str = "",
) -> Section:
    sec = Section("coldstart", "2. Cold start")
    runs = [first_answer(python, repo, index_dir, questions, embedder_spec) for _ in range(repeats)]
    keys = list(runs[0])
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    sec.data = {"runs": runs, "median": med}
    rows = [
        [LABELS[k], fmt(med[k]), fmt(min(r[k] for r in runs)), fmt(max(r[k] for r in runs))] for k in keys
    ]
    sec.tables.append(
        Table(
            f"python -c: load Pipeline, ask one question ({repeats} run(s), s)",
            ["stage", "median", "min", "max"],
            rows,
        )
    )
    target = at_most("cold start to first answer", med["first_answer_s"], FIRST_ANSWER_TARGET_S, "s")
    sec.targets.append(target)

    app = app if app is not None else repo / "app.py"
    if app.exists():
        starts = [app_ready(python, app, index_dir, docs_dir) for _ in range(repeats)]
        sec.data["app"] = starts
        ready = [s["ready_s"] for s in starts if "ready_s" in s]
        if ready:
            row = [
                "app.py process created -> HTTP 200",
                fmt(statistics.median(ready)),
                fmt(min(ready)),
                fmt(max(ready)),
            ]
            sec.tables.append(
                Table(f"app.py ({len(ready)} run(s), s)", ["stage", "median", "min", "max"], [row])
            )
        sec.notes += [f"app.py did not become ready: {s['error']}" for s in starts if "error" in s]
    else:
        sec.data["app"] = {"skipped": f"{app} does not exist yet"}
        sec.notes.append(
            f"App readiness skipped: {app.name} does not exist yet (someone else is writing it)."
        )

    stages = ("interpreter_s", "import_s", "index_load_s", "first_ask_s")
    top = max(stages, key=lambda k: med[k])
    lazy = med["first_ask_s"] - med["second_ask_s"]
    sec.breakdown.append(
        f"Of {fmt(med['first_answer_s'])} s to the first answer, {LABELS[top].strip()} takes the most "
        f"({fmt(med[top])} s, {share(med[top], med['first_answer_s'])}); the first ask is {fmt(lazy)} s slower "
        f"than the second: the models, tokenizer and caches that load lazily."
    )
    sec.notes.append(
        "Runs after the first find the model files in the OS page cache; min vs max shows the effect."
    )
    return sec
