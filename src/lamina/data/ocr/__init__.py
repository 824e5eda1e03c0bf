"""Text from pictures of pages: the ``OcrEngine`` protocol (base.py), its engines (Debian's
tesseract, RapidOCR's bundled PP-OCR models, a memory engine for tests) chosen by name (factory.py)."""
