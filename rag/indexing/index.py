"""The index folder: load it back and search it; `build_index` (rag/indexing/build.py) writes it.

Files: manifest.json, documents.jsonl (normalised texts, so quotes can be verified), chunks.jsonl,
embeddings.npy (row i = chunk i = FAISS id i), faiss.index, bm25/. See rag/indexing/store.py.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.indexing import store
from rag.indexing.build import EMBED_CONTEXT, BuildReport, build_index, passage_text
from rag.indexing.extras import Extras, context_texts, read_extras
from rag.indexing.store import (
    IndexCorruptError,
    IndexFileMissingError,
    IndexLoadError,
    IndexNotFoundError,
    IndexVersionError,
    ModelMismatchError,
)
from rag.indexing.vectors import VectorIndex
from rag.terms.glossary import Glossary
from rag.terms.lexical import BM25Index
from rag.types import Chunk, Document, Hit

if TYPE_CHECKING:
    from rag.encode.embedding import Embedder

__all__ = [
    "EMBED_CONTEXT",
    "BuildReport",
    "Index",
    "IndexCorruptError",
    "IndexFileMissingError",
    "IndexLoadError",
    "IndexNotFoundError",
    "IndexVersionError",
    "ModelMismatchError",
    "build_index",
    "passage_text",
]


def _default_crosslingual(model_id: str) -> Embedder | None:
    from rag.encode.use import USEEmbedder, use_model_id

    return USEEmbedder() if model_id == use_model_id() else None


def _check_model(index_dir: Path, manifest: dict, embedder: Embedder) -> None:
    built, loaded = manifest["model_id"], embedder.model_id
    if built != loaded:
        hint = store.rebuild_hint(index_dir, manifest.get("docs_dir"))
        raise ModelMismatchError(
            f"Index {index_dir} was built with model {built} but model {loaded} is loaded. "
            f"Rebuild with: {hint} --model {loaded} (or use --model {built})"
        )
    if embedder.dim != manifest["dim"]:
        raise ModelMismatchError(
            f"Index {index_dir} holds {manifest['dim']}-dimensional vectors but model {loaded} makes "
            f"{embedder.dim}-dimensional ones. Rebuild with: {store.rebuild_hint(index_dir, manifest.get('docs_dir'))}"
        )


@dataclass
class Index:
    """A loaded index folder. chunks[i], vectors[i] and FAISS id i are the same passage."""

    index_dir: Path
    manifest: dict
    documents: dict[str, Document]
    chunks: list[Chunk]
    vectors: np.ndarray
    vector_index: VectorIndex
    bm25: BM25Index
    extras: Extras
    embedder: Embedder | None = None
    crosslingual: Embedder | None = None  # the encoder of extras.xl_vectors, for queries

    @functools.cached_property
    def _positions(self) -> dict[str, int]:
        return {c.id: i for i, c in enumerate(self.chunks)}

    def position(self, chunk_id: str) -> int:
        """Row of a chunk in chunks, vectors and the FAISS index."""
        return self._positions[chunk_id]

    @property
    def glossary(self) -> Glossary:
        return self.extras.glossary

    @functools.cached_property
    def _sentence_ranges(self) -> np.ndarray:
        return self.extras.chunk_sentence_ranges(len(self.chunks))

    def sentences_of(self, chunk: Chunk) -> list[tuple[int, int, int]]:
        """The chunk's sentences as the index stores them: (row, start, end), offsets into its
        document. The answerer quotes and scores these rows; their vectors are row `row` of
        `sentence_vectors` and `context_vectors`."""
        lo, hi = self._sentence_ranges[self.position(chunk.id)]
        rows = self.extras.sentences
        return [(int(r), int(rows[r, 1]), int(rows[r, 2])) for r in range(lo, hi)]

    @property
    def sentence_texts(self) -> list[str]:
        return self.extras.sentence_texts

    @property
    def sentence_vectors(self) -> np.ndarray:
        return self.extras.sentence_vectors

    @property
    def context_vectors(self) -> np.ndarray | None:
        """e5 vectors of the sentences read in place (`rag.ingest.sentences.context_text`); None for an index
        built before they were added."""
        return self.extras.context_vectors

    @functools.cached_property
    def context_texts(self) -> list[str]:
        """The texts `context_vectors` embedded, made on first use (they are not stored)."""
        return context_texts(self.extras.sentences, self.chunks, self.documents)

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @classmethod
    def load(
        cls, index_dir: str | Path, embedder: Embedder | None = None, crosslingual: Embedder | None = None
    ) -> Index:
        """Read and check an index folder; raises an IndexLoadError subclass that says how to fix it.

        `crosslingual` defaults to the USE encoder when the index was built with it.
        """
        index_dir = Path(index_dir)
        manifest = store.read_manifest(index_dir)
        docs_dir = manifest.get("docs_dir")
        if embedder is not None:
            _check_model(index_dir, manifest, embedder)
        documents = store.read_documents(index_dir, docs_dir)
        chunks = store.read_chunks(index_dir, docs_dir)
        vectors = store.read_embeddings(index_dir, int(manifest["dim"]), docs_dir)
        counts = manifest["counts"]
        on_disk = (len(documents), len(chunks), len(vectors))
        if on_disk != (counts.get("documents"), counts.get("chunks"), counts.get("chunks")):
            raise store.corrupt(
                index_dir,
                f"{len(documents)} documents, {len(chunks)} chunks and {len(vectors)} embeddings on disk, but the "
                f"manifest says {counts.get('documents')} documents and {counts.get('chunks')} chunks",
                docs_dir,
            )
        store.check_chunks(index_dir, documents, chunks, docs_dir)
        vector_index = cls._load_part(
            index_dir, store.FAISS, functools.partial(VectorIndex.load, mapped=store.MMAP), docs_dir
        )
        bm25 = cls._load_part(index_dir, store.BM25_DIR, BM25Index.load, docs_dir)
        if (
            vector_index.ntotal != len(chunks)
            or vector_index.dim != vectors.shape[1]
            or len(bm25) != len(chunks)
        ):
            raise store.corrupt(
                index_dir, f"{store.FAISS} or {store.BM25_DIR} does not match {store.CHUNKS}", docs_dir
            )
        extras = read_extras(index_dir, manifest, chunks, documents)
        if extras.crosslingual_id is not None:
            crosslingual = crosslingual or _default_crosslingual(extras.crosslingual_id)
            if crosslingual is not None and crosslingual.model_id != extras.crosslingual_id:
                raise ModelMismatchError(
                    f"Index {index_dir} has cross-lingual vectors from {extras.crosslingual_id} but "
                    f"{crosslingual.model_id} is loaded. Rebuild with: {store.rebuild_hint(index_dir, docs_dir)}"
                )
        return cls(
            index_dir,
            manifest,
            documents,
            chunks,
            vectors,
            vector_index,
            bm25,
            extras,
            embedder,
            crosslingual,
        )

    @staticmethod
    def _load_part(index_dir: Path, name: str, loader, docs_dir: str | None):
        if not (index_dir / name).exists():
            raise store.missing_file(index_dir, name, docs_dir)
        try:
            return loader(index_dir / name)
        except (FileNotFoundError, ValueError) as exc:
            raise store.corrupt(index_dir, f"{name}: {exc}", docs_dir) from exc

    def search_dense(self, query_vec: np.ndarray, k: int = 10) -> list[Hit]:
        """Nearest chunks to one query vector (shape (dim,) or (1, dim)), best first."""
        query = np.asarray(query_vec, dtype=np.float32).reshape(1, -1)
        scores, ids = self.vector_index.search(query, k)
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        return [Hit(self.chunks[i], s, rank) for rank, (i, s) in enumerate(hits, 1)]

    @functools.cached_property
    def _writing(self) -> dict[str, frozenset[str]]:
        return {}

    def documents_writing(self, token: str) -> frozenset[str]:
        """The documents whose passages contain `token`, a term as BM25 reads it (`tokenize`)."""
        docs = self._writing.get(token)
        if docs is None:
            docs = frozenset(self.chunks[int(i)].doc_id for i in self.bm25.positions_with(token))
            if len(self._writing) < 100_000:  # bounded: questions bring new words forever
                self._writing[token] = docs
        return docs

    def search_bm25(self, query: str, k: int = 10) -> list[Hit]:
        """Chunks sharing terms with the query by BM25, best first; [] when nothing matches."""
        return [Hit(self.chunks[i], s, rank) for rank, (i, s) in enumerate(self.bm25.search(query, k), 1)]
