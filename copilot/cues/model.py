"""The ONNX cue model adapter: tokenise, run one forward pass, return emotion probabilities and embeddings.

The model is a folder (sentence-transformers style): cues.onnx (fp32, the export), cues-int8.onnx (what serving
runs by default), tokenizer.json, labels.json, and one <graph>.thresholds.json per graph.
Nothing outside this module imports onnxruntime.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "index" / "model"
FP32_GRAPH = "cues.onnx"
INT8_GRAPH = "cues-int8.onnx"
DEFAULT_GRAPH = INT8_GRAPH


class ModelNotFound(RuntimeError):
    """The model folder lacks a file that serving needs."""


@dataclass(frozen=True)
class Encoded:
    """Model outputs for a batch of texts."""

    emotions: np.ndarray  # (n, 28) probabilities
    embeddings: np.ndarray  # (n, 384) L2-normalised


class CueModel:
    """One ONNX session and its tokenizer; safe to share between threads (onnxruntime sessions are).

    With an executor (the event-loop server gives it a pool of native threads), forward passes run there: they
    release the GIL, so the event loop goes on serving, and the caller can do other work while a pass runs.
    """

    def __init__(self, folder: Path = DEFAULT_MODEL_DIR, threads: int = 1, max_tokens: int = 128,
                 graph: str = DEFAULT_GRAPH, executor: Executor | None = None) -> None:
        folder = Path(folder)
        for name in (graph, "tokenizer.json", "labels.json"):
            if not (folder / name).is_file():
                raise ModelNotFound(f"{folder / name} is missing; see README 'Retraining the cue model'")
        self.folder = folder
        self.graph = graph
        self.labels: list[str] = json.loads((folder / "labels.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(folder / graph), options, providers=["CPUExecutionProvider"])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.executor = executor

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask, padded to the longest text in the batch."""
        batch = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
        return ids, mask

    def encode(self, texts: list[str]) -> Encoded:
        """Emotion probabilities and sentence embeddings for texts, in one forward pass."""
        return self.start(texts)()

    def start(self, texts: list[str]) -> Callable[[], Encoded]:
        """Begin encoding texts and return a function that waits for the result. With an executor, the forward
        pass runs there and the caller can work meanwhile (tokenising stays here: it is short and holds the GIL,
        which the pass does not); without one, the pass runs at once."""
        if self.executor is None or not texts:
            done = self.encode_here(texts)
            return lambda: done
        return self.executor.submit(self._run, *self.tokenize(texts)).result

    def encode_here(self, texts: list[str]) -> Encoded:
        """One forward pass on the calling thread, whatever the executor."""
        if not texts:
            return Encoded(np.zeros((0, len(self.labels)), np.float32), np.zeros((0, 384), np.float32))
        return self._run(*self.tokenize(texts))

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> Encoded:
        outputs = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
        named = dict(zip(self.output_names, outputs))
        return Encoded(named["emotions"], named["embedding"])

    def embed(self, texts: list[str]) -> np.ndarray:
        """Sentence embeddings only (same pass; the emotion head costs next to nothing)."""
        return self.encode(texts).embeddings

    def embed_here(self, texts: list[str]) -> np.ndarray:
        """Sentence embeddings computed on the calling thread, whatever the executor: for bulk work that runs on
        a thread of its own, so that it never queues ahead of live snippets."""
        return self.encode_here(texts).embeddings


def thresholds_path(folder: Path, graph: str) -> Path:
    """Where a graph's dev-tuned thresholds live: cues.onnx -> cues.thresholds.json."""
    return Path(folder) / f"{Path(graph).stem}.thresholds.json"


def read_thresholds(folder: Path = DEFAULT_MODEL_DIR, graph: str = DEFAULT_GRAPH) -> dict:
    """The dev-tuned thresholds written by `python -m copilot.cues.tune` for one graph."""
    path = thresholds_path(folder, graph)
    if not path.is_file():
        raise ModelNotFound(f"{path} is missing; run python -m copilot.cues.tune --graph {graph}")
    return json.loads(path.read_text())

