"""The machine's measured matrix-multiply peak, so embedder throughput reads against the hardware.

Both peaks run one large GEMM in ONNX Runtime's own kernels (MLAS: the ones the embedder uses),
on all cores: fp32 ``MatMul`` and int8 ``MatMulInteger`` (uint8 x int8 -> int32, the dynamic
quantization kernel, VNNI/AMX where the CPU has them). Best of a few runs, after a warm-up.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

# all-MiniLM-L6-v2: 6 layers, hidden 384, feed-forward 1536
LAYERS, HIDDEN, FFN = 6, 384, 1536
LINEAR_FLOP_PER_TOKEN = 2 * LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)


def flop_per_token(mean_sequence: float) -> float:
    """Multiply-adds x 2 of one token through MiniLM: the linear layers plus attention over the sequence."""
    return LINEAR_FLOP_PER_TOKEN + 2 * LAYERS * 2 * HIDDEN * mean_sequence


def _session(int8: bool, k: int, n: int, threads: int) -> Any:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        weight = numpy_helper.from_array(rng.integers(-127, 127, (k, n), dtype=np.int8), "w")
        node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        weight = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "w")
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info("a", a_type, ["m", k])],
        [helper.make_tensor_value_info("y", y_type, ["m", n])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def gemm_peak_gflops(int8: bool, m: int = 2048, k: int = 1536, n: int = 1536, repeats: int = 5) -> float:
    session = _session(int8, k, n, os.cpu_count() or 1)
    rng = np.random.default_rng(1)
    a = (
        rng.integers(0, 255, (m, k), dtype=np.uint8)
        if int8
        else rng.standard_normal((m, k), dtype=np.float32)
    )
    session.run(None, {"a": a})
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, {"a": a})
        best = min(best, time.perf_counter() - started)
    return 2 * m * k * n / best / 1e9


def machine_peaks() -> dict[str, float]:
    return {
        "fp32_gemm_gflops": round(gemm_peak_gflops(int8=False), 1),
        "int8_gemm_gops": round(gemm_peak_gflops(int8=True), 1),
        "cores": float(os.cpu_count() or 1),
    }


def machine() -> dict[str, Any]:
    """The CPU every figure was measured on: model name, cores this process may use, vector units."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    units = [u for u in ("avx2", "avx512f", "amx_tile") if u in flags]
    family = fields.get("cpu family", "?")  # AMD: 25 is Zen 3 or 4, 26 Zen 5
    return {
        "cpu": f"{fields.get('model name', 'unknown')} (family {family}, model {fields.get('model', '?')})",
        "cores": len(os.sched_getaffinity(0)),
        "vector": units,
    }
