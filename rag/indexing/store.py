"""Plain files of the index folder: names, load errors, (de)serialising, and the atomic folder swap."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import mmap
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from rag.types import Chunk, Document

FORMAT = "rag-index"
FORMAT_VERSION = 3  # 2: sentence units, cross-lingual vectors, glossary, lexicon; 3: pages
# Versions this one still reads: a version-2 index has no page offsets, so its citations name no page
# until it is rebuilt (the loader version changed, so `rag index` re-reads every paper anyway).
READABLE_VERSIONS = (2, 3)
MANIFEST = "manifest.json"
DOCUMENTS = "documents.jsonl"
CHUNKS = "chunks.jsonl"
EMBEDDINGS = "embeddings.npy"
FAISS = "faiss.index"
BM25_DIR = "bm25"
SETTINGS = "settings.json"  # answer settings written by `rag calibrate`; a rebuild carries them over

# Vector stores are memory-mapped read-only, so a large index costs resident memory only for the rows
# queries touch. Not on Windows: it refuses to rename a folder holding a mapped file, so the app could
# not swap in a rebuilt index while it has the old one open (rag/index_build.py builds in-process).
MMAP = os.name != "nt"

log = logging.getLogger(__name__)


class IndexLoadError(Exception):
    """An index folder cannot be used; the message says how to fix it."""


class IndexNotFoundError(IndexLoadError):
    pass


class IndexFileMissingError(IndexLoadError):
    pass


class IndexCorruptError(IndexLoadError):
    pass


class IndexVersionError(IndexLoadError):
    pass


class ModelMismatchError(IndexLoadError):
    pass


def rebuild_hint(index_dir: Path, docs_dir: str | None = None) -> str:
    return f"rag index --docs {docs_dir or 'DIR'} --index {index_dir}"


# ---- writing -------------------------------------------------------------------------------


def _fsync(path: Path) -> None:
    # Data must be on disk before the folder rename makes it the index, or a power cut could
    # leave a complete-looking index with empty files.
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    _fsync(path)


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            # default=str: catalog metadata may hold values JSON has no type for (dates).
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    _fsync(path)


def write_npy(path: Path, array: np.ndarray) -> None:
    """Write `array` to path; an array `new_npy` made at that path is only flushed (it is the file)."""
    if isinstance(array, np.memmap) and array.filename and Path(array.filename).resolve() == path.resolve():
        array.flush()
    else:
        np.save(path, array, allow_pickle=False)
    _fsync(path)


def new_npy(path: Path | None, rows: int, dim: int) -> np.ndarray:
    """A float32 (rows, dim) array for a build to fill: a .npy file at `path` mapped for writing, so a
    large corpus's vectors live on disk rather than in memory (the kernel writes pages back as it
    needs); in memory where files are not mapped (see MMAP) or without a path."""
    if path is None or not MMAP or rows == 0:  # numpy cannot map an empty file
        return np.empty((rows, dim), dtype=np.float32)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    if not _reserve(path):
        del array
        return np.empty((rows, dim), dtype=np.float32)  # write_npy then saves it over the file
    return array


def _reserve(path: Path) -> bool:
    """Give the file its disk blocks now. A mapped file gets them only when the kernel writes its pages
    back, and on a full disk that is a SIGBUS that kills the process (the app, for an upload) instead
    of an error; reserved, a full disk raises here, before anything is embedded into the file. False
    where the file system cannot reserve (the caller keeps the array in memory instead)."""
    size = path.stat().st_size
    try:
        with open(path, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, size)
    except AttributeError:  # no posix_fallocate on this OS
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(
                exc.errno,
                f"Not enough disk space for the new index's vectors ({size / 1e6:.0f} MB in {path.parent}); "
                "free some space or build into another --index folder. The existing index is unchanged.",
            ) from exc
        return False
    return True


def document_row(doc: Document) -> dict:
    return {
        "doc_id": doc.doc_id,
        "title": doc.title,
        "path": doc.path,
        "sha256": doc.sha256,
        "lang": doc.lang,
        "meta": doc.meta,
        "pages": list(doc.pages),
        "ocr_pages": list(doc.ocr_pages),
        "text": doc.text,
    }


def chunk_row(chunk: Chunk) -> dict:
    return {
        "id": chunk.id,
        "doc_id": chunk.doc_id,
        "title": chunk.title,
        "section": chunk.section,
        "start": chunk.start,
        "end": chunk.end,
        "lang": chunk.lang,
        "page": chunk.page,
        "ocr": chunk.ocr,
        "text": chunk.text,
    }


# ---- reading -------------------------------------------------------------------------------


def missing_file(index_dir: Path, name: str, docs_dir: str | None) -> IndexFileMissingError:
    return IndexFileMissingError(
        f"Index {index_dir} is incomplete: {name} is missing. Rebuild it with: {rebuild_hint(index_dir, docs_dir)}"
    )


def corrupt(index_dir: Path, what: str, docs_dir: str | None = None) -> IndexCorruptError:
    return IndexCorruptError(
        f"Index {index_dir} is corrupt ({what}). Rebuild it with: {rebuild_hint(index_dir, docs_dir)}"
    )


def read_manifest(index_dir: Path) -> dict:
    """The manifest, checked for format and version; raises IndexLoadError subclasses."""
    if not index_dir.is_dir() or not any(index_dir.iterdir()):
        raise IndexNotFoundError(f"No index at {index_dir}. Build it with: {rebuild_hint(index_dir)}")
    path = index_dir / MANIFEST
    if not path.is_file():
        raise missing_file(index_dir, MANIFEST, None)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise corrupt(index_dir, f"{MANIFEST} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise corrupt(index_dir, f"{MANIFEST} is not a {FORMAT} manifest")
    docs_dir = manifest.get("docs_dir")
    version = manifest.get("format_version")
    if version not in READABLE_VERSIONS:
        raise IndexVersionError(
            f"Index {index_dir} has format version {version}; this version of rag reads versions "
            f"{READABLE_VERSIONS[0]}-{FORMAT_VERSION}. Rebuild it with: {rebuild_hint(index_dir, docs_dir)}"
        )
    for key in ("model_id", "dim", "chunker", "counts", "documents"):
        if key not in manifest:
            raise corrupt(index_dir, f"{MANIFEST} has no {key!r}", docs_dir)
    return manifest


def _jsonl_rows(index_dir: Path, name: str, docs_dir: str | None) -> Iterator[dict]:
    path = index_dir / name
    if not path.is_file():
        raise missing_file(index_dir, name, docs_dir)
    try:
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise corrupt(index_dir, f"{name} line {line_no} is not valid JSON", docs_dir) from exc
    except UnicodeDecodeError as exc:
        raise corrupt(index_dir, f"{name} is not UTF-8", docs_dir) from exc


def read_documents(index_dir: Path, docs_dir: str | None = None) -> dict[str, Document]:
    docs = {}
    for row in _jsonl_rows(index_dir, DOCUMENTS, docs_dir):
        try:
            doc = Document(
                row["doc_id"],
                row["title"],
                row["path"],
                row["text"],
                row["sha256"],
                row["lang"],
                row.get("meta") or {},
                tuple(int(p) for p in row.get("pages") or ()),
                tuple(int(p) for p in row.get("ocr_pages") or ()),
            )
        except (KeyError, TypeError) as exc:
            raise corrupt(index_dir, f"{DOCUMENTS} has a bad row ({exc})", docs_dir) from exc
        docs[doc.doc_id] = doc
    return docs


def read_chunks(index_dir: Path, docs_dir: str | None = None) -> list[Chunk]:
    try:
        return [
            Chunk(
                r["id"],
                r["doc_id"],
                r["title"],
                r["section"],
                r["start"],
                r["end"],
                r["text"],
                r["lang"],
                r.get("page"),  # absent in version 2
                bool(r.get("ocr", False)),
            )
            for r in _jsonl_rows(index_dir, CHUNKS, docs_dir)
        ]
    except (KeyError, TypeError) as exc:
        raise corrupt(index_dir, f"{CHUNKS} has a bad row ({exc})", docs_dir) from exc


def load_npy(path: Path, mapped: bool | None = None) -> np.ndarray:
    """A .npy file; memory-mapped read-only when `mapped` (default: MMAP), so rows are read from disk
    when first touched and writing into the array raises. Raises ValueError/OSError/EOFError if bad."""
    if not (MMAP if mapped is None else mapped):
        return np.load(path, allow_pickle=False)
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    # Rows are read scattered (a query's candidates): without this hint each first touch reads
    # ahead ~128 KB around it, paging in far more than the rows asked for.
    handle = getattr(array, "_mmap", None)
    if handle is not None and hasattr(mmap, "MADV_RANDOM"):
        with contextlib.suppress(OSError, ValueError):
            handle.madvise(mmap.MADV_RANDOM)
    return array


def read_embeddings(
    index_dir: Path, dim: int, docs_dir: str | None = None, mapped: bool | None = None
) -> np.ndarray:
    """embeddings.npy, memory-mapped unless `mapped` is False (see load_npy)."""
    path = index_dir / EMBEDDINGS
    if not path.is_file():
        raise missing_file(index_dir, EMBEDDINGS, docs_dir)
    try:
        vectors = load_npy(path, mapped)
    except (ValueError, OSError, EOFError) as exc:
        raise corrupt(index_dir, f"{EMBEDDINGS} cannot be read: {exc}", docs_dir) from exc
    if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape[1] != dim:
        raise corrupt(
            index_dir,
            f"{EMBEDDINGS} is {vectors.dtype} {vectors.shape}, expected float32 (n, {dim})",
            docs_dir,
        )
    return vectors


def check_chunks(
    index_dir: Path, documents: dict[str, Document], chunks: list[Chunk], docs_dir: str | None
) -> None:
    """Every chunk must be a verbatim span of its stored document, so quotes can be verified."""
    for chunk in chunks:
        doc = documents.get(chunk.doc_id)
        if doc is None:
            raise corrupt(
                index_dir, f"chunk {chunk.id} belongs to unknown document {chunk.doc_id!r}", docs_dir
            )
        if doc.text[chunk.start : chunk.end] != chunk.text:
            raise corrupt(index_dir, f"chunk {chunk.id} does not match its document text", docs_dir)


# ---- the atomic swap -----------------------------------------------------------------------


def _sibling(index_dir: Path, tag: str) -> Path:
    return index_dir.parent / f".{index_dir.name}.{tag}-{uuid.uuid4().hex[:8]}"


def new_build_dir(index_dir: Path) -> Path:
    """A fresh temp folder beside index_dir (same file system, so the final rename is atomic)."""
    path = _sibling(index_dir, "building")
    path.mkdir(parents=True)
    return path


def swap_in(build_dir: Path, index_dir: Path) -> None:
    """Make build_dir the index: rename the old one away, rename the new one in, delete the old."""
    old = None
    if index_dir.exists():
        old = _sibling(index_dir, "old")
        os.rename(index_dir, old)
    try:
        os.rename(build_dir, index_dir)
    except OSError:
        if old is not None:
            os.rename(old, index_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover_interrupted_swap(index_dir: Path) -> bool:
    """After a crash between the two renames of `swap_in`, put the old index back."""
    if index_dir.exists():
        return False
    for old in sorted(index_dir.parent.glob(f".{index_dir.name}.old-*")):
        if (old / MANIFEST).is_file():
            os.rename(old, index_dir)
            return True
    return False


def remove_stale_build_dirs(index_dir: Path) -> None:
    """Temp folders left by a killed build (call only while holding the build lock)."""
    for stale in index_dir.parent.glob(f".{index_dir.name}.building-*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """One build at a time per parent folder (e.g. the app and the CLI), where the OS has flock.

    The lock is taken on the parent folder itself, so no lock file is left behind.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no lock, builds must not overlap
        yield
        return
    parent = index_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(parent, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("Another index build in %s is running; waiting for it to finish.", parent)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
