"""RapidOCR: PP-OCR's detection and recognition models on ONNX Runtime, shipped inside the
``rapidocr-onnxruntime`` wheel (the extra ``lamina[rapidocr]``). It finds text lines; a line's words
get boxes split in proportion to their characters, which is as much as the layout needs."""

from __future__ import annotations

import threading
import time
from functools import cache
from typing import Any

import numpy as np
from PIL import Image

from lamina.data.ocr.base import OcrFailed, OcrUnavailable, Word

INSTALL = "pip install 'lamina[rapidocr]'"


@cache
def _engine() -> Any:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        raise OcrUnavailable(f"RapidOCR is not installed: {INSTALL}") from None
    return RapidOCR()


class RapidOcr:
    name = "rapidocr"
    recipe = "rapidocr-onnxruntime"
    _lock = threading.Lock()  # one ONNX session pair per process, not re-entrant

    def available(self) -> str | None:
        try:
            import rapidocr_onnxruntime  # noqa: F401
        except ImportError:
            return f"RapidOCR is not installed: {INSTALL}"
        return None

    def words(self, image: Image.Image, languages: tuple[str, ...], timeout_s: float) -> list[Word]:
        """In this process, so the time limit is checked when the page is done, not enforced while
        it runs (an ONNX call cannot be interrupted): a slow page fails as tesseract's would, and a
        document that hangs is stopped by ``ingest.document_timeout_s`` (on Ray, its task is killed)."""
        engine = _engine()
        started = time.monotonic()
        with self._lock:
            found, _ = engine(np.asarray(image.convert("RGB")))
        if time.monotonic() - started > timeout_s:
            raise OcrFailed(f"RapidOCR took longer than {timeout_s:g} s on one page")
        words: list[Word] = []
        for box, text, score in found or []:
            xs, ys = [p[0] for p in box], [p[1] for p in box]
            words += _split(str(text), min(xs), min(ys), max(xs), max(ys), float(score))
        return words


def _split(text: str, x0: float, top: float, x1: float, bottom: float, score: float) -> list[Word]:
    """A line's words, each with its share of the line's width."""
    parts = text.split()
    total = max(1, len(text))
    out, at = [], 0
    for part in parts:
        start = text.index(part, at)
        at = start + len(part)
        left = x0 + (x1 - x0) * start / total
        right = x0 + (x1 - x0) * at / total
        out.append(Word(part, left, top, right, bottom, score))
    return out
