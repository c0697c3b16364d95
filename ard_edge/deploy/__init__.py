"""Deployment: ``build-engine`` calibrates (when INT8 asks for it), then builds, then writes the sidecar.

It sits above :mod:`ard_edge.calibration` and :mod:`ard_edge.engines` and orchestrates both, so
neither has to import the other.
"""

from ard_edge.deploy.build import TARGETS, BuildRequest, build_engine, check_request, choose_target

__all__ = ["TARGETS", "BuildRequest", "build_engine", "check_request", "choose_target"]
