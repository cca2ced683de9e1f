"""The redaction corpus's hit rate and false-positive rate per kind of personal data (the measure is
tests/redaction_measure.py):

    python -m bench.redaction [--corpus tests/data/redaction_corpus.jsonl] [--misses]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tests.redaction_measure import CORPUS, read_corpus, score, table


def main() -> None:
    from copilot.redact import redact, redact_snippet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--misses", action="store_true", help="also print the cases that failed")
    args = parser.parse_args()
    scores = score(read_corpus(args.corpus), redact, redact_snippet)
    print(table(scores))
    if args.misses:
        for kind, s in scores.items():
            for miss in s.misses if kind != "all" else []:
                print(f"{kind}: {miss}")


if __name__ == "__main__":
    main()
