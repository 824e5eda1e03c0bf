"""Reading pages with the configured engine: when to, within a time limit, remembered on disk.

``OcrOptions`` is what an ingestion hands its extraction (plain values, so the Ray engine ships it to
its workers). A page read once is kept (``cache_dir``, keyed by the document's hash, the page, the
engine and how it is run, its languages and the resolution), so a long scan that was cancelled or
killed resumes where it stopped instead of reading every page again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFilter

from lamina.config.data import IngestSettings, OcrEngineName, OcrMode
from lamina.data.layout import page_text
from lamina.data.ocr.base import OcrUnavailable, Word
from lamina.data.ocr.factory import ocr_engine

log = logging.getLogger(__name__)
USABLE_CHARS = 16  # a text layer with fewer letters and digits than this is no text layer
# Before the engine sees a page, a 3x3 median removes the specks of dust a scanner leaves: read as
# characters they turned "30 days" into "30: days" and SKU-6678 into SKU-6675 on the bundled scans,
# while on scans of prose it leaves the measured character accuracy as it was (docs/documents.md).
DESPECKLE = "median3"


@dataclass(frozen=True)
class OcrOptions:
    mode: OcrMode = "auto"
    engine: OcrEngineName = "tesseract"
    languages: tuple[str, ...] = ("eng",)
    page_timeout_s: float = 60.0
    dpi: int = 300
    max_pixels: int = 50_000_000  # an image (or a frame of one) larger than this is refused
    cache_dir: str | None = None

    @classmethod
    def of(cls, settings: IngestSettings, cache_dir: str | None) -> OcrOptions:
        return cls(
            mode=settings.ocr,
            engine=settings.ocr_engine,
            languages=tuple(settings.ocr_languages),
            page_timeout_s=settings.ocr_page_timeout_s,
            dpi=settings.ocr_dpi,
            max_pixels=int(settings.ocr_max_megapixels * 1_000_000),
            cache_dir=cache_dir,
        )

    def wanted(self, text_layer: str) -> bool:
        """Whether a page with this text layer is read by OCR."""
        if self.mode == "never":
            return False
        return self.mode == "always" or sum(c.isalnum() for c in text_layer) < USABLE_CHARS

    def unavailable(self) -> str | None:
        """What to install for OCR, when the engine is missing here."""
        return ocr_engine(self.engine).available()

    def read(self, image: Image.Image, key: str) -> str:
        """One page's text (lines, paragraphs, tables); ``key`` names the page for the cache,
        which keeps the words with their boxes (the layout is redone from them every time)."""
        return page_text(self.words(image, key))

    def words(self, image: Image.Image, key: str) -> list[Word]:
        engine = ocr_engine(self.engine)
        cached = self._cache_path(key, engine.recipe)
        if cached is not None and cached.exists():
            return [Word(*w) for w in json.loads(cached.read_text(encoding="utf-8"))]
        if (missing := engine.available()) is not None:
            raise OcrUnavailable(missing)
        grey = image if image.mode == "L" else image.convert("L")
        words = engine.words(despeckled(grey), self.languages, self.page_timeout_s)
        if cached is not None:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                rows = [[w.text, w.x0, w.top, w.x1, w.bottom, w.confidence] for w in words]
                cached.with_suffix(".tmp").write_text(json.dumps(rows), encoding="utf-8")
                cached.with_suffix(".tmp").replace(cached)
            except OSError as exc:  # a worker without the data directory: no cache, same text
                log.debug("OCR cache not written: %s", exc)
        return words

    def _cache_path(self, key: str, engine: str) -> Path | None:
        if self.cache_dir is None:
            return None
        recipe = json.dumps([key, engine, DESPECKLE, self.languages, self.dpi])
        digest = hashlib.sha256(recipe.encode()).hexdigest()
        return Path(self.cache_dir) / digest[:2] / f"{digest}.txt"


def despeckled(grey: Image.Image) -> Image.Image:
    """``grey`` without isolated specks (see ``DESPECKLE``)."""
    return grey.filter(ImageFilter.MedianFilter(3))
