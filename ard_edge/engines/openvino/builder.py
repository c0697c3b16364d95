"""ONNX -> OpenVINO IR: the ``build-engine`` target for x86 CPUs.

The IR is portable (any OpenVINO at least as new, any CPU): it is compiled for this CPU when the
engine opens, in about a second. The ard-edge metadata travels in the IR's rt_info.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ard_edge.engines.base import BatchRange, BuildProgress
from ard_edge.engines.metadata import METADATA_KEY
from ard_edge.engines.openvino._environment import current_environment
from ard_edge.errors import EngineError, require

_PHASE = "OpenVINO conversion"
# Between the memory bank's MatMul and its ReduceMin: the squared-distance arithmetic.
_DISTANCE_OPS = frozenset({"Add", "Subtract", "Multiply"})
LOWERED_PRECISION = "bf16"  # what --precision mixed runs the bank's search in


def convert_onnx(src: Path, xml_dst: Path, bin_dst: Path, batch: BatchRange, metadata: dict[str, Any],
                 progress: BuildProgress | None = None, lower_bank: bool = False) -> dict[str, Any]:
    """Write ``src`` as IR (``xml_dst`` + ``bin_dst``) for batches in ``batch``; return the build environment.

    Weights stay float32 (no fp16 compression): a precision change is the gate's to decide.
    ``lower_bank``: the memory bank's nearest-neighbour search runs in bf16 (``--precision mixed``).
    """
    ov = require("openvino", "openvino")
    progress = progress or BuildProgress()
    progress.phase_start(_PHASE, None, 2)
    try:
        model = ov.convert_model(str(src))
    except Exception as exc:  # the ONNX frontend raises OpConversionFailure / RuntimeError
        raise EngineError(f"OpenVINO cannot convert {src}: {exc}") from exc
    shape = model.inputs[0].get_partial_shape()
    # A bounded batch lets the CPU plugin size its buffers; a single size makes the shape static.
    shape[0] = ov.Dimension(batch.min) if batch.min == batch.max else ov.Dimension(batch.min, batch.max)
    model.reshape({model.inputs[0]: shape})
    lowered = lower_bank_search(model) if lower_bank else 0
    model.set_rt_info(json.dumps(metadata, sort_keys=True), [METADATA_KEY, "metadata"])
    progress.step(_PHASE, 0)
    with tempfile.TemporaryDirectory(prefix="ard-edge-openvino-") as tmp:
        xml = Path(tmp) / "model.xml"
        ov.save_model(model, str(xml), compress_to_fp16=False)
        shutil.copyfile(xml, xml_dst)
        shutil.copyfile(xml.with_suffix(".bin"), bin_dst)
    progress.step(_PHASE, 1)
    progress.phase_finish(_PHASE)
    environment = {**current_environment(), "converted_from": "onnx"}
    if lower_bank:
        environment["lowered"] = {"memory_bank_search": LOWERED_PRECISION, "searches": lowered}
    return environment


def lower_bank_search(model) -> int:
    """Run each memory-bank search (MatMul against a constant bank, distance arithmetic, ReduceMin)
    in bf16 and convert only its result back; return how many searches were lowered.

    The search is most of the default model's arithmetic and tolerates bf16; the teacher and the
    Gaussian do not (docs/openvino.md), so they stay f32 under an f32 hint. Found by structure.
    """
    opset = require("openvino.opset13", "openvino")
    searches = [chain for op in model.get_ordered_ops() if (chain := _search_chain(op))]
    if not searches:
        raise EngineError("--precision mixed lowers the memory bank's search to bf16, and this model has no "
                          "memory bank: build it with --precision fp32 or bf16")
    for chain in searches:
        inside = {op.get_friendly_name() for op in chain}
        for op in chain:  # bf16 in at the chain's float inputs; types inside follow on revalidation
            for port in op.inputs():
                value = port.get_source_output()
                if value.get_node().get_friendly_name() not in inside and value.get_element_type().is_real():
                    port.replace_source_output(opset.convert(value, LOWERED_PRECISION).output(0))
        result = chain[-1].output(0)
        readers = list(result.get_target_inputs())
        back = opset.convert(result, "f32").output(0)
        for reader in readers:
            reader.replace_source_output(back)
    model.validate_nodes_and_infer_types()
    return len(searches)


def _search_chain(reduce_min) -> list | None:
    """[MatMul, distance ops..., ReduceMin] ending at ``reduce_min``, or None if it is no bank search."""
    if reduce_min.get_type_name() != "ReduceMin":
        return None
    chain = [reduce_min]
    node = reduce_min.input_value(0).get_node()
    while node.get_type_name() in _DISTANCE_OPS:
        data = [v for v in node.input_values() if v.get_node().get_type_name() != "Constant"]
        if len(data) != 1:
            return None
        chain.append(node)
        node = data[0].get_node()
    constant = any(v.get_node().get_type_name() == "Constant" for v in node.input_values())
    if node.get_type_name() != "MatMul" or not constant:
        return None
    return [node, *reversed(chain)]

