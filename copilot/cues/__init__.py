"""Cue detection: the taxonomy, the ONNX model adapter, the phrase detectors and their command line."""
from __future__ import annotations

from concurrent.futures import Executor
from pathlib import Path


def load_detector(folder: Path | None = None, threads: int = 1, occlusion: bool = True, graph: str | None = None,
                  executor: Executor | None = None):
    """The cue detector over the committed model folder (index/model, int8 graph, unless given); forward passes run
    on the executor when one is given."""
    from copilot.cues.detector import CueDetector, Thresholds
    from copilot.cues.model import DEFAULT_GRAPH, DEFAULT_MODEL_DIR, CueModel, read_thresholds

    folder = Path(folder or DEFAULT_MODEL_DIR)
    graph = graph or DEFAULT_GRAPH
    return CueDetector(CueModel(folder, threads=threads, graph=graph, executor=executor),
                       Thresholds.from_dict(read_thresholds(folder, graph)), occlusion)
