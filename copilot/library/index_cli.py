"""The index's command line, `python -m copilot.index build|eval|dupes`: it reads the library and the model, so it
lives here rather than in the FAISS adapter, which imports neither."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from copilot.cues.model import DEFAULT_GRAPH, DEFAULT_MODEL_DIR, CueModel
from copilot.index import INDEX_DIR, build, load_or_build
from copilot.library.files import PROMPTS_DIR, load_library
from copilot.library.retrieval_eval import evaluate, format_report, near_duplicate_report, read_eval


def main(argv: list[str] | None = None) -> int:
    """Build the shipped index, or report retrieval quality (eval) or near-duplicate thresholds (dupes)."""
    parser = argparse.ArgumentParser(prog="python -m copilot.index", description="Build the phrasing index.")
    parser.add_argument("command", choices=["build", "eval", "dupes"])
    parser.add_argument("--prompts", type=Path, default=PROMPTS_DIR)
    parser.add_argument("--out", type=Path, default=INDEX_DIR)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--graph", default=DEFAULT_GRAPH, help="the graph serving runs (its embedding fills the index)")
    args = parser.parse_args(argv)
    phrasings = load_library(args.prompts)
    model = CueModel(args.model, threads=2, graph=args.graph)
    if args.command == "dupes":
        print(json.dumps(near_duplicate_report({p.id: p for p in phrasings}, model.embed), indent=1))
        return 0
    if args.command == "eval":
        result = evaluate({p.id: p for p in phrasings}, load_or_build(phrasings, model.embed, args.out),
                          model.embed, read_eval())
        print(format_report(result))
        print(json.dumps(result))
        return 0
    index = build(phrasings, model.embed)
    index.save(args.out)
    print(f"indexed {len(index)} approved phrasings of {len(phrasings)} into {args.out / 'phrasings.faiss'}")
    return 0
