"""Tesseract (Debian's ``tesseract-ocr``), run as its command line: one process per page, so a page
that hangs is killed at its time limit and a crash loses one page, not the worker."""

from __future__ import annotations

import csv
import io
import shutil
import statistics
import subprocess

from PIL import Image

from lamina.data.ocr.base import OcrFailed, OcrUnavailable, Word

INSTALL = 'apt-get install tesseract-ocr tesseract-ocr-eng (or set ingest.ocr_engine = "rapidocr")'
# Page segmentation: sparse text, every word found in no particular order. Lamina rebuilds the
# reading order and the tables from the words' boxes (data/layout.py), so what matters is that no
# word is missed: the automatic mode (3) dropped the shaded rows of an invoice's table, and the
# single-block mode (6) a report's large-type title; on pages of prose all three read the same text,
# sparse text about 40% slower.
PAGE_SEGMENTATION = "11"


class TesseractOcr:
    name = "tesseract"
    recipe = f"tesseract --psm {PAGE_SEGMENTATION}"

    def __init__(self, binary: str = "tesseract") -> None:
        self.binary = binary

    def available(self) -> str | None:
        return None if shutil.which(self.binary) else f"tesseract is not installed: {INSTALL}"

    def languages(self) -> set[str]:
        out = subprocess.run([self.binary, "--list-langs"], capture_output=True, text=True, timeout=30)
        return {line.strip() for line in out.stdout.splitlines()[1:] if line.strip()}

    def words(self, image: Image.Image, languages: tuple[str, ...], timeout_s: float) -> list[Word]:
        if (missing := self.available()) is not None:
            raise OcrUnavailable(missing)
        png = io.BytesIO()
        image.save(png, format="PNG")
        command = [
            self.binary,
            "stdin",
            "stdout",
            "-l",
            "+".join(languages),
            "--psm",
            PAGE_SEGMENTATION,
            "tsv",
        ]
        try:
            done = subprocess.run(command, input=png.getvalue(), capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise OcrFailed(f"tesseract took longer than {timeout_s:g} s on one page") from None
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no reason given"]
            if "Failed loading language" in done.stderr.decode(errors="replace"):
                raise OcrUnavailable(f"tesseract has no data for {'+'.join(languages)}: {reason[0]}")
            raise OcrFailed(f"tesseract failed: {reason[0]}")
        return _tsv_words(done.stdout.decode("utf-8", errors="replace"))


MIN_CONFIDENCE = 0.2  # below this a "word" is the texture of a shaded box or a speck, not text
LINE_ART = frozenset("|+=_[]{}~¦")  # a table's rules and a box's edges, read as characters


def _tsv_words(tsv: str) -> list[Word]:
    """The words of tesseract's TSV, less the ones it hardly believes in and the ruling lines it
    read as characters, straightened: a page
    scanned a degree or two askew drifts a line's words across the lines the layout finds."""
    words: list[Word] = []
    lines: dict[tuple[str, ...], list[Word]] = {}
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        text = (row.get("text") or "").strip()
        if row.get("level") != "5" or not text:
            continue
        confidence = max(0.0, float(row.get("conf") or 0)) / 100
        if confidence < MIN_CONFIDENCE or set(text) <= LINE_ART:
            continue
        left, top = float(row["left"]), float(row["top"])
        width, height = float(row["width"]), float(row["height"])
        word = Word(text, left, top, left + width, top + height, confidence)
        words.append(word)
        lines.setdefault((row["block_num"], row["par_num"], row["line_num"]), []).append(word)
    return _straightened(words, list(lines.values()))


def _straightened(words: list[Word], lines: list[list[Word]]) -> list[Word]:
    """Words with the page's skew (the median slope of tesseract's own lines) taken out."""
    slopes = []
    for line in lines:
        if len(line) < 3 or line[-1].x1 - line[0].x0 < 200:
            continue
        xs = [(w.x0 + w.x1) / 2 for w in line]
        ys = [(w.top + w.bottom) / 2 for w in line]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        spread = sum((x - mx) ** 2 for x in xs)
        if spread:
            slopes.append(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / spread)
    if not slopes:
        return words
    slope = statistics.median(slopes)
    if abs(slope) < 0.002:  # straight enough
        return words
    return [
        Word(
            w.text,
            w.x0,
            w.top - slope * (w.x0 + w.x1) / 2,
            w.x1,
            w.bottom - slope * (w.x0 + w.x1) / 2,
            w.confidence,
        )
        for w in words
    ]
