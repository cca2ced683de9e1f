"""The after-contact empathy scorecard: each rubric item from the agent's turns, with its turn, evidence and why."""
import json

import pytest

from copilot import conversation as engine
from copilot.conversation import MAX_ACKS, MAX_BEHAVIOUR_EVIDENCE, Conversation, CueSeen
from copilot.scorecard import ACK_WINDOW_TURNS, ITEMS, scorecard

ANGRY = {"anger": 0.8, "annoyance": 0.6}


def conv(**kw):
    return Conversation(id="c1", tenant="acme", agent="a1", channel="chat", **kw)


def customer(c, sid, cues=(), text="word " * 10, now=0.0):
    return engine.on_customer(c, sid, text, True, [CueSeen(name, 0.9, ((0, 4),)) for name in cues], ANGRY, now, 0.0)


def agent(c, sid, text, keep_words=True):
    return engine.on_agent(c, sid, text, True, 0.0, keep_words=keep_words)


def items(c):
    return {i["item"]: i for i in scorecard(c)["items"]}


def test_a_conversation_that_does_everything_scores_100_with_each_items_turn_and_words():
    c = conv()
    customer(c, "s1", ["frustration"])
    agent(c, "a1", "I'm so sorry, that sounds really frustrating.")
    agent(c, "a2", "What happened when you tried to pay?")
    agent(c, "a3", "We could refund it today, or would you prefer a replacement?")
    agent(c, "a4", "To recap, I've arranged the refund. Is there anything else?")
    card = scorecard(c)
    assert card["score"] == 100.0 and [i["item"] for i in card["items"]] == list(ITEMS)
    got = items(c)
    assert got["timely_acknowledgment"]["turn"] == 1 and "sorry" in got["timely_acknowledgment"]["evidence"]
    assert got["naming_emotion"]["turn"] == 1 and "frustrating" in got["naming_emotion"]["evidence"]
    assert (got["open_question"]["turn"], got["offering_options"]["turn"], got["closing_the_loop"]["turn"]) == (2, 3, 4)
    assert got["open_question"]["evidence"] == "What happened when you tried to pay?"


def test_an_acknowledgment_after_the_window_misses_timely_acknowledgment_and_says_how_long_it_waited():
    c = conv()
    customer(c, "s1", ["anxiety"])
    for i in range(ACK_WINDOW_TURNS):
        agent(c, f"a{i}", "Let me check that.")
    agent(c, "late", "I understand, that must be worrying.")
    item = items(c)["timely_acknowledgment"]
    assert item["met"] is False and item["turn"] == ACK_WINDOW_TURNS and item["evidence"] is None
    assert item["why"] == f"anxiety waited {ACK_WINDOW_TURNS + 1} agent turns for an acknowledgment (the window is 2)"
    assert c.acks == [["anxiety", 0, ACK_WINDOW_TURNS + 1]]


def test_an_acknowledgment_on_the_last_turn_of_the_window_is_timely():
    c = conv()
    customer(c, "s1", ["frustration"])
    agent(c, "a1", "One moment.")
    agent(c, "a2", "I'm sorry about that.")
    assert items(c)["timely_acknowledgment"]["met"] is True


def test_an_emotion_never_acknowledged_misses_timely_acknowledgment_and_naming_the_emotion():
    c = conv()
    customer(c, "s1", ["frustration"])
    agent(c, "a1", "Can I have your account number?")
    agent(c, "a2", "Thanks, one moment.")
    got = items(c)
    assert got["timely_acknowledgment"]["met"] is False
    assert got["timely_acknowledgment"]["why"] == "frustration was not acknowledged (the window is 2)"
    assert got["naming_emotion"]["met"] is False


def test_without_a_negative_cue_acknowledgment_and_naming_the_emotion_do_not_apply():
    c = conv()
    customer(c, "s1", [])
    agent(c, "a1", "How can I help today?")
    card = scorecard(c)
    got = items(c)
    assert got["timely_acknowledgment"]["met"] is None and got["naming_emotion"]["met"] is None
    assert got["open_question"]["met"] is True
    assert card["score"] == pytest.approx(100 / 3, abs=0.05)  # one of the three that apply


def test_a_conversation_that_ends_inside_the_window_leaves_timely_acknowledgment_unjudged():
    c = conv()
    customer(c, "s1", ["frustration"])
    agent(c, "a1", "Let me look.")
    assert items(c)["timely_acknowledgment"]["met"] is None


def test_closing_the_loop_counts_only_in_the_agents_last_three_turns():
    c = conv()
    agent(c, "a1", "I've updated your address.")
    for i in range(3):
        agent(c, f"b{i}", "Okay.")
    assert items(c)["closing_the_loop"]["met"] is False
    agent(c, "last", "Is there anything else I can help with?")
    closing = items(c)["closing_the_loop"]
    assert closing["met"] is True and closing["turn"] == 5


def test_without_consent_or_kept_words_the_turns_are_scored_but_no_words_are_kept():
    for c, keep in ((conv(consent=False), True), (conv(), False)):
        agent(c, "a1", "What happened when you called?", keep_words=keep)
        assert c.behaviour_evidence == {"open_question": [1, None]}
        assert items(c)["open_question"] == {"item": "open_question", "met": True, "turn": 1, "evidence": None,
                                             "why": "the agent asked an open question"}


def test_evidence_keeps_six_words_either_side_at_most_120_characters_and_no_personal_data():
    c = conv()
    text = ("Okay so the card on file is 4111 1111 1111 1111 and the one you read out, and honestly I understand "
            "why this has been so confusing for you today, it really has been a long and winding road " * 3)
    agent(c, "a1", text)
    words = c.behaviour_evidence["acknowledging"][1]
    assert len(words) <= MAX_BEHAVIOUR_EVIDENCE and "I understand" in words
    assert not any(ch.isdigit() for ev in c.behaviour_evidence.values() for ch in (ev[1] or ""))
    before, _, after = words.partition("I understand")
    assert len(before.split()) <= 6 and len(after.split()) <= 6


def test_a_card_number_beside_the_words_is_redacted_not_cut_in_half():
    c = conv()
    agent(c, "a1", "Your card 4111 1111 1111 1111 was declined, I'm sorry")
    assert c.behaviour_evidence["acknowledging"][1] == "Your card [CARD] was declined, I'm sorry"


def test_the_first_acknowledgment_of_a_negative_cue_is_the_evidence_not_an_earlier_polite_one():
    c = conv()
    agent(c, "a1", "I appreciate you waiting.")
    customer(c, "s1", ["frustration"])
    agent(c, "a2", "I'm sorry this keeps happening.")
    assert c.behaviour_evidence["acknowledging"][0] == 2
    assert items(c)["timely_acknowledgment"]["evidence"] == "I'm sorry this keeps happening."


def test_an_agent_who_took_no_turn_has_no_score():
    c = conv()
    customer(c, "s1", ["frustration"])
    card = scorecard(c)
    assert card["score"] is None and all(i["met"] is None for i in card["items"])


def test_episodes_are_counted_per_negative_cue_and_the_summary_carries_them_and_the_scorecard():
    c = conv()
    customer(c, "s1", ["frustration", "repeat_contact"])
    agent(c, "a1", "I'm sorry, that is frustrating.")
    customer(c, "s2", ["frustration"])
    customer(c, "s3", ["frustration"])  # still open: the same episode
    summary = engine.summary(c)
    assert summary["episodes"] == {"frustration": 2, "repeat_contact": 1}
    assert summary["scorecard"] == scorecard(c)
    json.dumps(summary)


def test_the_scorecard_state_round_trips_through_a_plain_dict():
    c = conv()
    customer(c, "s1", ["frustration"])
    agent(c, "a1", "I'm sorry, what happened?")
    copy = Conversation.from_dict(json.loads(json.dumps(c.as_dict())))
    assert copy.acks == c.acks and copy.behaviour_evidence == c.behaviour_evidence and copy.cue_episodes == c.cue_episodes
    assert scorecard(copy) == scorecard(c)


def test_acknowledgments_timed_are_capped():
    c = conv()
    for i in range(MAX_ACKS + 5):
        customer(c, f"s{i}", ["frustration"])
        agent(c, f"a{i}", "I'm sorry.")
    assert len(c.acks) == MAX_ACKS and c.acks[-1][2] == MAX_ACKS + 5



def test_naming_an_emotion_before_any_negative_cue_does_not_count_but_naming_it_after_does():
    c = conv()
    agent(c, "a1", "These forms are confusing, I know.")
    customer(c, "s1", ["frustration"])
    agent(c, "a2", "I'm sorry.")
    assert items(c)["naming_emotion"]["met"] is False
    agent(c, "a3", "It is frustrating when a payment fails.")
    naming = items(c)["naming_emotion"]
    assert naming["met"] is True and naming["turn"] == 3 and "frustrating" in naming["evidence"]
