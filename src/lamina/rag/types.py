"""What a grounded answer hands back: the text, the sources it cites, and how it was arrived at."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lamina.models.types import Usage
from lamina.rag.context import Source


@dataclass
class Citation:
    n: int
    source: str
    title: str
    page: int | None
    headings: list[str]
    chunk_id: str
    snippet: str
    score: float = 0.0  # the retrieval score of the cited chunk (hybrid: the fused score)
    ocr: bool = False  # its text was read by OCR from a scan or an image

    @classmethod
    def of(cls, source: Source) -> Citation:
        h = source.hit
        return cls(source.n, h.source, h.title, h.page, h.headings, h.chunk_id, h.snippet, h.score, h.ocr)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Answer:
    answer: str
    citations: list[Citation]
    model: str
    usage: Usage = field(default_factory=Usage)
    grounded: bool = True  # False: nothing relevant was retrieved, or --no-rag
    attributed: bool = False  # True: Lamina matched some uncited sentences to the sources that support them
    extractive: bool = False  # True: the model gave nothing usable; the text is quoted from the sources
    found: bool = True  # False: the sources were searched and do not answer (the text says so)
    evidence: float | None = None  # a chosen answer's evidence (0-1; see rag.min_evidence)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "citations": [c.to_dict() for c in self.citations],
            "model": self.model,
            "usage": self.usage.to_dict(),
            "grounded": self.grounded,
            "attributed": self.attributed,
            "extractive": self.extractive,
            "found": self.found,
            "evidence": self.evidence,
        }
