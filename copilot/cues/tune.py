"""Tune a graph's thresholds on dev data and write <graph>.thresholds.json beside it.

    python -m copilot.cues.tune [--data ../shared/data] [--model index/model] [--graph cues-int8.onnx]

What each threshold is chosen on (test halves are never read here):
- the 28 GoEmotions labels: GoEmotions dev, per label the F1-best threshold (reported on GoEmotions test);
- the twelve cues: the dev texts of customer service, pooled: the dev share of our customer turns
  (data/customer_turns), our customer-service dev set (data/cues_eval/cs_cues_dev.jsonl) and the dev half of the
  labelled tweets. Per emotional cue: its threshold, whether it needs our evidence words, with one support factor
  and one veto factor for all; per conversational cue: how sure the cue head must be to back an ambiguous phrase,
  to fire alone, and to let an unambiguous phrase stand;
- then the false alarms: on DailyDialog validation, thresholds are raised (the cue that buys the most false alarms
  per point of dev F1 first) until a negative emotional cue fires on at most FALSE_ALARMS of the utterances labelled
  "none" (DailyDialog has no label for thanks, so gratitude on "Thank you." is not counted) and a conversational
  cue on at most CONVERSATIONAL of all utterances.
The score an emotional cue is read from (the cue head, the 28 labels, or their mean) is chosen the same way.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from copilot.cues import lexicon
from copilot.cues.goemotions import read_split
from copilot.cues.model import DEFAULT_GRAPH, DEFAULT_MODEL_DIR, CueModel, thresholds_path
from copilot.cues.realdata import CUES_EVAL, read_jsonl
from copilot.cues.scoring import THRESHOLD_GRID, best_thresholds, prf
from copilot.cues.taxonomy import CONVERSATION_CUES, CUES, EMOTION_CUES
from copilot.text import normalise

SUPPORT_GRID = (1.0, 0.8, 0.6, 0.5, 0.4, 0.3)
VETO_GRID = (0.0, 0.1, 0.2, 0.3, 0.5)
HEAD_GRID = np.round(np.concatenate([np.arange(0.02, 0.2, 0.02), np.arange(0.2, 0.96, 0.05), [2.0]]), 2)
OVERRULE_GRID = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1)
FALSE_ALARMS = 0.02  # DailyDialog validation: "none" utterances with an emotional cue (target on test: 3%)
CONVERSATIONAL = 0.004  # DailyDialog validation: utterances with a conversational cue (target on test: 0.5%)
CS_DEV = CUES_EVAL / "cs_cues_dev.jsonl"


def encode_all(model: CueModel, texts: list[str], progress: bool = True):
    """Label and cue probabilities for many texts, each alone, as serving runs them."""
    emotions, cues = [], []
    for start in range(0, len(texts), 256):
        encoded = model.encode(texts[start:start + 256])
        emotions.append(encoded.emotions)
        cues.append(encoded.cues if encoded.cues is not None else np.zeros((len(encoded.emotions), 0)))
        if progress and start % 2048 == 0:
            print(f"  encoded {min(start + 256, len(texts))}/{len(texts)}", flush=True)
    return np.concatenate(emotions), np.concatenate(cues)


def gold_matrix(examples, labels: list[str]) -> np.ndarray:
    """0/1 gold labels, examples by labels."""
    gold = np.zeros((len(examples), len(labels)), dtype=np.int8)
    for row, example in enumerate(examples):
        gold[row, list(example.labels)] = 1
    return gold


def cue_gold(gold: np.ndarray, labels: list[str]) -> np.ndarray:
    """A cue is present when any of its GoEmotions labels is."""
    index = {name: i for i, name in enumerate(labels)}
    return np.stack([gold[:, [index[name] for name in names]].max(1) for names in EMOTION_CUES.values()], 1)


@dataclass
class Scanned:
    """What the phrase detectors say about each text, per cue, as boolean columns in CUES order."""

    evidence: np.ndarray
    explicit: np.ndarray
    negated: np.ndarray
    sarcasm: np.ndarray
    safety: np.ndarray
    innocent: np.ndarray | None = None

    @classmethod
    def of(cls, texts: list[str]) -> Scanned:
        found = [lexicon.scan(t) for t in texts]
        column = lambda test: np.array([[test(f, c) for c in CUES] for f in found], dtype=bool)  # noqa: E731
        return cls(column(lambda f, c: c in f.spans), column(lambda f, c: c in f.explicit),
                   column(lambda f, c: c in f.negated), np.array([f.sarcasm for f in found], dtype=bool),
                   column(lambda f, c: c in f.safety), column(lambda f, c: c in f.innocent))

    def take(self, rows: np.ndarray) -> Scanned:
        """The same columns for the given rows (repeated rows weigh a text more)."""
        return Scanned(*(None if v is None else v[rows] for v in vars(self).values()))


def emotional_pred(score: np.ndarray, scan: Scanned, col: int, threshold, support: float, veto: float,
                   needs_evidence: bool) -> np.ndarray:
    """The detector's rule for one emotional cue over many texts (thresholds may be a grid: broadcast)."""
    t = np.asarray(threshold, dtype=float)
    s = score[:, col][:, None] if t.ndim else score[:, col]
    ev, ex = scan.evidence[:, col], scan.explicit[:, col]
    ev, ex = (ev[:, None], ex[:, None]) if t.ndim else (ev, ex)
    pred = (ex & (s >= veto * t)) | (s >= t) | (ev & (s >= support * t))
    blocked = scan.negated[:, col] | (scan.sarcasm if CUES[col] == "gratitude" else False)
    if needs_evidence:
        blocked = blocked | ~scan.evidence[:, col]
    return pred & ~(blocked[:, None] if t.ndim else blocked)


def conversational_pred(head: np.ndarray, scan: Scanned, col: int, check: float, alone: float,
                        overrule: float) -> np.ndarray:
    """The detector's rule for one conversational cue over many texts."""
    h = head[:, col]
    explicit, found = scan.explicit[:, col], scan.evidence[:, col]
    innocent = scan.innocent[:, col] if scan.innocent is not None else np.zeros(len(h), dtype=bool)
    return (scan.safety[:, col] | (explicit & (h >= overrule))
            | (~innocent & ((found & ~explicit & (h >= check)) | (~found & (h >= alone)))))


def f1(pred: np.ndarray, gold: np.ndarray) -> float:
    """F1 of one boolean column."""
    return float(prf(pred[:, None], gold[:, None])[2][0])


def f2(pred: np.ndarray, gold: np.ndarray) -> float:
    """F2 of one boolean column: recall counts four times as much as precision."""
    tp, fp, fn = int((pred & gold).sum()), int((pred & ~gold).sum()), int((~pred & gold).sum())
    return 5 * tp / max(1, 5 * tp + 4 * fn + fp)


# A missed crisis is the worst error the copilot can make: crisis bars are chosen for recall (F2), and the
# false-alarm budget is met by the other cues, never by raising crisis's bars.
SAFETY_FIRST = "crisis"


def tune_emotional(score, scan, gold, dd_score, dd_scan, dd_none) -> dict:
    """Emotional cue thresholds, support and veto factors and evidence needs on the pooled dev texts, then raised
    until DailyDialog validation's "none" utterances stay under FALSE_ALARMS."""
    cols = [CUES.index(c) for c in EMOTION_CUES]
    # DailyDialog has no label for thanks: a "Thank you." labelled "none" is no false alarm of gratitude, so the
    # budget counts the five negative emotional cues (the evaluation reports both ways).
    negative = [CUES.index(c) for c in EMOTION_CUES if c != "gratitude"]
    best = None
    for support in SUPPORT_GRID:
        for veto in VETO_GRID:
            choice = {}
            for col in cols:
                options = []
                for needs in (False, True):
                    pred = emotional_pred(score, scan, col, THRESHOLD_GRID, support, veto, needs)
                    f1s = prf(pred, np.repeat(gold[:, col][:, None], len(THRESHOLD_GRID), 1))[2]
                    pick = int(f1s.argmax())
                    options.append((float(f1s[pick]), float(THRESHOLD_GRID[pick]), needs))
                choice[col] = max(options)
            macro = float(np.mean([v[0] for v in choice.values()]))
            if best is None or macro > best[0] + 1e-9:
                best = (macro, support, veto, choice)
    _, support, veto, choice = best
    thresholds = {col: choice[col][1] for col in cols}
    needs = {col: choice[col][2] for col in cols}

    def alarms(th):
        fired = np.zeros(int(dd_none.sum()), dtype=bool)
        for col in negative:
            fired |= emotional_pred(dd_score, dd_scan, col, th[col], support, veto, needs[col])[dd_none]
        return float(fired.mean())

    def dev_f1(col, t):
        return f1(emotional_pred(score, scan, col, t, support, veto, needs[col]), gold[:, col])

    while (base := alarms(thresholds)) > FALSE_ALARMS:
        steps = []
        stronger = [v for v in VETO_GRID + (0.7, 1.0) if v > veto]
        if stronger:  # overrule more explicit phrases: a step for all cues at once
            old, veto = veto, stronger[0]
            saved = base - alarms(thresholds)
            cost = sum(f1(emotional_pred(score, scan, col, thresholds[col], support, old, needs[col]), gold[:, col])
                       - dev_f1(col, thresholds[col]) for col in cols)
            veto = old
            steps.append((saved / max(cost, 1e-4), -1, stronger[0]))
        firmer = [v for v in sorted(SUPPORT_GRID) if v > support]
        if firmer:  # ask more of the model where only evidence words back it
            old, support = support, firmer[0]
            saved = base - alarms(thresholds)
            cost = -sum(dev_f1(col, thresholds[col]) for col in cols)
            support = old
            cost += sum(dev_f1(col, thresholds[col]) for col in cols)
            steps.append((saved / max(cost, 1e-4), -2, firmer[0]))
        for col in negative:
            higher = [t for t in THRESHOLD_GRID if t > thresholds[col]]
            if not higher:
                continue
            trial = {**thresholds, col: float(higher[0])}
            saved = base - alarms(trial)
            cost = dev_f1(col, thresholds[col]) - dev_f1(col, higher[0])
            steps.append((saved / max(cost, 1e-4), col, float(higher[0])))
        if not steps:
            break
        _, col, t = max(steps)
        if col == -1:
            veto = t
        elif col == -2:
            support = t
        else:
            thresholds[col] = t
    return {
        "cues": {CUES[col]: t for col, t in thresholds.items()}, "support": support, "veto": veto,
        "needs_evidence": sorted(CUES[col] for col, n in needs.items() if n),
        "dev_f1": {CUES[col]: round(dev_f1(col, t), 4) for col, t in thresholds.items()},
        "dailydialog_validation_none_false_alarms": round(alarms(thresholds), 4),
    }


def tune_conversational(head, scan, gold, dd_head, dd_scan) -> dict:
    """Per conversational cue: the cue-head bars for an ambiguous phrase, for the head alone and for letting an
    unambiguous phrase stand, on the pooled dev texts; then raised until DailyDialog validation's firing rate is
    under CONVERSATIONAL."""
    cols = [CUES.index(c) for c in CONVERSATION_CUES]
    chosen = {}
    for col in cols:
        objective = f2 if CUES[col] == SAFETY_FIRST else f1
        options = []
        for overrule in OVERRULE_GRID:
            for check in HEAD_GRID:
                for alone in HEAD_GRID:
                    if alone < check:
                        continue
                    pred = conversational_pred(head, scan, col, check, alone, overrule)
                    options.append((objective(pred, gold[:, col]), -overrule, float(check), float(alone)))
        score, minus_overrule, check, alone = max(options)
        chosen[col] = [float(check), float(alone), -minus_overrule]

    def rate(bars):
        fired = np.zeros(len(dd_head), dtype=bool)
        for col in cols:
            fired |= conversational_pred(dd_head, dd_scan, col, *bars[col])
        return float(fired.mean())

    grid = list(HEAD_GRID)
    while rate(chosen) > CONVERSATIONAL:
        base, steps = rate(chosen), []
        for col in (c for c in cols if CUES[c] != SAFETY_FIRST):
            for which in (0, 1, 2):
                current = chosen[col][which]
                ladder = grid if which < 2 else list(OVERRULE_GRID) + [0.2, 0.3, 0.4, 0.5, 0.7, 0.9]
                for value in (v for v in ladder if v > current):  # the first step up that saves an alarm
                    trial = {c: list(v) for c, v in chosen.items()}
                    trial[col][which] = float(value)
                    saved = base - rate(trial)
                    if saved > 0:
                        cost = (f1(conversational_pred(head, scan, col, *chosen[col]), gold[:, col])
                                - f1(conversational_pred(head, scan, col, *trial[col]), gold[:, col]))
                        steps.append((saved / max(cost, 1e-4), col, which, float(value)))
                        break
        if not steps:
            break
        _, col, which, value = max(steps)
        chosen[col][which] = value
    return {
        "check": {CUES[col]: v[0] for col, v in chosen.items()},
        "model": {CUES[col]: v[1] for col, v in chosen.items()},
        "overrule": {CUES[col]: v[2] for col, v in chosen.items()},
        "dev_f1": {CUES[col]: round(f1(conversational_pred(head, scan, col, *v), gold[:, col]), 4)
                   for col, v in chosen.items()},
        "dailydialog_validation_conversational_rate": round(rate(chosen), 4),
    }


def cue_dev_texts(data: Path) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, int]]:
    """The pooled customer-service dev texts, each once, with their gold cues, and the rows that weigh them: each
    text's index as many times as it counts (see below)."""
    from copilot.cues.corpus import read_turns, split_turns
    from copilot.cues.realdata import read_tweets

    _, turns = split_turns(read_turns())
    cs = read_jsonl(CS_DEV)
    tweets = read_tweets("dev", data)
    # Real customers' words are what counts: the tweets weigh as much as all of our own dev texts together (each
    # tweet's row is repeated `weight` times), or thresholds would fit the way we write.
    weight = max(1, round((len(turns) + len(cs)) / max(1, len(tweets))))
    texts = [t.text for t in turns] + [i["text"] for i in cs] + [t.text for t in tweets]
    gold = [set(t.cues) for t in turns] + [set(i["cues"]) for i in cs] + [set(t.cues) for t in tweets]
    ours = len(turns) + len(cs)
    rows = np.concatenate([np.arange(ours), np.tile(np.arange(ours, len(texts)), weight)])
    sizes = {"customer_turns_dev": len(turns), "cs_cues_dev": len(cs), "tweets_dev": len(tweets),
             "tweet_weight": weight}
    return texts, np.array([[c in g for c in CUES] for g in gold], dtype=bool), rows, sizes


def main(argv: list[str] | None = None) -> None:
    from copilot.cues.detector import emotional_scores
    from copilot.cues.model import Encoded
    from copilot.cues.realdata import SHARED_DATA, read_dailydialog

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--graph", default=DEFAULT_GRAPH)
    args = parser.parse_args(argv)

    model = CueModel(args.model, threads=2, graph=args.graph)
    go_dev = read_split(args.data / "goemotions", "dev")
    go_probs, _ = encode_all(model, [normalise(e.text).text for e in go_dev])
    label_thresholds, label_f1 = best_thresholds(go_probs, gold_matrix(go_dev, model.labels))

    texts, gold, rows, sizes = cue_dev_texts(args.data)
    dd = read_dailydialog("validation", args.data)
    dd_texts = [u.text for u in dd]
    emotions, heads = encode_all(model, [normalise(t).text for t in texts])  # each text once, then weighed
    emotions, heads, gold = emotions[rows], heads[rows], gold[rows]
    dd_emotions, dd_heads = encode_all(model, [normalise(t).text for t in dd_texts])
    scan, dd_scan = Scanned.of(texts).take(rows), Scanned.of(dd_texts)
    dd_none = np.array([u.emotion == "none" for u in dd])

    if model.cues:
        head_order = [model.cues.index(c) for c in CUES]
        heads, dd_heads = heads[:, head_order], dd_heads[:, head_order]
    else:  # an older graph without cue heads: emotional cues from the 28 labels, every phrase counts
        heads, dd_heads = None, None
    def full(e, h, mode):
        scores = emotional_scores(Encoded(e, np.zeros((len(e), 1)), h), model.labels, list(CUES), mode)
        return np.stack([scores[c] if c in scores else np.zeros(len(e)) for c in CUES], 1)

    modes = {}
    for mode in ("cue_head", "labels", "mean") if model.cues else ("labels",):
        modes[mode] = tune_emotional(full(emotions, heads, mode), scan, gold, full(dd_emotions, dd_heads, mode),
                                     dd_scan, dd_none)
        print(f"score from {mode}: dev macro-F1 of the six emotional cues "
              f"{np.mean(list(modes[mode]['dev_f1'].values())):.4f}", flush=True)
    mode = max(modes, key=lambda m: np.mean(list(modes[m]["dev_f1"].values())))
    emotional = modes[mode]
    conversational = tune_conversational(heads, scan, gold, dd_heads, dd_scan) if model.cues else {"dev_f1": {
        c: round(f1(scan.evidence[:, CUES.index(c)], gold[:, CUES.index(c)]), 4) for c in CONVERSATION_CUES}}
    result = {
        "graph": args.graph, "tuned_on": {"labels": "GoEmotions dev", "cues": sizes,
                                          "false_alarms": "DailyDialog validation"},
        "score": mode, "score_modes_dev_macro_f1": {m: round(float(np.mean(list(v["dev_f1"].values()))), 4)
                                                     for m, v in modes.items()},
        "labels": {name: float(t) for name, t in zip(model.labels, label_thresholds)},
        "dev_macro_f1_labels": round(float(label_f1.mean()), 4),
        **emotional, "dev_f1": {**emotional["dev_f1"], **conversational["dev_f1"]},
        **{k: v for k, v in conversational.items() if k != "dev_f1"},
        "span": 0.5,
    }
    thresholds_path(args.model, args.graph).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result.get(k) for k in ("score", "score_modes_dev_macro_f1", "dev_f1", "cues", "support",
                                             "veto", "needs_evidence", "check", "model", "overrule",
                                             "dailydialog_validation_none_false_alarms",
                                             "dailydialog_validation_conversational_rate")}, indent=1))


if __name__ == "__main__":
    main()
