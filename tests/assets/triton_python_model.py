"""A Triton Python-backend model that runs the ard-edge ONNX Runtime engine on the ONNX beside it.

The tests serve ``build-engine --target triton`` repositories with it: the wheel's tritonserver
has no onnxruntime backend, so this stands in for one. Triton's dynamic batcher hands
``execute`` several clients' requests at once; they run as one batch.
"""

import os
import sys
from pathlib import Path

# The stub embeds the system Python in isolated mode (-I), which ignores PYTHONPATH: the server's
# launcher passes this venv's site-packages and ard-edge there, and they are added here.
sys.path[:0] = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

from ard_edge._graph import INPUT_NAME, OUTPUT_NAMES
from ard_edge.engines.onnxruntime.runner import OnnxRuntimeEngine  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        self.engine = OnnxRuntimeEngine(path, intra_op_threads=1)

    def execute(self, requests):
        frames = [pb_utils.get_input_tensor_by_name(r, INPUT_NAME).as_numpy() for r in requests]
        result = self.engine.infer(np.concatenate(frames))
        responses, start = [], 0
        for batch in frames:
            part = slice(start, start + len(batch))
            start += len(batch)
            tensors = [pb_utils.Tensor(name, np.array(getattr(result, name)[part], copy=True))
                       for name in OUTPUT_NAMES]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self):
        self.engine.close()
