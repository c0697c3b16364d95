"""Which nodes of an exported graph stay in float32: the uint8 input prologue and the anomaly-map tail.

One analysis for every reduced-precision build: the INT8 quantizer (``ard_edge.calibration``)
excludes these nodes, the FP16 converter (``ard_edge.engines.fp16``) blocks them, and a weakly
typed TensorRT FP16 build pins their layers to float32.

An ard-edge graph has three parts (see ``ard_edge/model/fused.py``)::

    frames (uint8 NHWC) -> prologue -> feature network -> tail -> anomaly_map, score, ...
                           cast,       teacher CNN,        1 - cosine per scale, Resize, Sum,
                           transpose,  bottleneck,         Gaussian blur (1-channel Conv),
                           normalize   student decoder     ReduceMax, threshold compare

Only the feature network is worth 8 or 16 bits: it holds nearly all the multiply-adds. The tail
is the measurement itself: a cosine distance of two feature vectors is a small difference of
near-equal numbers, and the score is its maximum, so rounding there moves the decision directly,
while it costs almost nothing to run in float; in float16 its squared feature norms, summed over
hundreds of channels, can even overflow (max 65504). The prologue turns raw pixel values (0..255) into the
first convolution's input; the Q/DQ pair that convolution gets on its input is all the
quantization it needs.

The rules look at the graph's structure, not at node names, so they survive renaming and
re-optimization (``quant_pre_process``):

* A *feature layer* is a Conv, ConvTranspose, Gemm or MatMul with more than one output channel.
  The tail's blur is two convolutions too, but with one channel in and out: that is what tells
  the measurement apart from the network.
* Walking back from the outputs, the tail ends where features are compared: at the channel
  reductions (ReduceSum, ReduceL2; torch exports F.cosine_similarity as Mul -> ReduceSum at
  opset 17, other exporters use the fused reductions) that no feature layer depends on,
  together with the element-wise products they sum (t*s, t*t, s*s of the cosine similarity).
  The tail is those ops and everything downstream of them, plus constant-only helpers that only
  the tail reads (the blur's pad sizes and kernels). The student's last residual Add and Relu,
  which only the tail reads, still belong to the network: they come before the comparison.
* The score heads compare features with statistics fitted on good images, through a MatMul
  against a constant: a nearest-neighbour search in a memory bank (MatMul, element-wise ops,
  then a ReduceMin over the bank) and a Mahalanobis distance (the quadratic form x W x, a
  Mul of the MatMul's output with its own input, then a ReduceSum). Such a MatMul is a
  comparison, not a feature layer: the tail starts there too.
* The *prologue* is everything reachable from the graph input without passing a feature layer,
  plus constant-only helpers that only float nodes read (the normalization constants): a
  converter that is not told to skip them would round them even though their ops run in float.
* The *network* is the rest.
* The *stem* is the part of the network that every compared feature map depends on: the
  teacher up to its first (finest) tap, since the coarser taps and the whole bottleneck and
  student are computed from that tap. Rounding noise added there reaches every scale of both
  sides of the comparison, so INT8 keeps the stem in float by default (``ard_edge.calibration``).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from ard_edge.errors import EngineError

FEATURE_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
# Explicit quantization: a graph holding these is INT8 already (ard-edge calibrate's output).
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})

# Ops that measure how far apart two feature vectors are: the first ops of the tail.
CHANNEL_REDUCTIONS = frozenset({"ReduceSum", "ReduceL2", "ReduceSumSquare", "LpNormalization"})
_PRODUCT_OPS = frozenset({"Mul", "Div", "Sub", "Pow", "Abs"})
# Between a memory bank's MatMul and its ReduceMin: the squared-distance arithmetic.
_ELEMENTWISE_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Neg"})


@dataclasses.dataclass(frozen=True)
class GraphParts:
    """Node names by role; nodes of other types (Constant, Shape...) are listed where they sit."""

    prologue: frozenset[str]
    network: frozenset[str]
    tail: frozenset[str]
    feature_layers: frozenset[str]
    stem: frozenset[str]  # network nodes upstream of every compared tensor
    last_layers: frozenset[str]  # feature layers that only the tail reads (the student's outputs)

    @property
    def float_nodes(self) -> frozenset[str]:
        """Nodes a quantizer or float16 converter must leave alone."""
        return self.prologue | self.tail


def name_nodes(graph) -> None:
    """Give every unnamed node a unique name: quantizer and converter select nodes by name."""
    taken = {node.name for node in graph.node if node.name}
    for index, node in enumerate(graph.node):
        if not node.name:
            candidate = f"{node.op_type}_ard{index}"
            while candidate in taken:
                candidate += "_"
            node.name = candidate
            taken.add(candidate)


def split_graph(model) -> GraphParts:
    """Find the prologue, feature network and tail of an ard-edge ONNX ModelProto.

    Nodes are told apart by name: run :func:`name_nodes` first on graphs with unnamed nodes.
    Raises EngineError when the graph does not look like an ard-edge export (no feature
    layers, or no tail between them and the outputs).
    """
    graph = model.graph
    nodes = list(graph.node)
    producer = {out: node for node in nodes for out in node.output if out}
    consumers: dict[str, list] = defaultdict(list)
    for node in nodes:
        for name in node.input:
            if name:
                consumers[name].append(node)
    shapes = _constant_shapes(graph)

    comparisons = _fitted_comparisons(nodes, consumers)
    features = {node.name for node in nodes if node.op_type in FEATURE_OPS and _channels_out(node, shapes) != 1
                and node.name not in comparisons}
    if not features:
        raise EngineError("the model has no convolution or matrix layer: is it an ard-edge export?")

    # Everything the feature layers depend on: the network. What is left ("post") can only
    # feed the outputs: the tail, plus the last layers of the student (a residual Add, a Relu)
    # whose results only the tail reads.
    network: set[str] = set()
    stack = [node for node in nodes if node.name in features]
    while stack:
        node = stack.pop()
        if node.name in network:
            continue
        network.add(node.name)
        stack.extend(producer[name] for name in node.input if name in producer)
    post = [node for node in nodes if node.name not in network]

    # The tail starts where features are compared: the channel reductions of the cosine
    # similarity, with the element-wise products they sum (t*s, t*t, s*s).
    entries = [node for node in post if node.name in comparisons]
    for node in post:
        if node.op_type in CHANNEL_REDUCTIONS:
            entries.append(node)
            source = producer.get(node.input[0])
            if source is not None and source.name not in network and source.op_type in _PRODUCT_OPS:
                entries.append(source)
    tail: set[str] = set()
    stack = list(entries)
    while stack:
        node = stack.pop()
        if node.name in tail:
            continue
        tail.add(node.name)
        stack.extend(consumer for out in node.output for consumer in consumers.get(out, ()))
    output_names = {out.name for out in graph.output}
    tail_outputs = {out for node in nodes if node.name in tail for out in node.output}
    if not entries or not output_names <= tail_outputs:
        raise EngineError(
            "cannot find the anomaly-map tail (cosine similarity to outputs) in this graph: "
            "is it an ard-edge export?"
        )

    # Constant-only helpers belong to the float part that reads them: the blur's pad sizes and
    # kernels to the tail, the normalization constants to the prologue.
    inputs = [inp.name for inp in graph.input]
    data_dependent = _downstream(inputs, consumers)
    constant_only = [node for node in nodes if node.name not in data_dependent]
    tail |= _helpers_of(tail, constant_only, consumers)
    prologue = _downstream(inputs, consumers, stop=features) - tail
    prologue |= _helpers_of(prologue | tail, constant_only, consumers)
    network_nodes = frozenset(node.name for node in nodes) - prologue - tail

    compared = [name for node in nodes if node.name in tail for name in node.input
                if name in producer and producer[name].name in network_nodes]
    upstream = [frozenset(_upstream(name, producer)) for name in compared]
    stem = frozenset.intersection(*upstream) & network_nodes if upstream else frozenset()
    last_layers = frozenset(
        node.name for node in nodes if node.name in features
        and all(reader.name in tail for out in node.output for reader in consumers.get(out, ()))
    )
    return GraphParts(
        prologue=frozenset(prologue),
        network=network_nodes,
        tail=frozenset(tail),
        feature_layers=frozenset(features),
        stem=stem,
        last_layers=last_layers,
    )


def _fitted_comparisons(nodes, consumers) -> set[str]:
    """Names of the MatMuls that compare features with fitted statistics (see the module doc)."""
    found = set()
    for node in nodes:
        if node.op_type == "MatMul" and (_reaches_min(node, consumers) or _is_quadratic_form(node, consumers)):
            found.add(node.name)
    return found


def _reaches_min(node, consumers) -> bool:
    stack, seen = [node], set()
    while stack:
        current = stack.pop()
        for out in current.output:
            for reader in consumers.get(out, ()):
                if reader.op_type == "ReduceMin":
                    return True
                if reader.op_type in _ELEMENTWISE_OPS and reader.name not in seen:
                    seen.add(reader.name)
                    stack.append(reader)
    return False


def _is_quadratic_form(node, consumers) -> bool:
    for reader in consumers.get(node.output[0], ()):
        if reader.op_type == "Mul" and node.input[0] in reader.input:
            if any(r.op_type in CHANNEL_REDUCTIONS for r in consumers.get(reader.output[0], ())):
                return True
    return False


def _upstream(tensor: str, producer) -> set[str]:
    """Names of the nodes ``tensor`` depends on, its producer included."""
    reached: set[str] = set()
    stack = [tensor]
    while stack:
        node = producer.get(stack.pop())
        if node is not None and node.name not in reached:
            reached.add(node.name)
            stack.extend(name for name in node.input if name)
    return reached


def _downstream(tensors: list[str], consumers, stop: set[str] = frozenset()) -> set[str]:
    """Names of the nodes that depend on ``tensors``, not walking into or past ``stop`` nodes."""
    reached: set[str] = set()
    frontier, seen = list(tensors), set()
    while frontier:
        tensor = frontier.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        for node in consumers.get(tensor, ()):
            if node.name not in reached and node.name not in stop:
                reached.add(node.name)
                frontier.extend(out for out in node.output if out)
    return reached


def _helpers_of(part: set[str], candidates: list, consumers) -> set[str]:
    """Names of the ``candidates`` that only ``part`` reads, directly or through each other."""
    helpers: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node in candidates:
            if node.name in part or node.name in helpers:
                continue
            readers = [c for out in node.output for c in consumers.get(out, ())]
            if readers and all(reader.name in part or reader.name in helpers for reader in readers):
                helpers.add(node.name)
                changed = True
    return helpers


def _constant_shapes(graph) -> dict[str, tuple[int, ...]]:
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = tuple(attr.t.dims)
    return shapes


def _channels_out(node, shapes: dict[str, tuple[int, ...]]) -> int | None:
    """Output channels of a Conv/ConvTranspose/Gemm/MatMul with a constant weight; None if unknown."""
    if len(node.input) < 2 or node.input[1] not in shapes:
        return None
    dims = shapes[node.input[1]]
    if not dims:
        return None
    if node.op_type == "Conv":
        return dims[0]
    if node.op_type == "ConvTranspose":
        group = next((attr.i for attr in node.attribute if attr.name == "group"), 1)
        return dims[1] * group if len(dims) > 1 else None
    if node.op_type == "Gemm":
        trans_b = next((attr.i for attr in node.attribute if attr.name == "transB"), 0)
        return dims[0] if trans_b else dims[-1]
    return dims[-1]  # MatMul


def is_qdq(model) -> bool:
    """Whether an ONNX ModelProto is explicitly quantized (holds QuantizeLinear/DequantizeLinear nodes)."""
    return any(node.op_type in QDQ_OPS for node in model.graph.node)
