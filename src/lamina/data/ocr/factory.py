"""The OCR engine by its name (``ingest.ocr_engine``): the one place engines are chosen."""

from __future__ import annotations

from functools import cache

from lamina.config.data import OcrEngineName
from lamina.data.ocr.base import OcrEngine
from lamina.data.ocr.rapid import RapidOcr
from lamina.data.ocr.tesseract import TesseractOcr


@cache
def ocr_engine(name: OcrEngineName) -> OcrEngine:
    engines: dict[str, type[TesseractOcr] | type[RapidOcr]] = {
        "tesseract": TesseractOcr,
        "rapidocr": RapidOcr,
    }
    return engines[name]()
