import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "magnetic_tile"


def _has_cuda() -> bool:
    try:
        import tensorrt  # noqa: F401
        import pycuda.driver as cuda

        cuda.init()
        return cuda.Device.count() > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items) and not _has_cuda():
        skip = pytest.mark.skip(reason="needs an NVIDIA GPU with TensorRT and pycuda")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def magnetic_tile() -> Path:
    if not (SHARED_DATA / "train" / "good").is_dir():
        pytest.skip("../shared/data/magnetic_tile is not present")
    return SHARED_DATA
