"""What an OCR engine is: a page image in, its words with their boxes out.

Words keep their boxes so that the layout (lines, and the columns of a table) can be rebuilt the
same way for every engine (``lamina.data.layout``). An engine that is not installed says so with
what to install (``OcrUnavailable``); a page it cannot read in time is ``OcrFailed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from lamina.errors import LaminaError


class OcrUnavailable(LaminaError):
    """The configured OCR engine is not installed here (the message says how to add it)."""


class OcrFailed(LaminaError):
    """The engine could not read a page (timed out, or crashed on it)."""


@dataclass(frozen=True)
class Word:
    """One recognised word and its box in page pixels (top-left origin)."""

    text: str
    x0: float
    top: float
    x1: float
    bottom: float
    confidence: float = 1.0  # 0..1

    @property
    def height(self) -> float:
        return self.bottom - self.top


class OcrEngine(Protocol):
    name: str
    recipe: str  # the engine and how it is run: what a cached reading of a page is keyed on

    def available(self) -> str | None:
        """None when the engine can run here; else what to install, in one line."""
        ...

    def words(self, image: Image.Image, languages: tuple[str, ...], timeout_s: float) -> list[Word]:
        """The words on one page image, in any order (their boxes give the layout)."""
        ...
