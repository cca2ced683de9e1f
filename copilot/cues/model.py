"""The ONNX cue model adapter: tokenise, run one forward pass, return emotion probabilities and embeddings.

The model is a folder (sentence-transformers style): cues.onnx (fp32, the export), cues-int8.onnx (what serving
runs by default), tokenizer.json, labels.json (the 28 GoEmotions labels), cues.json (the twelve cue heads, in the
order of the graph's `cues` and `evidence` outputs), and one <graph>.thresholds.json per graph.
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
    """Model outputs for a batch of texts. Graphs with cue heads also give the twelve cue probabilities and, per
    text, each token's evidence probability per cue with the token's character offsets in the text it read."""

    emotions: np.ndarray  # (n, 28) probabilities
    embeddings: np.ndarray  # (n, 384) L2-normalised
    cues: np.ndarray | None = None  # (n, 12) probabilities, in the order of cues.json
    evidence: tuple[np.ndarray, ...] = ()  # per text: (tokens, 12) probabilities
    offsets: tuple[tuple[tuple[int, int], ...], ...] = ()  # per text: each token's (start, end); (0, 0) for specials


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
        cues = folder / "cues.json"
        self.cues: list[str] = json.loads(cues.read_text()) if cues.is_file() else []
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(folder / graph), options, providers=["CPUExecutionProvider"])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.executor = executor

    def tokenize(self, texts: list[str]) -> list:
        """One tokenizer encoding (ids and offsets, unpadded) per text."""
        return self.tokenizer.encode_batch(texts)

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
        return self.executor.submit(self._run, self.tokenize(texts)).result

    def encode_here(self, texts: list[str]) -> Encoded:
        """One forward pass on the calling thread, whatever the executor."""
        if not texts:
            return Encoded(np.zeros((0, len(self.labels)), np.float32), np.zeros((0, 384), np.float32),
                           np.zeros((0, len(self.cues)), np.float32) if self.cues else None)
        return self._run(self.tokenize(texts))

    def _run(self, encodings: list) -> Encoded:
        """One forward pass per text, never a padded batch: the int8 graph quantizes its activations over the
        whole input tensor, so a text's scores would shift with its batch-mates and its padding (by up to 0.135
        measured). Alone, a text scores the same in serving, the CLI and the evaluations."""
        runs = []
        for e in encodings:
            ids = np.array([e.ids], dtype=np.int64)
            runs.append(dict(zip(self.output_names, self.session.run(
                None, {"input_ids": ids, "attention_mask": np.ones_like(ids)}))))
        emotions = np.concatenate([r["emotions"] for r in runs])
        embeddings = np.concatenate([r["embedding"] for r in runs])
        if "cues" not in self.output_names:
            return Encoded(emotions, embeddings)
        return Encoded(emotions, embeddings, np.concatenate([r["cues"] for r in runs]),
                       tuple(r["evidence"][0] for r in runs), tuple(tuple(e.offsets) for e in encodings))

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

