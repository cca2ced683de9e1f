"""The explainable phrase detectors: what fires, what negation cancels, and where the spans fall."""
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copilot.cues import lexicon
from copilot.cues.lexicon import Clauses, find_spans, is_negated, merge_spans, scan


def words(text: str, cue: str) -> list[str]:
    return [text[s:e].lower() for s, e in find_spans(text).get(cue, [])]


@pytest.mark.parametrize("text, cue", [
    ("This is the third time I've called about this", "repeat_contact"),
    ("I already explained this to your colleague yesterday", "repeat_contact"),
    ("my broadband is still not working", "repeat_contact"),
    ("I want to speak to a manager", "escalation_request"),
    ("I'd like to make a formal complaint", "escalation_request"),
    ("I'm taking this to the ombudsman", "escalation_request"),
    ("I want to cancel my contract", "churn_risk"),
    ("if this isn't fixed today I will cancel my account", "churn_risk"),
    ("I'm switching to another provider", "churn_risk"),
    ("I need this sorted today", "urgency"),
    ("my flight leaves tomorrow and I need the refund asap", "urgency"),
    ("you're a useless idiot", "abuse"),
    ("I know where you live", "abuse"),
    ("my husband passed away last month", "crisis"),
    ("I've been scammed out of my savings", "crisis"),
    ("I can't afford food this week", "crisis"),
    ("sometimes I just want to end it all", "crisis"),
])
def test_conversational_cue_fires_on_its_phrases(text, cue):
    assert cue in find_spans(text)


@pytest.mark.parametrize("text, cue", [
    ("I'm not cancelling, I just want to know my balance", "churn_risk"),
    ("I don't want to cancel my subscription", "churn_risk"),
    ("I'm not going to close my account", "churn_risk"),
    ("no need for a manager, you're doing fine", "escalation_request"),
    ("I don't want to make a complaint", "escalation_request"),
    ("it's not urgent", "urgency"),
    ("I never had a problem before", "repeat_contact"),
])
def test_negation_cancels_a_cue(text, cue):
    assert cue not in find_spans(text)


@pytest.mark.parametrize("text, cue", [
    ("if it isn't fixed by friday I will cancel my account", "churn_risk"),
    ("it's not working, and I want to speak to a manager", "escalation_request"),
    ("still not fixed after three weeks", "repeat_contact"),
    ("you're not very bright, are you", "abuse"),
])
def test_negation_does_not_reach_past_a_new_clause_or_into_its_own_evidence(text, cue):
    assert cue in find_spans(text)


def test_spans_cover_the_words_that_carried_the_cue():
    text = "This is the third time I've called and it's still not fixed"
    assert words(text, "repeat_contact") == ["third time", "still not fixed"]


def test_curly_apostrophes_count_like_straight_ones():
    assert "churn_risk" not in find_spans("I\u2019m not cancelling my account")
    assert "confusion" in find_spans("I don\u2019t understand this bill")


def test_plain_transactional_request_has_no_conversational_cue():
    assert find_spans("can you update my address to 14 elm street please") == {}


def test_negator_in_an_earlier_clause_does_not_reach():
    text = "I'm not happy. I want to cancel my contract"
    assert not is_negated(text, text.index("cancel"))


def test_merge_spans_joins_overlapping_and_touching_spans():
    assert merge_spans([(5, 9), (0, 3), (3, 4), (8, 12)]) == [(0, 4), (5, 12)]


@given(st.text(max_size=300))
def test_spans_always_lie_inside_the_text(text):
    for spans in find_spans(text).values():
        for start, end in spans:
            assert 0 <= start < end <= len(text)


def rescanned_negation(text: str, start: int) -> bool:
    """The negation rule as first written: a rescan of the text up to `start` for every match."""
    clause_start = 0
    for brk in lexicon.CLAUSE_BREAK.finditer(text, 0, start):
        clause_start = brk.end()
    words = [w.lower() for w in lexicon.WORD.findall(text[clause_start:start])][-lexicon.NEGATION_REACH:]
    for word in reversed(words):
        if word in lexicon.NEGATORS or word.endswith("n't"):
            return True
        if word in lexicon.SUBJECTS:
            return False
    return False


NEGATION_TEXT = st.lists(st.sampled_from(["not", "no", "don't", "isn't", "I", "it", "but", "however", "cancel",
                                          "my", "account", "manager", "though", ",", ".", "\n", "'", "won't",
                                          "butter", "I'll", "x"]), max_size=40).map(" ".join)


@given(NEGATION_TEXT, st.data())
def test_precomputed_clauses_give_the_same_verdict_as_a_rescan(text, data):
    starts = [m.start() for m in re.finditer(r"(?<![\w'])\S", text)] or [0]
    clauses = Clauses(text)
    for start in data.draw(st.lists(st.sampled_from(starts), max_size=10)):
        assert clauses.negated(start) == rescanned_negation(text, start), (text, start)


@pytest.mark.parametrize("text, cue, words", [
    ("this is the third  time I've called", "repeat_contact", ["third  time"]),
    ("I want to speak\tto a manager", "escalation_request", ["want to speak\tto a manager"]),
    ("I want to cancel\u00a0my contract", "churn_risk", ["want to cancel\u00a0my contract"]),
    ("I need this sorted asap&nbsp;please", "urgency", ["asap"]),
    ("you're a use\u200bless idiot", "abuse", ["you're a use\u200bless", "idiot"]),
    ("my husband passed\u200baway", "crisis", ["my husband passed"]),
    ("\uff49\u2019\uff4d \uff53\uff4f \uff46\uff55\uff52\uff49\uff4f\uff55\uff53", "frustration",
     ["\uff46\uff55\uff52\uff49\uff4f\uff55\uff53"]),
])
def test_every_cue_survives_whitespace_entities_invisible_and_wide_characters(text, cue, words):
    assert [text[s:e] for s, e in find_spans(text).get(cue, [])] == words


@pytest.mark.parametrize("text, cue", [
    ("I'm\u00a0not cancelling my account", "churn_risk"),
    ("I\u2019m not\t\tcancelling my account", "churn_risk"),
    ("no&nbsp;need for a manager", "escalation_request"),
    ("it\u2019s\u200bnot urgent", "urgency"),
])
def test_negation_reads_the_normal_form_too(text, cue):
    assert cue not in find_spans(text)


def test_both_readings_of_a_zero_width_space_are_tried_and_their_spans_united():
    text = "I want to kill\u200bmyself and can\u2019t af\u200bford food"
    assert [text[s:e] for s, e in scan(text).spans["crisis"]] == ["kill\u200bmyself", "can\u2019t af\u200bford food"]


@pytest.mark.parametrize("text", [
    "I just want to die",
    "i just wanna die",
    "I'm going to take my own life",
    "I've taken an overdose",
    "he overdosed last night",
    "life is not worth living anymore",
    "I want to unalive myself",
    "I want to kill-myself",
    "I want to kill_myself",
    "I want to kill.myself",
    "I want to kill\nmyself",
    "k i l l  m y s e l f",
    "s.u.i.c.i.d.e",
    "k1ll mys3lf",
    "I want to kill my self",
    "I want to end-it-all",
])
def test_crisis_fires_on_plain_wording_and_on_joined_or_spaced_out_phrases(text):
    assert "crisis" in find_spans(text)


@pytest.mark.parametrize("text", [
    "I could die for a coffee right now",
    "I don't want to die on hold waiting for you",
    "nobody wants to die on hold",
    "I want to die of embarrassment, I sent it to the wrong address",
    "that will kill my self-esteem",
    "the calls never end. It all started last week",
    "I want to end it. All I need is the final bill",
    "I want to take my life insurance out",
    "I overdosed on coffee this morning",
    "I skill myself up at night",
])
def test_crisis_stays_quiet_on_everyday_and_negated_wording(text):
    assert "crisis" not in find_spans(text)


@pytest.mark.parametrize("text", [
    "you are an idi\u043et",  # Cyrillic о
    "you are an idi\u00f3t",
    "you are an 1d10t",
    "u r an id10t",
    "you're so st*pid",
    "what a m0r0n",
])
def test_abuse_fires_through_look_alikes_accents_and_digits_for_letters(text):
    assert "abuse" in find_spans(text)


def test_a_crisis_span_behind_look_alike_letters_covers_them_in_the_text_as_sent():
    text = "I want to k\u0456ll mys\u0435lf"
    assert [text[s:e] for s, e in find_spans(text)["crisis"]] == ["k\u0456ll mys\u0435lf"]
