"""Mixed-precision FP16 ONNX: float16 network, float32 input prologue and anomaly-map tail.

TensorRT 11 removed the FP16 builder flag (networks are strongly typed: a tensor's precision is
the one the ONNX declares), and on TensorRT 10 a strongly typed network is the way to say which
layers must stay in float32. So FP16 engines are built from an ONNX whose convolutions and
weights are float16, with Cast nodes at two boundaries kept in float32:

* the prologue: uint8 frames -> float, channel expansion, mean/std normalization. It works on
  raw pixel values (0..255, products with the scale), cheap and better exact.
* the tail: the cosine similarity between teacher and student features, upsampling, sum,
  Gaussian blur, max score, normalized score and decision. The squared feature norms summed
  over hundreds of channels overflow float16 (max 65504) on real features, and the decision
  compares the score with a threshold to the last digit, so all of it stays float32.

Which nodes those are is decided by ``ard_edge.engines.onnx_graph``, the analysis INT8
calibration uses too. The conversion itself is ONNX Runtime's float16 converter
(``onnxruntime.transformers.float16``, shipped in the onnxruntime wheel) with that node block
list; this module only runs it and tidies the result.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from ard_edge.engines.metadata import onnx_metadata, stamp_metadata
from ard_edge.engines.onnx_graph import name_nodes, split_graph
from ard_edge.errors import EngineError

log = logging.getLogger(__name__)

_FLOAT, _FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT / FLOAT16


def _cast_to(node) -> int | None:
    for attr in node.attribute:
        if attr.name == "to":
            return attr.i
    return None


def _fold_round_trips(graph, float32_nodes: set[str]) -> int:
    """Remove ``Cast(to=float)(Cast(to=float16)(x))`` where ``x`` is float32.

    The converter casts every blocked node's output to float16 and back before the next blocked
    node, so inside the float32 tail each value would still be rounded to float16. Reading ``x``
    directly keeps the tail truly float32 (and :func:`~ard_edge.engines.onnx_graph.split_graph`
    finds it again in the converted graph).
    """
    float32_values = {name for node in graph.node if node.name in float32_nodes for name in node.output}
    float32_values |= {inp.name for inp in graph.input if inp.type.tensor_type.elem_type == _FLOAT}
    producers = {name: node for node in graph.node for name in node.output}
    graph_outputs = {out.name for out in graph.output}
    replace: dict[str, str] = {}
    for node in graph.node:
        if node.op_type != "Cast" or _cast_to(node) != _FLOAT:
            continue
        source = producers.get(node.input[0])
        if source is None or source.op_type != "Cast" or _cast_to(source) != _FLOAT16:
            continue
        if source.input[0] not in float32_values:
            continue
        if node.output[0] in graph_outputs:
            node.input[0] = source.input[0]  # keep the name the output must have: an identity Cast
        else:
            replace[node.output[0]] = source.input[0]
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in replace:
                node.input[index] = replace[name]
    return len(replace)


def _prune_dead_nodes(graph) -> None:
    outputs = {out.name for out in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [node for node in graph.node if not any(name in used for name in node.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


def _toposort(graph) -> None:
    # The converter appends its Cast nodes at the end; ONNX requires topological order.
    available = {inp.name for inp in graph.input} | {init.name for init in graph.initializer} | {""}
    ordered, pending = [], list(graph.node)
    while pending:
        waiting = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise EngineError(f"float16 conversion left {len(waiting)} nodes with undefined inputs")
        pending = waiting
    del graph.node[:]
    graph.node.extend(ordered)


def convert_to_fp16(model) -> Any:
    """Return a mixed-precision copy of the ard-edge ONNX ``model`` (a ModelProto)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = copy.deepcopy(model)
    metadata = onnx_metadata(model)
    if metadata.get("precision", "fp32") != "fp32":
        raise EngineError(f"float16 conversion needs an fp32 export, this model is {metadata['precision']}")
    name_nodes(model.graph)  # the converter's block list is by node name
    keep = split_graph(model).float_nodes
    try:
        converted = convert_float_to_float16(model, keep_io_types=True, node_block_list=sorted(keep))
    except Exception as exc:  # the converter asserts and raises ValueError on odd graphs
        raise EngineError(f"float16 conversion failed: {exc}") from exc
    folded = _fold_round_trips(converted.graph, keep)
    _prune_dead_nodes(converted.graph)
    _toposort(converted.graph)
    metadata = dict(metadata, precision="fp16", fp16={"float32_nodes": len(keep), "folded_casts": folded})
    stamp_metadata(converted, metadata, EngineError, "the float16 conversion")
    log.info("fp16: %d of %d nodes kept float32, %d cast round trips removed", len(keep), len(model.graph.node), folded)
    return converted
