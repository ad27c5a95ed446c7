"""Vectors of a build that has not finished, kept on disk so a killed build resumes where it stopped.

Embedding is nearly all of a build's time (hours for a large library), and until the new index is
swapped in, everything it embedded lives only in memory: a kill, an out-of-memory or a closed laptop
lost all of it. Every embedding call of a build goes through `rag.indexing.extras.embed_batches`,
which writes what it embedded here in shards, and looks here first. The folder sits beside the index
(`.index.partial/`), one sub-folder per model, each shard an `.npz` of text digests and vectors,
written to a temporary name and renamed, so a kill mid-write leaves no half shard. A finished build
removes the folder.

Entries are keyed by the model id and the text's digest, so a shard can never give a wrong vector:
at worst, a checkpoint left by a build of other papers holds vectors nobody asks for.

Only where each vector sits (shard, row) is kept in memory, and only for the shards on disk when a
model is first looked up (those of a killed build): a build never asks again for a text it embedded
itself (each store embeds a text once), and holding its vectors here had kept a second copy of every
vector the build made.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FLUSH_TEXTS = 512  # write a shard once this many vectors are waiting ...
FLUSH_SECONDS = 30.0  # ... or this long after the last one: a kill loses at most about this much work


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbedCheckpoint:
    """What a build embedded so far, by model; `lookup` before embedding, `add` after each batch."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._known: dict[str, dict[str, tuple[int, int]]] = {}  # model folder -> digest -> (shard, row)
        self._shards: dict[str, list[Path]] = {}  # model folder -> the shards those positions name
        self._waiting: dict[str, list[tuple[str, np.ndarray]]] = {}
        self._last_flush = time.monotonic()
        self.resumed = 0  # vectors this build took from the checkpoint instead of embedding them

    @classmethod
    def beside(cls, index_dir: Path) -> EmbedCheckpoint:
        index_dir = Path(index_dir)
        return cls(index_dir.parent / f".{index_dir.name}.partial")

    @staticmethod
    def _model_dir(model_id: str) -> str:
        return hashlib.sha1(model_id.encode("utf-8")).hexdigest()[:16]

    def _positions(self, name: str) -> dict[str, tuple[int, int]]:
        """Where the model's vectors on disk are, read on first use; a damaged shard is skipped (and
        its texts embedded again)."""
        if name not in self._known:
            known: dict[str, tuple[int, int]] = {}
            shards = []
            for shard in sorted((self.folder / name).glob("*.npz")):
                try:
                    with np.load(shard, allow_pickle=False) as data:
                        keys = data["keys"].tolist()  # the vectors are read only when asked for
                except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                    log.warning("ignoring a damaged checkpoint shard %s: %s", shard, exc)
                    continue
                known.update((key, (len(shards), row)) for row, key in enumerate(keys))
                shards.append(shard)
            self._known[name], self._shards[name] = known, shards
        return self._known[name]

    def lookup(self, model_id: str, texts: list[str], dim: int) -> dict[int, np.ndarray]:
        """Positions of `texts` whose vectors (of `dim` dimensions) a killed build already made."""
        name = self._model_dir(model_id)
        known = self._positions(name)
        if not known:
            return {}
        wanted: dict[int, list[tuple[int, int]]] = {}  # shard -> (row in the shard, position in texts)
        for i, text in enumerate(texts):
            where = known.get(_digest(text))
            if where is not None:
                wanted.setdefault(where[0], []).append((where[1], i))
        found = {}
        for shard, rows in wanted.items():  # one shard read at a time, then dropped
            try:
                with np.load(self._shards[name][shard], allow_pickle=False) as data:
                    keys, vectors = data["keys"], data["vectors"]
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                log.warning("ignoring a damaged checkpoint shard %s: %s", self._shards[name][shard], exc)
                continue
            if vectors.ndim != 2 or vectors.shape != (len(keys), dim):
                continue
            for row, i in rows:  # the row is checked to be the text's still (the shard may have changed)
                if row < len(keys) and keys[row] == _digest(texts[i]):
                    found[i] = vectors[row].copy()
        self.resumed += len(found)
        return found

    def add(self, model_id: str, texts: list[str], vectors: np.ndarray) -> None:
        """Keep a batch's vectors; they reach the disk at the next flush (by count or by time)."""
        name = self._model_dir(model_id)
        waiting = self._waiting.setdefault(name, [])
        waiting += zip(map(_digest, texts), np.asarray(vectors, dtype=np.float32), strict=True)
        if len(waiting) >= FLUSH_TEXTS or time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write every waiting vector as one shard per model."""
        for name, waiting in self._waiting.items():
            if not waiting:
                continue
            folder = self.folder / name
            folder.mkdir(parents=True, exist_ok=True)
            keys = np.array([k for k, _ in waiting])
            vectors = np.stack([v for _, v in waiting])
            stem = f"{time.time_ns():020d}-{uuid.uuid4().hex[:6]}"
            tmp = folder / f"{stem}.tmp"
            with open(tmp, "wb") as f:
                np.savez(f, keys=keys, vectors=vectors)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, folder / f"{stem}.npz")
            waiting.clear()
        self._last_flush = time.monotonic()

    def remove(self) -> None:
        """The build finished: its vectors are in the index now."""
        self._waiting.clear()
        self._known.clear()
        self._shards.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
