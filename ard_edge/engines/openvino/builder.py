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


def convert_onnx(src: Path, xml_dst: Path, bin_dst: Path, batch: BatchRange, metadata: dict[str, Any],
                 progress: BuildProgress | None = None) -> dict[str, Any]:
    """Write ``src`` as IR (``xml_dst`` + ``bin_dst``) for batches in ``batch``; return the build environment.

    Weights stay float32 (no fp16 compression): a precision change is the gate's to decide.
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
    model.set_rt_info(json.dumps(metadata, sort_keys=True), [METADATA_KEY, "metadata"])
    progress.step(_PHASE, 0)
    with tempfile.TemporaryDirectory(prefix="ard-edge-openvino-") as tmp:
        xml = Path(tmp) / "model.xml"
        ov.save_model(model, str(xml), compress_to_fp16=False)
        shutil.copyfile(xml, xml_dst)
        shutil.copyfile(xml.with_suffix(".bin"), bin_dst)
    progress.step(_PHASE, 1)
    progress.phase_finish(_PHASE)
    return {**current_environment(), "converted_from": "onnx"}

