"""The package version: a leaf every module and ``pyproject.toml`` read, written nowhere else."""

__version__ = "0.1.0"
