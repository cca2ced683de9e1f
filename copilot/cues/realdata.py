"""Readers for the evaluation data that nobody on the project wrote: labelled customer tweets, DailyDialog, and
our hard-negative suite.

The tweets and DailyDialog are CC BY-NC-SA 4.0: they are read from the shared data folder by path, evaluated and
calibrated on, never trained on, never copied. Our label files for the tweets (data/cues_eval/tweets/) hold tweet ids,
cue names and character offsets only, no tweet text; they fall under the same licence (see their README).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from copilot.cues.taxonomy import Span

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
CUES_EVAL = ROOT / "data" / "cues_eval"  # evaluation sets only: nothing here is trained on
TWEET_LABELS = CUES_EVAL / "tweets"
HARD_NEGATIVES = CUES_EVAL / "hard_negatives.jsonl"
TWEETS_FILE = Path("customer-support") / "twcs_inbound_threads.csv"
# DailyDialog's emotion ids, and the cue each maps to for the three-cue comparison (the mapping).
DAILYDIALOG_EMOTIONS = ("none", "anger", "disgust", "fear", "happiness", "sadness", "surprise")
DAILYDIALOG_CUES = {"anger": "frustration", "disgust": "frustration", "fear": "anxiety", "sadness": "sadness"}


class DataMissing(FileNotFoundError):
    """A shared data file is not where the evaluation looks for it."""


@dataclass(frozen=True)
class Labelled:
    """One evaluation text with its gold cues (and gold spans, where labelled)."""

    id: str
    text: str
    cues: frozenset[str]
    spans: dict[str, list[Span]] = field(default_factory=dict)


def read_tweets(half: str, data: Path = SHARED_DATA, labels: Path = TWEET_LABELS) -> list[Labelled]:
    """The labelled English tweets of one half (dev or test), their text read from the shared corpus by id."""
    source = Path(data) / TWEETS_FILE
    if not source.is_file():
        raise DataMissing(f"{source} is missing: the tweets are read from the shared data folder (--data)")
    with source.open(newline="", encoding="utf-8") as handle:
        texts = {row["tweet_id"]: row["text"] for row in csv.DictReader(handle)}
    out = []
    for line in (Path(labels) / f"{half}.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item["english"]:
            spans = {cue: [tuple(s) for s in spans] for cue, spans in item.get("spans", {}).items()}
            out.append(Labelled(item["tweet_id"], texts[item["tweet_id"]], frozenset(item["cues"]), spans))
    return out


@dataclass(frozen=True)
class Utterance:
    """One DailyDialog utterance: its text, its emotion name and its dialogue number."""

    text: str
    emotion: str
    dialogue: int


def read_dailydialog(split: str, data: Path = SHARED_DATA) -> list[Utterance]:
    """Every utterance of a DailyDialog split (validation or test) with its emotion label."""
    folder = Path(data) / "dailydialog" / split
    dialogues, emotions = folder / f"dialogues_{split}.txt", folder / f"dialogues_emotion_{split}.txt"
    if not dialogues.is_file():
        raise DataMissing(f"{dialogues} is missing: DailyDialog is read from the shared data folder (--data)")
    out = []
    for number, (line, labels) in enumerate(zip(dialogues.read_text(encoding="utf-8").splitlines(),
                                                emotions.read_text().splitlines())):
        texts = [u.strip() for u in line.split("__eou__") if u.strip()]
        for text, label in zip(texts, labels.split()):
            out.append(Utterance(text, DAILYDIALOG_EMOTIONS[int(label)], number))
    return out


def read_jsonl(path: Path) -> list[dict]:
    """Every non-blank line of a JSON Lines file."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def read_hard_negatives(path: Path = HARD_NEGATIVES) -> list[dict]:
    """Our suite of everyday utterances with trigger words that carry no cue (written blind to the detector)."""
    return read_jsonl(path)
