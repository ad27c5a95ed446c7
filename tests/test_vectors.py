from __future__ import annotations

import numpy as np
import pytest

from rag.indexing.vectors import (
    APPROX_THRESHOLD,
    VectorIndex,
    brute_force_search,
    ivf_nlist,
    pq_subquantizers,
    resolve_kind,
)


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered_rows(rng: np.random.Generator, n: int, dim: int, centres: int = 50) -> np.ndarray:
    """Unit vectors scattered around a few centres: real sentence embeddings cluster like this,
    while uniform random vectors are the worst case for IVF and say little about real recall."""
    base = rng.normal(size=(centres, dim))
    x = base[rng.integers(0, centres, n)] + 0.5 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall_at_k(ids: np.ndarray, true_ids: np.ndarray) -> float:
    k = true_ids.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, true_ids, strict=True)]))


def test_brute_force_is_sorted_inner_product():
    rng = np.random.default_rng(0)
    corpus, queries = unit_rows(rng, 50, 8), unit_rows(rng, 3, 8)
    scores, ids = brute_force_search(queries, corpus, 5)
    assert ids.shape == scores.shape == (3, 5)
    for q in range(3):
        sims = corpus @ queries[q]
        assert ids[q, 0] == int(np.argmax(sims))
        np.testing.assert_allclose(scores[q], sims[ids[q]], rtol=1e-6)
        assert np.all(np.diff(scores[q]) <= 0)


def test_brute_force_k_larger_than_corpus():
    rng = np.random.default_rng(1)
    scores, ids = brute_force_search(unit_rows(rng, 2, 4), unit_rows(rng, 3, 4), 10)
    assert ids.shape == (2, 3)
    assert sorted(ids[0]) == [0, 1, 2]


def test_flat_matches_brute_force_exactly():
    rng = np.random.default_rng(2)
    corpus, queries = unit_rows(rng, 1000, 32), unit_rows(rng, 20, 32)
    index = VectorIndex.build(corpus, "flat")
    scores, ids = index.search(queries, 10)
    true_scores, true_ids = brute_force_search(queries, corpus, 10)
    np.testing.assert_array_equal(ids, true_ids)
    np.testing.assert_allclose(scores, true_scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall_against_brute_force(kind):
    rng = np.random.default_rng(3)
    corpus, queries = clustered_rows(rng, 2000, 64), clustered_rows(rng, 100, 64)
    index = VectorIndex.build(corpus, kind)
    assert index.kind == kind and index.ntotal == 2000
    _, ids = index.search(queries, 10)
    _, true_ids = brute_force_search(queries, corpus, 10)
    assert recall_at_k(ids, true_ids) >= 0.9


def test_ivfpq_builds_and_is_roughly_right():
    rng = np.random.default_rng(4)
    corpus, queries = clustered_rows(rng, 2000, 64), clustered_rows(rng, 50, 64)
    index = VectorIndex.build(corpus, "ivfpq")
    _, ids = index.search(queries, 10)
    _, true_ids = brute_force_search(queries, corpus, 10)
    # PQ compresses vectors (lossy); it is for corpora too large to hold as float32.
    assert recall_at_k(ids, true_ids) >= 0.5


def test_auto_kind_threshold():
    assert resolve_kind("auto", APPROX_THRESHOLD - 1) == "flat"
    assert resolve_kind("auto", APPROX_THRESHOLD) == "hnsw"
    index = VectorIndex.build(unit_rows(np.random.default_rng(5), 10, 4))
    assert index.kind == "flat"


def test_unknown_kind():
    with pytest.raises(ValueError, match="Unknown index kind 'lsh'; choose one of auto, flat"):
        VectorIndex.build(unit_rows(np.random.default_rng(5), 10, 4), "lsh")


def test_ivf_too_few_vectors():
    with pytest.raises(ValueError, match="needs at least 256 vectors.*kind='flat'"):
        VectorIndex.build(unit_rows(np.random.default_rng(5), 100, 8), "ivfpq")


def test_ivf_parameters():
    assert ivf_nlist(2000) == 51  # capped by 39 training points per list
    assert ivf_nlist(1_000_000) == 4000  # 4 * sqrt(n)
    assert pq_subquantizers(384) == 96 and 384 % pq_subquantizers(384) == 0
    assert pq_subquantizers(7) == 1


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_round_trip(tmp_path, kind):
    rng = np.random.default_rng(6)
    corpus, queries = clustered_rows(rng, 600, 16), clustered_rows(rng, 5, 16)
    index = VectorIndex.build(corpus, kind)
    index.save(tmp_path / "faiss.index")
    loaded = VectorIndex.load(tmp_path / "faiss.index")
    assert (loaded.kind, loaded.ntotal, loaded.dim) == (kind, 600, 16)
    for a, b in zip(index.search(queries, 7), loaded.search(queries, 7), strict=True):
        np.testing.assert_array_equal(a, b)


def test_load_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="No FAISS index file"):
        VectorIndex.load(tmp_path / "faiss.index")
    VectorIndex.build(unit_rows(np.random.default_rng(7), 20, 8)).save(tmp_path / "faiss.index")
    path = tmp_path / "faiss.index"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match="corrupt or truncated; rebuild"):
        VectorIndex.load(path)


def test_dimension_mismatch_names_both_dims():
    index = VectorIndex.build(unit_rows(np.random.default_rng(8), 20, 8))
    with pytest.raises(ValueError, match="dimension 16 but the index has dimension 8"):
        index.search(unit_rows(np.random.default_rng(9), 1, 16), 3)


def test_rejects_float64_and_1d():
    index = VectorIndex.build(unit_rows(np.random.default_rng(10), 20, 8))
    with pytest.raises(ValueError, match="float32.*np.asarray"):
        index.search(np.ones((1, 8)), 3)
    with pytest.raises(ValueError, match="2-D.*reshape"):
        index.search(np.ones(8, dtype=np.float32), 3)
    with pytest.raises(ValueError, match="float32"):
        VectorIndex.build(np.ones((3, 8)))


def test_empty_index_returns_nothing():
    index = VectorIndex.build(np.zeros((0, 8), dtype=np.float32))
    scores, ids = index.search(np.ones((2, 8), dtype=np.float32), 5)
    assert ids.shape == scores.shape == (2, 0)
