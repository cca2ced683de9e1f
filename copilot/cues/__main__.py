"""Command line for the cue detector.

    python -m copilot.cues "some text"              cues, scores and spans, for a person
    python -m copilot.cues score < texts.jsonl      one JSON line per {"text": ...} line
    python -m copilot.cues eval [--data DIR]        every evaluation, side by side with the peers
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


TARGETS = {  # issue #13; each is checked against the figure of the same name below
    "tweets_test_macro_f1": (">=", 0.70), "tweets_test_frustration_f1": (">=", 0.70),
    "tweets_test_frustration_vs_vader": (">=", 1.25), "tweets_test_repeat_contact_recall": (">=", 0.70),
    "dailydialog_test_none_false_alarms": ("<=", 0.03), "dailydialog_test_conversational_rate": ("<=", 0.005),
    "dailydialog_test_3_cue_macro_f1": (">=", 0.30), "hard_negatives_fire_rate": ("<=", 0.02),
    "goemotions_macro_f1_28": (">=", 0.50), "cs_macro_f1_12_cues": (">=", 0.85),
}


def run_eval(args: argparse.Namespace) -> dict:
    from copilot.cues.evaluate import (
        CS_SET,
        PAPER_BERT_F1,
        cs_report,
        dailydialog_report,
        format_table,
        goemotions_report,
        hard_negatives_report,
        macro,
        probes_report,
        row_of,
        tweets_report,
    )
    from copilot.cues.peers import PEERS

    detector = load_detector(args.model, threads=args.threads, graph=args.graph)
    peers = {name: make() for name, make in PEERS.items()}
    print(f"graph: {detector.model.graph}; every text scored alone, as serving scores it")
    go = goemotions_report(detector, args.goemotions or args.data / "goemotions")
    print(format_table(f"GoEmotions test ({go['examples']} comments), 28 labels, dev-tuned thresholds",
                       go["labels"], paper=PAPER_BERT_F1))
    print()
    print(format_table("GoEmotions test, six emotional cues as served", go["cues"]))
    cs = cs_report(detector, args.cs or CS_SET)
    print()
    print(format_table(f"Our customer-service test set ({cs['examples']} utterances), twelve cues", cs["cues"]))
    print(f"evidence spans: {cs['spans_checked']} checked, hit rate {cs['span_hit_rate']:.3f}, "
          f"character F1 {cs['span_char_f1']:.3f}")
    summary = {"goemotions_macro_f1_28": macro(go["labels"]), "goemotions_macro_f1_6_cues": macro(go["cues"]),
               "cs_macro_f1_12_cues": macro(cs["cues"]), "span_hit_rate": cs["span_hit_rate"],
               "span_char_f1": cs["span_char_f1"]}
    for half in ("dev", "test"):
        tw = tweets_report(detector, half, args.data, peers)
        print()
        print(format_table(f"Real customer tweets, {half} half ({tw['examples']} English tweets, labelled blind; "
                           f"macro over cues with >= 5 positives: {tw['macro']:.3f})", tw["cues"]))
        print(f"evidence spans: {tw['spans_checked']} cues found with annotators' spans, a predicted span overlaps "
              f"one for {tw['span_hit_rate']:.3f}")
        frustration = row_of(tw["cues"], "frustration")
        print(f"{'peer, same tweets':24} {'frustration F1':>15} {'anxiety F1':>11} {'sadness F1':>11}")
        print(f"{'ours':24} {frustration.f1:15.3f} {row_of(tw['cues'], 'anxiety').f1:11.3f} "
              f"{row_of(tw['cues'], 'sadness').f1:11.3f}")
        for name, table in tw["peers"].items():
            print(f"{name:24} {row_of(table, 'frustration').f1:15.3f} {row_of(table, 'anxiety').f1:11.3f} "
                  f"{row_of(table, 'sadness').f1:11.3f}")
        vader = row_of(tw["peers"]["VADER <= -0.05"], "frustration").f1
        summary |= {f"tweets_{half}_macro_f1": tw["macro"], f"tweets_{half}_frustration_f1": frustration.f1,
                    f"tweets_{half}_frustration_vs_vader": frustration.f1 / vader if vader else 0.0,
                    f"tweets_{half}_repeat_contact_recall": row_of(tw["cues"], "repeat_contact").recall,
                    f"tweets_{half}_span_hit_rate": tw["span_hit_rate"]}
        if args.errors and half == "dev":
            for error in tw["errors"]:
                print(f"  {error['id']}: gold {error['gold']} predicted {error['predicted']}: {error['text']}")
    dd = dailydialog_report(detector, "test", args.data, peers)
    print()
    print(f"DailyDialog test ({dd['examples']} utterances, {dd['none']} labelled none)")
    print(f"{'':24} {'none: any emotional cue':>24} {'none: negative cue':>19} {'conversational':>15} "
          f"{'3-cue macro-F1':>15}")
    for name, figures in [("ours", dd), *dd["peers"].items()]:
        conversational = f"{figures['conversational_rate']:15.4f}" if name == "ours" else f"{'-':>15}"
        print(f"{name:24} {figures['none_false_alarms']:24.4f} {figures['none_false_alarms_negative']:19.4f} "
              f"{conversational} {figures['macro']:15.3f}")
    print(format_table("DailyDialog test, three cues (anger+disgust -> frustration, fear -> anxiety)", dd["cues"]))
    summary |= {"dailydialog_test_none_false_alarms": dd["none_false_alarms"],
                "dailydialog_test_none_false_alarms_negative": dd["none_false_alarms_negative"],
                "dailydialog_test_conversational_rate": dd["conversational_rate"],
                "dailydialog_test_3_cue_macro_f1": dd["macro"]}
    hn = hard_negatives_report(detector, peers=peers)
    print()
    print(f"Hard negatives ({hn['examples']} everyday utterances with trigger words): any cue fires on "
          f"{hn['fire_rate']:.3f} (ours); " + ", ".join(f"{k} {v:.3f}" for k, v in hn["peers"].items()))
    print("  per cue: " + ", ".join(f"{k} {v}" for k, v in hn["per_cue"].items()))
    if args.errors:
        for item in hn["fired"]:
            print(f"  {item['id']}: {item['cues']}: {item['text']}")
    summary["hard_negatives_fire_rate"] = hn["fire_rate"]
    pr = probes_report(detector)
    print()
    print(format_table(f"Blind probes ({pr['examples']} turns written by someone who never saw the detector; "
                       f"never tuned on)", pr["cues"]))
    print(f"crisis recall {pr['crisis_recall']:.3f}; a cue fires on {pr['no_cue_false_alarms']:.3f} of the turns "
          f"with none")
    summary |= {"probes_macro_f1": pr["macro"], "probes_crisis_recall": pr["crisis_recall"],
                "probes_no_cue_false_alarms": pr["no_cue_false_alarms"]}
    print()
    print("Targets")
    for name, (sense, goal) in TARGETS.items():
        value = summary[name]
        met = value >= goal if sense == ">=" else value <= goal
        print(f"  {name:40} {value:8.4f}  {sense} {goal:<6}  {'met' if met else 'NOT MET'}")
    print(json.dumps({k: round(v, 4) for k, v in summary.items()}))
    return summary


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
        from copilot.cues.realdata import SHARED_DATA

        parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the shared data folder")
        parser.add_argument("--goemotions", type=Path, help="GoEmotions folder (default DATA/goemotions)")
        parser.add_argument("--cs", type=Path, help="customer-service set (default data/cues_eval/cs_cues.jsonl)")
        parser.add_argument("--errors", action="store_true", help="list the tweets' dev misses and the hard negatives that fire")
        run_eval(parser.parse_args(rest))
        return 0
    from copilot.cues.bench import main as bench_main

    return bench_main(rest)


if __name__ == "__main__":
    sys.exit(main())
