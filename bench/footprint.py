"""Section 4d: bytes per chunk of the real index folder, file by file, to extrapolate to large corpora.

The synthetic FAISS rows count only the vector index; the folder also holds embeddings.npy and, in the
current format, sentence and cross-lingual vectors, all of which Index.load reads into memory.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import Section, Table, fmt

TOP_FILES = 8
# Files whose size follows the vocabulary or is fixed, not the number of chunks: left out of the extrapolation.
NOT_PER_CHUNK = ("lexicon", "glossary", "manifest", "settings", "bm25/vocab", "bm25/params", "bm25/meta")


def footprint(index_dir: Path) -> tuple[int, dict[str, int]]:
    """(chunks, {file relative to the folder: bytes}) of an index folder."""
    chunks = int(json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))["counts"]["chunks"])
    sizes = {
        p.relative_to(index_dir).as_posix(): p.stat().st_size for p in index_dir.rglob("*") if p.is_file()
    }
    return chunks, sizes


def add_footprint(sec: Section, index_dir: Path, n_large: int) -> None:
    chunks, sizes = footprint(index_dir)
    scaling = {k: v for k, v in sizes.items() if not k.startswith(NOT_PER_CHUNK)}
    per_chunk = sum(scaling.values()) / chunks
    top = sorted(sizes.items(), key=lambda kv: -kv[1])[:TOP_FILES]
    rows = [[name, fmt(size / chunks), "yes" if name in scaling else "no"] for name, size in top]
    rows.append(["all files that grow with chunks", fmt(per_chunk), ""])
    rows.append(["whole folder", fmt(sum(sizes.values()) / chunks), ""])
    sec.tables.append(
        Table(
            f"Bundled index folder ({chunks} chunks): bytes per chunk, largest files",
            ["file", "bytes/chunk", "grows with chunks"],
            rows,
        )
    )
    sec.data["index_folder"] = {"chunks": chunks, "bytes": sizes, "per_chunk_bytes": per_chunk}
    name, size = max(scaling.items(), key=lambda kv: kv[1])
    sec.breakdown.append(
        f"The files of the real index that grow with the corpus hold {fmt(per_chunk)} bytes per chunk, the largest "
        f"being {name} ({fmt(size / chunks)}); at {n_large:,} chunks that is ~{fmt(per_chunk * n_large / 1e9)} GB "
        "on disk, all read into memory by Index.load, against ~1.5 GB for the FAISS rows above."
    )
