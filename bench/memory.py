"""Section 6: resident memory (VmRSS now, VmHWM peak) of the app, or of a pipeline process, over many queries."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.common import Section, Table, fmt
from bench.procs import EMBEDDER_SNIPPET, STATUS_SNIPPET, proc_status, run_child, start_app, stop, wait_http

ENDPOINT_HINTS = ("ask", "answer", "chat", "respond", "query", "submit")

CHILD = (
    EMBEDDER_SNIPPET
    + STATUS_SNIPPET
    + """
import json, sys
from rag.pipeline import Pipeline
qs = json.loads(open(sys.argv[2], encoding="utf-8").read())
folder = sys.argv[1]
out = {"after imports": _status(folder)}
p = Pipeline.load(sys.argv[1], embedder=_embedder(sys.argv[4] if len(sys.argv) > 4 else ""))
out["after Pipeline.load"] = _status(folder)
p.ask(qs[0])
out["after first answer"] = _status(folder)
n = int(sys.argv[3])
for i in range(n):
    p.ask(qs[i % len(qs)])
    if i + 1 == n // 2:
        out[f"after {n // 2} queries"] = _status(folder)
out["after all queries"] = _status(folder)
print(json.dumps(out))
"""
)


def pipeline_process(
    python: str,
    repo: Path,
    index_dir: Path,
    questions: Sequence[str],
    n_queries: int,
    embedder_spec: str = "",
) -> dict[str, dict[str, int]]:
    """Memory readings of a fresh process that loads the pipeline and asks n_queries questions."""
    with tempfile.TemporaryDirectory() as tmp:
        qfile = Path(tmp) / "questions.json"
        qfile.write_text(json.dumps(list(questions), ensure_ascii=False), encoding="utf-8")
        args = [str(index_dir), str(qfile), str(n_queries)] + ([embedder_spec] if embedder_spec else [])
        readings, _ = run_child(python, CHILD, args, repo, timeout=3600)
    return readings


def pick_endpoint(client) -> str | None:
    named = client.view_api(print_info=False, return_format="dict").get("named_endpoints", {})
    return next((name for hint in ENDPOINT_HINTS for name in named if hint in name.lower()), None)


def app_process(
    python: str, app: Path, index_dir: Path, docs_dir: Path, questions: Sequence[str], n_queries: int
) -> tuple[dict[str, dict[str, int]], str]:
    """Readings of /proc/<app pid>/status after start and after queries sent through gradio_client."""
    from gradio_client import Client

    with tempfile.TemporaryDirectory() as tmp:
        proc = start_app(python, app, index_dir.resolve(), docs_dir.resolve(), Path(tmp) / "app.log")
        try:
            if wait_http(proc, 300) is None:
                raise RuntimeError(f"app.py never answered HTTP 200: {proc.log_tail()}")
            readings = {"after start": proc_status(proc.proc.pid, index_dir)}
            client = Client(proc.url, verbose=False)
            endpoint = pick_endpoint(client)
            if endpoint is None:
                raise RuntimeError(f"no endpoint named like {ENDPOINT_HINTS} in the app's API")
            client.predict(questions[0], api_name=endpoint)
            readings["after first answer"] = proc_status(proc.proc.pid, index_dir)
            for i in range(n_queries):
                client.predict(questions[i % len(questions)], api_name=endpoint)
                if i + 1 == n_queries // 2:  # a second half growing like the first looks like a leak
                    readings[f"after {n_queries // 2} queries"] = proc_status(proc.proc.pid, index_dir)
            readings["after all queries"] = proc_status(proc.proc.pid, index_dir)
            return readings, endpoint
        finally:
            stop(proc)


def run_memory(
    python: str,
    repo: Path,
    index_dir: Path,
    docs_dir: Path,
    questions: Sequence[str],
    n_queries: int = 1000,
    app: Path | None = None,
    embedder_spec: str = "",
) -> Section:
    sec = Section("memory", "6. Memory")
    app = app if app is not None else repo / "app.py"
    what = None
    if app.exists():
        try:
            readings, endpoint = app_process(python, app, index_dir, docs_dir, questions, n_queries)
            what = f"app.py process, {n_queries:,} queries through gradio_client ({endpoint})"
        except Exception as exc:  # the app is someone else's work in progress: fall back, say why
            sec.notes.append(f"app.py could not be measured ({exc}); measured a pipeline process instead.")
    else:
        sec.notes.append(
            f"{app.name} does not exist yet; measured a pipeline process (load, then ask()) instead."
        )
    if what is None:
        readings = pipeline_process(python, repo, index_dir, questions, n_queries, embedder_spec)
        what = f"pipeline process (python -c), {n_queries:,} ask() calls"
    mb = 1e6
    rows = [
        [stage, fmt(r["VmRSS"] / mb), fmt(r.get("MappedIndex", 0) / mb), fmt(r["VmHWM"] / mb)]
        for stage, r in readings.items()
    ]
    columns = ["stage", "VmRSS", "of which mapped index files", "VmHWM (peak)"]
    sec.tables.append(Table(f"{what} (MB)", columns, rows))
    sec.data = {"process": what, "readings_bytes": readings, "queries": n_queries}
    first, last = readings["after first answer"], readings["after all queries"]
    stage, start = next((k, v) for k, v in readings.items() if k in ("after start", "after Pipeline.load"))
    growth = last["VmRSS"] - first["VmRSS"]
    half = readings.get(f"after {n_queries // 2} queries")
    sec.breakdown.append(
        f"Resident memory is {fmt(start['VmRSS'] / mb)} MB {stage}, {fmt(first['VmRSS'] / mb)} MB after the first "
        f"answer ({(first['VmRSS'] - start['VmRSS']) / mb:+.0f} MB: whatever loads lazily), and {n_queries:,} more "
        f"queries change it by {growth / mb:+.1f} MB ({growth / max(1, n_queries) / 1e3:+.1f} KB per query); "
        f"peak {fmt(last['VmHWM'] / mb)} MB."
    )
    if "MappedIndex" in last:
        sec.breakdown.append(
            f"Of the final VmRSS, {last['MappedIndex'] / mb:.1f} MB are pages of the index's memory-mapped vector "
            "files (page cache the kernel can drop and re-read), the rest the process's own memory."
        )
    if half is not None and n_queries >= 2:
        first_half, second_half = half["VmRSS"] - first["VmRSS"], last["VmRSS"] - half["VmRSS"]
        trend = (
            "still growing (a leak or an unbounded cache?)"
            if second_half > 0.5 * max(first_half, 1)
            else "levelling off"
        )
        sec.breakdown.append(
            f"First half of the queries {first_half / mb:+.1f} MB, second half {second_half / mb:+.1f} MB: {trend}."
        )
    return sec
