"""An upload is indexed beside the live index and swapped in whole, or not at all.

The live index folder is copied (hard links: a build never changes a file in place) to a staging
folder, the build runs there, and only a finished, uncancelled build is renamed over the live one.
The files being added are listed in a journal (`<docs>/uploads/.pending.json`) until the swap, so
files left by a crash or a kill are removed at the next start instead of being indexed then.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag.indexing import store

JOURNAL = ".pending.json"


class UploadCancelled(Exception):
    """The user cancelled the upload; nothing of it is kept."""


class Watched:
    """An embedder that counts what it embeds and stops the build when the upload is cancelled.

    The build embeds in batches, so a cancel takes effect within one batch."""

    def __init__(self, embedder: Any, cancel: threading.Event | None, counter: Callable[[int], None]) -> None:
        self._embedder, self._cancel, self._counter = embedder, cancel, counter

    def __getattr__(self, name: str) -> Any:  # model_id, dim, token_lengths, runtime_used, …
        return getattr(self._embedder, name)

    def _check(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise UploadCancelled

    def embed_passages(self, texts: list[str]):
        self._check()
        out = self._embedder.embed_passages(texts)
        self._counter(len(texts))
        self._check()
        return out

    def embed_queries(self, texts: list[str]):
        self._check()
        return self._embedder.embed_queries(texts)


def write_journal(uploads: Path, paths: list[Path]) -> None:
    uploads.mkdir(parents=True, exist_ok=True)
    store.write_json(uploads / JOURNAL, {"pending": [p.name for p in paths], "since": time.time()})


def clear_journal(uploads: Path) -> None:
    (uploads / JOURNAL).unlink(missing_ok=True)


def recover(docs_dir: Path) -> list[str]:
    """Remove the files of an upload that never reached the index (the app was killed mid-way)."""
    uploads = Path(docs_dir) / "uploads"
    try:
        pending = json.loads((uploads / JOURNAL).read_text(encoding="utf-8")).get("pending", [])
    except (OSError, ValueError):
        return []
    removed = []
    for name in pending:
        path = uploads / Path(str(name)).name  # names only: the journal can never point outside
        if path.is_file():
            path.unlink()
            removed.append(path.name)
    clear_journal(uploads)
    return removed


def stage_copy(index_dir: Path) -> Path:
    """A copy of the live index to build the upload into, beside it (same file system)."""
    stage = index_dir.parent / f".{index_dir.name}.upload-{uuid.uuid4().hex[:8]}"

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(index_dir, stage, copy_function=link)
    return stage


def discard(stage: Path) -> None:
    """The staging folder and whatever its build left beside it."""
    shutil.rmtree(stage, ignore_errors=True)
    for leftover in stage.parent.glob(f".{stage.name}.*"):
        shutil.rmtree(leftover, ignore_errors=True)


def commit(stage: Path, index_dir: Path, built_at: str) -> None:
    """Swap the staged build in, unless the live index changed meanwhile (e.g. `rag index`)."""
    with store.build_lock(index_dir):
        now = store.read_manifest(index_dir).get("built_at")
        if now != built_at:
            raise RuntimeError(f"the index in {index_dir} was rebuilt during the upload; add the files again")
        store.swap_in(stage, index_dir)
