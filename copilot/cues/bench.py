"""Latency of the cue model against the plain all-MiniLM-L6-v2 graph, in the same run, on one core.

    python -m copilot.cues bench [--runs 400]

The baseline is the plain sentence-embedding graph (encoder, mean pooling, L2 normalisation) cut out of our fp32
graph with onnx.utils.extract_model: the same architecture and operators all-MiniLM-L6-v2 exports to, without our
emotion head. Against it: our fp32 graph, our int8 graph (what serving runs) and the full served detector.
Snippets are customer-service utterances of up to 32 tokens. Runs alternate between the graphs so that machine
noise falls on all alike.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from copilot.cues import load_detector
from copilot.cues.evaluate import read_cs_set
from copilot.cues.model import DEFAULT_MODEL_DIR, FP32_GRAPH, CueModel


def plain_graph(folder: Path, out_dir: Path) -> Path:
    """Write the embedding-only subgraph of cues.onnx to out_dir and return its path."""
    import onnx.utils

    path = out_dir / "plain.onnx"
    onnx.utils.extract_model(str(folder / "cues.onnx"), str(path), ["input_ids", "attention_mask"], ["embedding"])
    for name in ("tokenizer.json", "labels.json"):
        (out_dir / name).write_bytes((folder / name).read_bytes())
    return path


def snippets(model: CueModel, limit: int = 32) -> list[str]:
    """Customer-service utterances that tokenise to at most `limit` tokens."""
    texts = [item["text"] for item in read_cs_set()]
    return [t for t in texts if len(model.tokenizer.encode(t).ids) <= limit]


def timed(fn, text: str) -> float:
    """Milliseconds one call takes."""
    start = time.perf_counter()
    fn(text)
    return (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m copilot.cues bench")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--runs", type=int, default=400)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    detector = load_detector(args.model, threads=1)
    load_s = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        plain_graph(args.model, Path(tmp))
        plain = CueModel(Path(tmp), threads=1, graph="plain.onnx")
        fp32 = CueModel(args.model, threads=1, graph=FP32_GRAPH)
        texts = snippets(detector.model)
        runners = {
            "plain_minilm_graph": lambda t: plain.session.run(None, dict(zip(("input_ids", "attention_mask"),
                                                                             plain.tokenize([t])))),
            "cue_graph_fp32": lambda t: fp32.encode([t]),
            "cue_graph_int8": lambda t: detector.model.encode([t]),
            "detector_full": detector.analyse,
        }
        for fn in runners.values():
            for text in texts[:20]:
                fn(text)
        samples: dict[str, list[float]] = {name: [] for name in runners}
        for i in range(args.runs):
            text = texts[i % len(texts)]
            for name, fn in runners.items():
                samples[name].append(timed(fn, text))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    p95 = {name: sorted(values)[int(0.95 * len(values))] for name, values in samples.items()}
    for name in runners:
        print(f"{name:20} median {medians[name]:6.2f} ms   p95 {p95[name]:6.2f} ms")
    ratio = medians["cue_graph_fp32"] / medians["plain_minilm_graph"]
    served = medians["cue_graph_int8"] / medians["plain_minilm_graph"]
    print(f"cue graph / plain graph: fp32 {ratio:.3f}x, int8 (served) {served:.3f}x; served model load {load_s:.2f} s; "
          f"RSS after load {rss_mb:.0f} MB")
    print(json.dumps({"snippets": len(texts), "runs": args.runs, "median_ms": {k: round(v, 3) for k, v in medians.items()},
                      "p95_ms": {k: round(v, 3) for k, v in p95.items()}, "ratio_cue_vs_plain": round(ratio, 3),
                      "ratio_served_int8_vs_plain": round(served, 3),
                      "load_s": round(load_s, 3), "rss_after_load_mb": round(rss_mb, 1)}))
    return 0
