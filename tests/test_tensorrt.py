"""TensorRT backend: version rules and lazy imports on every machine; the real thing on a GPU.

Tests marked ``gpu`` build, open and run real TensorRT engines with pycuda and compare them with
ONNX Runtime; tests/conftest.py skips them where there is no GPU with TensorRT and pycuda.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _models import exported_onnx, quantized_qdq, random_frames, tensorrt_importable

from ard_edge.deploy.build import BuildRequest, build_engine
from ard_edge.engines.base import BatchRange, BuildProgress
from ard_edge.engines.tensorrt._compat import (
    check_supported,
    format_parser_errors,
    network_flag_names,
    numpy_dtype,
    parse_version,
    precision_plan,
)
from ard_edge.errors import EngineError, MissingDependency

REPO = Path(__file__).resolve().parents[1]


# --- everywhere ----------------------------------------------------------------------------


def test_package_imports_without_tensorrt():
    code = (
        "import sys, ard_edge.engines.tensorrt as t\n"
        "assert 'tensorrt' not in sys.modules and 'pycuda' not in sys.modules, 'imported eagerly'\n"
        "assert callable(t.probe)\n"
        "assert 'tensorrt' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    "text, expected",
    [("8.5.3.1", (8, 5, 3, 1)), ("10.3.0", (10, 3, 0)), ("11.0.0.7+cuda13", (11, 0, 0, 7)), ("8.6.1.post1", (8, 6, 1, 1))],
)
def test_parse_version(text, expected):
    assert parse_version(text) == expected


def test_old_tensorrt_is_refused():
    check_supported((8, 5, 1))
    with pytest.raises(EngineError, match="8.5 or newer"):
        check_supported((8, 4, 3))


@pytest.mark.parametrize("version", [(8, 5, 3), (8, 6, 1)])
def test_weakly_typed_plans_on_8x(version):
    fp32, fp16, int8 = (precision_plan(version, p) for p in ("fp32", "fp16", "int8"))
    assert not any(p.strongly_typed for p in (fp32, fp16, int8))
    assert (fp32.onnx, fp32.builder_flags) == ("fp32", ())
    assert (fp16.onnx, fp16.builder_flags, fp16.pin_float32) == ("fp32", ("FP16", "OBEY_PRECISION_CONSTRAINTS"), True)
    assert (int8.onnx, int8.builder_flags, int8.pin_float32) == ("qdq", ("INT8",), False)
    assert network_flag_names(version, False) == ("EXPLICIT_BATCH",)


@pytest.mark.parametrize("version", [(10, 0, 1), (10, 13, 3), (11, 0, 0), (11, 4, 1)])
def test_strongly_typed_plans_from_10(version):
    plans = {p: precision_plan(version, p) for p in ("fp32", "fp16", "int8")}
    assert {p: plan.onnx for p, plan in plans.items()} == {"fp32": "fp32", "fp16": "fp16-mixed", "int8": "qdq"}
    assert all(plan.strongly_typed and plan.builder_flags == () for plan in plans.values())
    expected_flags = ("STRONGLY_TYPED",) if version[0] == 10 else ()
    assert network_flag_names(version, True) == expected_flags


def test_unknown_precision():
    with pytest.raises(EngineError, match="precision"):
        precision_plan((10, 3), "fp8")


def test_numpy_dtypes():
    assert numpy_dtype("BOOL") == np.bool_ and numpy_dtype("DataType.UINT8") == np.uint8
    assert numpy_dtype("FLOAT") == np.float32 and numpy_dtype("HALF") == np.float16
    with pytest.raises(EngineError, match="FP8"):
        numpy_dtype("FP8")


def test_parser_errors_name_their_nodes():
    nodes = [("/model/preprocess/Cast", "Cast"), ("/anomaly_map/Pad", "Pad")]
    text = format_parser_errors(
        [(1, "reflect padding is not supported\n", "ErrorCode.UNSUPPORTED_NODE"), (-1, "graph has no outputs", "ErrorCode.INVALID_GRAPH")],
        nodes,
        "export/demo.onnx",
    )
    assert text == (
        "TensorRT cannot parse export/demo.onnx (2 errors): node 1 '/anomaly_map/Pad' (Pad): reflect padding "
        "is not supported [ErrorCode.UNSUPPORTED_NODE]; graph: graph has no outputs [ErrorCode.INVALID_GRAPH]"
    )


@pytest.mark.skipif(tensorrt_importable(), reason="checks the message shown without tensorrt")
def test_engine_and_builder_need_tensorrt(tmp_path):
    from ard_edge.engines.tensorrt import TensorRTEngine, build_serialized_engine

    engine = tmp_path / "demo.engine"
    engine.write_bytes(b"plan")
    sidecar = {"backend": "tensorrt", "precision": "fp32"}
    with pytest.raises(MissingDependency, match="tensorrt"):
        TensorRTEngine(engine, sidecar=sidecar)
    with pytest.raises(MissingDependency, match="tensorrt"):
        build_serialized_engine(engine, precision="fp32")


def test_gpu_check_dry_run():
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--dry-run"], cwd=REPO, capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "dry run" in out
    for precision in ("fp32", "fp16", "int8"):
        assert f"--precision {precision}" in out
    assert "demo/export/demo.onnx" in out and "demo/data" in out
    assert "--calibration-data demo/data" in out
    assert "ard_edge" in out and ("tensorrt" in out.lower())


def test_gpu_check_rejects_unknown_options():
    done = subprocess.run(["bash", "scripts/gpu_check.sh", "--frobnicate"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "usage" in done.stderr.lower()


# --- on a GPU with TensorRT and pycuda -----------------------------------------------------


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    return exported_onnx(tmp_path_factory)


class Recorder(BuildProgress):
    def __init__(self):
        self.calls = []

    def phase_start(self, name, parent, num_steps):
        self.calls.append("phase_start")

    def step(self, name, step):
        self.calls.append("step")
        return True

    def phase_finish(self, name):
        self.calls.append("phase_finish")

    def tick(self, elapsed_s):
        self.calls.append("tick")


_REFERENCES: dict = {}


def reference(onnx_model, frames):
    """ONNX Runtime on the plain ONNX: what every engine is compared with (one session per model)."""
    from ard_edge.engines import open_engine

    if onnx_model not in _REFERENCES:
        _REFERENCES[onnx_model] = open_engine(onnx_model)
    return _REFERENCES[onnx_model].infer(frames)


@pytest.mark.gpu
@pytest.mark.parametrize("precision, score_tol", [("fp32", 1e-3), ("fp16", 2e-2)])
def test_tensorrt_engine_matches_onnxruntime(onnx_model, tmp_path, precision, score_tol):
    from ard_edge.engines import open_engine
    from ard_edge.engines.tensorrt import TensorRTEngine, current_environment

    out = tmp_path / f"m_{precision}.engine"
    cache = tmp_path / "timing.cache"
    progress = Recorder()
    req = BuildRequest(onnx=onnx_model, out=out, precision=precision, target="tensorrt",
                       batch=BatchRange(1, 2, 4), workspace_bytes=256 << 20, timing_cache=cache)
    sidecar = build_engine(req, progress=progress)
    assert progress.calls, "no build progress was reported"
    assert cache.is_file() and cache.stat().st_size > 0
    here = current_environment(0)
    assert {k: sidecar["environment"][k] for k in ("tensorrt_version", "gpu_name", "compute_capability")} == {
        k: here[k] for k in ("tensorrt_version", "gpu_name", "compute_capability")
    }
    engine = open_engine(out)
    assert isinstance(engine, TensorRTEngine) and engine.input_spec.max_batch == 4
    with engine:
        for batch in (1, 3, 4):
            frames = random_frames(batch, seed=batch)
            got, want = engine.infer(frames), reference(onnx_model, frames)
            assert got.is_anomalous.dtype == np.bool_ and got.anomaly_map.shape == (batch, 1, 64, 64)
            assert np.isfinite(got.anomaly_map).all()
            np.testing.assert_allclose(got.score, want.score, rtol=score_tol, atol=score_tol)
            np.testing.assert_array_equal(got.is_anomalous, want.is_anomalous)
            timings = engine.last_timings_ms
            assert set(timings) >= {"host_total_ms", "compute_ms", "h2d_ms", "d2h_ms", "gpu_total_ms"}
            assert timings["compute_ms"] > 0 and timings["host_total_ms"] >= timings["compute_ms"]
        with pytest.raises(EngineError, match="outside this engine's range"):
            engine.infer(random_frames(5))
    engine.close()  # twice is harmless
    with pytest.raises(EngineError, match="closed"):
        engine.infer(random_frames(1))


@pytest.mark.gpu
def test_tensorrt_int8_from_qdq(onnx_model, tmp_path):
    from ard_edge.engines import open_engine

    qdq = quantized_qdq(onnx_model, tmp_path / "m_qdq.onnx", random_frames(4, seed=11))
    out = tmp_path / "m_int8.engine"
    build_engine(BuildRequest(onnx=qdq, out=out, precision="int8", target="tensorrt", batch=BatchRange(1, 1, 2)))
    frames = random_frames(2, seed=5)
    with open_engine(out) as engine:
        got = engine.infer(frames)
    want = reference(qdq, frames)
    assert np.isfinite(got.anomaly_map).all()
    np.testing.assert_allclose(got.score, want.score, rtol=0.1, atol=0.1)


@pytest.mark.gpu
def test_engine_from_another_gpu_is_refused(onnx_model, tmp_path):
    import json

    from ard_edge.engines import open_engine
    from ard_edge.engines.sidecar import sidecar_path

    out = tmp_path / "m.engine"
    build_engine(BuildRequest(onnx=onnx_model, out=out, precision="fp32", target="tensorrt"))
    sidecar = json.loads(sidecar_path(out).read_text())
    sidecar["environment"]["gpu_name"] = "NVIDIA Jetson AGX Orin"
    sidecar_path(out).write_text(json.dumps(sidecar))
    with pytest.raises(EngineError, match=r"Jetson AGX Orin.*ard-edge build-engine .*--target tensorrt"):
        open_engine(out)
    sidecar["environment"]["gpu_name"] = "x"
    sidecar["environment"]["tensorrt_version"] = "0.0.1"
    sidecar_path(out).write_text(json.dumps(sidecar))
    with pytest.raises(EngineError, match="TensorRT 0.0.1"):
        open_engine(out)


@pytest.mark.gpu
def test_parser_errors_are_reported_by_node(onnx_model, tmp_path):
    import onnx

    broken = onnx.load(str(onnx_model))
    node = next(n for n in broken.graph.node if n.op_type == "Sqrt")
    node.op_type = "NoSuchOp"
    path = tmp_path / "broken.onnx"
    onnx.save(broken, str(path))
    with pytest.raises(EngineError, match=f"TensorRT cannot parse .*'{node.name}' \\(NoSuchOp\\)"):
        build_engine(BuildRequest(onnx=path, out=tmp_path / "b.engine", target="tensorrt"))
    assert not (tmp_path / "b.engine").exists()


# --- the builder and runner plumbing on a CPU, against a fake tensorrt + pycuda ------------------
#
# Only what cannot run here is faked: a "plan" is the parsed ONNX, and the fake execution context
# runs it with ONNX Runtime on bytes held in fake device memory. This checks our side (version
# choices, profile, flags, timing cache, progress, buffers sized once, name-based I/O, the
# context push/pop balance and that close frees everything), not TensorRT's behaviour, which the
# gpu tests above cover.

import enum  # noqa: E402
import time as _time  # noqa: E402
import types  # noqa: E402


def make_fake_tensorrt(version: str, with_monitor: bool):
    import onnx
    import onnxruntime as ort

    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.DataType = enum.Enum("DataType", "FLOAT HALF INT8 INT32 INT64 BOOL UINT8")
    trt.float32 = trt.DataType.FLOAT
    trt.NetworkDefinitionCreationFlag = enum.IntEnum(
        "NetworkDefinitionCreationFlag", "EXPLICIT_BATCH STRONGLY_TYPED", start=0
    )
    flags = "TF32 GPU_FALLBACK" if parse_version(version)[0] >= 10 else "TF32 FP16 INT8 OBEY_PRECISION_CONSTRAINTS GPU_FALLBACK"
    trt.BuilderFlag = enum.Enum("BuilderFlag", flags)
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", "WORKSPACE")
    trt.DeviceType = enum.Enum("DeviceType", "GPU DLA")
    trt.TensorIOMode = enum.Enum("TensorIOMode", "NONE INPUT OUTPUT")
    trt.LayerType = enum.Enum("LayerType", "SHAPE CONSTANT OTHER")
    trt.built = []  # (network flags, config) of every build, for assertions
    trt.networks = []
    onnx_types = {2: trt.DataType.UINT8, 1: trt.DataType.FLOAT, 9: trt.DataType.BOOL}

    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self):
            pass

    class Logger(ILogger):
        pass

    trt.ILogger, trt.Logger = ILogger, Logger
    if with_monitor:
        class IProgressMonitor:
            def __init__(self):
                pass

        trt.IProgressMonitor = IProgressMonitor

    class Tensor:
        def __init__(self, name, shape, dtype):
            self.name, self.shape, self.dtype = name, shape, dtype

    class Layer:
        """One layer per ONNX node, tensors named as in the ONNX (as the real parser keeps them)."""

        def __init__(self, node, dtypes):
            self.name = node.name
            self.type = {"Shape": trt.LayerType.SHAPE, "Constant": trt.LayerType.CONSTANT}.get(node.op_type, trt.LayerType.OTHER)
            self.inputs = [Tensor(n, None, dtypes.get(n, trt.DataType.FLOAT)) for n in node.input if n]
            self.outputs = [Tensor(n, None, dtypes.get(n, trt.DataType.FLOAT)) for n in node.output]
            self.num_inputs, self.num_outputs = len(self.inputs), len(self.outputs)
            self.precision, self.output_types = None, {}

        def get_input(self, index):
            return self.inputs[index]

        def get_output(self, index):
            return self.outputs[index]

        def set_output_type(self, index, dtype):
            self.output_types[index] = dtype

    class Network:
        def __init__(self, flags):
            self.flags, self.model, self.layers = flags, None, []

        @property
        def num_layers(self):
            return len(self.layers)

        def get_layer(self, index):
            return self.layers[index]

        @property
        def num_inputs(self):
            return len(self.model.graph.input)

        def get_input(self, index):
            value = self.model.graph.input[index]
            dims = value.type.tensor_type.shape.dim
            shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
            return Tensor(value.name, shape, onnx_types[value.type.tensor_type.elem_type])

    class ParserError:
        def __init__(self, node, desc):
            self._node, self._desc = node, desc

        def node(self):
            return self._node

        def desc(self):
            return self._desc

        def code(self):
            return "ErrorCode.UNSUPPORTED_NODE"

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        def parse(self, data):
            model = onnx.load_from_string(bytes(data))
            self.network.model = model
            inferred = onnx.shape_inference.infer_shapes(model).graph
            kinds = {1: trt.DataType.FLOAT, 10: trt.DataType.HALF, 7: trt.DataType.INT64, 9: trt.DataType.BOOL, 2: trt.DataType.UINT8}
            dtypes = {v.name: kinds.get(v.type.tensor_type.elem_type, trt.DataType.INT32)
                      for v in (*inferred.value_info, *inferred.input, *inferred.output)}
            self.network.layers = [Layer(node, dtypes) for node in model.graph.node]
            self.errors = [ParserError(i, f"No importer registered for op: {n.op_type}")
                           for i, n in enumerate(model.graph.node) if n.op_type == "NoSuchOp"]
            return not self.errors

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, index):
            return self.errors[index]

    class TimingCache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return memoryview(self.data + b"+")

    class Config:
        def __init__(self):
            self.flags, self.profiles, self.pools, self.cache = set(), [], {}, None
            self.progress_monitor = None

        def set_flag(self, flag):
            self.flags.add(flag.name)

        def clear_flag(self, flag):
            self.flags.discard(flag.name)

        def set_memory_pool_limit(self, pool, size):
            self.pools[pool.name] = size

        def add_optimization_profile(self, profile):
            self.profiles.append(profile.shapes)

        def create_timing_cache(self, data):
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, low, opt, high):
            self.shapes[name] = (tuple(low), tuple(opt), tuple(high))

    class Builder:
        num_DLA_cores = 0

        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags=0):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            trt.built.append((network.flags, config))
            trt.networks.append(network)
            monitor = config.progress_monitor
            if monitor is not None:
                monitor.phase_start("Building engine", None, 2)
                monitor.step_complete("Building engine", 0)
                monitor.step_complete("Building engine", 1)
                monitor.phase_finish("Building engine")
            else:
                _time.sleep(0.05)  # long enough for the heartbeat (patched to 10 ms)
            return memoryview(network.model.SerializeToString())

    class Context:
        def __init__(self, engine):
            self.engine, self.shapes, self.addresses = engine, {}, {}

        def set_input_shape(self, name, shape):
            low, _, high = self.engine.profile
            ok = all(a <= s <= b for a, s, b in zip(low, shape, high))
            if ok:
                self.shapes[name] = tuple(shape)
            return ok

        def get_tensor_shape(self, name):
            batch, height, width, _ = self.shapes.get("frames", self.engine.input_shape)
            return (batch, 1, height, width) if name == "anomaly_map" else (batch,)

        def set_tensor_address(self, name, address):
            self.addresses[name] = address
            return True

        def execute_async_v3(self, stream_handle):
            memory = trt.memory
            shape = self.shapes.get("frames", self.engine.input_shape)
            frames = memory[self.addresses["frames"]][: int(np.prod(shape))].view(np.uint8).reshape(shape)
            names = [o.name for o in self.engine.session.get_outputs()]
            for name, value in zip(names, self.engine.session.run(names, {"frames": frames})):
                raw = np.ascontiguousarray(value).view(np.uint8).reshape(-1)
                memory[self.addresses[name]][: raw.size] = raw
            return True

    class Engine:
        def __init__(self, data):
            model = onnx.load_from_string(data)
            self.session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
            self.names = ["frames"] + [o.name for o in model.graph.output]
            self.dtypes = {v.name: onnx_types[v.type.tensor_type.elem_type] for v in (*model.graph.input, *model.graph.output)}
            self.input_shape = tuple(Network(0).__class__.get_input(types.SimpleNamespace(model=model), 0).shape)
            low, opt, high = trt.built[-1][1].profiles[0]["frames"] if trt.built[-1][1].profiles else (self.input_shape,) * 3
            self.profile = (low, opt, high)

        @property
        def num_io_tensors(self):
            return len(self.names)

        def get_tensor_name(self, index):
            return self.names[index]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name == "frames" else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return self.dtypes[name]

        def get_tensor_shape(self, name):
            return self.input_shape

        def create_execution_context(self):
            return Context(self)

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return Engine(bytes(data))

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    trt.memory = {}  # device "address" -> bytes, shared with the fake pycuda
    return trt


def make_fake_pycuda(trt):
    driver = types.ModuleType("pycuda.driver")
    driver.log = []  # push/pop/detach/free, for the balance checks

    class ContextHandle:
        def push(self):
            driver.log.append("push")

        def detach(self):
            driver.log.append("detach")

    class Context:
        @staticmethod
        def pop():
            driver.log.append("pop")

    class Device:
        @staticmethod
        def count():
            return 1

        def __init__(self, index):
            self.index = index

        def name(self):
            return "Fake GPU"

        def compute_capability(self):
            return (8, 9)

        def retain_primary_context(self):
            return ContextHandle()

    class Allocation:
        def __init__(self, nbytes):
            self.address = 4096 * (len(trt.memory) + 1)
            trt.memory[self.address] = np.zeros(nbytes, np.uint8)

        def __int__(self):
            return self.address

        def free(self):
            driver.log.append("free")
            del trt.memory[self.address]

    class Stream:
        handle = 1

        def synchronize(self):
            pass

    class Event:
        def record(self, stream=None):
            self.t = _time.perf_counter()

        def time_since(self, other):
            return (self.t - other.t) * 1e3 + 1e-6

    def memcpy_htod_async(dest, src, stream=None):
        raw = np.ascontiguousarray(src).view(np.uint8).reshape(-1)
        trt.memory[int(dest)][: raw.size] = raw

    def memcpy_dtoh_async(dest, src, stream=None):
        raw = dest.view(np.uint8).reshape(-1)
        raw[...] = trt.memory[int(src)][: raw.size]

    driver.init = lambda flags=0: None
    driver.get_driver_version = lambda: 12040
    driver.Device, driver.Context, driver.Stream, driver.Event = Device, Context, Stream, Event
    driver.pagelocked_empty = lambda shape, dtype: np.empty(shape, dtype)
    driver.mem_alloc = Allocation
    driver.memcpy_htod_async, driver.memcpy_dtoh_async = memcpy_htod_async, memcpy_dtoh_async
    package = types.ModuleType("pycuda")
    package.driver = driver
    return package, driver


@pytest.fixture(params=[("10.3.0.26", True), ("8.6.1.6", False)], ids=["trt10", "trt8.6"])
def fake_tensorrt(request, monkeypatch):
    import ard_edge.engines.tensorrt.builder as builder

    version, with_monitor = request.param
    trt = make_fake_tensorrt(version, with_monitor)
    package, driver = make_fake_pycuda(trt)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    monkeypatch.setattr(builder, "HEARTBEAT_S", 0.01)
    return trt, driver


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_plumbing_with_a_fake(onnx_model, tmp_path, fake_tensorrt, precision):
    from ard_edge.engines import open_engine
    from ard_edge.engines.sidecar import read_sidecar
    from ard_edge.engines.tensorrt import TensorRTEngine

    trt, driver = fake_tensorrt
    out, cache = tmp_path / "m.engine", tmp_path / "cache" / "timing.cache"
    progress = Recorder()
    assert choose_target_auto() == "tensorrt"
    req = BuildRequest(onnx=onnx_model, out=out, precision=precision, target="auto", batch=BatchRange(1, 2, 4),
                       workspace_bytes=64 << 20, timing_cache=cache)
    sidecar = build_engine(req, progress=progress)

    flags, config = trt.built[-1]
    modern = trt.__version__.startswith("10")
    assert flags == (1 << (1 if modern else 0))  # STRONGLY_TYPED on 10, EXPLICIT_BATCH on 8.x
    expected = {"fp32": set(), "fp16": set() if modern else {"FP16", "OBEY_PRECISION_CONSTRAINTS"}}[precision]
    assert config.flags == expected  # TF32 cleared
    assert config.pools == {"WORKSPACE": 64 << 20}
    assert config.profiles == [{"frames": ((1, 64, 64, 1), (2, 64, 64, 1), (4, 64, 64, 1))}]
    assert cache.read_bytes() == b"+"  # the new cache was saved
    assert progress.calls == (["phase_start", "step", "step", "phase_finish"] if modern else ["tick"] * len(progress.calls))
    assert progress.calls
    assert sidecar["environment"]["gpu_name"] == "Fake GPU" and sidecar["environment"]["compute_capability"] == "8.9"
    assert sidecar["build"]["onnx_variant"] == ("fp16-mixed" if modern and precision == "fp16" else "fp32")
    assert read_sidecar(out)["backend"] == "tensorrt"
    network = trt.networks[-1]
    pinned = {layer.name for layer in network.layers if layer.precision is not None}
    assert sidecar["build"]["float32_pinned_layers"] == len(pinned)
    if precision == "fp16" and not modern:
        from ard_edge.engines.onnx_graph import split_graph

        allowed = split_graph(network.model).float_nodes
        assert len(pinned) > 40 and pinned <= allowed
        assert all(layer.precision == trt.float32 for layer in network.layers if layer.name in pinned)
        assert not [name for name in pinned if name.startswith("/model/teacher/") and "Conv" in name]
    else:
        assert pinned == set()

    driver.log.clear()
    engine = open_engine(out)
    assert isinstance(engine, TensorRTEngine) and engine.name == f"tensorrt:{precision}:m.engine"
    allocations = len(trt.memory)
    with engine:
        for batch in (1, 3, 4):
            frames = random_frames(batch, seed=batch)
            got, want = engine.infer(frames), reference(onnx_model, frames)
            tolerance = 1e-5 if precision == "fp32" or not modern else 1e-2
            # Relative too: the test model's heads are not z-scored, so its scores are ~100.
            np.testing.assert_allclose(got.score, want.score, rtol=tolerance, atol=tolerance)
            np.testing.assert_array_equal(got.is_anomalous, want.is_anomalous)
            assert got.is_anomalous.dtype == np.bool_
            assert engine.last_timings_ms["compute_ms"] > 0
        assert len(trt.memory) == allocations == 5  # allocated once, at open, for the max batch
        with pytest.raises(EngineError, match="outside this engine's range"):
            engine.infer(random_frames(5))
    engine.close()
    assert trt.memory == {}
    assert driver.log.count("push") == driver.log.count("pop") and driver.log[-1] == "detach"
    assert driver.log.count("free") == 5


def choose_target_auto() -> str:
    from ard_edge.deploy.build import choose_target

    return choose_target("auto")[0]


def test_tensorrt_parser_errors_with_a_fake(onnx_model, tmp_path, fake_tensorrt):
    import onnx

    broken = onnx.load(str(onnx_model))
    node = next(n for n in broken.graph.node if n.op_type == "Sqrt")
    node.op_type = "NoSuchOp"
    path = tmp_path / "broken.onnx"
    onnx.save(broken, str(path))
    out = tmp_path / "b.engine"
    with pytest.raises(EngineError, match=f"node \\d+ '{node.name}' \\(NoSuchOp\\): No importer registered"):
        build_engine(BuildRequest(onnx=path, out=out, target="tensorrt", batch=BatchRange(1, 1, 1)))
    assert list(tmp_path.iterdir()) == [path]


def test_foreign_engine_is_refused_with_a_fake(onnx_model, tmp_path, fake_tensorrt):
    import json

    from ard_edge.engines import open_engine
    from ard_edge.engines.sidecar import sidecar_path

    trt, driver = fake_tensorrt
    out = tmp_path / "m.engine"
    build_engine(BuildRequest(onnx=onnx_model, out=out, target="tensorrt"))
    sidecar = json.loads(sidecar_path(out).read_text())
    sidecar["environment"]["compute_capability"] = "7.2"
    sidecar_path(out).write_text(json.dumps(sidecar))
    driver.log.clear()
    with pytest.raises(EngineError, match=r"compute capability 7.2\) but this machine has Fake GPU \(compute capability 8.9\)"):
        open_engine(out)
    assert driver.log == []  # refused before touching the GPU
