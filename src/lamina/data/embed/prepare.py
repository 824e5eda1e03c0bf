"""Child process that builds and caches the derived MiniLM graphs (see ``OnnxMiniLM._build_in_child``).

Usage: python -m lamina.data.embed.prepare CACHE_DIR VARIANT MODEL_PATH
"""

from __future__ import annotations

import sys
from pathlib import Path

from lamina.data.embed.onnx import VARIANT_NAMES, OnnxMiniLM


def main() -> None:
    cache_dir, variant, path = sys.argv[1:4]
    if variant not in VARIANT_NAMES:
        sys.exit(f"unknown variant {variant!r}")
    model = OnnxMiniLM(cache_dir=Path(cache_dir), variant=variant, path=Path(path), build_here=True)  # type: ignore[arg-type]
    model.embed(["warm up"])
    if model.graph == "original":
        sys.exit("the fused graph could not be built")


if __name__ == "__main__":
    main()
