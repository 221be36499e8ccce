"""The reader's int8 ONNX file: ONNX Runtime's dynamic quantisation, with the few input channels
that carry outliers kept in fp32 (as LLM.int8() does).

Dynamic quantisation scales each matrix product's input with one range per batch. In the e5
encoder one or two of 384 (or 1,536) channels of some inputs reach 20–65 while the rest stay
under ~5, so that one range leaves the other channels a handful of levels: quantising everything
cost .04 span F1. Each listed product (the feed-forward ones: those whose rounding moved the
spans most) is split: the input with its outlier channels zeroed goes through the int8 product,
those channels alone through a small fp32 one, and the two are added.
The channels are fitted by `eval/fit_reader.py outliers` (on training windows) and ship as
`models/reader-v5-int8.json`: node name → channel indices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from de06qa.errors import ModelUnavailable
from de06qa.onnx_runtime import quantise_matmuls


def channels(path: Path) -> dict[str, list[int]]:
    kept = json.loads(path.read_text(encoding="utf-8"))["channels"]
    return {node: [int(i) for i in idx] for node, idx in kept.items()}


def weight_matmuls(model: Any) -> list[str]:
    """The names of the graph's MatMul nodes whose second input is a weight (what dynamic
    quantisation rewrites)."""
    inits = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits]


def quantise(fp32: Path, out: Path, keep: dict[str, list[int]]) -> None:
    """Write `out`: the fp32 reader with every weight MatMul int8 (weights per output channel,
    inputs per batch), the channels in `keep` of a node's input kept in fp32."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(fp32))
    inits = {i.name: i for i in model.graph.initializer}
    matmuls = weight_matmuls(model)
    missing = set(keep) - set(matmuls)
    if missing:  # channels fitted on another export: quantising blind would lose F1 silently
        raise ModelUnavailable(
            f"the reader's int8 channels name nodes its ONNX file lacks ({sorted(missing)[0]} …); "
            "use DE06QA_READER_PRECISION=fp32 or refit them (eval/fit_reader.py outliers)"
        )
    nodes = []
    for n in model.graph.node:
        idx = keep.get(n.name)
        if not idx:
            nodes.append(n)
            continue
        x, w = n.input[0], n.input[1]
        weight = numpy_helper.to_array(inits[w])
        mask = np.ones(weight.shape[0], np.float32)
        mask[idx] = 0.0
        p = n.name.replace("/", "_")
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(mask, f"{p}_mask"),
                numpy_helper.from_array(np.asarray(idx, np.int64), f"{p}_idx"),
                numpy_helper.from_array(np.ascontiguousarray(weight[idx, :]), f"{p}_w_fp32"),
            ]
        )
        nodes += [
            helper.make_node("Mul", [x, f"{p}_mask"], [f"{p}_rest"], name=f"{p}_mask"),
            helper.make_node("MatMul", [f"{p}_rest", w], [f"{p}_int8_out"], name=n.name),  # quantised
            helper.make_node("Gather", [x, f"{p}_idx"], [f"{p}_outliers"], axis=-1, name=f"{p}_gather"),
            helper.make_node("MatMul", [f"{p}_outliers", f"{p}_w_fp32"], [f"{p}_fp32_out"], name=f"{p}_fp32"),
            helper.make_node("Add", [f"{p}_int8_out", f"{p}_fp32_out"], [n.output[0]], name=f"{p}_sum"),
        ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    quantise_matmuls(model, out, matmuls)
