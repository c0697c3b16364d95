"""Imports point one way: no module imports a higher layer, not even inside a function.

The layer order is written once, here, top to bottom. A unit is a path below ``ard_edge/``
(a package, a module, or a package's ``__init__``); a module belongs to the longest unit that
contains it. A module may import its own unit and any unit in a lower layer, never a sibling in
its own layer and never one above.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ard_edge"

LAYERS = (
    ("__main__",),
    ("cli",),
    ("__init__",),  # the package face: open_engine, the error names, __version__
    ("bench",),  # bench --pipeline measures the runtime
    ("runtime/live",),  # run --http: the live page reads the runtime's sinks and status
    ("runtime", "training"),
    ("deploy",),  # build-engine: calibrate, then build
    ("calibration", "export"),
    ("engines/__init__",),  # open_engine: picks the backend
    ("engines/onnxruntime", "engines/openvino", "engines/tensorrt", "engines/torch_engine", "engines/triton"),
    ("engines",),  # the Engine interface and what every backend shares
    ("model", "camera", "metrics"),
    ("data",),
    ("config", "_io"),  # leaves every package uses
    ("errors", "_version", "_graph"),
)
RANK = {unit: rank for rank, layer in enumerate(LAYERS) for unit in layer}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _dotted(path: Path) -> str:
    parts = ["ard_edge", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("").as_posix()
    matches = [unit for unit in RANK if rel == unit or rel.startswith(unit + "/")]
    assert matches, f"{rel} is in no layer: add it to LAYERS"
    return max(matches, key=len)


@functools.cache
def _file_of(dotted: str) -> Path | None:
    """The file a dotted ard_edge module name refers to, or None when it names no module."""
    base = PACKAGE.parent.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> list[tuple[int, Path]]:
    """(line, file) of every ard_edge module ``path`` imports, at any depth of the code."""
    tree = ast.parse(path.read_text(), str(path))
    package = _dotted(path) if path.name == "__init__.py" else _dotted(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against this module's package
                module = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], module]).rstrip(".")
            # `from pkg import name`: a submodule when one exists, else a name in pkg/__init__.py.
            names = [f"{module}.{alias.name}" if _file_of(f"{module}.{alias.name}") else module for alias in node.names]
        else:
            continue
        for name in names:
            if name == "ard_edge" or name.startswith("ard_edge."):
                target = _file_of(name)
                assert target is not None, f"{path}:{node.lineno} imports {name}, which does not exist"
                found.append((node.lineno, target))
    return found


def _edges() -> list[tuple[Path, int, Path]]:
    return [(path, line, target) for path in _modules() for line, target in _imports(path)]


def test_every_module_has_a_layer():
    for path in _modules():
        _unit(path)


def test_no_lower_layer_imports_a_higher_one():
    upward = []
    for path, line, target in _edges():
        source, destination = _unit(path), _unit(target)
        if source != destination and RANK[destination] <= RANK[source]:
            upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({source}) imports {destination}")
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def _package(path: Path) -> str:
    """The top-level package (or module) of ard_edge a file belongs to."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for path, _, target in _edges():
        if _package(path) != _package(target):
            graph.setdefault(_package(path), set()).add(_package(target))

    def cycle_from(node: str, trail: tuple[str, ...]) -> tuple[str, ...] | None:
        if node in trail:
            return trail[trail.index(node):] + (node,)
        for nxt in sorted(graph.get(node, ())):
            if found := cycle_from(nxt, (*trail, node)):
                return found
        return None

    for start in graph:
        assert cycle_from(start, ()) is None, " -> ".join(cycle_from(start, ()))


def test_private_modules_stay_inside_their_package():
    """``_name.py`` inside a package is that package's own; the top-level leaves are everyone's."""
    leaks = []
    for path, line, target in _edges():
        private = target.name.startswith("_") and target.name != "__init__.py"
        if private and target.parent != PACKAGE and target.parent not in (path.parent, *path.parents):
            leaks.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target.relative_to(PACKAGE.parent)}")
    assert not leaks, "private modules used from outside their package:\n" + "\n".join(leaks)


@pytest.mark.parametrize("source, target", [("engines/base.py", "deploy/build.py"), ("model/fused.py", "export/__init__.py")])
def test_the_checker_sees_an_upward_import_inside_a_function(tmp_path, monkeypatch, source, target):
    """A function-level import counts: write one into a copy of the tree and watch the check fail."""
    import shutil
    import sys

    copy = tmp_path / "ard_edge"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    module = ".".join(["ard_edge", *Path(target).with_suffix("").parts]).removesuffix(".__init__")
    (copy / source).write_text((copy / source).read_text() + f"\n\ndef _late():\n    import {module}\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", copy)
    _file_of.cache_clear()
    try:
        with pytest.raises(AssertionError, match="imports that point up"):
            test_no_lower_layer_imports_a_higher_one()
    finally:
        _file_of.cache_clear()
