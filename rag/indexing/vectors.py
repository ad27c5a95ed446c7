"""Dense vector search: a FAISS inner-product index over L2-normalised vectors, and a numpy oracle."""

from __future__ import annotations

import functools
import logging
import math
import os
from pathlib import Path

import faiss
import numpy as np

# Below this many vectors `kind="auto"` uses exact search. Exact flat search over 200k x 384 float32
# is still tens of milliseconds per query; a benchmark should confirm or move this number.
APPROX_THRESHOLD = 200_000
KINDS = ("auto", "flat", "hnsw", "ivf", "ivfpq")

log = logging.getLogger(__name__)

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128
# FAISS k-means wants at least this many training points per centroid.
MIN_POINTS_PER_CENTROID = 39
PQ_BITS = 8


def _check_matrix(vecs: np.ndarray, name: str, dim: int | None = None) -> np.ndarray:
    if not isinstance(vecs, np.ndarray) or vecs.ndim != 2:
        shape = getattr(vecs, "shape", type(vecs).__name__)
        raise ValueError(
            f"{name} must be a 2-D numpy array (rows x dim), got {shape}; use vecs.reshape(1, -1) for one row."
        )
    if vecs.dtype != np.float32:
        raise ValueError(
            f"{name} must be float32, got {vecs.dtype}; convert with np.asarray(x, dtype=np.float32)."
        )
    if dim is not None and vecs.shape[1] != dim:
        raise ValueError(
            f"{name} have dimension {vecs.shape[1]} but the index has dimension {dim}; "
            "embed them with the model the index was built with."
        )
    # FAISS reads the raw buffer, so a transposed or sliced view would be read wrongly.
    return np.ascontiguousarray(vecs)


def brute_force_search(
    query_vecs: np.ndarray, corpus_vecs: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product: (scores, ids), each (n_queries, min(k, n_corpus)), best first.

    The reference every FAISS index is tested against. Ties go to the lower id.
    """
    corpus_vecs = _check_matrix(corpus_vecs, "corpus vectors")
    query_vecs = _check_matrix(query_vecs, "query vectors", corpus_vecs.shape[1])
    k = max(0, min(k, corpus_vecs.shape[0]))
    sims = query_vecs @ corpus_vecs.T
    ids = np.argsort(-sims, axis=1, kind="stable")[:, :k].astype(np.int64)
    return np.take_along_axis(sims, ids, axis=1), ids


def _set_threads() -> None:
    # The box has 2 cores; FAISS's OpenMP default can oversubscribe next to torch's own threads.
    faiss.omp_set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def ivf_nlist(n: int) -> int:
    """About 4*sqrt(n) lists, capped so each centroid gets enough training points."""
    return max(1, min(round(4 * math.sqrt(n)), n // MIN_POINTS_PER_CENTROID))


def ivf_nprobe(nlist: int) -> int:
    """Lists probed per query: a quarter of them (at least 8), trading speed for recall >= 0.9."""
    return max(1, min(nlist, max(8, nlist // 4)))


def pq_subquantizers(dim: int) -> int:
    """The number of PQ sub-vectors: about 4 dimensions each, and it must divide `dim`."""
    target = max(1, dim // 4)
    return max(m for m in range(1, target + 1) if dim % m == 0)


def resolve_kind(kind: str, n: int) -> str:
    """Map "auto" to a concrete kind for `n` vectors; reject unknown kinds."""
    if kind not in KINDS:
        raise ValueError(f"Unknown index kind {kind!r}; choose one of {', '.join(KINDS)}.")
    if kind == "auto":
        return "flat" if n < APPROX_THRESHOLD else "hnsw"
    return kind


class VectorIndex:
    """A FAISS index with inner-product metric; vectors should be L2-normalised so scores are cosines.

    `search` returns FAISS ids, which are row positions of the vectors passed to `build`. Approximate
    kinds (hnsw, ivf, ivfpq) can return id -1 (score about -3.4e38) for empty slots;
    callers must drop ids < 0.
    """

    def __init__(self, index: faiss.Index, kind: str) -> None:
        self.index = index
        self.kind = kind

    @property
    def dim(self) -> int:
        return self.index.d

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def __len__(self) -> int:
        return self.ntotal

    @classmethod
    def build(
        cls, vectors: np.ndarray, kind: str = "auto", *, nlist: int | None = None, nprobe: int | None = None
    ) -> VectorIndex:
        """Index `vectors` (float32, n x dim). kind: auto | flat | hnsw | ivf | ivfpq."""
        vectors = _check_matrix(vectors, "vectors")
        n, dim = vectors.shape
        if dim == 0:
            raise ValueError("vectors have dimension 0; the embedder returned no features.")
        kind = resolve_kind(kind, n)
        _set_threads()
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = HNSW_EF_SEARCH
        else:
            index = cls._build_ivf(vectors, kind, nlist, nprobe)
        index.add(vectors)
        return cls(index, kind)

    @staticmethod
    def _build_ivf(vectors: np.ndarray, kind: str, nlist: int | None, nprobe: int | None) -> faiss.Index:
        n, dim = vectors.shape
        nlist = nlist or ivf_nlist(n)
        # FAISS cannot train k centroids (or 2**PQ_BITS codes) from fewer than k points.
        needed = max(nlist, 1 << PQ_BITS) if kind == "ivfpq" else nlist
        if n < needed:
            raise ValueError(
                f"kind={kind!r} needs at least {needed} vectors to train, got {n}; use kind='flat' (exact) instead."
            )
        quantizer = faiss.IndexFlatIP(dim)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFPQ(
                quantizer, dim, nlist, pq_subquantizers(dim), PQ_BITS, faiss.METRIC_INNER_PRODUCT
            )
        index.train(vectors)
        index.nprobe = nprobe or ivf_nprobe(nlist)
        return index

    @classmethod
    def write(cls, vectors: np.ndarray, kind: str, path: str | Path) -> None:
        """Build the index of `vectors` and save it to `path`. An exact (flat) index is written straight
        from the vectors, a block at a time (`write_flat`): FAISS's own build copies every vector into
        memory first, and a build's vectors are a mapped file (rag.indexing.store.new_npy)."""
        if resolve_kind(kind, len(vectors)) == "flat" and write_flat(vectors, path):
            return
        cls.build(vectors, kind).save(path)

    def search(self, query_vecs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids), each (n_queries, min(k, ntotal)), best first. Drop ids < 0."""
        query_vecs = _check_matrix(query_vecs, "query vectors", self.dim)
        k = max(0, min(k, self.ntotal))
        if k == 0:
            empty = np.empty((query_vecs.shape[0], 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        _set_threads()
        if self.kind == "hnsw":
            # efSearch below k cannot return k results.
            self.index.hnsw.efSearch = max(HNSW_EF_SEARCH, k)
        scores, ids = self.index.search(query_vecs, k)
        return scores, ids

    def save(self, path: str | Path) -> None:
        """Write the FAISS index to one file (faiss.write_index; no pickle)."""
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: str | Path, mapped: bool = False) -> VectorIndex:
        """Read a file written by `save`; raises FileNotFoundError or ValueError naming the file.

        `mapped`: map the stored vectors of a flat or HNSW index from the file, read-only, instead of
        copying them into memory (pages are read when a search touches them). Such an index must
        not be added to (FAISS aborts the process). Other kinds are read as usual: FAISS's mapped
        reader accepts some truncated IVF files.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No FAISS index file at {path}; rebuild the index.")
        flags = 0
        if mapped and hasattr(faiss, "IO_FLAG_MMAP_IFC"):
            with open(path, "rb") as f:
                if f.read(4) in _MAPPABLE:
                    flags = faiss.IO_FLAG_MMAP_IFC
        try:
            index = faiss.read_index(str(path), flags)
        except RuntimeError as exc:
            raise ValueError(f"FAISS index file {path} is corrupt or truncated; rebuild the index.") from exc
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError(f"FAISS index file {path} does not use inner product; rebuild the index.")
        return cls(index, _kind_of(index))


def _flat_header(n: int, dim: int) -> bytes:
    """The bytes `faiss.write_index` writes before the vectors of an IndexFlatIP of n x dim: an empty
    index's, with the vector count and the count of floats that follow patched in (the layout of
    FAISS's index_write.cpp: fourcc, d, ntotal, two dummies, is_trained, metric, then the float vector
    as its length and its data)."""
    empty = faiss.serialize_index(faiss.IndexFlatIP(dim)).tobytes()
    return empty[:8] + np.int64(n).tobytes() + empty[16:-8] + np.uint64(n * dim).tobytes()


@functools.cache
def _flat_layout_checked() -> bool:
    """Whether `_flat_header` plus the raw vectors is what this FAISS writes: checked once on a small
    matrix, so a FAISS that writes otherwise gets its own writer instead of a file it cannot read."""
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    index = faiss.IndexFlatIP(8)
    index.add(x)
    ok = faiss.serialize_index(index).tobytes() == _flat_header(3, 8) + x.tobytes()
    if not ok:
        log.warning("this FAISS writes flat indexes otherwise; building them in memory instead")
    return ok


def write_flat(vectors: np.ndarray, path: str | Path, block_rows: int = 16_384) -> bool:
    """Write an exact inner-product index file of `vectors` (float32, n x dim) a block of rows at a
    time, never holding more than one block beyond `vectors` itself; False (nothing written) if this
    FAISS's file layout is not the one checked for."""
    vectors = _check_matrix(vectors, "vectors")
    if vectors.shape[1] == 0 or not _flat_layout_checked():
        return False
    with open(path, "wb") as f:
        f.write(_flat_header(*vectors.shape))
        for start in range(0, len(vectors), block_rows):
            f.write(np.ascontiguousarray(vectors[start : start + block_rows]).tobytes())
        f.flush()
        os.fsync(f.fileno())  # on disk before the build folder is swapped in as the index
    return True


# File tags (FAISS fourcc) of the kinds whose vectors can be mapped from the file: IndexFlatIP, IndexHNSWFlat.
_MAPPABLE = (b"IxFI", b"IHNf")


def _kind_of(index: faiss.Index) -> str:
    index = faiss.downcast_index(index)
    for cls, kind in (
        (faiss.IndexFlat, "flat"),
        (faiss.IndexHNSW, "hnsw"),
        (faiss.IndexIVFPQ, "ivfpq"),
        (faiss.IndexIVFFlat, "ivf"),
    ):
        if isinstance(index, cls):
            return kind
    raise ValueError(f"Unsupported FAISS index type {type(index).__name__}; rebuild the index.")
