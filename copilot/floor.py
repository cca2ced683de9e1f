"""The live floor (pure): what a team lead's board shows of each live conversation, the order of risk it is sorted
in, the alert rules that page the leads, raised hands and their answers.

Plain data in, plain data out. A row carries the customer's cues and the agent's behaviours (acknowledged, asked,
offered), never anything about the agent's emotions: the EU AI Act forbids inferring employees' emotions at work.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from copilot.conversation import Conversation, handoff_note, tone_label
from copilot.cues.taxonomy import EMOTION_CUES, NEGATIVE_CUES
from copilot.errors import InvalidPayload, InvalidSnippet, NotFound

MAX_WHISPER_CHARS = 280
NEGATIVE_TONE = -0.2  # a customer turn whose tone is below this is negative (as tone_label says)
MAX_EVIDENCE_WORDS = 3  # per cue on an alert card
HAND_ANSWERS = {"on_my_way": "On my way", "take_it_from_here": "Take it from here"}
BEHAVIOURS = ("acknowledging", "naming_emotion", "open_question", "offering_options", "closing_the_loop")

# Each rule a tenant may switch on or off; those with a threshold keep it in [low, high].
RULE_KINDS = ("triage", "abuse", "escalation_request", "unacknowledged", "negative_tone")
THRESHOLDS: dict[str, tuple[int, int]] = {"triage": (2, 3), "unacknowledged": (1, 20), "negative_tone": (2, 50)}
DEFAULT_RULES: dict[str, dict[str, Any]] = {
    "triage": {"enabled": True, "threshold": 3},
    "abuse": {"enabled": True},
    "escalation_request": {"enabled": True},
    "unacknowledged": {"enabled": True, "threshold": 2},
    "negative_tone": {"enabled": True, "threshold": 4},
}


def check_rules(change: Any, current: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The rules after `change` (a partial map of kind -> {enabled?, threshold?}) merges onto `current` (the
    defaults when None); InvalidPayload names what is wrong."""
    rules = {kind: dict(rule) for kind, rule in (current or DEFAULT_RULES).items()}
    if not isinstance(change, dict):
        raise InvalidPayload("rules must be a JSON object of rule kind -> {enabled, threshold}")
    for kind, rule in change.items():
        if kind not in RULE_KINDS:
            raise InvalidPayload(f"there is no rule '{str(kind)[:40]}'; the rules are {', '.join(RULE_KINDS)}")
        if not isinstance(rule, dict) or set(rule) - {"enabled", "threshold"}:
            raise InvalidPayload(f"rule {kind} takes an object with enabled and threshold only")
        if "enabled" in rule:
            if not isinstance(rule["enabled"], bool):
                raise InvalidPayload(f"rule {kind}: enabled must be true or false")
            rules[kind]["enabled"] = rule["enabled"]
        if "threshold" in rule:
            if kind not in THRESHOLDS:
                raise InvalidPayload(f"rule {kind} has no threshold")
            low, high = THRESHOLDS[kind]
            value = rule["threshold"]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidPayload(f"rule {kind}: threshold must be a whole number {low}-{high}")
            rules[kind]["threshold"] = value
    return rules


def negative_run(tones: list[float]) -> int:
    """How many of the latest customer turns in a row had a negative tone."""
    run = 0
    for tone in reversed(tones):
        if tone >= NEGATIVE_TONE:
            break
        run += 1
    return run


def waiting(conv: Conversation) -> list[dict[str, Any]]:
    """The negative cues not yet acknowledged: since when, and for how many agent turns, the longest first."""
    items = [{"cue": cue, "since": conv.pending_since.get(cue, conv.started_at),
              "agent_turns": conv.agent_turns - opened} for cue, opened in conv.pending.items()]
    return sorted(items, key=lambda w: (w["since"], w["cue"]))


def _reasons(conv: Conversation, rules: dict[str, dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    """(rule, reason, the cues whose words are its evidence) for every enabled rule the conversation now meets."""
    met = []
    triage = rules["triage"]
    if triage["enabled"] and conv.triage_level >= triage["threshold"]:
        level = conv.triage_level
        cues = ["crisis"] if conv.crisis else sorted(c for c in conv.counts if c in NEGATIVE_CUES)
        met.append(("triage", "Crisis signs: triage level 3" if level == 3 else
                    f"Significant distress: triage level {level}", cues))
    if rules["abuse"]["enabled"] and conv.counts.get("abuse"):
        met.append(("abuse", "Abusive language towards the agent", ["abuse"]))
    if rules["escalation_request"]["enabled"] and conv.counts.get("escalation_request"):
        met.append(("escalation_request", "The customer asked to escalate", ["escalation_request"]))
    unacknowledged = rules["unacknowledged"]
    if unacknowledged["enabled"]:
        late = [w for w in waiting(conv) if w["agent_turns"] >= unacknowledged["threshold"]]
        if late:
            names = ", ".join(w["cue"].replace("_", " ") for w in late)
            turns = unacknowledged["threshold"]
            met.append(("unacknowledged", f"Not acknowledged for {turns} agent turn{'s' if turns > 1 else ''}: "
                        f"{names}", [w["cue"] for w in late]))
    tone = rules["negative_tone"]
    if tone["enabled"] and negative_run(conv.tones) >= tone["threshold"]:
        met.append(("negative_tone", f"Negative tone for {tone['threshold']} customer turns in a row",
                    sorted(c for c in conv.counts if c in NEGATIVE_CUES and c in EMOTION_CUES)))
    return met


def due_alerts(conv: Conversation, rules: dict[str, dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """The floor alerts this conversation now calls for, each rule once per conversation: remembered in the
    conversation (so every worker agrees, in the same change as the snippet) and returned."""
    fired = {a["rule"] for a in conv.lead_alerts}
    new = []
    for rule, reason, cues in _reasons(conv, rules):
        if rule in fired:
            continue
        alert = {"id": f"{conv.id}:{rule}", "rule": rule, "reason": reason, "cues": cues, "at": now,
                 "taken_by": None}
        conv.lead_alerts.append(alert)
        new.append(alert)
    return new


def alert_card(conv: Conversation, alert: dict[str, Any], words: bool) -> dict[str, Any]:
    """An alert as a lead's board shows it: the reason, the emotional history and the customer's own words.
    Without consent it carries counts only (no history, no words); `words` False (COPILOT_TRANSCRIPT=none)
    leaves the words out."""
    history = handoff_note(conv) if conv.consent else ""
    evidence = []
    if conv.consent and words:
        evidence = [{"cue": cue, "words": conv.evidence[cue][-MAX_EVIDENCE_WORDS:]}
                    for cue in alert["cues"] if conv.evidence.get(cue)]
    return {"id": alert["id"], "conversation_id": conv.id, "agent": conv.agent, "queue": conv.queue,
            "rule": alert["rule"], "reason": alert["reason"], "history": history, "evidence": evidence,
            "at": alert["at"], "taken_by": alert["taken_by"]}


def risk(conv: Conversation, unacknowledged: list[dict[str, Any]], tone: dict[str, Any]) -> list[float]:
    """The board's sort key, greater first: crisis, abuse, an escalation request, a negative cue waiting for
    acknowledgment (the longest waiting first), a falling tone, the triage level, the longest on the call."""
    oldest = unacknowledged[0]["since"] if unacknowledged else 0.0
    return [int(conv.triage_level == 3), int(conv.abuse_active), int(bool(conv.counts.get("escalation_request"))),
            int(bool(unacknowledged)), -round(oldest, 3), int(tone["trend"] == "worsening"), conv.triage_level,
            -round(conv.started_at, 3)]


def row(conv: Conversation, now: float) -> dict[str, Any]:
    """One conversation's row on the board as of `now`, its `updated_at` (a board keeps the newest row of each
    conversation). It holds no words of the customer's: only counts, levels and times (to the millisecond)."""
    unacknowledged = [{**w, "since": round(w["since"], 3)} for w in waiting(conv)]
    tone = tone_label(conv.tones)
    last = conv.lead_alerts[-1] if conv.lead_alerts else None
    return {
        "conversation_id": conv.id, "agent": conv.agent, "queue": conv.queue, "channel": conv.channel,
        "started_at": round(conv.started_at, 3), "updated_at": round(now, 3), "triage_level": conv.triage_level,
        "counts": dict(conv.counts),
        "tone": {"score": tone["score"], "label": tone["label"], "trend": tone["trend"]},
        "mode": "agent-protection" if conv.abuse_active else conv.mode, "abuse": conv.abuse_active,
        "escalation": bool(conv.counts.get("escalation_request")), "unacknowledged": unacknowledged,
        "behaviours": {name: conv.behaviours.get(name, 0) for name in BEHAVIOURS},
        "last_alert": None if last is None else {k: last[k] for k in ("id", "rule", "reason", "at")},
        "hand": dict(conv.hand) if conv.hand else None, "consent": conv.consent,
        "customer_turns": conv.customer_turns, "agent_turns": conv.agent_turns,
        "risk": risk(conv, unacknowledged, tone),
    }


def by_risk(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in the board's order, the most at risk first (ties by conversation id, so the order is stable)."""
    return sorted(sorted(rows, key=lambda r: r["conversation_id"]), key=lambda r: r["risk"], reverse=True)


def open_for_floor(conv: Conversation) -> Conversation:
    """The conversation, if a lead may still act on it from the floor (conversation_ended once it has ended)."""
    if conv.ended_at is not None:
        raise InvalidSnippet(f"conversation {conv.id} has ended")
    return conv


def claim(conv: Conversation, alert_id: str, lead: str, now: float) -> dict[str, Any]:
    """A lead takes an alert ("I'm on it"); the first lead to take it keeps it. NotFound for an alert this
    conversation never raised."""
    for alert in conv.lead_alerts:
        if alert["id"] == alert_id:
            if alert["taken_by"] is None:
                alert["taken_by"] = {"lead": lead, "at": now}
            return alert
    raise NotFound(f"conversation {conv.id} has no alert {alert_id[:140]}")


def raise_hand(conv: Conversation, now: float) -> bool:
    """The agent asks for a lead; False when a hand is already up and unanswered (nothing changes)."""
    open_for_floor(conv)
    if conv.hand and conv.hand.get("answer") is None:
        return False
    conv.hand = {"raised_at": now, "answer": None, "lead": None}
    return True


def answer_hand(conv: Conversation, answer: str, lead: str, now: float) -> dict[str, Any]:
    """A lead answers the raised hand (or speaks up unasked: the agent sees the answer either way)."""
    open_for_floor(conv)
    if answer not in HAND_ANSWERS:
        raise InvalidPayload(f"answer must be one of {', '.join(HAND_ANSWERS)}")
    raised = conv.hand["raised_at"] if conv.hand else None
    conv.hand = {"raised_at": raised, "answer": answer, "lead": lead, "answered_at": now}
    return conv.hand


@dataclass
class BoardChange:
    """What one event changes on the tenant's floor: the conversation's new row (or its removal, once ended),
    the alerts it raised or a lead took, and a raised hand. The transport shares it with every worker."""

    tenant: str
    queue: str
    conversation_id: str
    row: dict[str, Any] | None = None
    removed: bool = False
    alerts: list[dict[str, Any]] = field(default_factory=list)
    hand: dict[str, Any] | None = None


def board_change(conv: Conversation, now: float, alerts: list[dict[str, Any]], words: bool,
                 hand: bool = False) -> BoardChange:
    """The BoardChange of one event on this conversation: its row (removed once it has ended), the alert cards of
    `alerts`, and the page of a hand just raised."""
    change = BoardChange(conv.tenant, conv.queue, conv.id)
    conv.changed_at = max(conv.changed_at, now)  # in the same change: a later snapshot shows this row's time
    if conv.ended_at is not None:
        change.removed = True
        return change
    change.row = row(conv, now)
    change.alerts = [alert_card(conv, a, words) for a in alerts]
    if hand:
        change.hand = {"conversation_id": conv.id, "agent": conv.agent, "queue": conv.queue,
                       "raised_at": conv.hand["raised_at"], "summary": handoff_note(conv) if conv.consent else "",
                       "row": change.row}
    return change


def snapshot(conversations: list[Conversation], now: float, words: bool, queue: str = "") -> dict[str, Any]:
    """The board as a lead first sees it at `now`: every live conversation's row (of `queue`, when given) by risk,
    each as of its last change, and their alerts, the newest first."""
    live = [c for c in conversations if c.ended_at is None and (not queue or c.queue == queue)]
    alerts = [alert_card(c, a, words) for c in live for a in c.lead_alerts]
    rows = by_risk([row(c, c.changed_at or c.started_at) for c in live])
    return {"rows": rows, "total": len(rows), "alerts": sorted(alerts, key=lambda a: a["at"], reverse=True),
            "at": now}
