"""The conversation engine (pure): counts, triage, tone, acknowledgment, modes, suggestions, handoff, summary."""
import pytest

from copilot import conversation as engine
from copilot.conversation import Conversation, CueSeen
from copilot.errors import InvalidSnippet, NotFound

ANGRY = {"anger": 0.8, "annoyance": 0.6}
CALM = {"neutral": 0.9}
HAPPY = {"gratitude": 0.95, "relief": 0.4}


def conv(**kw):
    return Conversation(id="c1", tenant="acme", agent="a1", channel="chat", **kw)


def cue(name, score=0.9, spans=((0, 4),)):
    return CueSeen(name, score, spans)


def customer(c, sid, cues=(), emotions=CALM, final=True, now=0.0, text="word " * 10, cooldown=0.0):
    return engine.on_customer(c, sid, text, final, list(cues), emotions, now, cooldown)


def test_frustration_count_rises_with_each_final_mention():
    c = conv()
    for i in range(3):
        out = customer(c, f"s{i}", [cue("frustration")], ANGRY)
    assert c.counts["frustration"] == 3
    assert out.highlight["cues"][0]["count"] == 3
    assert out.highlight["line"] == "Frustration, 3rd mention"


def test_partial_snippets_show_but_never_count_or_alert():
    c = conv()
    out = customer(c, "s1", [cue("crisis")], final=False)
    assert out.highlight["final"] is False and out.alerts == [] and c.counts == {}
    out = customer(c, "s1", [cue("crisis")], final=True)
    assert c.counts == {"crisis": 1} and [a["kind"] for a in out.alerts] == ["crisis"]


def test_a_duplicate_final_snippet_changes_nothing():
    c = conv()
    customer(c, "s1", [cue("frustration")])
    out = customer(c, "s1", [cue("frustration")])
    assert out.duplicate and c.counts["frustration"] == 1 and c.customer_turns == 1


@pytest.mark.parametrize("cues, counts, level", [
    ([], {}, 1),
    ([cue("confusion", 0.5)], {"confusion": 1}, 1),
    ([cue("frustration", 0.5), cue("anxiety", 0.5)], {}, 2),
    ([cue("sadness", 0.9)], {"sadness": 1}, 2),
    ([cue("frustration", 0.5), cue("churn_risk", 1.0)], {}, 2),
    ([cue("frustration", 0.6), cue("repeat_contact", 1.0)], {}, 2),
    ([cue("repeat_contact", 1.0)], {}, 1),
    ([cue("frustration", 0.5)], {"frustration": 3}, 2),
    ([cue("abuse", 1.0)], {}, 2),
    ([cue("crisis", 1.0)], {}, 3),
])
def test_triage_levels(cues, counts, level):
    assert engine.triage_for(cues, counts) == level


def test_crisis_keeps_triage_at_three_for_the_rest_of_the_conversation():
    c = conv()
    customer(c, "s1", [cue("crisis")])
    customer(c, "s2", [])
    assert c.triage_level == 3


def test_tone_shift_alerts_once_when_tone_drops_sharply():
    c = conv()
    customer(c, "s1", [], HAPPY)
    customer(c, "s2", [], CALM)
    out = customer(c, "s3", [cue("frustration")], ANGRY)
    assert [a["kind"] for a in out.alerts] == ["tone_shift"]
    assert out.highlight["tone"]["trend"] == "worsening" and out.highlight["tone"]["label"] == "negative"


def test_acknowledgment_resolves_the_pending_emotion():
    c = conv()
    customer(c, "s1", [cue("frustration")], ANGRY)
    engine.on_agent(c, "a1", "I'm sorry, that sounds really frustrating.", True, 1.0)
    assert c.pending == {} and c.resolved == 1 and c.acknowledged == {"frustration": 1}
    assert c.resolution_rate == 1.0


def test_unacknowledged_emotion_gets_one_nudge_after_two_agent_turns():
    c = conv()
    customer(c, "s1", [cue("anxiety")])
    assert engine.on_agent(c, "a1", "Can I have your account number?", True, 1.0).alerts == []
    out = engine.on_agent(c, "a2", "Thanks, one moment.", True, 2.0)
    assert [a["kind"] for a in out.alerts] == ["unacknowledged"]
    assert engine.on_agent(c, "a3", "Still checking.", True, 3.0).alerts == []
    assert c.resolution_rate == 0.0


@pytest.mark.parametrize("text, behaviour", [
    ("I can hear how worrying this is.", "acknowledging"),
    ("That must be so frustrating.", "naming_emotion"),
    ("What happened when you tried to pay?", "open_question"),
    ("We could either refund it or send a replacement.", "offering_options"),
    ("To recap, I've raised a refund and you'll receive an email.", "closing_the_loop"),
])
def test_agent_behaviours_are_recognised(text, behaviour):
    assert behaviour in engine.agent_behaviours(text)


def test_verification_holds_suggestions_then_offers_the_after_verification_check_in():
    c = conv(mode="verification")
    out = customer(c, "s1", [cue("anxiety")])
    assert out.suggest_stage is None and out.highlight is not None
    assert engine.set_mode(c, "normal") is True
    assert engine.choose_stage(c, set()) == "after-verification"


def test_transactional_mode_stays_quiet_unless_a_strong_cue_appears():
    c = conv(mode="transactional")
    out = customer(c, "s1", [cue("confusion", 0.5)])
    assert out.highlight["cues"] == [] and out.suggest_stage is None
    out = customer(c, "s2", [cue("crisis")])
    assert [h["cue"] for h in out.highlight["cues"]] == ["crisis"] and out.suggest_stage is not None


def test_abuse_switches_to_agent_protection_and_never_to_empathy_prompts():
    c = conv()
    out = customer(c, "s1", [cue("abuse"), cue("frustration")])
    assert [a["kind"] for a in out.alerts] == ["agent_protection"]
    assert out.suggest_stage == "agent-protection" and out.suggest_cues == ["abuse"]
    out = customer(c, "s2", [cue("frustration")], now=100.0)
    assert out.suggest_stage == "agent-protection"
    for i in range(3):
        customer(c, f"calm{i}", [], now=200.0 + i)
    assert not c.abuse_active


def test_cooldown_spaces_suggestions_but_crisis_breaks_through():
    c = conv()
    first = customer(c, "s1", [cue("frustration")], cooldown=30.0, now=100.0)
    assert first.suggest_stage == "check-in"
    engine.record_push(c, ["p1", "p2"], 100.0)
    assert customer(c, "s2", [cue("frustration")], cooldown=30.0, now=110.0).suggest_stage is None
    assert customer(c, "s3", [cue("crisis")], cooldown=30.0, now=115.0).suggest_stage is not None


def test_feedback_takes_a_card_off_screen_and_unknown_ids_are_refused():
    c = conv()
    engine.record_push(c, ["p1", "p2", "p3"], 0.0)
    assert c.on_screen == ["p1", "p2"]
    engine.record_feedback(c, "p1", "used")
    assert c.on_screen == ["p2"] and c.used == ["p1"]
    with pytest.raises(NotFound):
        engine.record_feedback(c, "never-shown", "used")
    with pytest.raises(ValueError):
        engine.record_feedback(c, "p2", "loved")


def test_handoff_note_carries_the_emotional_history():
    c = conv()
    customer(c, "s1", [cue("repeat_contact"), cue("frustration")], ANGRY)
    engine.on_agent(c, "a1", "I'm sorry, I can see why that's frustrating.", True, 1.0)
    customer(c, "s2", [cue("frustration")], ANGRY)
    customer(c, "s3", [cue("frustration"), cue("escalation_request")], ANGRY)
    note = engine.handoff_note(c)
    assert note.startswith("Customer says they have contacted us before")
    assert "frustration x3, acknowledged once" in note and "asked to escalate" in note
    assert "no crisis signs" in note


def test_summary_has_timeline_resolution_and_suggestions():
    c = conv()
    customer(c, "s1", [cue("sadness")], {"sadness": 0.9}, now=1.0)
    engine.on_agent(c, "a1", "I'm so sorry to hear that.", True, 2.0)
    engine.record_push(c, ["p1"], 2.0)
    engine.record_feedback(c, "p1", "used")
    c.ended_at = 3.0
    result = engine.summary(c)
    assert result["timeline"][0]["cues"] == ["sadness"] and result["emotional_resolution_rate"] == 1.0
    assert result["suggestions"]["used"] == ["p1"]


def test_an_ended_conversation_takes_no_more_snippets():
    c = conv()
    c.ended_at = 1.0
    with pytest.raises(InvalidSnippet):
        customer(c, "s9", [])


def test_consent_false_keeps_counts_but_no_words():
    c = conv(consent=False)
    customer(c, "s1", [cue("frustration")], text="fury at the bill")
    assert c.counts == {"frustration": 1} and c.evidence == {}


def test_state_round_trips_through_a_plain_dict():
    c = conv()
    customer(c, "s1", [cue("frustration")], ANGRY)
    assert Conversation.from_dict(c.as_dict()) == c


def test_summary_lists_the_alerts_sent_and_nothing_else():
    c = conv()
    customer(c, "s1", [cue("crisis")])
    customer(c, "s2", [cue("anxiety")], now=1.0)
    engine.on_agent(c, "a1", "One moment.", True, 2.0)
    engine.on_agent(c, "a2", "Still checking.", True, 3.0)
    assert engine.summary(c)["alerts"] == ["crisis", "unacknowledged", "unacknowledged"]


def test_alerts_stay_bounded_however_long_the_tone_keeps_swinging():
    c = conv()
    for i in range(400):
        customer(c, f"s{i}", [], ANGRY if i % 2 else HAPPY)
    assert len(c.alerts) <= engine.MAX_TONE_SHIFTS
    out = customer(c, "crisis", [cue("crisis")])
    assert "crisis" in [a["kind"] for a in out.alerts]


def test_a_conversation_is_open_to_its_agent_a_transferee_and_leads_only():
    c = conv(agents=["b2"])
    assert c.open_to("a1", "agent") and c.open_to("b2", "agent")
    assert c.open_to("x9", "lead") and c.open_to("x9", "admin")
    assert not c.open_to("x9", "agent")


def test_state_saved_before_a_field_existed_still_loads():
    data = conv().as_dict()
    data.pop("agents")
    data["retired_field"] = 1
    assert Conversation.from_dict(data).agents == []


def test_shown_phrasings_are_capped():
    c = conv()
    for i in range(engine.MAX_SHOWN + 50):
        engine.record_push(c, [f"p{i}"], float(i))
    assert len(c.shown) == engine.MAX_SHOWN and c.shown[-1] == f"p{engine.MAX_SHOWN + 49}"


def test_evidence_kept_in_state_holds_no_card_digits():
    c = conv()
    text = "I already gave you my card 4111 1111 1111 1111 twice"
    customer(c, "s1", [CueSeen("repeat_contact", 0.9, ((27, 31), (32, 36)))], text=text)
    assert c.evidence["repeat_contact"] and not any(ch.isdigit() for ws in c.evidence.values() for w in ws for ch in w)


def test_a_crisis_after_abuse_gets_crisis_cards_not_agent_protection():
    c = conv()
    out = customer(c, "s1", [cue("abuse")], ANGRY)
    assert out.suggest_stage == "agent-protection" and c.abuse_active
    out = customer(c, "s2", [cue("crisis"), cue("escalation_request")], {"sadness": 0.9})
    assert out.suggest_stage == "check-in" and out.suggest_cues == ["crisis"]
    assert "crisis_suggested" in c.flags and c.triage_level == 3


def test_a_repeat_contact_turn_never_reads_as_a_positive_tone():
    c = conv()
    customer(c, "s1", [cue("repeat_contact", 1.0)], {"approval": 0.9, "neutral": 0.5})
    assert engine.tone_label(c.tones)["label"] == "negative"


def test_a_final_agent_turn_is_highlighted_as_the_agents_with_no_cues():
    c = conv()
    out = engine.on_agent(c, "a1", "I'm sorry to hear that.", True, 1.0)
    assert out.highlight["speaker"] == "agent" and out.highlight["cues"] == [] and out.highlight["text"]
    assert engine.on_agent(c, "a2", "I'm sor", False, 2.0).highlight is None
    assert customer(c, "s1", [cue("frustration")], ANGRY).highlight["speaker"] == "customer"


def test_an_escalation_request_gets_one_handoff_note_per_conversation_on_a_final_turn():
    c = conv()
    customer(c, "s1", [cue("escalation_request")], ANGRY, final=False)
    assert engine.escalation_handoff(c, [cue("escalation_request")], final=False) is None
    customer(c, "s1", [cue("escalation_request")], ANGRY)
    note = engine.escalation_handoff(c, [cue("escalation_request")], final=True)
    assert note == engine.handoff_note(c) and note.startswith("Asked to escalate")
    assert engine.escalation_handoff(c, [cue("escalation_request")], final=True) is None
    assert engine.escalation_handoff(conv(), [cue("frustration")], final=True) is None


@pytest.mark.parametrize("mode, start, negative, query", [
    ("normal", "verification", True, "now that you are verified, about the anxiety repeat contact"),
    ("transactional", "verification", True, "now that you are verified, about the anxiety repeat contact"),
    ("verification", "verification", True, None),  # still verifying
    ("normal", "verification", False, None),  # nothing negative came up while verifying
    ("verification", "normal", False, None),
])
def test_leaving_verification_after_a_negative_cue_looks_up_its_cues_most_mentioned_first(mode, start, negative,
                                                                                         query):
    c = conv(mode=start, counts={"repeat_contact": 1, "anxiety": 2}, verification_seen_negative=negative)
    assert engine.after_verification_query(c, mode) == query


def test_a_conversation_without_guidance_looks_nothing_up_for_the_check_in():
    c = conv(mode="verification", counts={"anxiety": 2}, verification_seen_negative=True, guidance=False)
    assert engine.after_verification_query(c, "normal") is None
    assert engine.on_mode(c, "normal").suggest_stage is None and c.after_verification_due


def test_a_mode_change_that_makes_the_check_in_due_asks_for_it_with_the_cues_by_count():
    c = conv(mode="verification", counts={"repeat_contact": 1, "anxiety": 2}, verification_seen_negative=True)
    out = engine.on_mode(c, "normal")
    assert (out.suggest_stage, out.suggest_cues, c.mode) == ("after-verification", ["anxiety", "repeat_contact"],
                                                             "normal")
    assert engine.on_mode(c, "transactional").suggest_stage is None  # not leaving verification now


def test_a_mode_change_asks_for_no_check_in_without_guidance_yet_leaves_it_due():
    c = conv(mode="verification", counts={"anxiety": 1}, verification_seen_negative=True, guidance=False)
    assert engine.on_mode(c, "normal").suggest_stage is None and c.after_verification_due


def test_a_transfer_remembers_the_queue_and_the_new_agent_once_and_gives_the_note():
    c = conv()
    customer(c, "s1", [cue("frustration")], ANGRY)
    assert engine.transfer(c, "retention", "bo") == engine.handoff_note(c)
    engine.transfer(c, "billing", "bo")
    engine.transfer(c, "billing", "a1")  # the agent who started it is not added as a transferee
    assert c.transfers == ["retention", "billing", "billing"] and c.agents == ["bo"]
    assert c.open_to("bo", "agent")


def test_transfers_and_transferees_are_capped():
    c = conv()
    for i in range(engine.MAX_TRANSFERS + 5):
        engine.transfer(c, f"q{i}", f"agent-{i}")
    assert len(c.transfers) == engine.MAX_TRANSFERS and c.transfers[-1] == f"q{engine.MAX_TRANSFERS + 4}"
    assert len(c.agents) == engine.MAX_AGENTS and c.agents[-1] == f"agent-{engine.MAX_TRANSFERS + 4}"


def test_the_first_end_of_a_conversation_stands():
    c = conv()
    assert engine.end(c, 10.0) is True and c.ended_at == 10.0
    assert engine.end(c, 20.0) is False and c.ended_at == 10.0


def test_a_variant_without_guidance_turns_suggestions_off():
    c = conv()
    engine.join_experiment(c, "guidance-ab", "off", False)
    assert c.experiment == ["guidance-ab", "off"] and not c.guidance
    assert customer(c, "s1", [cue("frustration")], ANGRY).suggest_stage is None


@pytest.mark.parametrize("cues, raised, counted", [
    (("anxiety", "frustration"), {"frustration": 1}, "frustration"),
    (("anxiety", "frustration"), {"anxiety": 1, "frustration": 3}, "anxiety"),
    (("anxiety", "frustration"), {}, "anxiety"),
    (("",), {"frustration": 1}, ""),  # a phrasing since deleted
])
def test_feedback_counts_under_the_first_cue_of_the_phrasing_the_conversation_raised(cues, raised, counted):
    assert engine.feedback_cue(conv(counts=raised), cues) == counted


def test_an_interim_result_arriving_after_its_final_one_is_a_duplicate_and_shows_nothing():
    c = conv()
    customer(c, "s1", [cue("frustration")], text="I am really fed up now")
    late = customer(c, "s1", [cue("frustration")], final=False, text="I am really")
    assert late.duplicate and late.highlight is None and c.counts["frustration"] == 1
    agent_late = engine.on_agent(c, "s1", "I am sorry", final=False, now=0.0)
    assert agent_late.duplicate


def test_interim_results_before_the_final_one_replace_each_other_and_the_final_counts_once():
    c = conv()
    for text in ("I am", "I am really", "I am really fed up"):
        assert not customer(c, "s1", [cue("frustration")], final=False, text=text).duplicate
    assert customer(c, "s1", [cue("frustration")], text="I am really fed up now").highlight["cues"][0]["count"] == 1
    assert c.counts["frustration"] == 1 and c.customer_turns == 1


def test_an_unclaimed_conversation_becomes_the_first_claiming_agents_and_only_theirs():
    c = Conversation(id="c1", tenant="acme", agent="", channel="voice")
    assert engine.claimable(c) and not c.open_to("amy", "agent")
    assert engine.claim(c, "amy") and c.agent == "amy"
    assert not engine.claim(c, "bob") and c.agent == "amy"
    assert c.open_to("amy", "agent") and not c.open_to("bob", "agent")


def test_an_ended_or_claimed_conversation_cannot_be_claimed():
    ended = Conversation(id="c1", tenant="acme", agent="", channel="voice")
    engine.end(ended, 5.0)
    assert not engine.claimable(ended) and not engine.claim(ended, "amy") and ended.agent == ""
    assert not engine.claimable(conv())


def test_an_integration_may_act_on_any_conversation_of_its_tenant():
    assert conv().open_to("crm", "integration")


def test_an_utterance_s_pieces_join_until_its_final_which_clears_them():
    c = conv()
    assert engine.take_piece(c, "u1", "a charge", 4000) == "a charge"
    assert engine.take_piece(c, "u1", "on my bill", 4000) == "a charge on my bill"
    assert engine.take_piece(c, "u1", "on my bill", 4000) == "a charge on my bill"  # a source's retry: once
    assert Conversation.from_dict(c.as_dict()) == c and c.pieces == {"u1": "a charge on my bill"}
    customer(c, "u1", text="A charge on my bill.")
    assert c.pieces == {}
    assert engine.take_piece(c, "u1", "late piece", 4000) == "late piece" and c.pieces == {}


def test_pieces_stay_bounded_in_length_and_in_open_utterances_and_go_at_the_end():
    c = conv()
    text = ""
    for n in range(50):
        text = engine.take_piece(c, "long", f"word{n:02d} again", 40)
    assert len(text) <= 40 and text.endswith("word49 again") and text.startswith("word")
    for n in range(engine.MAX_PIECES + 5):
        engine.take_piece(c, f"u{n}", "hello", 4000)
    assert len(c.pieces) == engine.MAX_PIECES and f"u{engine.MAX_PIECES + 4}" in c.pieces
    engine.end(c, 1.0)
    assert c.pieces == {}


def test_pieces_are_kept_redacted_with_digit_runs_masked_and_not_at_all_without_consent():
    conv = Conversation(id="c-p", tenant="t", agent="a", channel="voice")
    assert engine.take_piece(conv, "u1", "my card is 4111 1111", 4000) == "my card is 4111 1111"
    assert "4111" not in conv.pieces["u1"] and "1111" not in conv.pieces["u1"]
    quiet = Conversation(id="c-q", tenant="t", agent="a", channel="voice", consent=False)
    assert engine.take_piece(quiet, "u1", "my card is 4111", 4000) == "my card is 4111"
    assert quiet.pieces == {}
    assert engine.take_piece(conv, "u2", "call me on 07700 900123", 4000, keep=False) == "call me on 07700 900123"
    assert "u2" not in conv.pieces


def test_a_final_id_outlives_two_thousand_later_interim_ids_so_its_resend_stays_a_duplicate():
    conv = Conversation(id="c-s", tenant="t", agent="a", channel="voice")
    assert engine._remember_snippet(conv, "first", True)
    for n in range(engine.MAX_SEEN + 500):
        engine._remember_snippet(conv, f"interim-{n}", False)
    assert len(conv.seen) == engine.MAX_SEEN
    assert not engine._remember_snippet(conv, "first", True)
    for n in range(engine.MAX_SEEN):
        engine._remember_snippet(conv, f"final-{n}", True)
    assert engine._remember_snippet(conv, "first", True) and len(conv.seen) == engine.MAX_SEEN  # finals: the newest
