"""The onnxruntime path: which runtime is chosen and why (fast), and that the export gives torch's
vectors (slow, the real model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.encode import embedding, onnx
from rag.encode.embedding import ModelLoadError, SentenceTransformerEmbedder
from rag.settings import Settings, SettingsError


class FakeTorchModel:
    """Stands in for SentenceTransformer: records that the torch path ran."""

    prompts = {"query": "query: ", "passage": "passage: "}
    tokenizer = None

    def encode(self, texts, prompt_name=None, **kwargs) -> np.ndarray:
        return np.ones((len(texts), 3), np.float32) / np.sqrt(3)


@pytest.fixture
def torch_is_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SentenceTransformerEmbedder, "_load", lambda self: FakeTorchModel())


def _model_folder(tmp_path: Path, pooling: dict | None = None) -> Path:
    (tmp_path / "1_Pooling").mkdir(parents=True)
    modules = [{"type": f"sentence_transformers.models.{t}"} for t in ("Transformer", "Pooling", "Normalize")]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    pooling = pooling or {"pooling_mode_mean_tokens": True, "include_prompt": True}
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "tokenizer.json").write_text("{}")
    return tmp_path


# ------------------------------------------------------------------------- fast


def test_auto_falls_back_to_torch_without_onnxruntime(monkeypatch, torch_is_fake, tmp_path) -> None:
    monkeypatch.setattr(embedding, "onnxruntime_available", lambda: False)
    embedder = SentenceTransformerEmbedder(str(tmp_path), runtime="auto")
    assert embedder.embed_queries(["肺栓塞"]).shape == (1, 3)
    assert embedder.runtime_used == "torch"


def test_auto_falls_back_to_torch_when_the_export_fails(monkeypatch, torch_is_fake, tmp_path) -> None:
    def failing_export(folder: Path) -> Path:
        raise ModelLoadError("cosine 0.991 to torch")

    monkeypatch.setattr(embedding, "onnxruntime_available", lambda: True)
    monkeypatch.setattr(embedding, "ensure_onnx", failing_export)
    embedder = SentenceTransformerEmbedder(str(tmp_path))
    embedder.embed_passages(["text"])
    assert embedder.runtime_used == "torch"


def test_onnx_runtime_that_cannot_run_says_why(monkeypatch, torch_is_fake, tmp_path) -> None:
    monkeypatch.setattr(embedding, "onnxruntime_available", lambda: False)
    embedder = SentenceTransformerEmbedder(str(tmp_path), runtime="onnx")
    with pytest.raises(ModelLoadError, match="encoder.runtime is onnx .*pip install onnxruntime"):
        embedder.warm_up()
    assert embedder.runtime_used is None


def test_torch_runtime_never_tries_the_export(monkeypatch, torch_is_fake, tmp_path) -> None:
    def forbidden() -> bool:
        raise AssertionError("looked for onnxruntime with runtime=torch")

    monkeypatch.setattr(embedding, "onnxruntime_available", forbidden)
    embedder = SentenceTransformerEmbedder(str(tmp_path), runtime="torch")
    embedder.warm_up()
    assert embedder.runtime_used == "torch"


def test_a_hub_name_has_no_export_and_runs_in_torch(monkeypatch, torch_is_fake) -> None:
    monkeypatch.setattr(embedding, "onnxruntime_available", lambda: True)
    embedder = SentenceTransformerEmbedder("some-org/some-model")
    embedder.warm_up()
    assert embedder.runtime_used == "torch"


def test_bad_runtime_is_rejected_with_the_choices() -> None:
    with pytest.raises(ValueError, match="runtime must be one of auto, onnx, torch, got 'gpu'"):
        SentenceTransformerEmbedder(runtime="gpu")
    with pytest.raises(SettingsError, match="runtime must be one of auto, onnx, torch"):
        Settings().with_(**{"encoder.runtime": "gpu"})


def test_only_mean_pooled_normalised_bert_folders_are_exported(tmp_path: Path) -> None:
    assert onnx.unsupported_reason(_model_folder(tmp_path / "a")) is None
    cls = _model_folder(tmp_path / "b", {"pooling_mode_cls_token": True})
    assert "expected mean tokens" in onnx.unsupported_reason(cls)
    with pytest.raises(ModelLoadError, match="cannot be exported to ONNX: pooling .*encoder.runtime=torch"):
        onnx.ensure_onnx(cls)
    assert "not a sentence-transformers folder" in onnx.unsupported_reason(tmp_path)


def test_an_export_whose_file_changed_is_not_reused(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "m")
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"x" * 10)
    record = {"export_version": onnx.EXPORT_VERSION, "bytes": 10}
    (folder / "onnx" / "rag_onnx.json").write_text(json.dumps(record))
    assert onnx._check_record(folder) == record
    (folder / "onnx" / "model.onnx").write_bytes(b"x" * 9)  # a copy cut short
    assert onnx._check_record(folder) is None


BLAS_THREADS = """
import json, sys
import numpy
from threadpoolctl import threadpool_info

def blas():
    return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})

before = blas()
if len(sys.argv) > 1:  # a model folder: what OnnxEncoder does
    from pathlib import Path
    from rag.encode.onnx import OnnxEncoder, ensure_onnx
    folder, how = Path(sys.argv[1]), sys.argv[2]
    onnx_file = ensure_onnx(folder)
    if how == "broken":  # a session that cannot load: the model then runs in torch
        import tempfile
        onnx_file = Path(tempfile.mkdtemp()) / "broken.onnx"
        onnx_file.write_bytes(b"not a model")
    try:
        encoder = OnnxEncoder(folder, onnx_file, threads=2, limit_blas=how != "no-limit")
        options = encoder.session.get_session_options()
        spin = options.get_session_config_entry("session.intra_op.allow_spinning")
    except Exception as exc:
        spin = type(exc).__name__
    done = None
else:
    from rag.encode.threads import limit_blas_threads
    done, spin = limit_blas_threads(), None
print(json.dumps({"before": before, "after": blas(), "done": done, "spin": spin}))
"""


def _blas_threads(env_var: str | None, *args: str) -> dict:
    """numpy's BLAS thread counts before and after, in a fresh process (the limit is process-wide)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
    }
    if env_var:
        env[env_var] = "2"
    out = subprocess.run(
        [sys.executable, "-c", BLAS_THREADS, *args], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


MULTI_CORE = pytest.mark.skipif(
    (os.cpu_count() or 1) < 2, reason="OpenBLAS runs one thread on one core whatever is asked"
)


@MULTI_CORE
def test_blas_threads_are_limited_to_one_unless_the_user_chose() -> None:
    limited = _blas_threads(None)
    assert limited["before"] == [2] and limited["done"] is True
    assert limited["after"] == [1]
    chosen = _blas_threads("OPENBLAS_NUM_THREADS")
    assert chosen["before"] == [2] and chosen["after"] == [2] and chosen["done"] is False


# ------------------------------------------------------------------------- slow


@pytest.mark.slow
@MULTI_CORE
def test_the_onnx_session_spins_only_with_blas_at_one_thread(converted: Path) -> None:
    """Spinning pays only with BLAS at one thread (rag/encode/threads.py): the two go together, and
    a user's own BLAS thread count keeps the session's threads asleep."""
    loaded = _blas_threads(None, str(converted), "load")
    assert (loaded["spin"], loaded["after"]) == ("1", [1])
    chosen = _blas_threads("OMP_NUM_THREADS", str(converted), "load")
    assert (chosen["spin"], chosen["after"]) == ("0", [2])
    opted_out = _blas_threads(None, str(converted), "no-limit")  # encoder.limit_blas_threads = false
    assert opted_out["spin"] == "0" and opted_out["after"] == opted_out["before"]


@pytest.mark.slow
def test_a_limit_that_does_not_take_rebuilds_the_session_asleep(converted: Path, monkeypatch) -> None:
    """The dry run expected one thread, the real call found a library it could not set."""
    calls = []

    def limit(threads: int = 1, dry_run: bool = False) -> bool:
        calls.append(dry_run)
        return dry_run

    monkeypatch.setattr(onnx, "limit_blas_threads", limit)
    encoder = onnx.OnnxEncoder(converted, onnx.ensure_onnx(converted), threads=1)
    options = encoder.session.get_session_options()
    assert calls == [True, False]
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.slow
@MULTI_CORE
def test_a_session_that_fails_to_load_leaves_the_blas_threads(converted: Path) -> None:
    """The fallback to torch must not inherit a limit set for onnxruntime's sake."""
    broken = _blas_threads(None, str(converted), "broken")
    assert broken["spin"] != "1" and broken["spin"] != "0"  # it raised
    assert broken["after"] == broken["before"] != [1]


@pytest.mark.slow
def test_export_gives_torch_vectors(converted: Path) -> None:
    onnx_file = onnx.ensure_onnx(converted)
    record = json.loads((converted / "onnx" / "rag_onnx.json").read_text())
    assert record["min_cosine_to_torch"] >= onnx.MIN_COSINE
    assert onnx.ensure_onnx(converted) == onnx_file  # reused, not exported again
    assert json.loads((converted / "onnx" / "rag_onnx.json").read_text())["created"] == record["created"]

    fast = SentenceTransformerEmbedder(str(converted), runtime="onnx")
    slow = SentenceTransformerEmbedder(str(converted), runtime="torch")
    # Both languages, padding inside a batch of 8 and truncation past 512 tokens.
    texts = ["肺栓塞的诊断", "Trousseau syndrome is treated with heparin.", "低分子肝素" * 300] * 4
    for side in ("embed_queries", "embed_passages"):
        cosines = np.sum(getattr(fast, side)(texts) * getattr(slow, side)(texts), axis=1)
        assert cosines.min() >= onnx.MIN_COSINE, side
    assert fast.token_lengths(texts) == slow.token_lengths(texts)
    assert (fast.runtime_used, slow.runtime_used) == ("onnx", "torch")
