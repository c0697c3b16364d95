"""Explicit INT8 quantization of an exported graph: tensor ranges in, Q/DQ ONNX out.

We use ONNX Runtime's quantization tools (``onnxruntime.quantization``) rather than writing our own
or using NVIDIA ModelOpt: they are maintained by the runtime that executes the ``cpu`` profile,
their QDQ output is plain ONNX QuantizeLinear/DequantizeLinear that TensorRT's ONNX parser reads
as explicit quantization, and they run anywhere ONNX Runtime does. ModelOpt's ONNX quantizer wants
CUDA and TensorRT to calibrate, which line PCs and this CPU-only toolchain do not have.

TensorRT 10 deprecated implicit (calibrator) INT8 and TensorRT 11 removed it, so the INT8 model is
the Q/DQ graph itself: TensorRT compiles exactly the quantization written in it, and ONNX Runtime
runs the same file on a CPU, which is how the accuracy gate checks a TensorRT build without a GPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ard_edge.engines.onnx_graph import QDQ_OPS, GraphParts, name_nodes, split_graph
from ard_edge.errors import CalibrationError, ConfigError, EngineError

log = logging.getLogger(__name__)

# entropy is TensorRT's classic calibrator; it clips activation tails hard, and anomaly scores
# live in those tails: on a 64 px test model it cost 0.2-0.3 image AUROC where percentile and
# minmax cost under 0.02. The gate refuses such a model and its message names the other methods.
METHODS = ("entropy", "percentile", "minmax")

# The layers worth 8 bits; everything else stays float (see engines/onnx_graph.py for the tail
# and prologue).
QUANTIZED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# Their activations are quantized with them: ONNX Runtime then gives a convolution's output the
# activation's range (0..6 after Relu6, not the pre-activation's +-80), which cut the largest
# score error four-fold (0.16 -> 0.04 on a 64 px test model) compared with quantizing the
# convolutions alone, and lets both runtimes fuse convolution, activation and requantization.
FUSED_ACTIVATIONS = ("Relu", "Clip")
_OP_TYPES = QUANTIZED_OPS + FUSED_ACTIVATIONS

# Histogram settings. ONNX Runtime's entropy default (128 bins for 128 quantized bins) leaves a
# single candidate threshold, which is plain min/max; 2048 bins is TensorRT's classic setting.
_ENTROPY_OPTIONS = {"num_bins": 2048, "num_quantized_bins": 128}
_PERCENTILE_OPTIONS = {"num_bins": 2048, "percentile": 99.999}
_QUANTIZED_BINS = 128  # int8 magnitudes
_MAX_CANDIDATES = 256  # thresholds tried per tensor by the entropy search


@dataclasses.dataclass(frozen=True)
class QuantProfile:
    """How tensors are stored in 8 bits, for one kind of target."""

    name: str
    activation_type: str  # "int8" or "uint8"
    symmetric_activations: bool  # zero point 0
    quantize_bias: bool  # int32 bias through DequantizeLinear, or float bias
    keep_activations: bool  # keep Relu/Clip as nodes instead of folding them into ranges
    summary: str
    weight_type: str = "int8"  # always symmetric, zero point 0
    per_channel: bool = True  # one weight scale per output channel
    op_types: tuple[str, ...] = _OP_TYPES  # what is quantized
    float_last_layers: bool = False  # leave the layers that only the tail reads in float

    def describe(self) -> dict:
        return {
            "profile": self.name,
            "activation_type": self.activation_type,
            "weight_type": self.weight_type,
            "symmetric_activations": self.symmetric_activations,
            "symmetric_weights": True,
            "per_channel_weights": self.per_channel,
            "bias": "int32" if self.quantize_bias else "float",
            "quantized_ops": list(self.op_types),
            "float_last_layers": self.float_last_layers,
            "format": "QDQ",
        }


PROFILES = {
    # TensorRT's explicit quantization: signed INT8 only (its ONNX parser turns a UINT8 zero point
    # into INT8 and rejects any non-zero zero point), so activations and weights are symmetric;
    # weights per output channel (Conv weights KCRS: axis 0; ConvTranspose CKRS: axis 1),
    # activations per tensor (the parser accepts per-axis scales only on weights). The parser
    # accepts INT8/FP8 Q/DQ only, so biases stay float and TensorRT folds them into the kernel.
    "tensorrt": QuantProfile(
        name="tensorrt",
        activation_type="int8",
        symmetric_activations=True,
        quantize_bias=False,
        keep_activations=True,
        summary="TensorRT explicit quantization: int8 symmetric activations and per-channel weights",
    ),
    # ONNX Runtime's x86 CPU kernels multiply uint8 activations by int8 weights (U8S8, AVX2
    # VPMADDUBSW / AVX512-VNNI); int8 activations are converted to uint8 by a graph transform
    # (QDQS8ToU8Transformer) where it can, and run slower where it cannot. Asymmetric uint8 also
    # spends all 256 levels on a post-Relu range instead of half of them.
    "cpu": QuantProfile(
        name="cpu",
        activation_type="uint8",
        symmetric_activations=False,
        quantize_bias=True,
        keep_activations=False,
        summary="ONNX Runtime on x86: uint8 asymmetric activations, int8 per-channel weights (U8S8)",
        # ONNX Runtime's CPU provider has no 8-bit ConvTranspose kernel: it would dequantize the
        # weights and the input and run float anyway, so Q/DQ there is rounding noise for no gain
        # (on the 256 px magnetic-tile SE model: 1% slower, decision agreement 99.07% vs 99.20%).
        op_types=tuple(op for op in _OP_TYPES if op != "ConvTranspose"),
        # The same holds for a convolution whose output stays float (the student's projections,
        # read by the float tail): ONNX Runtime fuses only DQ -> Conv -> Q into an 8-bit kernel.
        # TensorRT runs INT8 convolutions with float output, so its profile keeps them.
        float_last_layers=True,
    ),
}


def check_choice(profile: str, method: str) -> QuantProfile:
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    if method not in METHODS:
        raise ConfigError(f"unknown calibration method {method!r}: choose one of {', '.join(METHODS)}")
    return PROFILES[profile]


def prepare_model(onnx_path: Path, out_path: Path) -> GraphParts:
    """Write the float model the quantizer works on: ONNX Runtime's pre-processing, named nodes.

    ``quant_pre_process`` infers shapes (the quantizer skips tensors of unknown type) and runs
    ONNX Runtime's basic optimizations (ORT_ENABLE_BASIC: standard ONNX ops only, so TensorRT
    still parses the result), which fold BatchNormalization into the convolution before it so
    the pair quantizes as one layer.
    """
    import onnx
    from onnxruntime.quantization import quant_pre_process

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quant_pre_process(str(onnx_path), str(out_path))
        model = onnx.load(str(out_path))
    except Exception as exc:  # onnxruntime and onnx raise assorted types
        raise CalibrationError(f"cannot prepare {onnx_path} for quantization: {exc}") from exc
    name_nodes(model.graph)
    try:
        parts = split_graph(model)
    except EngineError as exc:
        raise CalibrationError(str(exc)) from exc  # the same refusal, told as a calibration failure
    onnx.save(model, str(out_path))
    return parts


def _network_only(model_path: Path, work_dir: Path) -> Path:
    """The model without its float tail, ending at the tensors the tail reads.

    Only the network is quantized, so only it needs ranges; the heads' comparison MatMuls (bank
    search, Mahalanobis) would otherwise be calibrated too, and their outputs (squared distances
    of large, nearly equal values) can defeat ONNX Runtime's histograms.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(model_path))
    graph = model.graph
    tail = split_graph(model).tail
    kept = [node for node in graph.node if node.name not in tail]
    produced = {out for node in kept for out in node.output}
    read = [name for node in graph.node if node.name in tail for name in node.input if name in produced]
    typed = {info.name: info for info in (*graph.value_info, *graph.output)}
    outputs = [typed.get(name) or helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
               for name in dict.fromkeys(read)]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.output[:]
    graph.output.extend(outputs)
    used = {name for node in kept for name in node.input}
    initializers = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    path = work_dir / "network.onnx"
    onnx.save(model, str(path))
    return path


def collect_ranges(
    model_path: Path,
    batches: Iterable[tuple[np.ndarray, int]],
    method: str,
    work_dir: Path,
    input_name: str = "frames",
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, tuple[float, float]]:
    """Run the float model on (frames, real count) batches; return tensor name -> (low, high).

    ``minmax`` keeps the extremes; ``percentile`` clips the 0.001% tails; ``entropy`` picks the
    range whose 8-bit histogram loses the least information (KL divergence), TensorRT's classic
    calibrator. One batch per ``collect_data`` call keeps memory at one batch of activations.
    """
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    ort_method = {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile,
                  "minmax": CalibrationMethod.MinMax}[method]
    options = {"entropy": _ENTROPY_OPTIONS, "percentile": _PERCENTILE_OPTIONS, "minmax": {}}[method]
    # The calibrators print progress to stdout; library code must not.
    with contextlib.redirect_stdout(io.StringIO()):
        calibrator = create_calibrator(
            _network_only(model_path, work_dir),
            list(_OP_TYPES),
            augmented_model_path=str(work_dir / "augmented.onnx"),
            calibrate_method=ort_method,
            extra_options=dict(options),
        )
        count = 0
        for batch, real in batches:
            calibrator.collect_data(_OneBatch({input_name: batch}))
            count += real
            if on_batch:
                on_batch(real)
        if count == 0:
            raise CalibrationError("no calibration images were read")
        if method == "entropy":
            # ONNX Runtime's own KL search loops over bins in Python (about a second per tensor,
            # minutes per model); its histograms are searched here with numpy instead.
            histograms = calibrator.collector.get_histogram_dict()
            return {name: entropy_range(*histogram[:4]) for name, histogram in histograms.items()}
        tensors = calibrator.compute_data()
    ranges = {}
    for name, data in tensors.items():
        low, high = data.range_value
        ranges[name] = (float(np.min(low)), float(np.max(high)))
    return ranges


def entropy_range(hist: np.ndarray, edges: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """The clipping range whose 8-bit version keeps the most information about a histogram.

    TensorRT's entropy calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017): on the
    histogram of magnitudes, each candidate threshold clips the tail into the last bin, merges
    the bins below it into 128 levels (int8's magnitudes) and spreads them back; the threshold
    with the smallest KL divergence from the clipped histogram wins. ``hist`` spans [-T, T]
    (ONNX Runtime's collector); the result is trimmed to the seen [low, high], so a post-Relu
    tensor keeps its zero lower bound.
    """
    hist = np.asarray(hist, np.float64)
    centre = len(hist) // 2
    magnitudes = hist[centre:] + hist[:centre][::-1]  # bins are symmetric about zero
    if len(magnitudes) <= _QUANTIZED_BINS or magnitudes.sum() == 0:
        return float(low), float(high)
    widths = np.unique(np.linspace(_QUANTIZED_BINS, len(magnitudes), _MAX_CANDIDATES).astype(int))
    divergences = [_clipping_divergence(magnitudes, width) for width in widths]
    threshold = float(edges[centre + int(widths[int(np.argmin(divergences))])])
    return max(-threshold, float(low)), min(threshold, float(high))


def _clipping_divergence(magnitudes: np.ndarray, width: int) -> float:
    clipped = magnitudes[:width]
    reference = clipped.copy()
    reference[-1] += magnitudes[width:].sum()
    occupied = reference > 0
    # Merge the kept bins into _QUANTIZED_BINS groups, then spread each group's count evenly
    # over its occupied bins: what an 8-bit tensor can still tell apart.
    starts = np.unique(np.linspace(0, width, _QUANTIZED_BINS + 1).astype(int)[:-1])
    group_counts = np.add.reduceat(clipped, starts)
    group_occupied = np.add.reduceat(occupied.astype(np.float64), starts)
    sizes = np.diff(np.append(starts, width))
    per_bin = np.divide(group_counts, group_occupied, out=np.zeros_like(group_counts), where=group_occupied > 0)
    candidate = np.repeat(per_bin, sizes) * occupied
    p, q = _smoothed(reference), _smoothed(candidate)
    if p is None or q is None:
        return float("inf")
    return float(np.sum(p * np.log(p / q)))


def _smoothed(counts: np.ndarray, eps: float = 1e-4) -> np.ndarray | None:
    """Counts as probabilities with no zero (``eps`` counts moved onto empty bins); None if empty."""
    empty = counts == 0
    num_empty, num_full = int(empty.sum()), int((~empty).sum())
    if num_full == 0:
        return None
    smoothed = counts + eps * empty - (eps * num_empty / num_full) * ~empty
    if np.any(smoothed <= 0):
        return None
    return smoothed / smoothed.sum()


def quantize_model(
    model_path: Path,
    out_path: Path,
    parts: GraphParts,
    ranges: dict[str, tuple[float, float]],
    profile: QuantProfile,
    work_dir: Path,
    quantize_stem: bool = False,
) -> None:
    """Write the Q/DQ model for ``profile`` from precomputed ``ranges``, reading no images.

    ``quantize_static`` takes precomputed ranges through its calibration cache file, so the
    ranges are handed over in ONNX Runtime's own cache format. The stem (the teacher up to its
    first tap, see ``engines/onnx_graph.py``) stays float unless ``quantize_stem``: on the
    magnetic-tile SE model its INT8 noise, carried into every scale, raised good scores by 0.04
    on average and cost 0.011 image AUROC (tensorrt profile); kept float, 0.0006, for 3% of the
    cpu-profile speed-up.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        TensorData,
        TensorsData,
        quantize_static,
    )
    from onnxruntime.quantization.calibrate import save_tensors_data

    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        import onnxruntime

        raise CalibrationError(
            f"onnxruntime {onnxruntime.__version__} cannot quantize from precomputed ranges "
            "(quantize_static has no calibration_cache_path): pip install -U onnxruntime"
        )
    excluded = set(parts.float_nodes)
    if not quantize_stem:
        excluded |= parts.stem
    if profile.float_last_layers:
        excluded |= parts.last_layers
    cache = work_dir / "ort_ranges.json"
    tensors = {name: TensorData(lowest=np.float32(low), highest=np.float32(high))
               for name, (low, high) in ranges.items()}
    # The method only labels the cache; int8 parameters come from the (low, high) pairs alone.
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, tensors), cache)
    types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    extra_options = {
        "ActivationSymmetric": profile.symmetric_activations,
        "WeightSymmetric": True,
        "QuantizeBias": profile.quantize_bias,
        "QDQKeepRemovableActivations": profile.keep_activations,
    }
    try:
        quantize_static(
            str(model_path),
            str(out_path),
            calibration_data_reader=None,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(profile.op_types),
            per_channel=profile.per_channel,
            reduce_range=False,
            activation_type=types[profile.activation_type],
            weight_type=types[profile.weight_type],
            nodes_to_exclude=sorted(excluded),
            calibrate_method=CalibrationMethod.MinMax,
            extra_options=extra_options,
            calibration_cache_path=str(cache),
        )
    except Exception as exc:  # onnxruntime raises ValueError, KeyError, RuntimeError...
        raise CalibrationError(f"ONNX Runtime could not quantize the model ({type(exc).__name__}: {exc})") from exc
    import onnx

    float_producers = {out: node.name for node in onnx.load(str(model_path)).graph.node for out in node.output}
    model = onnx.load(str(out_path))
    compare_float_features(model.graph, parts.tail, float_producers)
    onnx.save(model, str(out_path))


def compare_float_features(graph, tail: frozenset[str], float_producers: dict[str, str]) -> None:
    """Let the tail read the features themselves, not their 8-bit copies.

    ``quantize_static`` gives a tensor one Q/DQ pair and rewires every reader to its output, so
    the cosine similarity would compare teacher taps rounded for the next convolution's input
    and student outputs rounded for no reader at all. Tail readers are pointed back at the float
    tensor, and the Q/DQ pairs left without readers are removed. ``float_producers`` (tensor ->
    node name in the float model) guards against a tensor that changed meaning: where the
    quantizer folded a Relu into the ranges it gave the Conv the Relu's output name, and the
    float tensor behind that Q/DQ pair is then the unclipped one.
    """
    producer = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.name not in tail:
            continue
        for index, name in enumerate(node.input):
            dequantize = producer.get(name)
            if dequantize is None or dequantize.op_type != "DequantizeLinear":
                continue
            quantize = producer.get(dequantize.input[0])
            if quantize is None or quantize.op_type != "QuantizeLinear":
                continue
            source = quantize.input[0]
            if getattr(producer.get(source), "name", None) == float_producers.get(source):
                node.input[index] = source
    removed_inputs: set[str] = set()
    while True:
        read = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
        unread = [node for node in graph.node
                  if node.op_type in QDQ_OPS and not read.intersection(node.output)]
        if not unread:
            break
        for node in unread:
            removed_inputs.update(node.input)
            graph.node.remove(node)
    # The removed pairs' scales and zero points.
    for initializer in [init for init in graph.initializer if init.name in removed_inputs - read]:
        graph.initializer.remove(initializer)


def tensorrt_violations(model) -> list[str]:
    """What in a Q/DQ ModelProto breaks TensorRT's explicit-quantization rules; empty if nothing."""
    from onnx import TensorProto, numpy_helper

    constants = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            constants[node.output[0]] = next(a.t for a in node.attribute if a.name == "value")
    problems = []
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS:
            continue
        if len(node.input) < 3 or node.input[2] not in constants:
            problems.append(f"{node.name}: no constant zero point")
            continue
        zero_point = constants[node.input[2]]
        if zero_point.data_type != TensorProto.INT8:
            problems.append(f"{node.name}: zero point is {TensorProto.DataType.Name(zero_point.data_type)}, not INT8")
        elif np.any(numpy_helper.to_array(zero_point) != 0):
            problems.append(f"{node.name}: non-zero zero point")
        scale = constants.get(node.input[1])
        per_axis = scale is not None and int(np.prod(scale.dims)) > 1
        if per_axis and node.input[0] not in constants:
            problems.append(f"{node.name}: per-axis scale on an activation")
    return problems


class _OneBatch:
    """A CalibrationDataReader (duck-typed: ``get_next``) over one input batch."""

    def __init__(self, feed: dict[str, np.ndarray]):
        self._feed = feed

    def get_next(self):
        feed, self._feed = self._feed, None
        return feed

    def __iter__(self):
        return self

    def __next__(self):
        feed = self.get_next()
        if feed is None:
            raise StopIteration
        return feed
