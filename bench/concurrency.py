"""Section "concurrency": many users at once through gradio_client, with a hung LLM call or an upload
in flight (issue 21).

The app is built and launched here (`app.build_app` + `app.launch_options`, as `python app.py`
does) on copies of the index and docs, so the bench can start an upload in it; the clients run in
their own process (bench/clients.py), each its own session asking through `/ask`. The LLM is a
local OpenAI-compatible server: it answers at once, except that it accepts and never answers a
request for the chosen "hung" question (or every request, for the last row).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import MS, Section, Table, at_least, at_most, fmt, stats
from bench.procs import free_port

REPO = Path(__file__).resolve().parent.parent
P95_LIMIT = 1.5  # issue 21: other clients' p95 with a hung call or an upload in flight, against without


class FakeLLM:
    """An OpenAI-compatible chat server on loopback: a canned reply, or none at all for a hung request."""

    def __init__(self, hang_on: str) -> None:
        self.hang_on, self.hang_all = hang_on, False
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode(
                    "utf-8", "replace"
                )
                if owner.hang_all or owner.hang_on in json.loads(body or "{}").__repr__():
                    owner.release.wait()  # accepted, never answered (until the bench ends)
                    return
                reply = {
                    "id": "bench",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "bench-llm",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "The documents say so [1]."},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _launch(pipeline, docs: Path, worker=None):
    import app

    demo = app.build_app(pipeline, docs, worker)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **app.launch_options(None),
    )
    return demo, f"http://127.0.0.1:{port}/"


def _clients(url: str, clients: int, per_client: int, questions: list[list[str]]) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "bench.clients",
        url,
        "--clients",
        str(clients),
        "--per-client",
        str(per_client),
    ]
    out = subprocess.run(
        cmd, input=json.dumps(questions), capture_output=True, text=True, cwd=REPO, timeout=1800, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench.clients failed: {out.stderr[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _row(name: str, run: dict, only: slice = slice(None)) -> tuple[list[Any], dict]:
    lat = [x for per in run["latencies_ms"][only] for x in per]
    st = stats(lat)
    # A subset of the clients shares the run's wall time with the others: no throughput of its own.
    throughput = len(lat) / run["wall_s"] if run["wall_s"] and only == slice(None) else None
    row = [name, len(lat), len(run["errors"]), fmt(st["p50"]), fmt(st["p95"]), fmt(throughput)]
    return row, {**st, "errors": run["errors"][:5], "n_errors": len(run["errors"]), "throughput": throughput}


def _upload_text(n: int) -> str:
    # Distinct sentences, each embedded: enough work that the upload outlasts the clients' load.
    lines = [f"第{i}例患者的血小板计数为{i * 7 % 500}，随访{i % 37}个月后病情稳定。" for i in range(n)]
    return "长篇病例汇编\n\n" + "\n".join(lines) + "\n"


def _copy(index_dir: Path, docs_dir: Path, tmp: Path) -> tuple[Path, Path]:
    docs, index = tmp / "docs", tmp / "index"
    shutil.copytree(docs_dir, docs)
    shutil.copytree(index_dir, index)
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    manifest["docs_dir"] = str(docs)  # the copy is the index of the copied papers
    (index / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return index, docs


def run_concurrency(
    index_dir: Path,
    docs_dir: Path,
    questions: list[str],
    clients: int = 20,
    per_client: int = 5,
    sequential: int = 40,
    llm_timeout: float = 2.0,
    upload_sentences: int = 1500,
    load: Callable[..., Any] | None = None,
) -> Section:
    """`load(index_dir, docs_dir, **pipeline_options)` opens the pipeline (default: as app.py does)."""
    import app
    from bench.latency import forget_queries
    from rag.cli import llm_options
    from webui.worker import UploadWorker

    sec = Section("concurrency", "8. Many users at once")
    cols = ["run", "answers", "errors", "p50 ms", "p95 ms", "answers/s"]
    per = [questions[i::clients] or questions for i in range(clients)]  # each client its own mix
    data: dict[str, Any] = {"clients": clients, "per_client": per_client, "llm_timeout_s": llm_timeout}
    with tempfile.TemporaryDirectory(prefix="rag-bench-conc-") as name:
        tmp = Path(name)
        index, docs = _copy(index_dir, docs_dir, tmp)
        load = load or app.load_pipeline
        extractive = load(index, docs)
        worker = UploadWorker(extractive, docs, embedders=app.build_encoders(extractive))
        demo, url = _launch(extractive, docs, worker)
        rows = []
        try:
            _clients(url, 1, 4, [questions[-4:]])  # warm: the server's first calls
            # The same questions in every run, each a new question to the app (caches emptied).
            mix = [per[i][j % len(per[i])] for j in range(per_client) for i in range(clients)]
            forget_queries(extractive)
            seq = _clients(url, 1, sequential, [mix[:sequential]])
            row, data["sequential"] = _row("extractive, 1 client (sequential)", seq)
            rows.append(row)
            forget_queries(extractive)
            conc = _clients(url, clients, per_client, per)
            row, data["concurrent"] = _row(f"extractive, {clients} clients at once", conc)
            rows.append(row)
            upload = tmp / "long-upload.txt"
            upload.write_text(_upload_text(upload_sentences), encoding="utf-8")
            worker.start([(upload.name, upload)])
            while worker.progress().running and worker.progress().stage != "embedding":
                time.sleep(0.2)
            forget_queries(extractive)
            during = _clients(url, clients, per_client, per)
            still = worker.progress().running
            worker.cancel()
            worker.wait(300)
            row, data["during_upload"] = _row(f"extractive, {clients} clients, an upload indexing", during)
            rows.append(row)
            data["upload_running_throughout"] = still
        finally:
            demo.close()
        sec.tables.append(Table("Extractive answers through /ask", cols, rows))

        hang_q = questions[0]
        others = [[q for q in qs if q != hang_q] or questions[1:] for qs in per]
        llm = FakeLLM(hang_on=hang_q)
        os.environ.setdefault("RAG_LLM_API_KEY", "bench")
        args = app.build_parser().parse_args(
            ["--llm-base-url", llm.url, "--llm-model", "bench-llm", "--llm-timeout", str(llm_timeout)]
        )
        generative = load(index, docs, **llm_options(args))
        demo, url = _launch(generative, docs)
        rows = []
        try:
            forget_queries(generative)
            base = _clients(url, clients - 1, per_client, others[1:])
            row, data["llm"] = _row(f"LLM answers, {clients - 1} clients", base)
            rows.append(row)
            forget_queries(generative)
            mixed = _clients(url, clients, per_client, [[hang_q], *others[1:]])
            row, data["llm_one_hung"] = _row(
                f"the same {clients - 1} clients, a {clients}th's calls hung", mixed, slice(1, None)
            )
            rows.append(row)
            row, data["hung_client"] = _row(f"the {clients}th client (each call hung)", mixed, slice(0, 1))
            rows.append(row)
            llm.hang_all = True
            forget_queries(generative)
            hung = _clients(url, clients, 2, others)
            row, data["llm_all_hung"] = _row(f"every LLM call hung, {clients} clients", hung)
            rows.append(row)
        finally:
            demo.close()
            llm.close()
        sec.tables.append(Table(f"With an LLM (local server, --llm-timeout {llm_timeout:g})", cols, rows))

    d = data
    ratio = (d["concurrent"]["throughput"] or 0) / (d["sequential"]["throughput"] or 1)
    up = _ratio(d["during_upload"]["p95"], d["concurrent"]["p95"])
    hung_ratio = _ratio(d["llm_one_hung"]["p95"], d["llm"]["p95"])
    data["ratios"] = {"throughput": ratio, "p95_upload": up, "p95_hung": hung_ratio}
    sec.targets += [
        at_most(f"{clients} concurrent clients: errors", d["concurrent"]["n_errors"], 0, ""),
        at_least(f"{clients} concurrent clients: throughput against sequential", ratio, 1.0, "x"),
        at_most("other clients' p95 with an upload indexing, against without", up, P95_LIMIT, "x"),
        at_most(
            "other clients' p95 with a hung LLM call in flight, against without", hung_ratio, P95_LIMIT, "x"
        ),
    ]
    if not d.get("upload_running_throughout"):
        sec.notes.append(
            "the upload finished before the clients did: part of that run had no upload in flight"
        )
    all_hung = d["llm_all_hung"]["p95"]
    sec.breakdown.append(
        f"With every LLM call hung, {clients} clients each wait about the timeout ({llm_timeout:g} s): "
        f"p95 {fmt(all_hung / MS if all_hung else None)} s, not {clients} timeouts in a row."
    )
    sec.data = data
    return sec


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None
