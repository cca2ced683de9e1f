"""The project's customer-turn corpus (data/customer_turns): its size and make-up, its format, and that none of it
is copied from the CC BY-NC-SA text we evaluate on."""
import csv
import re
from collections import Counter

import pytest

from copilot.cues.corpus import CHANNELS, CorpusError, evidence_spans, parse_turn, read_turns, split_turns, turn_row
from copilot.cues.realdata import SHARED_DATA, TWEETS_FILE, read_dailydialog
from copilot.cues.taxonomy import CUES

TURNS = read_turns()


def test_at_least_4000_turns_a_third_of_them_hard_negatives_in_every_channel():
    assert len(TURNS) >= 4000
    assert sum(t.hard_negative for t in TURNS) >= len(TURNS) / 3
    channels = Counter(t.channel for t in TURNS)
    assert set(channels) == set(CHANNELS) and min(channels.values()) >= 150


def test_every_cue_has_at_least_150_positives_and_no_text_is_repeated():
    assert min(sum(c in t.cues for t in TURNS) for c in CUES) >= 150
    texts = Counter(t.text.strip().lower() for t in TURNS)
    assert texts.most_common(1)[0][1] == 1


def test_the_dev_share_is_fixed_by_the_id_and_near_15_percent():
    train, dev = split_turns(TURNS)
    assert 0.12 < len(dev) / len(TURNS) < 0.18
    assert split_turns(TURNS) == (train, dev)


def test_a_cue_without_evidence_or_with_words_not_in_the_text_is_refused():
    good = '{"id": "x", "channel": "chat", "text": "ugh again", "cues": ["frustration"], "evidence": {"frustration": ["ugh"]}}'
    assert parse_turn(good).cues == ("frustration",)
    for bad in (good.replace('["ugh"]', '[]'), good.replace('["ugh"]', '["argh"]'),
                good.replace('"chat"', '"fax"'), good.replace('["frustration"], "evidence"', '["anger"], "evidence"')):
        with pytest.raises(CorpusError):
            parse_turn(bad)


def test_evidence_becomes_spans_in_the_text_the_model_reads():
    turn = parse_turn('{"id": "y", "channel": "social", "text": "so\\u00a0\\u00a0done with you. DONE", '
                      '"cues": ["churn_risk"], "evidence": {"churn_risk": ["done with you"]}}')
    row = turn_row(turn)
    assert [row.text[s:e] for s, e in row.spans["churn_risk"]] == ["done with you"]
    assert evidence_spans("a b a", ["a"]) == [(0, 1), (4, 5)]


def ten_grams(text: str) -> set:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i:i + 10]) for i in range(len(words) - 9)}


@pytest.mark.skipif(not (SHARED_DATA / TWEETS_FILE).is_file(), reason="the shared data folder is not here")
def test_no_turn_shares_ten_words_in_a_row_with_a_real_tweet_or_a_dailydialog_line():
    seen = set()
    with (SHARED_DATA / TWEETS_FILE).open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            seen |= ten_grams(row["text"])
    for split in ("validation", "test"):
        for utterance in read_dailydialog(split):
            seen |= ten_grams(utterance.text)
    copied = [t.id for t in TURNS if ten_grams(t.text) & seen]
    assert copied == []
