"""NVIDIA Triton Inference Server backend: a served model opened by address (tritonclient, lazily)."""

from ard_edge.engines.triton.url import TritonUrl, is_triton_url, parse_triton_url

__all__ = ["TritonUrl", "is_triton_url", "parse_triton_url"]
