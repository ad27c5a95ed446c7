"""Build-time embedding: length-sorted batches, the same vectors whatever the batching, step timings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.encode.use import USEEmbedder
from rag.indexing.extras import EMBED_BATCH, embed_batches, length_order
from rag.indexing.index import Index, build_index

from .conftest import FakeEmbedder
from .helpers_index import RecordingEmbedder, write_corpus


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs")


def xl() -> RecordingEmbedder:
    return RecordingEmbedder(dim=32, model_id="fake-xl-32")


class BatchRecorder(FakeEmbedder):
    def __init__(self, token_lengths: bool = False) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        if token_lengths:
            self.token_lengths = lambda texts: [len(t.split()) for t in texts]

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        return super().embed_passages(texts)


TEXTS = [f"{'词' * (i * 7 % 23 + 1)} sentence {i}" for i in range(75)]


# ---- batching ---------------------------------------------------------------------------------


def test_batches_are_cut_longest_first_and_rows_keep_the_input_order():
    embedder = BatchRecorder()
    vectors = embed_batches(TEXTS, embedder, progress=False)
    np.testing.assert_array_equal(vectors, FakeEmbedder().embed_passages(TEXTS))
    lengths = [len(t) for batch in embedder.batches for t in batch]
    assert lengths == sorted(lengths, reverse=True)
    assert [len(b) for b in embedder.batches] == [EMBED_BATCH, EMBED_BATCH, len(TEXTS) - 2 * EMBED_BATCH]


def test_same_vectors_whatever_the_batching():
    one_by_one = np.concatenate([FakeEmbedder().embed_passages([t]) for t in TEXTS])
    np.testing.assert_array_equal(embed_batches(TEXTS, FakeEmbedder(), progress=False), one_by_one)
    np.testing.assert_array_equal(embed_batches(TEXTS[:1], FakeEmbedder(), progress=False), one_by_one[:1])
    assert embed_batches([], FakeEmbedder(), progress=False).shape == (0, 64)


def test_token_lengths_of_the_embedder_order_the_batches():
    texts = ["a b c d e", "abcdefghijklmnopqrstuvwxyz", "a b", "a b c"]
    assert length_order(texts, BatchRecorder()) == [1, 0, 3, 2]  # characters
    assert length_order(texts, BatchRecorder(token_lengths=True)) == [0, 3, 2, 1]  # tokens


def test_build_stores_the_same_vectors_as_embedding_each_text_alone(docs, tmp_path):
    build_index(docs, tmp_path / "ix", FakeEmbedder(), progress=False, crosslingual=xl())
    index = Index.load(tmp_path / "ix", crosslingual=FakeEmbedder(dim=32, model_id="fake-xl-32"))
    e5, cross = FakeEmbedder(), FakeEmbedder(dim=32, model_id="fake-xl-32")
    np.testing.assert_array_equal(index.sentence_vectors, e5.embed_passages(index.sentence_texts))
    np.testing.assert_array_equal(
        index.extras.xl_sentence_vectors, cross.embed_passages(index.sentence_texts)
    )


def test_use_defaults_to_one_thread_and_rejects_zero():
    assert USEEmbedder().threads == 1
    with pytest.raises(ValueError, match="threads must be at least 1, got 0"):
        USEEmbedder(threads=0)


def test_report_times_every_step_of_a_build(docs, tmp_path):
    report = build_index(docs, tmp_path / "ix", FakeEmbedder(), progress=False, crosslingual=xl())
    steps = ["load documents", "read previous index", "chunk", "embed chunks", "sentence units"]
    steps += [
        "embed sentences",
        "embed sentences in place",
        "embed titles",
        "glossary",
        "cross-lingual chunks",
        "cross-lingual sentences",
        "lexicon",
    ]
    assert list(report.phases) == [*steps, "write files", "swap in"]
    assert all(s >= 0 for s in report.phases.values())
    assert sum(report.phases.values()) <= report.seconds
    again = build_index(docs, tmp_path / "ix", FakeEmbedder(), progress=False, crosslingual=xl())
    assert list(again.phases) == ["load documents", "read previous index"]  # nothing changed: no writing
