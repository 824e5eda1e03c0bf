"""A faster, equivalent graph for the pinned MiniLM ONNX file, built once and cached.

The shipped file is a dynamo export with weight-only int8 and unfused attention. Rewriting each
layer into ONNX Runtime's fused ``Attention`` (packed Q/K/V) and ``BiasGelu`` kernels, with the
int8 weights folded to fp32 exactly as ONNX Runtime folds them at load time, gives the same
vectors (checked on probe sentences before the result is used) 20-35% faster on a 2-core AVX2
CPU. The rewrite depends on the node names of that one file, whose sha256 the caller has checked;
if anything does not match, the caller falls back to the original graph.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

NUM_HEADS = 12
LAYERS = 6


def build_fused(src: Path, dst: Path) -> None:
    """Write the fused graph of ``src`` to ``dst`` atomically; raises if ``src`` is not the expected graph."""
    import onnx
    from onnx import TensorProto, helper
    from onnx import numpy_helper as nh

    model = onnx.load(str(src))
    graph = model.graph
    inits: dict[str, Any] = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    nodes = list(graph.node)

    def arr(name: str) -> np.ndarray:
        return np.asarray(nh.to_array(inits[name]), dtype=np.float32)

    # 1) Cast(int8 W) * scale [- zero point] -> an fp32 initializer
    for node in graph.node:
        cast = producer.get(node.input[0]) if node.op_type == "Mul" else None
        if cast is not None and cast.op_type == "Cast" and cast.input[0] in inits and node.input[1] in inits:
            weight = arr(cast.input[0])
            zero_point = cast.input[0][:-2] + "_zero_point"
            if zero_point in inits:
                weight = weight - arr(zero_point)
            inits[node.output[0]] = nh.from_array(
                (weight * arr(node.input[1])).astype(np.float32), node.output[0]
            )
            nodes.remove(node)

    # 2) each layer's self-attention -> one com.microsoft.Attention where the context Reshape was
    by_bias = {
        n.input[1]: n for n in graph.node if n.op_type == "Add" and len(n.input) > 1 and n.input[1] in inits
    }
    nodes.insert(0, helper.make_node("Cast", ["attention_mask"], ["mask_i32"], to=TensorProto.INT32))
    layer = 0
    while (prefix := f"inner.encoder.layer.{layer}.attention.") + "self.query.bias" in by_bias:
        biases = [prefix + f"self.{k}.bias" for k in ("query", "key", "value")]
        matmuls = [producer[by_bias[b].input[0]] for b in biases]
        inits[f"qkv_w_{layer}"] = nh.from_array(
            np.concatenate([arr(m.input[1]) for m in matmuls], axis=1), f"qkv_w_{layer}"
        )
        inits[f"qkv_b_{layer}"] = nh.from_array(np.concatenate([arr(b) for b in biases]), f"qkv_b_{layer}")
        context = producer[producer[by_bias[prefix + "output.dense.bias"].input[0]].input[0]]
        nodes[nodes.index(context)] = helper.make_node(
            "Attention",
            [matmuls[0].input[0], f"qkv_w_{layer}", f"qkv_b_{layer}", "mask_i32"],
            list(context.output),
            domain="com.microsoft",
            num_heads=NUM_HEADS,
            name=f"attention_{layer}",
        )
        layer += 1
    if layer != LAYERS:
        raise ValueError(f"expected {LAYERS} attention layers, found {layer}")

    # 3) x * 0.5 * (1 + erf(x / sqrt 2)) with x = h + b -> com.microsoft.BiasGelu(h, b)
    for erf in [n for n in graph.node if n.op_type == "Erf"]:
        add = producer[producer[erf.input[0]].input[0]]
        out = next(n for n in graph.node if n.op_type == "Mul" and add.output[0] in n.input and n is not erf)
        nodes[nodes.index(out)] = helper.make_node(
            "BiasGelu", list(add.input), list(out.output), domain="com.microsoft"
        )

    # 4) drop what no output needs any more (node order stays topological)
    producer = {out: node for node in nodes for out in node.output}
    needed: set[str] = set()
    stack = [o.name for o in graph.output]
    while stack:
        name = stack.pop()
        if name not in needed:
            needed.add(name)
            stack.extend(producer[name].input if name in producer else [])
    del graph.node[:]
    graph.node.extend(n for n in nodes if any(o in needed for o in n.output))
    del graph.initializer[:]
    graph.initializer.extend(t for k, t in inits.items() if k in needed)
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.checker.check_model(model)
    tmp = dst.with_suffix(f".{os.getpid()}.tmp")
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(tmp))
    os.replace(tmp, dst)
