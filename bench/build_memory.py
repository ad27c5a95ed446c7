"""Section 9: peak memory of a full build at two corpus sizes, each in a fresh process.

The corpus is the documents folder copied `copies` times, each copy's sentences marked with its
number (so no copy is dropped as a duplicate, and no text is shared between copies). Cheap hashing embedders stand in for e5 and the
cross-lingual encoder: a model's memory is fixed, whatever the corpus (the memory section measures
it), and they make a large build take seconds. What is measured is the build's own memory: the
texts, chunks, vectors, BM25 and FAISS. The peak of anonymous memory (RssAnon, sampled every 5 ms) is
the process's own; VmHWM also counts the pages of the vector files the build writes through a mapping,
which the kernel writes back and drops when memory is short.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.common import Section, Table, Target, fmt
from bench.procs import run_child

MB = 1024 * 1024
# "Independent of corpus size": between the two corpora, the build's peak may grow by at most this share
# of what the index it writes grows by on disk. A ratio of the two peaks would pass at small sizes,
# where the fixed part (imports, jieba's dictionary) hides the growth.
GROWTH_SHARE = 0.10


class _Hashing:
    """A deterministic unit vector per text, from its digest: no model, no memory of its own."""

    def __init__(self, dim: int, model_id: str) -> None:
        self.dim, self.model_id = dim, model_id

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out

    embed_queries = embed_passages


class HashingE5(_Hashing):
    def __init__(self) -> None:
        super().__init__(384, "bench-hashing-384")


class HashingCrossLingual(_Hashing):
    def __init__(self) -> None:
        super().__init__(512, "bench-hashing-512")


CHILD = """
import json, sys, threading, time
from pathlib import Path

def _anon():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0

peak = [0]
def _sample():
    while True:
        peak[0] = max(peak[0], _anon())
        time.sleep(0.005)

from bench.build_memory import HashingCrossLingual, HashingE5
from rag.indexing.index import build_index
base = _anon()
threading.Thread(target=_sample, daemon=True).start()
start = time.perf_counter()
report = build_index(sys.argv[1], sys.argv[2], HashingE5(), progress=False, crosslingual=HashingCrossLingual())
seconds = time.perf_counter() - start
time.sleep(0.02)
hwm = 0
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
manifest = json.loads((Path(sys.argv[2]) / "manifest.json").read_text(encoding="utf-8"))
size = sum(p.stat().st_size for p in Path(sys.argv[2]).rglob("*") if p.is_file())
print(json.dumps({"base": base, "peak_anon": max(peak[0], _anon()), "hwm": hwm, "seconds": seconds,
                  "documents": report.n_documents, "chunks": report.n_chunks,
                  "sentences": manifest["counts"]["sentences"], "index_bytes": size}))
"""


def copied_corpus(docs_dir: Path, dest: Path, copies: int) -> Path:
    """`copies` copies of each text document of docs_dir, each sentence of copy k marked with k, so
    copies share no chunk, sentence or passage (a build embeds a repeated text once)."""
    dest.mkdir(parents=True)
    texts = [p for p in sorted(docs_dir.iterdir()) if p.suffix in (".txt", ".md")]
    if not texts:
        raise ValueError(f"{docs_dir} holds no .txt or .md document to copy")
    for k in range(copies):
        for p in texts:
            body = p.read_text(encoding="utf-8").replace("。", f"（{k}）。").replace(". ", f" ({k}). ")
            (dest / f"{p.stem}-{k}{p.suffix}").write_text(f"{body}\n\nCopy {k}.\n", encoding="utf-8")
    return dest


def run_build_memory(python: str, repo: Path, docs_dir: Path, sizes: Sequence[int], tmp: Path) -> Section:
    sec = Section("buildmemory", "9. Build memory")
    rows, readings = [], []
    for copies in sizes:
        docs = copied_corpus(docs_dir, tmp / f"docs-{copies}", copies)
        r, _ = run_child(python, CHILD, [str(docs), str(tmp / f"index-{copies}")], repo, timeout=3600)
        shutil.rmtree(tmp / f"index-{copies}", ignore_errors=True)
        shutil.rmtree(docs, ignore_errors=True)
        readings.append(r)
        rows.append(
            [
                copies,
                r["documents"],
                r["chunks"],
                r["sentences"],
                fmt(r["seconds"]),
                fmt((r["peak_anon"] - r["base"]) / MB),
                fmt(r["peak_anon"] / MB),
                fmt(r["hwm"] / MB),
            ]
        )
    columns = ["copies", "documents", "chunks", "sentences", "build s", "peak anon. MB above start"]
    sec.tables.append(Table("Full build, fresh process each", [*columns, "peak anon. MB", "VmHWM MB"], rows))
    sec.data["builds"] = readings
    small, large = readings[0], readings[-1]
    more = max(1, large["chunks"] - small["chunks"])
    grown = (large["peak_anon"] - small["peak_anon"]) / more
    written = (large["index_bytes"] - small["index_bytes"]) / more
    share = grown / written if written > 0 else None
    sec.targets.append(
        Target(
            "peak build memory independent of corpus size",
            f"{fmt(grown / 1024)} KB more per chunk, {fmt(None if share is None else 100 * share)}% of the "
            f"index's {fmt(written / 1024)} KB per chunk on disk",
            f"<= {100 * GROWTH_SHARE:.0f}%",
            None if share is None else share <= GROWTH_SHARE,
        )
    )
    sec.breakdown.append(
        f"From {small['chunks']} to {large['chunks']} chunks the peak of the build's own memory went from "
        f"{fmt(small['peak_anon'] / MB)} to {fmt(large['peak_anon'] / MB)} MB "
        f"({fmt(large['peak_anon'] / small['peak_anon'])}x), the index on disk from "
        f"{fmt(small['index_bytes'] / MB)} to {fmt(large['index_bytes'] / MB)} MB."
    )
    sec.notes.append(
        "Hashing embedders stand in for the models (their memory is fixed); VmHWM also counts the mapped "
        "vector files the build writes, which the kernel may write back and drop."
    )
    return sec
