"""Uploads indexed in a background thread, one at a time, with progress and a cancel.

The app keeps answering meanwhile: the build runs beside the live index (webui/staging.py) and the
pipeline swaps the new index in whole when it is done. The thread runs at a lower CPU priority
(Linux: per thread), and so do the encoders it makes (their threads inherit it), so questions
asked meanwhile get the cores first.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webui import staging
from webui.uploads import UploadResult, _both, add_documents

if TYPE_CHECKING:
    from rag.pipeline import Pipeline

BACKGROUND_NICE = 10  # added to the build thread's niceness: questions first


@dataclass(frozen=True)
class Progress:
    """What the page shows about the upload in flight, or the last one."""

    running: bool
    names: tuple[str, ...] = ()
    stage: str = ""
    texts: int = 0  # texts embedded so far
    seconds: float = 0.0
    result: UploadResult | None = None  # once finished
    cancelling: bool = False

    def message(self) -> str:
        if self.result is not None and not self.running:
            return self.result.message()
        if not self.running:
            return ""
        line = _both(
            "upload_progress",
            names=", ".join(self.names),
            stage=self.stage,
            texts=self.texts,
            seconds=self.seconds,
        )
        return f"{line}\n\n{_both('upload_cancelling')}" if self.cancelling else line


class UploadWorker:
    """Runs `add_documents` in a daemon thread; `start`, `progress`, `cancel`, `wait`.

    `embedders` makes the encoders the build uses, called in the worker thread (so an onnxruntime
    session made there runs at its priority); None: the pipeline's own."""

    def __init__(
        self,
        pipeline: Pipeline,
        docs_dir: str | Path,
        embedders: Callable[[], tuple[Any, Any]] | None = None,
        nice: int = BACKGROUND_NICE,
    ) -> None:
        self.pipeline, self.docs_dir, self.nice = pipeline, Path(docs_dir), nice
        self._make_embedders = embedders
        self._embedders: tuple[Any, Any] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._progress = Progress(False)
        self._started = 0.0
        self.recovered = staging.recover(self.docs_dir)  # files of an upload killed mid-way

    def start(self, files: list[tuple[str, Path]]) -> str | None:
        """Begin indexing the files (name, temporary path); the busy message when one is in flight."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                for _, tmp in files:  # refused: Gradio's copy goes, as after an upload
                    Path(tmp).unlink(missing_ok=True)
                return _both("upload_busy", names=", ".join(self._progress.names))
            self._cancel = threading.Event()
            self._started = time.monotonic()
            names = tuple(Path(n).name for n, _ in files)
            self._progress = Progress(True, names, "starting")
            self._thread = threading.Thread(
                target=self._run, args=(files, self._cancel), name="rag-upload", daemon=True
            )
            self._thread.start()
        return None

    def progress(self) -> Progress:
        return self._progress

    def cancel(self) -> bool:
        """Ask the build to stop; True when one was running. Its files and index changes are undone."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                return False
            self._cancel.set()
            self._progress = replace(self._progress, cancelling=True)
            return True

    def wait(self, timeout: float | None = None) -> Progress:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self._progress

    def _tell(self, stage: str, texts: int) -> None:
        with self._lock:
            p = self._progress
            self._progress = replace(
                p,
                stage=stage,
                texts=texts if texts >= 0 else p.texts,
                seconds=time.monotonic() - self._started,
            )

    def _run(self, files: list[tuple[str, Path]], cancel: threading.Event) -> None:
        _lower_priority(self.nice)
        try:
            if self._embedders is None and self._make_embedders is not None:
                self._tell("loading the encoders", 0)
                self._embedders = self._make_embedders()
            result = add_documents(
                files,
                self.docs_dir,
                self.pipeline,
                cancel=cancel,
                progress=self._tell,
                embedders=self._embedders,
            )
        except Exception as exc:  # add_documents reports its own failures; this is a last resort
            result = UploadResult(errors=[_both("upload_failed", error=exc)])
        finally:
            for _, tmp in files:  # Gradio's copy is no longer needed; do not keep papers in /tmp
                Path(tmp).unlink(missing_ok=True)
        with self._lock:
            self._progress = replace(
                self._progress, running=False, result=result, seconds=time.monotonic() - self._started
            )


def _lower_priority(nice: int) -> None:
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:  # on Linux a thread id names just this thread
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except OSError:
        pass  # not allowed here: the build still runs, at normal priority
