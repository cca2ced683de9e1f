"""Command line for the cue detector.

    python -m copilot.cues "some text"              cues, scores and spans, for a person
    python -m copilot.cues score < texts.jsonl      one JSON line per {"text": ...} line
    python -m copilot.cues eval --goemotions DIR    GoEmotions test and customer-service set reports
    python -m copilot.cues bench                    latency against the plain all-MiniLM-L6-v2 graph
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from copilot.cues import load_detector
from copilot.cues.taxonomy import Analysis

COMMANDS = ("score", "eval", "bench")


def describe(analysis: Analysis) -> str:
    """A readable account of one analysis: each cue, its score and the words that carried it."""
    if not analysis.cues:
        return "no cues"
    lines = []
    for hit in analysis.cues:
        words = ", ".join(repr(analysis.text[s:e]) for s, e in hit.spans) or "(no single words)"
        lines.append(f"{hit.cue:20} {hit.score:5.2f}  {words}")
    top = sorted(analysis.emotions.items(), key=lambda kv: -kv[1])[:3]
    lines.append("top emotions: " + ", ".join(f"{k} {v:.2f}" for k, v in top))
    return "\n".join(lines)


def score_lines(detector, source, sink, batch: int = 32) -> int:
    """Read JSON lines with a text field, write one result line each; returns the count of bad lines."""
    bad = 0
    pending: list[str] = []

    def flush() -> None:
        for analysis in detector.analyse_many(pending):
            emotions = {k: round(v, 4) for k, v in analysis.emotions.items()}
            sink.write(json.dumps({"text": analysis.text, "cues": [h.as_dict() for h in analysis.cues],
                                   "emotions": emotions}) + "\n")
        pending.clear()

    for number, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            text = json.loads(line)["text"]
            if not isinstance(text, str):
                raise TypeError("text must be a string")
        except (ValueError, KeyError, TypeError) as error:
            flush()
            sink.write(json.dumps({"error": {"code": "invalid_line", "line": number, "message": str(error)}}) + "\n")
            bad += 1
            continue
        pending.append(text)
        if len(pending) >= batch:
            flush()
    flush()
    return bad


def run_eval(args: argparse.Namespace) -> None:
    from copilot.cues.evaluate import CS_SET, PAPER_BERT_F1, cs_report, format_table, goemotions_report, macro

    detector = load_detector(args.model, threads=args.threads, graph=args.graph)
    print(f"graph: {detector.model.graph}")
    go = goemotions_report(detector, args.goemotions)
    print(format_table(f"GoEmotions test ({go['examples']} comments), 28 labels, dev-tuned thresholds",
                       go["labels"], paper=PAPER_BERT_F1))
    print()
    print(format_table("GoEmotions test, six emotional cues, model alone (max of labels, dev-tuned thresholds)",
                       go["cues_model_only"]))
    print()
    print(format_table("GoEmotions test, six emotional cues as served (with our phrase rules)", go["cues"]))
    cs = cs_report(detector, args.cs or CS_SET)
    print()
    print(format_table(f"Customer-service set ({cs['examples']} utterances), twelve cues", cs["cues"]))
    print(f"evidence spans: {cs['spans_checked']} checked, hit rate {cs['span_hit_rate']:.3f}, "
          f"character F1 {cs['span_char_f1']:.3f}")
    if args.errors:
        for error in cs["errors"]:
            print(f"  {error['id']}: gold {error['gold']} predicted {error['predicted']}: {error['text']}")
    print(json.dumps({
        "goemotions_macro_f1_28": round(macro(go["labels"]), 4), "paper_bert_macro_f1_28": 0.46,
        "goemotions_macro_f1_6_cues": round(macro(go["cues"]), 4),
        "goemotions_macro_f1_6_cues_model_only": round(macro(go["cues_model_only"]), 4),
        "cs_macro_f1_12_cues": round(macro(cs["cues"]), 4), "cs_examples": cs["examples"],
        "span_hit_rate": round(cs["span_hit_rate"], 4), "span_char_f1": round(cs["span_char_f1"], 4),
    }))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        parser = argparse.ArgumentParser(prog="python -m copilot.cues", description="Show the cues in a text.")
        parser.add_argument("text", nargs="+")
        parser.add_argument("--model", type=Path)
        parser.add_argument("--graph")
        args = parser.parse_args(argv)
        print(describe(load_detector(args.model, graph=args.graph).analyse(" ".join(args.text))))
        return 0
    command, rest = argv[0], argv[1:]
    parser = argparse.ArgumentParser(prog=f"python -m copilot.cues {command}")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--graph", help="cues-int8.onnx (default, served) or cues.onnx (fp32)")
    if command == "score":
        args = parser.parse_args(rest)
        detector = load_detector(args.model, threads=args.threads, graph=args.graph)
        return 1 if score_lines(detector, sys.stdin, sys.stdout) else 0
    if command == "eval":
        parser.add_argument("--goemotions", type=Path, required=True)
        parser.add_argument("--cs", type=Path, help="customer-service set (default tests/data/cs_cues.jsonl)")
        parser.add_argument("--errors", action="store_true", help="list the customer-service set's misses")
        run_eval(parser.parse_args(rest))
        return 0
    from copilot.cues.bench import main as bench_main

    return bench_main(rest)


if __name__ == "__main__":
    sys.exit(main())
