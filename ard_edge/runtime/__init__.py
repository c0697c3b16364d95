"""The streaming runtime: camera frames -> engine -> PASS/FAIL/ERROR decisions, logs and evidence.

Example::

    from ard_edge import open_engine
    from ard_edge.camera import open_source
    from ard_edge.runtime import DecisionLog, RuntimeConfig, run_pipeline

    with open_engine("model.onnx") as engine, open_source("cam0") as camera:
        summary = run_pipeline(camera, engine, RuntimeConfig(batch=4), [DecisionLog("out")], max_frames=1000)
    print(summary.to_dict())
"""

from ard_edge.runtime.config import AppConfig, RuntimeConfig, load_app_config
from ard_edge.runtime.decision import ERROR, FAIL, PASS, VERDICTS, Decision
from ard_edge.runtime.inference import InferenceStage, batch_size_for
from ard_edge.runtime.pipeline import Pipeline, run_pipeline
from ard_edge.runtime.preprocess import crop_roi, prepare_frame
from ard_edge.runtime.sinks import DECISIONS_NAME, DecisionLog, EvidenceSaver, RunInfo, Sink
from ard_edge.runtime.summary import LiveStatus, RunSummary

__all__ = [
    "DECISIONS_NAME",
    "ERROR",
    "FAIL",
    "PASS",
    "VERDICTS",
    "AppConfig",
    "Decision",
    "DecisionLog",
    "EvidenceSaver",
    "InferenceStage",
    "LiveStatus",
    "Pipeline",
    "RunInfo",
    "RunSummary",
    "RuntimeConfig",
    "Sink",
    "batch_size_for",
    "crop_roi",
    "load_app_config",
    "prepare_frame",
    "run_pipeline",
]
