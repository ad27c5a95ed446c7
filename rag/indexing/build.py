"""Build the index folder from a folder of papers: incremental (unchanged papers are not re-embedded)
and atomic (written beside the old index and swapped in only when complete). See rag/indexing/index.py.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import rag
from rag.indexing import store
from rag.indexing.checkpoint import EmbedCheckpoint
from rag.indexing.extras import (
    CONTEXT_VERSION,
    EN_LEXICON_VERSION,
    TITLE_VERSION,
    Extras,
    PhaseTimer,
    build_extras,
    embed_cached,
    previous_caches,
    write_extras,
)
from rag.indexing.store import IndexLoadError
from rag.indexing.vectors import VectorIndex, resolve_kind
from rag.ingest.chunking import chunk_document
from rag.ingest.loading import LoadError, load_folder
from rag.settings import ChunkerSettings, IngestSettings
from rag.terms.lexical import TOKENIZER_VERSION, BM25Index
from rag.types import Chunk, Document

if TYPE_CHECKING:
    from rag.encode.embedding import Embedder

EMBED_CONTEXT = "title+section"


def passage_text(chunk: Chunk) -> str:
    """What is embedded (and BM25-indexed) for a chunk: its place in the paper, then its text."""
    return f"{chunk.title} | {chunk.section}\n{chunk.text}"


@dataclass
class BuildReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # failed to load now; previous chunks kept
    errors: list[LoadError] = field(default_factory=list)
    warnings: list[LoadError] = field(default_factory=list)  # indexed, but parts left out (OCR pages)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (doc id left out, the one indexed)
    n_documents: int = 0
    n_chunks: int = 0
    n_embedded: int = 0  # chunks embedded by this build (the rest were reused)
    n_embedded_sentences: int = 0  # sentence and cross-lingual texts embedded (the rest were reused)
    n_resumed: int = 0  # of those, vectors taken from the checkpoint of a build that was killed
    full_rebuild: str | None = None  # why nothing could be reused, if an index existed
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step, in build order

    def summary(self) -> str:
        parts = [
            f"{self.n_documents} documents, {self.n_chunks} chunks ({self.n_embedded} embedded, "
            f"{self.n_embedded_sentences} sentence/cross-lingual texts embedded) in {self.seconds:.1f}s",
            f"added {len(self.added)}, updated {len(self.updated)}, removed {len(self.removed)}, unchanged {len(self.unchanged)}",
        ]
        if self.n_resumed:
            parts.append(f"resumed: {self.n_resumed} vectors came from an earlier build that did not finish")
        if self.full_rebuild:
            parts.append(f"full rebuild: {self.full_rebuild}")
        parts += [f"kept previous version of {d} (it failed to load now)" for d in self.kept]
        parts += [f"skipped {e.path}: {e.message}" for e in self.errors]
        parts += [_both("duplicate_doc", doc=d, of=of) for d, of in self.duplicates]
        parts += [f"warning {e.path}: {e.message}" for e in self.warnings]
        return "\n".join(parts)


@dataclass
class _Previous:
    documents: dict[str, Document]
    chunks: dict[str, list[Chunk]]  # per document
    manifest: dict = field(default_factory=dict)
    all_chunks: list[Chunk] = field(default_factory=list)  # in index order, rows of its vector files
    passages: list[str] = field(default_factory=list)  # what each chunk's vector embedded, in that order
    # The chunk vectors, mapped read-only: a rebuild reuses their rows without copying them into memory.
    vectors: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.float32))


def _check_folders(docs_dir: Path, index_dir: Path) -> None:
    docs, index = docs_dir.resolve(), index_dir.resolve()
    if docs == index or docs.is_relative_to(index) or index.is_relative_to(docs):
        raise ValueError(
            f"The index folder {index_dir} and the documents folder {docs_dir} must be separate folders "
            "(neither inside the other); choose another --index."
        )
    if index_dir.exists() and (
        not index_dir.is_dir() or (any(index_dir.iterdir()) and not (index_dir / store.MANIFEST).exists())
    ):
        # Building replaces the folder, so never let a typo replace someone's files.
        raise ValueError(
            f"{index_dir} exists and is not an index folder (no {store.MANIFEST}); choose an empty or new --index folder."
        )


def _load_previous(
    index_dir: Path, embedder: Embedder, settings: ChunkerSettings
) -> tuple[_Previous | None, str | None]:
    """What a new build may reuse, or None and the reason."""
    if not (index_dir / store.MANIFEST).exists():
        return None, None
    try:
        manifest = store.read_manifest(index_dir)
        documents = store.read_documents(index_dir)
        chunks = store.read_chunks(index_dir)
        vectors = store.read_embeddings(index_dir, int(manifest["dim"]))
        store.check_chunks(index_dir, documents, chunks, None)
        if len(chunks) != len(vectors):
            raise store.corrupt(index_dir, f"{len(chunks)} chunks but {len(vectors)} embeddings")
    except IndexLoadError as exc:
        return None, f"the existing index could not be read ({exc})"
    wanted = {
        "model_id": embedder.model_id,
        "dim": embedder.dim,
        "chunker": settings.to_dict(),
        "embed_context": EMBED_CONTEXT,
    }
    changed = [key for key, value in wanted.items() if manifest.get(key) != value]
    if changed:
        return None, f"{', '.join(changed)} changed"
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_doc.setdefault(chunk.doc_id, []).append(chunk)
    return _Previous(documents, by_doc, manifest, chunks, [passage_text(c) for c in chunks], vectors), None


def _error_doc_id(error: LoadError, docs_dir: Path) -> str | None:
    try:
        return Path(error.path).relative_to(docs_dir).with_suffix("").as_posix()
    except ValueError:
        return None


def build_index(
    docs_dir: str | Path,
    index_dir: str | Path,
    embedder: Embedder,
    settings: ChunkerSettings | None = None,
    faiss_kind: str = "auto",
    progress: bool = True,
    crosslingual: Embedder | None = None,
    max_file_chars: int | None = None,
    ingest: IngestSettings | None = None,
) -> BuildReport:
    """Index every paper in docs_dir into index_dir, reusing the chunks and vectors of unchanged papers.

    A paper longer than `max_file_chars` (None: the packaged `ingest.max_file_chars`) is refused, as a
    load error naming the limit; papers with the same normalised text are indexed once (the one indexed
    before, else the first by doc id) and reported in `duplicates`.

    `crosslingual` is a second embedder (rag.encode.use.USEEmbedder in the CLI and app) whose chunk and
    sentence vectors let English questions find Chinese passages; without it those signals are off.
    `ingest` says how papers are read (OCR on or off; default: on).

    A file that fails to load is reported and skipped; if it was indexed before, its previous
    version is kept. The new index is written beside index_dir and swapped in only when complete.
    """
    started = time.perf_counter()
    timer = PhaseTimer()
    docs_dir, index_dir = Path(docs_dir), Path(index_dir)
    settings = settings or ChunkerSettings()
    resolve_kind(faiss_kind, 0)  # reject a bad kind now, not after minutes of embedding
    _check_folders(docs_dir, index_dir)
    with store.build_lock(index_dir):
        store.recover_interrupted_swap(index_dir)
        store.remove_stale_build_dirs(index_dir)
        if max_file_chars is None and ingest is not None:
            max_file_chars = ingest.max_file_chars
        elif max_file_chars is None:
            from rag.settings import load_settings

            max_file_chars = load_settings().settings.ingest.max_file_chars
        with timer("load documents"):  # the limit goes in: a text file far over it is not even read
            loaded = load_folder(docs_dir, replace(ingest or IngestSettings(), max_file_chars=max_file_chars))
        with timer("read previous index"):
            previous, reason = _load_previous(index_dir, embedder, settings)
        report = BuildReport(
            errors=list(loaded.errors),
            warnings=list(loaded.warnings),
            full_rebuild=reason,
            phases=timer.seconds,
        )
        prev = previous or _Previous({}, {})
        accepted = _within_limit(loaded.documents, max_file_chars, report)
        accepted = _without_duplicates(accepted, prev.documents, report)

        documents: dict[str, Document] = {}
        chunks: dict[str, list[Chunk]] = {}
        for doc in accepted:
            old = prev.documents.get(doc.doc_id)
            documents[doc.doc_id] = doc
            # Title is compared too: catalog.json can rename a paper without touching its bytes.
            same = (old.sha256, old.text, old.title, old.pages) if old is not None else None
            if same == (doc.sha256, doc.text, doc.title, doc.pages):
                chunks[doc.doc_id] = prev.chunks.get(doc.doc_id, [])
                report.unchanged.append(doc.doc_id)
            else:
                with timer("chunk"):
                    chunks[doc.doc_id] = chunk_document(doc, settings)
                (report.added if old is None else report.updated).append(doc.doc_id)
        # A paper that fails now keeps its previous version; a link leading out of the folder does not.
        inside = [e for e in report.errors if Path(e.path).resolve().is_relative_to(docs_dir.resolve())]
        failed = {_error_doc_id(e, docs_dir) for e in inside} | {e.path for e in inside}
        for doc_id, old in prev.documents.items():
            if doc_id in documents:
                continue
            if doc_id in failed or old.path in failed:
                documents[doc_id], chunks[doc_id] = old, prev.chunks.get(doc_id, [])
                report.kept.append(doc_id)
            else:
                report.removed.append(doc_id)
        if not documents:
            raise ValueError(
                f"No documents could be loaded from {docs_dir} (supported: .txt .md .pdf .docx .html); "
                "nothing was indexed and any existing index is unchanged." + _why_not(report.errors)
            )
        if previous is not None and _nothing_changed(index_dir, report, crosslingual, faiss_kind):
            report.n_documents = len(documents)
            report.n_chunks = sum(len(c) for c in chunks.values())
            report.seconds = time.perf_counter() - started
            EmbedCheckpoint.beside(index_dir).remove()  # a killed build's vectors are of no use now
            return report  # the index on disk is already this one: writing it again would only cost time
        checkpoint = EmbedCheckpoint.beside(index_dir)
        build_dir = store.new_build_dir(index_dir)  # the vector stores are written into it as they are made
        try:
            order = sorted(documents)
            all_chunks = [c for d in order for c in chunks[d]]
            report.n_documents, report.n_chunks = len(order), len(all_chunks)
            passages = [passage_text(c) for c in all_chunks]
            with timer("embed chunks"):
                # A passage embedded before (same text: the unchanged papers' chunks, and any other) is
                # reused; the rest are embedded, straight into the new folder's embeddings file.
                all_vectors, report.n_embedded = embed_cached(
                    passages,
                    embedder,
                    _previous_passages(prev),
                    progress,
                    "Embedding chunks",
                    checkpoint,
                    build_dir / store.EMBEDDINGS,
                )
            with timer("read previous index"):
                caches = _reusable_caches(index_dir, previous, crosslingual)
            extras, n_extra = build_extras(
                all_chunks,
                passages,
                documents,
                embedder,
                crosslingual,
                caches,
                progress,
                timer,
                checkpoint,
                folder=build_dir,
            )
            report.n_embedded_sentences = n_extra
            report.n_resumed = checkpoint.resumed
            manifest = _manifest(docs_dir, embedder, settings, faiss_kind, order, documents, chunks, report)
            manifest["crosslingual_model_id"] = extras.crosslingual_id
            manifest["sentence_context"] = CONTEXT_VERSION if extras.context_vectors is not None else False
            manifest["title_vectors"] = TITLE_VERSION if extras.title_vectors is not None else False
            manifest["english_lexicon"] = EN_LEXICON_VERSION if extras.english_lexicon is not None else False
            manifest["counts"]["sentences"] = len(extras.sentence_texts)
            with timer("write files"):
                _write(
                    build_dir,
                    manifest,
                    [documents[d] for d in order],
                    all_chunks,
                    all_vectors,
                    faiss_kind,
                    extras,
                    passages,
                )
            if (
                index_dir / store.SETTINGS
            ).is_file():  # calibrated settings belong to the index, not the build
                shutil.copy2(index_dir / store.SETTINGS, build_dir / store.SETTINGS)
            with timer("swap in"):
                store.swap_in(build_dir, index_dir)
            checkpoint.remove()
        except BaseException:
            shutil.rmtree(build_dir, ignore_errors=True)
            raise
    report.seconds = time.perf_counter() - started
    return report


def _within_limit(documents: list[Document], limit: int, report: BuildReport) -> list[Document]:
    """The documents a build may index; a longer one becomes a load error that names the limit."""
    kept = []
    for doc in documents:
        if len(doc.text) > limit:
            report.errors.append(LoadError(doc.path, _both("too_long", n=len(doc.text), limit=limit)))
        else:
            kept.append(doc)
    return kept


def _without_duplicates(
    documents: list[Document], indexed: dict[str, Document], report: BuildReport
) -> list[Document]:
    """One document per normalised text: the one indexed before, else the first by doc id."""
    order = sorted(documents, key=lambda d: (d.doc_id not in indexed, d.doc_id))
    first: dict[str, str] = {}
    dropped = set()
    for doc in order:
        digest = hashlib.sha256(doc.text.encode("utf-8")).hexdigest()
        if digest in first:
            report.duplicates.append((doc.doc_id, first[digest]))
            dropped.add(doc.doc_id)
        else:
            first[digest] = doc.doc_id
    return [d for d in documents if d.doc_id not in dropped]


def _why_not(errors: list[LoadError], shown: int = 5) -> str:
    """The files that failed, for the error of a folder with nothing loadable: without them a folder of
    links leading elsewhere, or of scans OCR could not read, looks merely empty."""
    if not errors:
        return ""
    lines = [f"\n  {Path(e.path).name}: {e.message}" for e in errors[:shown]]
    more = f"\n  ... and {len(errors) - shown} more" if len(errors) > shown else ""
    return "\nFiles that failed:" + "".join(lines) + more


def _both(key: str, **values: object) -> str:
    from rag.answer.framing import templates  # the message files; framing reads no index

    return " / ".join(templates(lang)[key].format(**values) for lang in ("en", "zh"))


def _previous_passages(prev: _Previous) -> dict[str, np.ndarray]:
    """The old index's vector of each passage text: rows of its mapped file, not copies."""
    return dict(zip(prev.passages, prev.vectors, strict=True))


def _manifest(docs_dir, embedder, settings, faiss_kind, order, documents, chunks, report) -> dict:
    return {
        "format": store.FORMAT,
        "format_version": store.FORMAT_VERSION,
        "package_version": rag.__version__,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "docs_dir": str(docs_dir),
        "model_id": embedder.model_id,
        # What embedded this build's new vectors (None: nothing embedded, or an embedder that does not
        # say). Informational: the ONNX export is checked to give torch's vectors, so both read the index.
        "encoder_runtime": getattr(embedder, "runtime_used", None),
        "dim": embedder.dim,
        "normalised": True,
        "metric": "inner_product",
        "embed_context": EMBED_CONTEXT,
        "embed": {"template": "{title} | {section}\\n{text}"},
        "bm25": {"context": EMBED_CONTEXT, "tokenizer_version": TOKENIZER_VERSION, "library": "bm25s"},
        "chunker": settings.to_dict(),
        "faiss_kind": resolve_kind(faiss_kind, report.n_chunks),
        "faiss_kind_requested": faiss_kind,
        "counts": {
            "documents": report.n_documents,
            "chunks": report.n_chunks,
            "load_errors": len(report.errors),
        },
        "documents": [
            {
                "doc_id": d,
                "title": documents[d].title,
                "path": documents[d].path,
                "sha256": documents[d].sha256,
                "chars": len(documents[d].text),
                "chunks": len(chunks[d]),
            }
            for d in order
        ],
        "load_errors": [{"path": e.path, "message": e.message} for e in report.errors],
        "load_warnings": [{"path": e.path, "message": e.message} for e in report.warnings],
        "duplicates": [{"doc_id": d, "same_as": of} for d, of in report.duplicates],
    }


def _nothing_changed(
    index_dir: Path, report: BuildReport, crosslingual: Embedder | None, faiss_kind: str
) -> bool:
    if report.added or report.updated or report.removed or report.kept:
        return False
    manifest = store.read_manifest(index_dir)
    wanted_xl = crosslingual.model_id if crosslingual is not None else None
    return (
        manifest.get("crosslingual_model_id") == wanted_xl
        # An older index gains its in-place sentence vectors, or those of the current texts.
        and manifest.get("sentence_context") == CONTEXT_VERSION
        and manifest.get("title_vectors") == TITLE_VERSION  # and its papers' title vectors
        # and, with the cross-lingual encoder, the English words induced for Chinese questions
        and (wanted_xl is None or manifest.get("english_lexicon") == EN_LEXICON_VERSION)
        and manifest.get("faiss_kind_requested") == faiss_kind
    )


def _reusable_caches(index_dir: Path, previous: _Previous | None, crosslingual: Embedder | None) -> dict:
    """Sentence and cross-lingual vectors of the existing index, when they were made by the same models."""
    if previous is None:
        return {}
    manifest = previous.manifest  # read once by _load_previous, with the documents and chunks
    caches = previous_caches(index_dir, manifest, previous.documents, previous.all_chunks, previous.passages)
    if crosslingual is None or manifest.get("crosslingual_model_id") != crosslingual.model_id:
        caches["xl"], caches["xl_sentences"], caches["lexicon"], caches["lexicon_en"] = {}, {}, {}, {}
    return caches


def _write(
    build_dir: Path,
    manifest: dict,
    documents,
    chunks,
    vectors: np.ndarray,
    faiss_kind: str,
    extras: Extras,
    passages: list[str],
) -> None:
    store.write_jsonl(build_dir / store.DOCUMENTS, map(store.document_row, documents))
    store.write_jsonl(build_dir / store.CHUNKS, map(store.chunk_row, chunks))
    store.write_npy(build_dir / store.EMBEDDINGS, vectors)
    VectorIndex.write(vectors, faiss_kind, build_dir / store.FAISS)
    BM25Index.build(passages).save(build_dir / store.BM25_DIR)
    write_extras(build_dir, extras, faiss_kind)
    # The manifest goes last: a folder without one is never mistaken for a finished index.
    store.write_json(build_dir / store.MANIFEST, manifest)
