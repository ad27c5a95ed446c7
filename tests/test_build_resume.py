"""A build that is killed keeps what it embedded (rag/indexing/checkpoint.py); the next build resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rag.indexing import checkpoint as ckpt
from rag.indexing.checkpoint import EmbedCheckpoint
from rag.indexing.index import Index, build_index

from .conftest import FakeEmbedder
from .helpers_index import RecordingEmbedder

REPO = Path(__file__).resolve().parents[1]


def _corpus(folder: Path, papers: int = 6) -> Path:
    """Papers with enough distinct sentences for several batches of 32."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in range(papers):
        lines = [f"第{p}号研究", "", "摘要"]
        lines += [
            f"第{p}组第{i}例患者接受了{i * 3 + p}毫克的治疗，随访{i + 2}个月后病情稳定。" for i in range(30)
        ]
        (folder / f"paper-{p}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _texts(embedder: RecordingEmbedder) -> set[str]:
    return set(embedder.passages) | set(embedder.sentences)


def _arrays(index_dir: Path) -> dict[str, np.ndarray]:
    return {p.name: np.load(p) for p in sorted(index_dir.glob("*.npy"))}


def test_a_build_stopped_mid_way_resumes_without_embedding_the_same_texts_again(tmp_path: Path):
    docs = _corpus(tmp_path / "docs")
    first = RecordingEmbedder(fail_after=12)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_index(docs, tmp_path / "index", first, progress=False)
    partial = EmbedCheckpoint.beside(tmp_path / "index").folder
    assert list(partial.rglob("*.npz")), "what the stopped build embedded is on disk"
    assert not (tmp_path / "index").exists()

    second = RecordingEmbedder()
    report = build_index(docs, tmp_path / "index", second, progress=False)
    assert report.n_resumed == len(_texts(first)) > 0
    assert not _texts(first) & _texts(second), "nothing embedded before is embedded again"
    assert "resumed:" in report.summary()
    assert not partial.exists(), "a finished build removes its checkpoint"

    clean = build_index(docs, tmp_path / "clean", RecordingEmbedder(), progress=False)
    assert clean.n_resumed == 0
    resumed, fresh = _arrays(tmp_path / "index"), _arrays(tmp_path / "clean")
    assert resumed.keys() == fresh.keys()
    for name in fresh:
        np.testing.assert_array_equal(resumed[name], fresh[name], err_msg=name)
    index = Index.load(tmp_path / "index", FakeEmbedder())
    assert index.search_bm25("第3组第7例患者", k=3)[0].chunk.doc_id == "paper-3"


def test_the_checkpoint_is_keyed_by_model_and_text_and_skips_a_damaged_shard(tmp_path: Path):
    point = EmbedCheckpoint(tmp_path / "partial")
    point.add("model-a", ["一", "二"], np.eye(2, 4, dtype=np.float32))
    point.flush()
    (tmp_path / "partial" / point._model_dir("model-a") / "0-broken.npz").write_bytes(b"not a zip")

    again = EmbedCheckpoint(tmp_path / "partial")
    found = again.lookup("model-a", ["二", "三", "一"], 4)
    assert sorted(found) == [0, 2]
    np.testing.assert_array_equal(found[0], np.eye(2, 4)[1])
    assert again.lookup("model-b", ["一"], 4) == {}, "another model's vectors are never used"
    assert again.lookup("model-a", ["一"], 8) == {}, "nor vectors of another size"
    again.remove()
    assert not (tmp_path / "partial").exists()


def test_a_lookup_finds_each_vector_in_its_own_shard(tmp_path: Path, monkeypatch):
    """Only positions are kept in memory; the vectors are read from their shards when asked for."""
    monkeypatch.setattr(ckpt, "FLUSH_TEXTS", 3)
    texts = [f"第{i}句" for i in range(10)]
    vectors = np.random.default_rng(1).standard_normal((10, 8)).astype(np.float32)
    point = EmbedCheckpoint(tmp_path / "partial")
    for i in range(0, 10, 2):
        point.add("model-a", texts[i : i + 2], vectors[i : i + 2])
    point.flush()
    shards = sorted((tmp_path / "partial").rglob("*.npz"))
    assert len(shards) == 3  # texts 0-3, 4-7, 8-9

    again = EmbedCheckpoint(tmp_path / "partial")
    asked = [texts[9], "没有的句子", texts[0], texts[4], texts[4]]
    found = again.lookup("model-a", asked, 8)
    assert sorted(found) == [0, 2, 3, 4]
    for pos, i in ((0, 9), (2, 0), (3, 4), (4, 4)):
        np.testing.assert_array_equal(found[pos], vectors[i])
    assert again.resumed == 4
    shards[0].write_bytes(b"damaged after it was listed")
    assert sorted(again.lookup("model-a", texts, 8)) == list(range(4, 10)), (
        "a shard unreadable now is skipped"
    )


def test_an_index_that_needs_no_rebuild_drops_a_stale_checkpoint(tmp_path: Path):
    docs = _corpus(tmp_path / "docs", papers=2)
    build_index(docs, tmp_path / "index", FakeEmbedder(), progress=False)
    stale = EmbedCheckpoint.beside(tmp_path / "index")
    stale.add("fake-hash-64", ["无关的句子"], np.ones((1, 64), np.float32) / 8)
    stale.flush()
    report = build_index(docs, tmp_path / "index", FakeEmbedder(), progress=False)
    assert report.unchanged and not stale.folder.exists()


_KILLED_BUILD = textwrap.dedent(
    """
    import sys, time
    sys.path[:0] = [{repo!r}]
    from rag.indexing import checkpoint
    from rag.indexing.index import build_index
    from tests.conftest import FakeEmbedder

    checkpoint.FLUSH_TEXTS = 32  # a shard per batch, so the kill below finds some on disk

    class Slow(FakeEmbedder):
        def embed_passages(self, texts):
            time.sleep(0.05)
            return super().embed_passages(texts)

    build_index({docs!r}, {index!r}, Slow(), progress=False)
    """
)


def test_a_build_killed_by_a_signal_resumes_from_its_shards(tmp_path: Path):
    docs = _corpus(tmp_path / "docs", papers=8)
    index_dir = tmp_path / "index"
    partial = EmbedCheckpoint.beside(index_dir).folder
    script = _KILLED_BUILD.format(repo=str(REPO), docs=str(docs), index=str(index_dir))
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 120
        while len(list(partial.rglob("*.npz"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the build finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        on_disk = sum(len(np.load(p)["keys"]) for p in partial.rglob("*.npz"))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not index_dir.exists()
    assert ckpt.FLUSH_TEXTS > 32  # the test changed it only in the child

    again = RecordingEmbedder()
    report = build_index(docs, index_dir, again, progress=False)
    assert report.n_resumed == on_disk > 0
    clean = RecordingEmbedder()
    build_index(docs, tmp_path / "clean", clean, progress=False)
    assert len(again.passages) + len(again.sentences) == len(clean.passages) + len(clean.sentences) - on_disk
    resumed, fresh = _arrays(index_dir), _arrays(tmp_path / "clean")
    for name in fresh:
        np.testing.assert_array_equal(resumed[name], fresh[name], err_msg=name)
    assert len(Index.load(index_dir, FakeEmbedder()).documents) == 8
