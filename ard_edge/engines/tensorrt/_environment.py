"""Is TensorRT usable here, and what does this machine look like to a TensorRT plan?"""

from __future__ import annotations

from typing import Any

from ard_edge.errors import EngineError, require


def current_environment(device: int = 0) -> dict[str, Any]:
    """TensorRT version, GPU name and compute capability of CUDA ``device``.

    The keys match a sidecar's ``environment``, so :func:`ard_edge.engines.sidecar.check_compatible`
    compares the two directly. Raises MissingDependency without tensorrt/pycuda and EngineError
    without a usable GPU.
    """
    trt = require("tensorrt", "tensorrt")
    cuda = require("pycuda.driver", "tensorrt")
    try:
        cuda.init()
        count = cuda.Device.count()
    except Exception as exc:  # pycuda raises its own LogicError/RuntimeError without a driver
        raise EngineError(f"no usable CUDA driver: {exc}") from exc
    if not 0 <= device < count:
        raise EngineError(f"CUDA device {device} does not exist ({count} found)")
    gpu = cuda.Device(device)
    major, minor = gpu.compute_capability()
    return {
        "tensorrt_version": trt.__version__,
        "gpu_name": gpu.name(),
        "compute_capability": f"{major}.{minor}",
        "cuda_driver_version": cuda.get_driver_version(),
    }


def probe() -> tuple[dict[str, Any] | None, str]:
    """(environment, reason): the environment of GPU 0, or None and why TensorRT cannot run here."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return None, "tensorrt is not installed"
    except Exception as exc:  # a broken install raises OSError/RuntimeError while loading libnvinfer
        return None, f"tensorrt does not load ({exc})"
    try:
        import pycuda.driver  # noqa: F401
    except ImportError:
        return None, "pycuda is not installed"
    except Exception as exc:
        return None, f"pycuda does not load ({exc})"
    try:
        environment = current_environment(0)
    except Exception as exc:
        return None, str(exc) or "no NVIDIA GPU"
    return environment, f"{environment['gpu_name']}, TensorRT {environment['tensorrt_version']}"
