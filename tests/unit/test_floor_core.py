"""The live floor's pure core: rows, the order of risk, alert rules (each once per conversation), hands, claims,
and the once-a-second batching of rows."""
import pytest

from copilot import floor
from copilot.conversation import Conversation, CueSeen, on_agent, on_customer
from copilot.errors import InvalidPayload, InvalidSnippet, NotFound
from copilot.floor import BoardChange
from copilot.realtime_floor import Batches

RULES = floor.check_rules({})


def conv(cid="c-1", **kw) -> Conversation:
    return Conversation(id=cid, tenant="acme", agent="amy", channel="chat", queue="billing",
                        started_at=kw.pop("started_at", 100.0), **kw)


def customer(c, sid, text, *cues, score=0.9, now=110.0, sad=True):
    seen = [CueSeen(cue, score, ((0, min(len(text), 12)),)) for cue in cues]
    return on_customer(c, sid, text, True, seen, {"sadness": 0.9} if sad else {"joy": 0.9}, now, 0)


def agent(c, sid, text, now=120.0):
    return on_agent(c, sid, text, True, now)


def test_a_crisis_raises_the_triage_alert_once_with_the_customers_words():
    c = conv()
    customer(c, "s1", "I don't want to be alive", "crisis")
    first = floor.due_alerts(c, RULES, 111.0)
    assert [a["rule"] for a in first] == ["triage"]
    customer(c, "s2", "I don't want to be alive", "crisis")
    assert floor.due_alerts(c, RULES, 112.0) == []
    card = floor.alert_card(c, first[0], words=True)
    assert card["evidence"] == [{"cue": "crisis", "words": ["I don't want", "I don't want"]}]
    assert "crisis" in card["history"].lower() and card["taken_by"] is None


@pytest.mark.parametrize("cues, rule", [
    (("abuse",), "abuse"),
    (("escalation_request",), "escalation_request"),
])
def test_each_conversational_rule_raises_its_alert(cues, rule):
    c = conv()
    customer(c, "s1", "get me your manager now", *cues)
    assert rule in [a["rule"] for a in floor.due_alerts(c, RULES, 111.0)]


def test_a_negative_cue_unacknowledged_for_two_agent_turns_raises_an_alert_and_acknowledging_prevents_it():
    late, heard = conv("late"), conv("heard")
    for c in (late, heard):
        customer(c, "s1", "I'm so frustrated with this", "frustration", score=0.6)
    agent(late, "a1", "Let me look at the account.")
    assert floor.due_alerts(late, RULES, 121.0) == []
    agent(late, "a2", "Please hold a moment.")
    assert [a["rule"] for a in floor.due_alerts(late, RULES, 122.0)] == ["unacknowledged"]
    agent(heard, "a1", "I understand how frustrating that is.")
    agent(heard, "a2", "Let me look at the account.")
    assert floor.due_alerts(heard, RULES, 122.0) == []


def test_negative_tone_for_four_customer_turns_in_a_row_raises_an_alert_and_a_positive_turn_resets_the_run():
    c = conv()
    for n in range(3):
        customer(c, f"s{n}", "this is bad")
    customer(c, "s3", "thanks, that helps", sad=False)
    assert "negative_tone" not in [a["rule"] for a in floor.due_alerts(c, RULES, 111.0)]
    for n in range(4, 8):
        customer(c, f"s{n}", "this is bad")
    assert "negative_tone" in [a["rule"] for a in floor.due_alerts(c, RULES, 112.0)]


def test_a_disabled_rule_or_a_higher_threshold_raises_nothing():
    c = conv()
    customer(c, "s1", "you useless idiot", "abuse")
    rules = floor.check_rules({"abuse": {"enabled": False}, "triage": {"threshold": 3}})
    assert floor.due_alerts(c, rules, 111.0) == []


@pytest.mark.parametrize("change", [
    {"sentiment": {"enabled": True}}, {"abuse": {"threshold": 2}}, {"triage": {"threshold": 4}},
    {"triage": {"threshold": True}}, {"triage": {"enabled": "yes"}}, {"triage": {"colour": "red"}}, [], "triage",
])
def test_bad_rules_are_refused_with_a_reason(change):
    with pytest.raises(InvalidPayload):
        floor.check_rules(change)


def test_rules_merge_onto_the_current_ones():
    rules = floor.check_rules({"negative_tone": {"threshold": 6}}, floor.check_rules({"abuse": {"enabled": False}}))
    assert rules["negative_tone"] == {"enabled": True, "threshold": 6} and rules["abuse"]["enabled"] is False


def test_without_consent_an_alert_card_carries_no_history_and_no_words():
    c = conv(consent=False)
    customer(c, "s1", "I don't want to be alive", "crisis")
    card = floor.alert_card(c, floor.due_alerts(c, RULES, 111.0)[0], words=True)
    assert card["history"] == "" and card["evidence"] == []


def test_with_no_transcript_an_alert_card_carries_no_words():
    c = conv()
    customer(c, "s1", "I don't want to be alive", "crisis")
    assert floor.alert_card(c, floor.due_alerts(c, RULES, 111.0)[0], words=False)["evidence"] == []


def test_the_board_puts_crisis_above_abuse_above_escalation_above_waiting_above_falling_tone_above_calm():
    crisis, abuse, escalation, waiting, calm = (conv(n, started_at=s) for n, s in
                                                (("crisis", 5), ("abuse", 4), ("esc", 3), ("wait", 2), ("calm", 1)))
    customer(crisis, "s1", "no point living", "crisis")
    customer(abuse, "s1", "you idiot", "abuse")
    customer(escalation, "s1", "get me a manager", "escalation_request")
    customer(waiting, "s1", "so frustrated", "frustration", score=0.5)
    customer(calm, "s1", "hello there", sad=False)
    rows = floor.by_risk([floor.row(c, 200.0) for c in (calm, waiting, escalation, abuse, crisis)])
    assert [r["conversation_id"] for r in rows] == ["crisis", "abuse", "esc", "wait", "calm"]


def test_the_longest_unacknowledged_cue_ranks_first():
    early, late = conv("early"), conv("late")
    customer(early, "s1", "so frustrated", "frustration", score=0.5, now=110.0)
    customer(late, "s1", "so frustrated", "frustration", score=0.5, now=150.0)
    rows = floor.by_risk([floor.row(late, 200.0), floor.row(early, 200.0)])
    assert [r["conversation_id"] for r in rows] == ["early", "late"]
    assert rows[0]["unacknowledged"] == [{"cue": "frustration", "since": 110.0, "agent_turns": 0}]


def test_a_row_holds_counts_and_behaviours_and_no_words_of_the_customer():
    c = conv()
    customer(c, "s1", "My account number is 12345678 and I'm furious", "frustration")
    agent(c, "a1", "I understand. What happened when you called?")
    r = floor.row(c, 130.0)
    assert r["counts"] == {"frustration": 1} and r["behaviours"]["acknowledging"] == 1
    assert r["behaviours"]["open_question"] == 1
    assert "12345678" not in str(r) and "furious" not in str(r)


def test_a_hand_is_raised_once_until_answered_and_an_ended_conversation_takes_none():
    c = conv()
    assert floor.raise_hand(c, 130.0) is True and floor.raise_hand(c, 131.0) is False
    hand = floor.answer_hand(c, "on_my_way", "lee", 132.0)
    assert hand["lead"] == "lee" and hand["raised_at"] == 130.0
    assert floor.raise_hand(c, 140.0) is True
    with pytest.raises(InvalidPayload):
        floor.answer_hand(c, "go away", "lee", 141.0)
    c.ended_at = 150.0
    with pytest.raises(InvalidSnippet):
        floor.raise_hand(c, 151.0)


def test_the_first_lead_to_take_an_alert_keeps_it_and_an_unknown_alert_is_not_found():
    c = conv()
    customer(c, "s1", "no point living", "crisis")
    alert = floor.due_alerts(c, RULES, 111.0)[0]
    assert floor.claim(c, alert["id"], "lee", 112.0)["taken_by"] == {"lead": "lee", "at": 112.0}
    assert floor.claim(c, alert["id"], "lou", 113.0)["taken_by"]["lead"] == "lee"
    with pytest.raises(NotFound):
        floor.claim(c, "c-1:abuse", "lee", 114.0)


def test_a_snapshot_holds_the_live_conversations_of_the_queue_asked_for():
    billing, sales, ended = conv("b"), conv("s"), conv("e")
    sales.queue = "sales"
    ended.ended_at = 120.0
    snap = floor.snapshot([billing, sales, ended], 130.0, True, queue="billing")
    assert [r["conversation_id"] for r in snap["rows"]] == ["b"]
    assert len(floor.snapshot([billing, sales, ended], 130.0, True)["rows"]) == 2


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def change_of(c: Conversation, now: float) -> BoardChange:
    return floor.board_change(c, now, [], words=True)


def test_batches_send_a_conversations_row_at_most_once_a_second_and_the_latest_one():
    clock = Clock()
    batches = Batches(1.0, clock)
    c = conv()
    customer(c, "s0", "hello", sad=False)
    batches.add(change_of(c, 0.0))
    assert len(batches.due()["acme"]["billing"][0]) == 1
    for n in range(1, 4):
        customer(c, f"s{n}", "hello", sad=False)
        batches.add(change_of(c, 0.1))
    clock.now = 0.5
    assert batches.due() == {}
    clock.now = 1.0
    rows = batches.due()["acme"]["billing"][0]
    assert [r["customer_turns"] for r in rows] == [4]


def test_a_row_whose_risk_rose_skips_the_wait_and_an_ended_conversation_goes_at_once():
    clock = Clock()
    batches = Batches(1.0, clock)
    c = conv()
    batches.add(change_of(c, 0.0))
    batches.due()
    customer(c, "s1", "no point living", "crisis")
    batches.add(change_of(c, 0.1))
    clock.now = 0.1
    assert batches.due()["acme"]["billing"][0][0]["triage_level"] == 3
    c.ended_at = 0.2
    batches.add(change_of(c, 0.2))
    clock.now = 0.2
    assert batches.due()["acme"]["billing"] == ([], ["c-1"])


def test_a_just_started_conversations_row_does_not_hold_back_its_first_turn():
    clock = Clock()
    batches = Batches(1.0, clock)
    c = conv()
    batches.add(change_of(c, 0.0))
    batches.due()
    customer(c, "s1", "hello", sad=False)
    batches.add(change_of(c, 0.05))
    clock.now = 0.1
    assert batches.due()["acme"]["billing"][0][0]["customer_turns"] == 1
    customer(c, "s2", "hello again", sad=False)
    batches.add(change_of(c, 0.15))
    clock.now = 0.2
    assert batches.due() == {}


class Emits:
    """What a FloorFeed sends, recorded in place of a Socket.IO server."""

    def __init__(self):
        self.sent = []

    def emit(self, event, payload, to, namespace):
        self.sent.append((event, to, [r["conversation_id"] for r in payload.get("rows", [])]))


def feed_over(shared: bool, rooms: tuple[str, ...]):
    from copilot.realtime_floor import FloorFeed

    feed, emits = FloorFeed(), Emits()
    feed.attach(emits, shared=shared)
    feed.rooms.update(rooms)
    feed.watchers["acme"] = len(rooms)
    return feed, emits


def test_a_worker_alone_sends_diffs_only_to_the_rooms_its_leads_watch():
    from copilot.realtime_floor import floor_room

    feed, emits = feed_over(False, (floor_room("acme", "billing"),))
    feed.batches.add(change_of(conv("b"), 0.0))
    sales = conv("s")
    sales.queue = "sales"
    feed.batches.add(change_of(sales, 0.0))
    feed.flush()
    assert emits.sent == [("floor.diff", "floor/acme/q/billing", ["b"])]


def test_with_a_message_queue_every_room_gets_its_diff_because_another_worker_may_watch_it():
    feed, emits = feed_over(True, ())
    feed.batches.add(change_of(conv("b"), 0.0))
    feed.flush()
    assert sorted(to for _, to, _ in emits.sent) == ["floor/acme", "floor/acme/q/billing"]
