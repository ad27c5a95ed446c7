"""Adding papers from the browser: check each file, copy it into <docs>/uploads/, re-index, reload.

Nothing already indexed is lost: the upload is built beside the index and swapped in whole
(webui/staging.py), and a file that fails is removed again so the documents folder keeps matching
the index.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rag.abstain.adaptive import Stopped, write_adapted
from rag.answer.framing import templates
from rag.indexing.index import BuildReport, build_index
from rag.indexing.store import read_manifest
from rag.ingest.loading import SUPPORTED, LoadFailure, decode_text, load_file
from rag.settings import ChunkerSettings, IngestSettings
from webui import staging

if TYPE_CHECKING:
    from rag.encode.embedding import Embedder
    from rag.pipeline import Pipeline

logger = logging.getLogger(__name__)

ALLOWED_SUFFIXES = SUPPORTED  # what `rag index` reads: .txt .md .pdf .docx .html .htm
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOADS_DIR = "uploads"
_MAX_NAME_CHARS = 80
# Magic numbers of binary formats someone might rename to .txt by mistake.
_BINARY_MAGIC = {
    b"%PDF-": "a PDF",
    b"PK\x03\x04": "a ZIP/Word/Excel",
    b"\x7fELF": "a program",
    b"MZ": "a Windows program",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "a gzip archive",
    b"\xd0\xcf\x11\xe0": "an old Word/Excel",
}


class UploadError(ValueError):
    """A file cannot be added; the message names the file and says what to do."""


@dataclass
class UploadResult:
    added: list[str] = field(default_factory=list)  # doc ids now searchable
    errors: list[str] = field(default_factory=list)  # one readable message per rejected file

    def message(self) -> str:
        lines = [f"✓ Added / 已添加: {doc_id}" for doc_id in self.added]
        lines += [f"✗ {err}" for err in self.errors]
        return "\n\n".join(lines) or "No files selected. / 未选择文件。"  # one Markdown paragraph each


def safe_filename(name: str) -> str:
    """A file name safe to create in the uploads folder: no folders, no hidden files, no odd characters."""
    base = re.split(r"[\\/]", unicodedata.normalize("NFKC", name or ""))[-1]
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    # Letters and digits of any script (Chinese names stay readable), plus - and _.
    stem = re.sub(r"[^\w\-]+", "-", stem, flags=re.UNICODE).strip("-_.")[:_MAX_NAME_CHARS] or "upload"
    suffix = re.sub(r"[^\w]", "", suffix).lower()
    return f"{stem}.{suffix}" if suffix else stem


def check_upload(name: str, data: bytes) -> None:
    """Reject a file by extension, size and content before it goes near the documents folder."""
    suffix = Path(safe_filename(name)).suffix
    shown = Path(name or "").name or "(no name)"
    if suffix not in ALLOWED_SUFFIXES:
        raise UploadError(
            f"{shown}: {suffix or 'files without an extension'} cannot be added; upload "
            f"{', '.join(ALLOWED_SUFFIXES)}. / 仅支持 {'、'.join(ALLOWED_SUFFIXES)} 文件。"
        )
    if not data:
        raise UploadError(f"{shown}: the file is empty. / 文件为空。")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(
            f"{shown}: the file is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB. "
            f"/ 文件超过 {MAX_UPLOAD_BYTES // 2**20} MB 上限。"
        )
    if suffix == ".pdf":
        # The PDF header may follow a little junk, but must be in the first kilobyte.
        if b"%PDF-" not in data[:1024]:
            raise UploadError(f"{shown}: this is not a PDF file (no %PDF header). / 不是有效的 PDF 文件。")
        return
    if suffix == ".docx":  # a ZIP archive; the loader's read after saving checks the rest
        if not data.startswith(b"PK\x03\x04"):
            raise UploadError(f"{shown}: this is not a Word .docx file. / 不是有效的 .docx 文件。")
        return
    _check_text(shown, data)


def _check_text(shown: str, data: bytes) -> None:
    for magic, kind in _BINARY_MAGIC.items():
        if data.startswith(magic):
            raise UploadError(f"{shown}: this is {kind} file, not text; upload it with the right extension.")
    # No refusal for NUL bytes as such: UTF-16 text is full of them, and `rag index` reads it. A binary
    # file still fails below, as text full of control characters.
    try:
        text = decode_text(data)
    except LoadFailure as exc:
        raise UploadError(f"{shown}: {exc}") from exc
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t\f")
    if controls > max(3, len(text) // 100):
        raise UploadError(f"{shown}: this looks like a binary file, not text. / 不是文本文件。")
    if not text.strip():
        raise UploadError(f"{shown}: the file has no text. / 文件没有文字内容。")


def docs_mismatch(pipeline: Pipeline, docs_dir: Path) -> str | None:
    """Why uploads must stay off: re-indexing another folder would drop the indexed papers."""
    built_from = pipeline.index.manifest.get("docs_dir")
    if built_from and Path(built_from).resolve() != Path(docs_dir).resolve():
        return (
            f"Adding documents is off: the index was built from {built_from}, not {docs_dir}. "
            f"Restart with --docs {built_from}."
        )
    return None


def _destination(uploads: Path, name: str, data: bytes) -> Path:
    """A free path for the file in uploads/ (…-2, …-3 when the name is taken by another file)."""
    path = uploads / name
    stem, suffix = path.stem, path.suffix
    n = 1
    while path.exists():
        if path.read_bytes() == data:
            raise UploadError(f"{name}: this file is already in the library. / 该文件已存在。")
        n += 1
        path = uploads / f"{stem}-{n}{suffix}"
    # Belt and braces: the sanitised name can never leave the uploads folder.
    if path.resolve().parent != uploads.resolve():
        raise UploadError(f"{name}: invalid file name.")
    return path


def save_upload(
    name: str, data: bytes, docs_dir: Path, pending: list[Path] | None = None, max_chars: int | None = None
) -> Path:
    """Check the file, then write it into <docs>/uploads/ and verify the loader can read it (and that
    its text is at most `max_chars` long, `ingest.max_file_chars`).

    `pending`: files of the same upload saved before; the journal lists them all until the index
    holds them (`webui.staging`)."""
    check_upload(name, data)
    uploads = Path(docs_dir) / UPLOADS_DIR
    uploads.mkdir(parents=True, exist_ok=True)
    path = _destination(uploads, safe_filename(name), data)
    staging.write_journal(uploads, [*(pending or []), path])
    partial = uploads / f".{path.name}.part"  # hidden: the loader skips it if we crash mid-write
    partial.write_bytes(data)
    os.replace(partial, path)
    try:
        # The index's limit, not the packaged one: a raised limit must not be refused by the size check.
        ingest = IngestSettings(max_file_chars=max_chars) if max_chars is not None else None
        doc = load_file(path, doc_id_of(path, docs_dir), ingest=ingest)
        if max_chars is not None and len(doc.text) > max_chars:  # refused now, not after the build
            raise LoadFailure(_both("too_long", n=len(doc.text), limit=max_chars))
    except LoadFailure as exc:
        path.unlink(missing_ok=True)
        raise UploadError(f"{Path(name).name}: {exc}") from exc
    return path


def doc_id_of(path: Path, docs_dir: Path) -> str:
    return path.relative_to(docs_dir).with_suffix("").as_posix()


def add_documents(
    files: list[tuple[str, Path]],
    docs_dir: Path,
    pipeline: Pipeline,
    *,
    cancel: threading.Event | None = None,
    progress: Callable[[str, int], None] | None = None,
    embedders: tuple[Embedder, Embedder | None] | None = None,
) -> UploadResult:
    """Add uploaded files (original name, temporary path) to the library and the index.

    Each file is checked on its own; good ones are indexed together beside the live index
    (`webui.staging`), which is swapped in whole, then the pipeline reloads: questions are answered
    all along. A failure or `cancel` leaves the index and the documents folder as they were.
    `progress(stage, texts embedded)` is told how far it got; `embedders` (e5, cross-lingual) build
    instead of the pipeline's own, e.g. encoders made in a low-priority thread.
    """
    docs_dir = Path(docs_dir)
    result = UploadResult()
    mismatch = docs_mismatch(pipeline, docs_dir)
    if mismatch:
        result.errors.append(mismatch)
        return result
    stale = _reopen_if_stale(pipeline)
    if stale:
        result.errors.append(stale)
        return result
    uploads = docs_dir / UPLOADS_DIR
    made_uploads = not uploads.exists()
    tell = progress or (lambda stage, n: None)
    saved: list[Path] = []
    stage: Path | None = None
    try:
        tell("checking", 0)
        for name, tmp in files:
            try:
                data = _read_upload(name, Path(tmp))
                saved.append(
                    save_upload(name, data, docs_dir, saved, pipeline.settings.ingest.max_file_chars)
                )
            except (UploadError, OSError) as exc:
                result.errors.append(str(exc))
        if not saved:
            _undo(saved, uploads, made_uploads)
            return result
        index = pipeline.index
        built_at = index.manifest.get("built_at")
        stage = staging.stage_copy(index.index_dir)
        report = _build(docs_dir, stage, pipeline, cancel, tell, embedders)
        if cancel is not None and cancel.is_set():
            raise staging.UploadCancelled
        tell("calibrating", -1)
        _adapt(stage, embedders or (pipeline.embedder, pipeline.index.crosslingual), cancel)
        if cancel is not None and cancel.is_set():  # pressed after its last question, or it had none
            raise staging.UploadCancelled
        tell("swapping in", -1)
        staging.commit(stage, index.index_dir, built_at)
        stage = None
    except staging.UploadCancelled:
        _undo(saved, uploads, made_uploads)
        result.errors.append(_both("upload_cancelled"))
        return result
    except Exception as exc:  # the live index is untouched (built beside it); undo the copies too
        _undo(saved, uploads, made_uploads)
        result.errors.append(_both("upload_failed", error=exc))
        return result
    finally:
        if stage is not None:
            staging.discard(stage)
    staging.clear_journal(uploads)
    failed = {Path(e.path).resolve(): e.message for e in report.errors}
    # Same text as a paper already indexed: not kept twice; the message says which one it is.
    same = {d: _both("duplicate_doc", doc=d, of=of) for d, of in report.duplicates}
    for path in saved:
        reason = failed.get(path.resolve()) or same.get(doc_id_of(path, docs_dir))
        if reason:
            path.unlink(missing_ok=True)
            result.errors.append(f"{path.name}: {reason}")
        else:
            result.added.append(doc_id_of(path, docs_dir))
    tell("reloading", -1)
    try:
        pipeline.reload(warm=True)
    except Exception as exc:  # the files are indexed on disk: say so, and how to reach them
        logger.exception("the index was rebuilt with the upload but could not be reopened")
        result.errors.append(_both("upload_reload_failed", error=exc))
    return result


def _reopen_if_stale(pipeline: Pipeline) -> str | None:
    """Reopen the index when the folder holds a newer build than the one answering (an earlier
    upload whose reload failed, or `rag index` run meanwhile); the error when it cannot be. Built
    from the stale one, this upload's commit would refuse, and so would every one after it."""
    index_dir = pipeline.index.index_dir
    try:
        if read_manifest(index_dir).get("built_at") != pipeline.index.manifest.get("built_at"):
            pipeline.reload(warm=True)
    except Exception as exc:
        logger.exception("the index in %s could not be reopened before an upload", index_dir)
        return _both("upload_index_stale", error=exc)
    return None


def _read_upload(name: str, tmp: Path) -> bytes:
    size = tmp.stat().st_size
    if size > MAX_UPLOAD_BYTES:  # before reading: never pull a huge file into memory
        raise UploadError(
            f"{Path(name).name}: the file is {size / 2**20:.1f} MB; the limit is "
            f"{MAX_UPLOAD_BYTES // 2**20} MB. / 文件超过上限。"
        )
    return tmp.read_bytes()


def _build(docs_dir, stage, pipeline, cancel, tell, embedders) -> BuildReport:
    embedded = [0]

    def count(n: int) -> None:
        embedded[0] += n
        tell("embedding", embedded[0])

    embedder, xl = embedders or (pipeline.embedder, pipeline.index.crosslingual)
    manifest = pipeline.index.manifest
    # Same chunking and FAISS settings as the existing index, so nothing else is re-embedded.
    return build_index(
        docs_dir,
        stage,
        staging.Watched(embedder, cancel, count),
        ChunkerSettings(**manifest.get("chunker", {})),
        faiss_kind=manifest.get("faiss_kind_requested", "auto"),
        progress=False,
        crosslingual=staging.Watched(xl, cancel, count) if xl is not None else None,
        max_file_chars=pipeline.settings.ingest.max_file_chars,
    )


def _adapt(stage: Path, encoders, cancel) -> None:
    """The new papers move the index's thresholds (rag.abstain.adaptive). A failure there costs the
    upload nothing: the stage keeps the thresholds it was copied with, and the log says why."""
    try:
        logger.info(write_adapted(stage, *encoders, stop=cancel.is_set if cancel is not None else None))
    except Stopped:
        raise staging.UploadCancelled from None
    except Exception:
        logger.exception("the upload's thresholds were not adapted; it keeps the index's")


def _undo(saved: list[Path], uploads: Path, made_uploads: bool) -> None:
    for path in saved:
        path.unlink(missing_ok=True)
    staging.clear_journal(uploads)
    if made_uploads and uploads.is_dir() and not any(uploads.iterdir()):
        uploads.rmdir()


def _both(key: str, **values: object) -> str:
    return " / ".join(templates(lang)[key].format(**values) for lang in ("en", "zh"))
