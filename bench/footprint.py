"""Section 4d: bytes per chunk of the real index folder, file by file, to extrapolate to large corpora.

The synthetic FAISS rows count only the vector index; the folder also holds embeddings.npy and, in the
current format, sentence (alone and in place) and cross-lingual vectors. Index.load memory-maps the
vector files (where rag.indexing.store.MMAP, i.e. not on Windows): they cost disk, and resident memory
only for the pages queries touch. The rest (texts, BM25, sentence offsets) is read into memory.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import Section, Table, fmt
from rag.indexing import extras as index_extras
from rag.indexing import store as index_store

TOP_FILES = 8
# Files whose size follows the vocabulary or is fixed, not the number of chunks: left out of the extrapolation.
NOT_PER_CHUNK = ("lexicon", "glossary", "manifest", "settings", "bm25/vocab", "bm25/params", "bm25/meta")
MAPPED_NPY = (
    index_store.EMBEDDINGS,
    index_extras.SENTENCE_EMBEDDINGS,
    index_extras.CONTEXT_EMBEDDINGS,
    index_extras.TITLE_EMBEDDINGS,
    index_extras.XL_EMBEDDINGS,
    index_extras.XL_SENTENCE_EMBEDDINGS,
)
FAISS_FILES = (index_store.FAISS, index_extras.XL_FAISS)
MAPPED_FAISS_KINDS = ("flat", "hnsw")  # rag.indexing.vectors maps the stored vectors of these kinds only


def footprint(index_dir: Path) -> tuple[int, dict[str, int]]:
    """(chunks, {file relative to the folder: bytes}) of an index folder."""
    chunks = int(json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))["counts"]["chunks"])
    sizes = {
        p.relative_to(index_dir).as_posix(): p.stat().st_size for p in index_dir.rglob("*") if p.is_file()
    }
    return chunks, sizes


def mapped_files(index_dir: Path) -> set[str]:
    """The files of the folder Index.load maps instead of reading (none where mapping is off)."""
    if not index_store.MMAP:
        return set()
    manifest = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
    faiss = FAISS_FILES if manifest.get("faiss_kind") in MAPPED_FAISS_KINDS else ()
    return set(MAPPED_NPY) | set(faiss)


def add_footprint(sec: Section, index_dir: Path, n_large: int) -> None:
    chunks, sizes = footprint(index_dir)
    mapped = mapped_files(index_dir)
    scaling = {k: v for k, v in sizes.items() if not k.startswith(NOT_PER_CHUNK)}
    per_chunk = sum(scaling.values()) / chunks
    read_per_chunk = sum(v for k, v in scaling.items() if k not in mapped) / chunks
    mapped_per_chunk = per_chunk - read_per_chunk
    top = sorted(sizes.items(), key=lambda kv: -kv[1])[:TOP_FILES]
    rows = [
        [name, fmt(size / chunks), "yes" if name in scaling else "no", "mapped" if name in mapped else "read"]
        for name, size in top
    ]
    rows.append(["all files that grow with chunks", fmt(per_chunk), "", ""])
    rows.append(["  of which read into memory at load", fmt(read_per_chunk), "", "read"])
    rows.append(["  of which mapped (resident when touched)", fmt(mapped_per_chunk), "", "mapped"])
    rows.append(["whole folder", fmt(sum(sizes.values()) / chunks), "", ""])
    sec.tables.append(
        Table(
            f"Bundled index folder ({chunks} chunks): bytes per chunk, largest files",
            ["file", "bytes/chunk", "grows with chunks", "Index.load"],
            rows,
        )
    )
    sec.data["index_folder"] = {
        "chunks": chunks,
        "bytes": sizes,
        "per_chunk_bytes": per_chunk,
        "read_per_chunk_bytes": read_per_chunk,
        "mapped_per_chunk_bytes": mapped_per_chunk,
        "mapped_files": sorted(mapped),
    }
    name, size = max(scaling.items(), key=lambda kv: kv[1])
    gb = n_large / 1e9
    sec.breakdown.append(
        f"The files of the real index that grow with the corpus hold {fmt(per_chunk)} bytes per chunk, the largest "
        f"being {name} ({fmt(size / chunks)}); at {n_large:,} chunks that is ~{fmt(per_chunk * gb)} GB on disk. "
        f"Index.load reads ~{fmt(read_per_chunk * gb)} GB of it into memory (texts, BM25, sentence offsets; "
        "more as Python objects than on disk) and maps the other "
        f"~{fmt(mapped_per_chunk * gb)} GB (vector files), which become resident only as queries touch their pages: "
        "a few rows per candidate for the .npy files, every page for a flat FAISS index (exact search scans it "
        "all), the visited nodes for HNSW. Mapped pages are the kernel's page cache, dropped under memory "
        "pressure and read again when needed, not the process's own memory."
    )
