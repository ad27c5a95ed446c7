"""Offline OCR of PDF pages that have no usable text layer: rapidocr 3.x in onnxruntime.

rapidocr's detection and recognition models ship inside its wheel (Apache-2.0), so nothing is
downloaded; the engine is loaded on the first page that needs it. It returns one box per text line,
row by row across the whole page, so a two-column page would come out with its columns interleaved:
`reading_order` puts the boxes in reading order (each column top to bottom, left column first) before
they are joined into lines of text.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.lang import HAN_RE

if TYPE_CHECKING:
    import numpy as np

    from rag.settings import IngestSettings

# rapidocr shrinks a larger image to this longest side before detection: rendering bigger only costs.
MAX_SIDE_PX = 2000
# A gutter has at least this many column lines on each side (a short line beside a page number is
# not a column); boxes narrower than this share of the text's width are column candidates.
_MIN_COLUMN_LINES, _COLUMN_WIDTH_SHARE = 3, 0.55


class OcrUnavailable(Exception):
    """rapidocr or onnxruntime is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Box:
    """One recognised line: its bounding rectangle in pixels, text and confidence."""

    x0: float
    y0: float
    x1: float
    y1: float
    text: str
    score: float = 1.0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def y_mid(self) -> float:
        return (self.y0 + self.y1) / 2


def _gutters(boxes: Sequence[Box]) -> list[float]:
    """x positions of the gaps between text columns: where no narrow box reaches, with column lines
    on both sides."""
    left, right = min(b.x0 for b in boxes), max(b.x1 for b in boxes)
    narrow = sorted(
        (b for b in boxes if b.x1 - b.x0 < _COLUMN_WIDTH_SHARE * (right - left)), key=lambda b: b.x0
    )
    gaps: list[tuple[float, float]] = []
    reach = None
    for b in narrow:
        if reach is not None and b.x0 > reach:
            gaps.append((reach, b.x0))
        reach = b.x1 if reach is None else max(reach, b.x1)
    gutters = []
    for lo, hi in gaps:
        mid = (lo + hi) / 2
        n_left = sum(b.x1 <= lo for b in narrow if not gutters or b.x0 > gutters[-1])
        n_right = sum(b.x0 >= hi for b in narrow)
        if n_left >= _MIN_COLUMN_LINES and n_right >= _MIN_COLUMN_LINES:
            gutters.append(mid)
    return gutters


def _join(a: str, b: str) -> str:
    """Two pieces of one line: no space between Chinese characters."""
    if a and b and HAN_RE.match(a[-1]) and HAN_RE.match(b[0]):
        return a + b
    return f"{a} {b}"


def _lines(boxes: list[Box], height: float) -> list[str]:
    """Boxes of one column as lines, top to bottom; boxes at the same height are one line, left to right."""
    rows: list[list[Box]] = []
    for b in sorted(boxes, key=lambda b: b.y_mid):
        if rows and abs(b.y_mid - statistics.fmean(x.y_mid for x in rows[-1])) < height / 2:
            rows[-1].append(b)
        else:
            rows.append([b])
    out = []
    for row in rows:
        text = ""
        for b in sorted(row, key=lambda b: b.x0):
            text = _join(text, b.text) if text else b.text
        out.append(text)
    return out


def reading_order(boxes: Sequence[Box]) -> list[str]:
    """The lines of a page in reading order.

    The page is cut into bands at every box that spans a gutter (a title, a full-width abstract) and
    at every gap between rows that no box bridges (a header above the columns); within a band each
    column is read top to bottom, the left one first.
    """
    boxes = [b for b in boxes if b.text.strip()]
    if not boxes:
        return []
    height = statistics.median(b.height for b in boxes)
    gutters = _gutters(boxes)

    def column(b: Box) -> int | None:  # None: spans a gutter
        if any(b.x0 < g < b.x1 for g in gutters):
            return None
        return sum(g <= b.x0 for g in gutters)

    lines: list[str] = []
    band: list[Box] = []

    def flush() -> None:
        for col in range(len(gutters) + 1):
            lines.extend(_lines([b for b in band if column(b) == col], height))
        band.clear()

    bottom = None  # lowest edge of the band so far
    for b in sorted(boxes, key=lambda b: (b.y0, b.x0)):
        if column(b) is None:
            flush()
            lines.extend(_lines([b], height))
            bottom = b.y1
            continue
        if bottom is not None and b.y0 - bottom > height:
            flush()
        band.append(b)
        bottom = b.y1 if bottom is None else max(bottom, b.y1)
    flush()
    return lines


def default_cache_dir() -> Path:
    """Where OCR'd page text is kept: $RAG_OCR_CACHE, else rag/ocr in the user's cache folder."""
    if env := os.environ.get("RAG_OCR_CACHE"):
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag" / "ocr"


class PageOcr:
    """OCR of rendered pages with rapidocr, loaded on first use (`warm_up`).

    Every build reads the whole folder again, and OCR takes seconds a page: the text of each page
    image is kept in `cache_dir` under the hash of its pixels and the settings, so a page is read once.
    `cache_dir=False` keeps nothing.
    """

    def __init__(self, settings: IngestSettings, cache_dir: Path | None | bool = None) -> None:
        self.settings = settings
        self.cache_dir = None if cache_dir is False else Path(cache_dir or default_cache_dir())
        self._engine: Any = None
        self.pages_read = 0  # pages OCR'd by the engine (not answered from the cache)

    def warm_up(self) -> None:
        if self._engine is not None:
            return
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise OcrUnavailable(
                f"OCR needs rapidocr 3.x and onnxruntime ({exc}): pip install 'rapidocr>=3,<4' onnxruntime, "
                "or switch OCR off with --set ingest.ocr=false"
            ) from exc
        # The models in the wheel (model_root_dir defaults to the package's own folder); quiet logs.
        self._engine = RapidOCR(params={"Global.log_level": "warning"})

    def scale(self, width_pt: float, height_pt: float) -> float:
        """Render scale (pixels per PDF point) for the settings' dpi, capped at MAX_SIDE_PX."""
        return min(self.settings.ocr_dpi / 72, MAX_SIDE_PX / max(width_pt, height_pt, 1.0))

    def boxes(self, image: np.ndarray) -> list[Box]:
        """The recognised lines of an RGB image at or above the settings' confidence."""
        self.warm_up()
        result = self._engine(image)
        if result.boxes is None:
            return []
        out = []
        for quad, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
            if float(score) >= self.settings.ocr_min_score:
                xs, ys = [p[0] for p in quad], [p[1] for p in quad]
                out.append(Box(min(xs), min(ys), max(xs), max(ys), str(text), float(score)))
        return out

    def read(self, image: np.ndarray) -> str:
        """The text of an RGB image, one line per line, in reading order."""
        path = self._cached(image)
        if path is not None and path.is_file():
            return path.read_text(encoding="utf-8")
        text = "\n".join(reading_order(self.boxes(image)))
        self.pages_read += 1
        if path is not None:
            try:  # write then rename: a killed build never leaves half a page
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, path)
            except OSError:
                pass  # a read-only cache only costs time
        return text

    def _cached(self, image: np.ndarray) -> Path | None:
        if self.cache_dir is None:
            return None
        from importlib.metadata import PackageNotFoundError, version

        try:
            engine = version("rapidocr")
        except PackageNotFoundError:
            engine = "none"
        h = hashlib.sha256(f"{engine} {self.settings.ocr_min_score} {image.shape}".encode())
        h.update(image.tobytes())
        return self.cache_dir / f"{h.hexdigest()}.txt"
