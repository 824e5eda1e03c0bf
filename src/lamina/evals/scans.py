"""Documents as they come back from a scanner or a phone: each PDF of a folder rasterised and
degraded (``lamina.testing.scans``), so the same questions can be asked of the scans and of the
born-digital originals. A one-page PDF becomes a JPEG photo (more skew, as a phone takes it); a
longer one an image-only PDF. Other files are copied as they are."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pypdfium2 as pdfium

from lamina.testing.scans import save, scanned

DPI = 200


def scanned_copies(folders: Sequence[Path], into: Path) -> list[Path]:
    """``folders`` copied under ``into`` with every PDF replaced by its scan (same stem)."""
    out = []
    for number, folder in enumerate(folders):
        target = into / f"{number}-{folder.name}"
        target.mkdir(parents=True)
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            if path.suffix.lower() != ".pdf":
                shutil.copy2(path, target / path.name)
                continue
            pdf = pdfium.PdfDocument(path)
            try:
                pages = [pdf[i].render(scale=DPI / 72, grayscale=True).to_pil() for i in range(len(pdf))]
            finally:
                pdf.close()
            if len(pages) == 1:
                (target / f"{path.stem}.jpg").write_bytes(save([scanned(pages[0], skew=2.0, seed=3)], "jpeg"))
            else:
                scans = [scanned(p, seed=i) for i, p in enumerate(pages)]
                (target / path.name).write_bytes(save(scans, "pdf", dpi=DPI))
        out.append(target)
    return out
