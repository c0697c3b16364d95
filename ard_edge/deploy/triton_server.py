"""A local ``tritonserver``: the real binary that the ``nvidia-pytriton`` wheel ships (2.51, CPU here).

For trying a model repository on one machine, for the tests and for the benchmarks. PyTriton's own
``Triton.bind()`` is not used (it fails on Python 3.11.7, pytriton issue #51): the binary is run
directly, with a backend directory holding the wheel's Python backend and the stub for this
Python, the wheel's bundled libraries on ``LD_LIBRARY_PATH``, and free loopback ports. A GPU
server runs NVIDIA's container instead (README, "Serving from Triton").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ard_edge._io import atomic_open
from ard_edge.errors import EngineError, MissingDependency

_WHEEL = "nvidia-pytriton==0.7.0"


def wheel_root() -> Path:
    """The ``pytriton/tritonserver`` folder of the installed wheel (found without importing pytriton)."""
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("pytriton", "triton") from None
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    if not (root / "bin" / "tritonserver").is_file():
        raise EngineError(f"{root} has no bin/tritonserver: reinstall it with pip install --no-deps '{_WHEEL}'")
    return root


def python_backend_paths() -> list[str]:
    """What a Python-backend ``model.py`` needs on ``sys.path`` to run ard-edge from this environment.

    First NumPy 1 (``make`` installs it into ``<venv>/triton-python``): the wheel's stub is built
    against NumPy 1, and with NumPy 2 its output tensors come back empty. Then ard-edge's source
    root (an editable install's ``.pth`` is not read there) and this environment's site-packages.
    """
    import site

    stub_numpy = Path(sys.prefix) / "triton-python"
    paths = [stub_numpy] if stub_numpy.is_dir() else []
    paths += [Path(__file__).resolve().parents[2], *map(Path, site.getsitepackages())]
    return [str(p) for p in paths]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalTritonServer:
    """``tritonserver --model-repository REPOSITORY`` on loopback; a context manager that always stops it.

    Args:
        repository: the model repository to serve.
        python_paths: passed as ``PYTHONPATH`` for Python-backend models (default:
            :func:`python_backend_paths`). The stub embeds the
            system libpython in isolated mode, which ignores the variable: a ``model.py`` that
            needs this virtual environment adds these entries to ``sys.path`` itself.
        log_path: the server's stdout and stderr go here (a temporary file by default).
        grpc_port, http_port: loopback ports; free ones by default. Reusing them after a
            :meth:`stop` restarts "the same" server for clients that keep their address.
        extra_args: more tritonserver options (e.g. ``--model-control-mode=explicit``).
    """

    def __init__(self, repository: str | Path, python_paths: Sequence[str | Path] | None = None,
                 log_path: str | Path | None = None, grpc_port: int | None = None, http_port: int | None = None,
                 extra_args: Sequence[str] = ()):
        self.repository = Path(repository)
        self.python_paths = python_backend_paths() if python_paths is None else [str(p) for p in python_paths]
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.metrics_port = free_port()
        self._workdir = Path(tempfile.mkdtemp(prefix="ard-edge-triton-"))
        self.log_path = Path(log_path) if log_path else self._workdir / "tritonserver.log"
        self.extra_args = list(extra_args)
        self._process: subprocess.Popen | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def _backend_directory(self, root: Path) -> Path:
        """The wheel's Python backend with the stub for this interpreter beside it, as tritonserver expects."""
        backends = self._workdir / "backends"
        python = backends / "python"
        if not python.is_dir():
            stub = root / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / "triton_python_backend_stub"
            if not stub.is_file():
                raise EngineError(f"the {_WHEEL} wheel has no Python backend stub for Python "
                                  f"{sys.version_info.major}.{sys.version_info.minor} ({stub})")
            shutil.copytree(root / "backends" / "python", python, ignore=shutil.ignore_patterns("__pycache__"))
            (python / stub.name).symlink_to(stub)
        return backends

    def command(self) -> list[str]:
        root = wheel_root()
        return [str(root / "bin" / "tritonserver"), "--model-repository", str(self.repository),
                "--backend-directory", str(self._backend_directory(root)),
                "--grpc-address", "127.0.0.1", "--grpc-port", str(self.grpc_port),
                "--http-address", "127.0.0.1", "--http-port", str(self.http_port),
                "--metrics-address", "127.0.0.1", "--metrics-port", str(self.metrics_port),
                "--allow-gpu-metrics", "false", "--exit-timeout-secs", "5", "--log-verbose", "0", *self.extra_args]

    def start(self, timeout_s: float = 120.0, wait: str = "ready") -> LocalTritonServer:
        """Start the server and wait until it is ``ready`` (or only ``live``); EngineError with its log's errors if not."""
        if self._process is not None and self._process.poll() is None:
            return self
        root = wheel_root()
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(root.parent.parent / "nvidia_pytriton.libs"),
                                                               env.get("LD_LIBRARY_PATH")]))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [*self.python_paths, env.get("PYTHONPATH")]))
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                             start_new_session=True)  # its stubs go with it on stop()
        self._wait(wait, timeout_s)
        return self

    def _wait(self, state: str, timeout_s: float) -> None:
        deadline_s = time.monotonic() + timeout_s
        while time.monotonic() < deadline_s:
            if self._process.poll() is not None:
                raise EngineError(f"tritonserver exited with status {self._process.returncode}: {self.log_tail()}")
            with contextlib.suppress(urllib.error.URLError, OSError):
                with urllib.request.urlopen(f"http://{self.http_url}/v2/health/{state}", timeout=1.0) as response:
                    if response.status == 200:
                        return
            time.sleep(0.2)
        self.stop()
        raise EngineError(f"tritonserver was not {state} within {timeout_s:g} s: {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        """The server's error lines (``E...``) and its last line: why it did not start."""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").splitlines()
            errors = [line for line in text if line.startswith("E") and "CudaDriverHelper" not in line]
            return " | ".join([*errors[-lines:], *text[-1:]]) or "(empty log)"
        return f"(no log at {self.log_path})"

    def kill(self) -> None:
        """Kill the server and its stubs at once (SIGKILL): a crash, as a test of the clients needs."""
        self._signal(signal.SIGKILL, wait_s=10.0)

    def stop(self) -> None:
        """Stop it gracefully (SIGTERM, SIGKILL after a grace period); harmless twice."""
        self._signal(signal.SIGTERM, wait_s=15.0)

    def _signal(self, signum: int, wait_s: float) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # stubs left behind by a graceful exit

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> LocalTritonServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()


def as_python_backend(model_dir: str | Path, model_py: str | Path) -> None:
    """Serve a ``build-engine --target triton`` model through the Python backend running ``model_py``.

    The wheel's server has the Python backend only: ``model_py`` (e.g. the tests' stand-in, which
    runs the ONNX beside it with ONNX Runtime) goes into every version folder, and config.pbtxt
    keeps everything the writer put there but the backend's name.
    """
    model_dir = Path(model_dir)
    config = model_dir / "config.pbtxt"
    text = config.read_text()
    if 'backend: "onnxruntime"' not in text:
        raise EngineError(f"{config} does not name the onnxruntime backend: not an ard-edge repository of an ONNX")
    for version in (p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()):
        shutil.copyfile(model_py, version / "model.py")
    with atomic_open(config) as handle:
        handle.write(text.replace('backend: "onnxruntime"', 'backend: "python"', 1))
