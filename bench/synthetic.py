"""Synthetic corpora for the scale section: unit vectors (clustered or uniform) and Zipf token documents."""

from __future__ import annotations

import numpy as np

BLOCK = 100_000  # rows generated at a time, so 1M x 384 needs no float64 temporaries


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def random_unit_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the sphere: no structure at all, the worst case for approximate search."""
    out = np.empty((n, dim), dtype=np.float32)
    for i in range(0, n, BLOCK):
        block = out[i : i + BLOCK]
        block[:] = rng.standard_normal(block.shape, dtype=np.float32)
        _normalise_rows(block)
    return out


def clustered_unit_vectors(
    n: int,
    dim: int,
    rng: np.random.Generator,
    n_centers: int = 1000,
    noise: float = 0.05,
    seed_centers: int = 7,
) -> np.ndarray:
    """Gaussian blobs around `n_centers` random unit centres, normalised.

    noise 0.05 per dimension gives a noise vector of norm ~1 at dim 384, so a point's cosine to its centre
    is ~0.7: topics are separate but neighbours within a topic are not near-duplicates. The centres come
    from their own seed, so queries drawn with another rng fall into the corpus's clusters.
    """
    centers = random_unit_vectors(n_centers, dim, np.random.default_rng(seed_centers))
    out = np.empty((n, dim), dtype=np.float32)
    for i in range(0, n, BLOCK):
        block = out[i : i + BLOCK]
        block[:] = rng.standard_normal(block.shape, dtype=np.float32)
        block *= noise
        block += centers[rng.integers(0, n_centers, len(block))]
        _normalise_rows(block)
    return out


def zipf_vocab(size: int) -> list[str]:
    """Distinct two-character Han strings, so the corpus looks like jieba output to bm25s."""
    return [chr(0x4E00 + i // 250) + chr(0x4E00 + i % 250) for i in range(size)]


def zipf_probs(size: int, s: float = 1.0) -> np.ndarray:
    p = 1.0 / np.arange(1, size + 1) ** s
    return p / p.sum()


def zipf_documents(
    n: int, vocab: list[str], rng: np.random.Generator, mean_len: int = 120, s: float = 1.0
) -> list[list[str]]:
    """n token lists of 2/3..4/3 x mean_len tokens, drawn from a Zipf(s) law over the vocabulary."""
    p = zipf_probs(len(vocab), s)
    lengths = rng.integers(mean_len * 2 // 3, mean_len * 4 // 3 + 1, n)
    docs: list[list[str]] = []
    start = 0
    while start < n:  # in blocks: 1M docs x 120 token ids at once would be another 1 GB of int64
        stop = min(n, start + BLOCK)
        ids = rng.choice(len(vocab), size=int(lengths[start:stop].sum()), p=p)
        bounds = np.concatenate([[0], np.cumsum(lengths[start:stop])])
        docs.extend(
            [vocab[j] for j in ids[a:b].tolist()] for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        )
        start = stop
    return docs


def zipf_queries(
    n: int, vocab: list[str], rng: np.random.Generator, length: int = 6, skip_top: int = 100, s: float = 1.0
) -> list[list[str]]:
    """Queries of `length` tokens from the same law without the `skip_top` most frequent tokens,
    which tokenize() would mostly drop as stopwords."""
    p = zipf_probs(len(vocab), s)[skip_top:]
    p = p / p.sum()
    ids = rng.choice(np.arange(skip_top, len(vocab)), size=(n, length), p=p)
    return [[vocab[j] for j in row] for row in ids.tolist()]
