"""Phrasing validation: schema, open-endedness, length, script patterns, cues."""
import pytest

from copilot.library.phrasing import MAX_PROBLEM_CHARS, MAX_PROBLEMS, InvalidPhrasing, parse_phrasing, text_problems

BASE = {"id": "frustration-checkin-99", "text": "What has your experience been so far?", "cues": ["frustration"],
        "stage": "check-in", "channels": ["voice", "chat"], "use_when": ["this is a joke", "I'm fed up"],
        "status": "approved", "locale": "en"}


def problems(**changes):
    try:
        parse_phrasing({**BASE, **changes})
    except InvalidPhrasing as error:
        return error.problems
    return []


@pytest.mark.parametrize("text", [
    "What has your experience been so far?",
    "Could you tell me more about what's been frustrating?",
    "Would you like to tell me more about what happened?",
    "How has this affected your week?",
    "Tell me what happened when the engineer visited.",
    "Thanks for confirming those details. What would you like us to look at first?",
    "So I get this right, what happened after the refund was issued?",
])
def test_open_questions_and_invitations_pass(text):
    assert text_problems(text, "check-in") == []


@pytest.mark.parametrize("text", [
    "Is it the bill that is wrong?",
    "Did you try restarting the router?",
    "Are you unhappy with the service?",
    "Can I help with anything else?",
    "Do you want a refund?",
    "Have you called before?",
    "Would you like me to tell you about the support we can offer?",  # an offer: answered yes or no
])
def test_closed_yes_no_questions_are_rejected_with_a_hint(text):
    found = text_problems(text, "check-in")
    assert found and "closed yes/no" in found[0]


@pytest.mark.parametrize("text, reason", [
    ("I apologise for any inconvenience, what happened?", "stock apology"),
    ("I understand how you feel. What happened next?", "how the customer feels"),
    ("I promise this will be fixed, what else is wrong?", "a promise"),
    ("What happened? Please calm down.", "calm down"),
    ("What happened with your order!", "exclamation"),
    ("What happened, {name}?", "placeholder"),
])
def test_script_patterns_are_named_in_the_message(text, reason):
    assert any(reason in p for p in text_problems(text, "check-in"))


def test_more_than_25_words_is_too_long():
    long_text = "What " + " ".join(["really"] * 25) + " happened?"
    assert any("words" in p for p in text_problems(long_text, "check-in"))


def test_agent_protection_guidance_need_not_be_a_question():
    assert text_problems("Name the language calmly and say what happens if it continues.", "agent-protection") == []


def test_unknown_cue_stage_channel_and_status_are_each_reported():
    fields = {p["field"] for p in problems(cues=["grumpy"], stage="later", channels=["fax"], status="live")}
    assert fields == {"cues", "stage", "channels", "status"}


def test_use_when_needs_two_to_four_examples():
    assert problems(use_when=["only one"])[0]["field"] == "use_when"


def test_wrong_types_are_reported_not_raised_as_type_errors():
    assert {p["field"] for p in problems(text=5, cues="frustration|", version="2")} >= {"text", "version"}
    with pytest.raises(InvalidPhrasing):
        parse_phrasing(["not", "a", "mapping"])


def test_reserved_and_malformed_ids_are_refused():
    assert problems(id="export")[0]["field"] == "id"
    assert problems(id="Bad Id!")[0]["field"] == "id"


def test_valid_phrasing_round_trips_through_its_dict():
    phrasing = parse_phrasing(BASE)
    assert parse_phrasing(phrasing.as_dict()) == phrasing


def test_an_id_ending_in_a_newline_is_refused():
    assert problems(id="frustration-checkin-99\n")[0]["field"] == "id"


def test_a_row_with_thousands_of_problems_lists_ten_each_cut_short():
    listed = problems(cues=[f"{'x' * 290}-{i}" for i in range(3)], channels=[f"fax{i}" for i in range(5000)],
                      **{"y" * 100_000: 1})
    assert len(listed) == MAX_PROBLEMS + 1 and "more problems" in listed[-1]["message"]
    assert all(len(p["field"]) <= 80 and len(p["message"]) <= MAX_PROBLEM_CHARS for p in listed)
