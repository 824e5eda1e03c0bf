"""Documents that hang or crash their extractor, for the engines' fault tests.

``install`` is a Ray ``worker_process_setup_hook``: a test's Ray job runs it in each worker, and
from then on a source whose bytes hold ``HANG`` never finishes extracting and one holding
``CRASH`` kills its worker process, as a converter stuck in C code or segfaulting would.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

HANG = b"LAMINA-TEST-POISON-HANG"
CRASH = b"LAMINA-TEST-POISON-CRASH"


def install() -> None:
    import lamina.data.engine.stages as stages

    original = stages.extract  # type: ignore[attr-defined]

    def poisoned(data: bytes, **kwargs: Any) -> Any:
        if HANG in data:
            while True:
                time.sleep(1)
        if CRASH in data:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(data, **kwargs)

    stages.extract = poisoned  # type: ignore[attr-defined,assignment]
