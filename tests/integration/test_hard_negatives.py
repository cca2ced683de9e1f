"""The hard-negative suite (data/cues_eval/hard_negatives.jsonl): everyday utterances that hold a detector's trigger
words in an innocent sense ("the briefcase", "bus terminal", "4 foot by 3 foot", "I'm afraid I can't make it").
They were written by someone who had not written the detector, with no cue in them, and are never trained or tuned
on. The served detector must stay quiet on nearly all of them."""
import json

from copilot.cues.realdata import HARD_NEGATIVES, read_hard_negatives

# Issue #13 asks for at most 2%; the served model fires on 19% of them (BENCHMARKS.md, "Cue model accuracy"), so
# the target is not met. This bound keeps what was reached (the model before issue #13 fired on 55%) from sliding
# back while the gap is closed; lower it as the model improves, down to the target.
TARGET = 0.02
ALLOWED = 0.21


def test_the_suite_has_at_least_300_distinct_everyday_utterances():
    items = read_hard_negatives()
    assert len(items) >= 300 and len({i["text"].lower() for i in items}) == len(items)
    assert {"voice", "chat", "social", "email"} <= {i["channel"] for i in items}


def test_no_more_hard_negatives_fire_than_the_served_model_reached(detector):
    items = read_hard_negatives()
    fired = [(i["id"], detector.analyse(i["text"]).cue_names, i["text"]) for i in items]
    fired = [f for f in fired if f[1]]
    assert len(fired) / len(items) <= ALLOWED, json.dumps(fired, indent=0)[:4000]


def test_the_suite_is_not_in_the_training_data():
    from copilot.cues.corpus import read_turns

    trained = {t.text.strip().lower() for t in read_turns()}
    assert not [i["id"] for i in read_hard_negatives(HARD_NEGATIVES) if i["text"].strip().lower() in trained]
