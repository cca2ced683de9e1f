"""Latency of the cue model against the plain all-MiniLM-L6-v2 graph, in the same run, on one core.

    python -m copilot.cues bench [--runs 400] [--against OLD_MODEL_FOLDER]

The baseline is the plain sentence-embedding graph (encoder, mean pooling, L2 normalisation) cut out of our fp32
graph with onnx.utils.extract_model: the same architecture and operators all-MiniLM-L6-v2 exports to, without our
heads. Against it: our fp32 graph, our int8 graph (what serving runs), the full served detector (rules and spans
included) and, with --against, the int8 graph of an older model folder. Snippets are customer-service utterances of
up to 32 tokens, every one carrying a cue (the emotion-dense case: spans are worked out for each). Runs alternate
between the graphs so that machine noise falls on all alike.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from copilot.cues import load_detector
from copilot.cues.evaluate import read_cs_set
from copilot.cues.model import DEFAULT_MODEL_DIR, FP32_GRAPH, INT8_GRAPH, CueModel


def plain_graph(folder: Path, out_dir: Path) -> Path:
    """Write the embedding-only subgraph of cues.onnx to out_dir and return its path."""
    import onnx.utils

    path = out_dir / "plain.onnx"
    onnx.utils.extract_model(str(folder / "cues.onnx"), str(path), ["input_ids", "attention_mask"], ["embedding"])
    for name in ("tokenizer.json", "labels.json"):
        (out_dir / name).write_bytes((folder / name).read_bytes())
    return path


def snippets(model: CueModel, limit: int = 32) -> list[str]:
    """Customer-service utterances with at least one cue that tokenise to at most `limit` tokens."""
    texts = [item["text"] for item in read_cs_set() if item["cues"]]
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
    parser.add_argument("--against", type=Path, help="an older model folder whose int8 graph to time as well")
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
        def bare(model: CueModel):
            def run(text: str):
                ids = np.array([model.tokenize([text])[0].ids], dtype=np.int64)
                return model.session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
            return run

        runners = {
            "plain_minilm_graph": bare(plain),
            "cue_graph_fp32": lambda t: fp32.encode([t]),
            "cue_graph_int8": lambda t: detector.model.encode([t]),
            "detector_full": detector.analyse,
        }
        if args.against:  # both bare session runs: the same work around each pass
            runners["cue_graph_int8_pass"] = bare(detector.model)
            runners["older_int8_graph_pass"] = bare(CueModel(args.against, threads=1, graph=INT8_GRAPH))
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
    spans = p95["detector_full"] / p95["cue_graph_int8"]
    print(f"whole detector (rules and spans) / its forward pass, p95: {spans:.3f}x")
    older = {}
    if args.against:
        older = {"ratio_int8_vs_older_int8": round(medians["cue_graph_int8_pass"] / medians["older_int8_graph_pass"], 3)}
        print(f"int8 graph / older int8 graph, median: {older['ratio_int8_vs_older_int8']:.3f}x")
    print(json.dumps({"snippets": len(texts), "runs": args.runs, "median_ms": {k: round(v, 3) for k, v in medians.items()},
                      "p95_ms": {k: round(v, 3) for k, v in p95.items()}, "ratio_cue_vs_plain": round(ratio, 3),
                      "ratio_served_int8_vs_plain": round(served, 3),
                      "ratio_detector_vs_pass_p95": round(spans, 3), **older,
                      "load_s": round(load_s, 3), "rss_after_load_mb": round(rss_mb, 1)}))
    return 0
