"""Retrieval evaluation: precision@1, precision@3 and nDCG@3 on data/retrieval/retrieval_eval.jsonl, beside
random baselines that filter by cue alone (the issue's baseline) and by cue, channel and stage.

    python -m copilot.index eval
"""
from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from copilot.index import PhrasingIndex
from copilot.library.phrasing import Phrasing
from copilot.suggest import Request, candidates, retrieve

DATA = Path(__file__).resolve().parents[2] / "data" / "retrieval"
EVAL_SET = DATA / "retrieval_eval.jsonl"
PARAPHRASES = DATA / "paraphrases.jsonl"
K = 3


def read_eval(path: Path = EVAL_SET) -> list[dict]:
    """The evaluation lines: context turns, active cues, channel, stage and acceptable phrasing ids."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def scores(ranked: Sequence[str], acceptable: set[str]) -> tuple[float, float, float]:
    """precision@1, precision@3 and binary nDCG@3 of one ranking."""
    top = list(ranked[:K])
    p1 = float(bool(top) and top[0] in acceptable)
    p3 = sum(pid in acceptable for pid in top) / K
    dcg = sum(1 / math.log2(i + 2) for i, pid in enumerate(top) if pid in acceptable)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(K, len(acceptable))))
    return p1, p3, dcg / ideal if ideal else 0.0


def evaluate(library: dict[str, Phrasing], index: PhrasingIndex, embed: Callable[[list[str]], np.ndarray],
             lines: list[dict], seeds: int = 200) -> dict:
    """Mean metrics of our retrieval and of the two random baselines."""
    contexts = embed([" ".join(line["context"]) for line in lines])
    ours, cue_only, filtered = [], [], []
    rng = random.Random(7)
    for line, vector in zip(lines, contexts):
        acceptable = set(line["acceptable"])
        request = Request(vector, tuple(line["cues"]), line["channel"], line["stage"], k=K)
        ours.append(scores([s.id for s in retrieve(library, index, request)], acceptable))
        by_cue = [p.id for p in library.values() if p.status == "approved" and set(p.cues) & set(line["cues"])]
        by_all = [p.id for p in candidates(library, request)]
        for pool, sink in ((by_cue, cue_only), (by_all, filtered)):
            runs = [scores(rng.sample(pool, min(K, len(pool))), acceptable) for _ in range(seeds)]
            sink.append(tuple(np.mean(runs, axis=0)) if runs else (0.0, 0.0, 0.0))

    def mean(rows: list[tuple]) -> dict:
        arr = np.array(rows)
        return {"p@1": round(float(arr[:, 0].mean()), 4), "p@3": round(float(arr[:, 1].mean()), 4),
                "ndcg@3": round(float(arr[:, 2].mean()), 4)}
    return {"lines": len(lines), "ours": mean(ours), "random_cue_only": mean(cue_only),
            "random_cue_channel_stage": mean(filtered)}


def format_report(result: dict) -> str:
    """A small table of the three systems."""
    lines = [f"Retrieval on {result['lines']} eval contexts (k={K})", f"{'':28} {'P@1':>6} {'P@3':>6} {'nDCG@3':>7}"]
    for name in ("ours", "random_cue_only", "random_cue_channel_stage"):
        row = result[name]
        lines.append(f"{name:28} {row['p@1']:6.3f} {row['p@3']:6.3f} {row['ndcg@3']:7.3f}")
    return "\n".join(lines)


def near_duplicate_report(library: dict[str, Phrasing], embed: Callable[[list[str]], np.ndarray],
                          thresholds: Sequence[float] = (0.75, 0.78, 0.8, 0.85, 0.9)) -> dict:
    """How a near-duplicate cosine threshold separates distinct shipped phrasings from hand-written rewordings:
    for each threshold, the share of approved phrasings it would flag against their nearest neighbour, and the
    share of paraphrase pairs it catches."""
    texts = [p.text for p in library.values() if p.status == "approved"]
    vectors = embed(texts)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1.0)
    nearest = sims.max(1)
    pairs = [json.loads(line) for line in PARAPHRASES.read_text().splitlines() if line.strip()]
    para = (embed([p["a"] for p in pairs]) * embed([p["b"] for p in pairs])).sum(1)
    return {"approved": len(texts), "paraphrase_pairs": len(pairs),
            "nearest_neighbour": {"p50": round(float(np.percentile(nearest, 50)), 3),
                                  "p99": round(float(np.percentile(nearest, 99)), 3), "max": round(float(nearest.max()), 3)},
            "paraphrase": {"min": round(float(para.min()), 3), "p50": round(float(np.percentile(para, 50)), 3)},
            "thresholds": [{"cosine": t, "flags_distinct": round(float((nearest >= t).mean()), 3),
                            "catches_paraphrases": round(float((para >= t).mean()), 3)} for t in thresholds]}
