"""The per-conversation state machine (pure): counts, tone, triage, acknowledgment, modes and suggestion timing.

Plain data in, plain data out. The service feeds it one snippet at a time with the detector's cues; it answers
with what to show (a highlight, alerts, whether and at which stage to look for suggestions) and keeps the
emotional history that becomes the handoff note and the summary.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from copilot.cues.taxonomy import EMOTION_CUES, NEGATIVE_CUES
from copilot.errors import InvalidSnippet, NotFound
from copilot.redact import mask_evidence, redact
from copilot.scorecard import ACK_WINDOW_TURNS, ACKNOWLEDGING, first_raised, scorecard

MODES = ("normal", "verification", "transactional")
CHANNELS = ("voice", "chat", "email")
SPEAKERS = ("customer", "agent")
FEEDBACK = ("used", "dismissed", "helpful", "not_helpful")

TONE_WINDOW = 3  # customer turns in the recent-tone average
TONE_SHIFT = 0.45  # drop of the latest tone below the recent average that counts as a shift
STRONG_SCORE = 0.8  # a cue this sure breaks transactional quiet
ABUSE_CLEAR_TURNS = 3  # customer turns without abuse before protection mode ends
MAX_TIMELINE = 200
MAX_EVIDENCE = 5
MAX_SEEN = 2000
HARD_CUES = frozenset({"repeat_contact", "escalation_request", "churn_risk", "abuse", "crisis"})
HARD_CUE_TONE = -0.3  # the tone of a turn carrying one of them is at most this (negative: below -0.2)
MAX_TONE_SHIFTS = 10  # tone-shift alerts are keyed by turn: only the latest are kept to tell repeats apart
MAX_SHOWN = 500  # phrasings remembered as shown (past it the oldest may come back, which is harmless)
MAX_TRANSFERS = 20
MAX_AGENTS = 20  # agents a conversation was transferred to, besides the one who started it
MAX_ACKS = 200  # acknowledgments timed for the scorecard (past it the oldest go: only a marathon gets there)
MAX_PIECES = 20  # utterances whose pieces so far are kept until their final (a source that sends pieces: Contact Lens)
EVIDENCE_WORDS = 6  # words kept either side of a behaviour's words, for the scorecard
MAX_BEHAVIOUR_EVIDENCE = 120  # characters
WORD = re.compile(r"\S+")

POSITIVE = {"gratitude": 1.0, "relief": 1.0, "joy": 0.8, "approval": 0.6, "admiration": 0.8, "optimism": 0.6,
            "love": 0.6, "caring": 0.4, "amusement": 0.4, "excitement": 0.6}
NEGATIVE = {"anger": 1.0, "annoyance": 0.8, "disappointment": 0.8, "disapproval": 0.6, "disgust": 1.0,
            "fear": 0.8, "nervousness": 0.7, "sadness": 0.9, "grief": 1.0, "remorse": 0.5, "embarrassment": 0.4,
            "confusion": 0.3}

ACKNOWLEDGE = re.compile(
    r"\b(?:i (?:completely |totally |really )?(?:understand|hear you|get (?:it|that|why))|i can (?:see|hear|imagine|"
    r"understand)|that (?:sounds|must (?:be|have been)|is (?:really )?(?:frustrating|worrying|upsetting|hard|awful))|"
    r"i'?m (?:so |really |very )?sorry|i apologi[sz]e|thank(?:s| you) for (?:your patience|bearing with|"
    r"explaining|telling)|you'?re right|fair enough|no wonder|makes sense that you|i appreciate)", re.IGNORECASE)
NAME_EMOTION = re.compile(
    r"\b(?:frustrat\w*|upset\w*|worr\w*|anxious|stress\w*|disappoint\w*|confus\w*|angry|annoy\w*|"
    r"scar\w*|sad|difficult time|hard time|distress\w*|overwhelm\w*)\b", re.IGNORECASE)
OPEN_QUESTION = re.compile(r"(?:^|[.!?]\s+)(?:what|how|which|where|when|why|tell me|walk me through|could you "
                           r"(?:tell|walk|describe|share))\b[^?]*\?", re.IGNORECASE)
OFFER_OPTIONS = re.compile(r"\b(?:one option|another option|options? (?:are|is)|we (?:could|can)|you (?:could|can) "
                           r"(?:either|choose)|would you prefer|either\b.+\bor\b|i can offer|what i can do)",
                           re.IGNORECASE)
CLOSE_LOOP = re.compile(r"\b(?:anything else|to (?:confirm|recap|summari[sz]e)|so (?:to )?(?:recap|summari[sz]e)|"
                        r"i'?ll (?:follow up|call you back|email you|keep you updated)|you'?ll (?:receive|get|hear)|"
                        r"i'?ve (?:updated|arranged|booked|raised|sent|applied))", re.IGNORECASE)


@dataclass
class Conversation:
    """Everything the copilot remembers about one conversation (small: capped lists, no transcript)."""

    id: str
    tenant: str
    agent: str
    channel: str
    queue: str = ""
    customer_ref: str = ""
    locale: str = "en"
    consent: bool = True
    started_at: float = 0.0
    mode: str = "normal"
    customer_turns: int = 0
    agent_turns: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    evidence: dict[str, list[str]] = field(default_factory=dict)
    tones: list[float] = field(default_factory=list)
    triage_history: list[int] = field(default_factory=list)
    crisis: bool = False
    abuse_active: bool = False
    turns_since_abuse: int = 0
    pending: dict[str, int] = field(default_factory=dict)  # negative cue -> agent_turns when it opened
    pending_since: dict[str, float] = field(default_factory=dict)  # negative cue -> when it opened (the floor's clock)
    episodes: int = 0
    resolved: int = 0
    acknowledged: dict[str, int] = field(default_factory=dict)
    behaviours: dict[str, int] = field(default_factory=dict)
    behaviour_evidence: dict[str, list] = field(default_factory=dict)  # behaviour -> [agent turn, words or None]
    acks: list[list] = field(default_factory=list)  # [negative cue, agent_turns when it opened, turn acknowledged]
    cue_episodes: dict[str, int] = field(default_factory=dict)  # negative cue -> episodes it opened
    shown: list[str] = field(default_factory=list)
    used: list[str] = field(default_factory=list)
    dismissed: list[str] = field(default_factory=list)
    rated: dict[str, str] = field(default_factory=dict)
    on_screen: list[str] = field(default_factory=list)
    last_push_at: float = -1e9
    verification_seen_negative: bool = False
    after_verification_due: bool = False
    alerts: list[list[str]] = field(default_factory=list)  # [kind, key] of every alert sent, each once
    flags: list[str] = field(default_factory=list)  # one-shot facts: "crisis_suggested", "escalation_handoff"
    timeline: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, bool] = field(default_factory=dict)  # snippet id -> final
    pieces: dict[str, str] = field(default_factory=dict)  # snippet id -> its pieces so far, until its final
    experiment: list[str] | None = None  # [experiment id, variant]
    guidance: bool = True
    transfers: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)  # agents it was handed to, who may act on it too
    open_digits: dict[str, int] = field(default_factory=dict)  # speaker -> redaction state: open digits (+128: an email cut off)
    lead_alerts: list[dict[str, Any]] = field(default_factory=list)  # the floor's alerts: {id, rule, reason, at, taken_by}
    hand: dict[str, Any] | None = None  # a raised hand: {raised_at, answer, lead}
    changed_at: float = 0.0  # when its row on the live floor last changed (a row's version for the board)
    ended_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (shallow: every field already holds JSON-ready values)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        known = {f.name for f in fields(cls)}  # state written before a field existed still loads
        return cls(**{k: v for k, v in data.items() if k in known})

    def open_to(self, agent: str, role: str) -> bool:
        """Whether an identity may see and act on this conversation: the agent who started or claimed it, an
        agent it was transferred to, or a lead, admin or integration of the tenant (the tenant is checked by the
        store's key; only copilot.sources' Ingest hands the service an integration identity)."""
        return role in ("lead", "admin", "integration") or agent == self.agent or agent in self.agents

    @property
    def triage_level(self) -> int:
        """1 mild, 2 significant distress, 3 crisis (sticky once disclosed); recent turns decide 1 or 2."""
        if self.crisis:
            return 3
        return max(self.triage_history[-TONE_WINDOW:], default=1)

    @property
    def resolution_rate(self) -> float | None:
        """Share of negative-cue episodes the agent acknowledged (None when there were none)."""
        return round(self.resolved / self.episodes, 4) if self.episodes else None


@dataclass(frozen=True)
class CueSeen:
    """One cue on one snippet, as the detector reported it."""

    cue: str
    score: float
    spans: tuple[tuple[int, int], ...]


@dataclass
class Outcome:
    """What a snippet changes on screen."""

    highlight: dict[str, Any] | None = None
    alerts: list[dict[str, str]] = field(default_factory=list)
    suggest_stage: str | None = None
    suggest_cues: list[str] = field(default_factory=list)
    duplicate: bool = False


def tone_of(emotions: dict[str, float]) -> float:
    """A tone score in [-1, 1] from the emotion probabilities: positive minus negative weight."""
    positive = sum(w * emotions.get(k, 0.0) for k, w in POSITIVE.items())
    negative = sum(w * emotions.get(k, 0.0) for k, w in NEGATIVE.items())
    return max(-1.0, min(1.0, positive - negative))


def tone_label(tones: list[float]) -> dict[str, Any]:
    """The latest tone, its word, and the trend over recent turns."""
    if not tones:
        return {"score": 0.0, "label": "neutral", "trend": "steady", "recent": []}
    latest = tones[-1]
    label = "negative" if latest < -0.2 else "positive" if latest > 0.2 else "neutral"
    recent = tones[-TONE_WINDOW - 1:]
    trend = "steady"
    if len(recent) >= 2:
        change = recent[-1] - sum(recent[:-1]) / len(recent[:-1])
        trend = "worsening" if change < -0.2 else "improving" if change > 0.2 else "steady"
    return {"score": round(latest, 3), "label": label, "trend": trend, "recent": [round(t, 3) for t in tones[-8:]]}


def triage_for(cues: Iterable[CueSeen], counts: dict[str, int]) -> int:
    """The triage level one customer turn shows (3 for crisis, 2 for significant distress, else 1). A negative
    emotion together with a repeat contact, an escalation request or churn talk is significant distress."""
    names = {c.cue: c for c in cues}
    if "crisis" in names:
        return 3
    negative_emotions = [c for c in names.values() if c.cue in EMOTION_CUES and c.cue in NEGATIVE_CUES]
    strong = [c for c in negative_emotions if c.score >= 0.7]
    if ("abuse" in names or len(negative_emotions) >= 2 or strong
            or (negative_emotions and ({"escalation_request", "churn_risk", "repeat_contact"} & set(names)))
            or any(counts.get(c.cue, 0) >= 3 for c in negative_emotions)):
        return 2
    return 1


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def line_for(cues: list[CueSeen], counts: dict[str, int]) -> str:
    """A short human sentence: 'Frustration, 3rd mention; repeat contact'."""
    parts = []
    for c in cues:
        name = c.cue.replace("_", " ")
        count = counts.get(c.cue, 0)
        parts.append(f"{name.capitalize() if not parts else name}, {ordinal(count)} mention" if count > 1
                     else (name.capitalize() if not parts else name))
    return "; ".join(parts)


BEHAVIOURS = {"acknowledging": ACKNOWLEDGE, "naming_emotion": NAME_EMOTION, "open_question": OPEN_QUESTION,
              "offering_options": OFFER_OPTIONS, "closing_the_loop": CLOSE_LOOP}


def agent_behaviours(text: str) -> list[str]:
    """Empathy behaviours in an agent's words: acknowledging, naming the emotion, open question, options, close."""
    return [name for name, regex in BEHAVIOURS.items() if regex.search(text)]


def behaviour_words(redacted: str, name: str) -> str | None:
    """The words that show a behaviour with a few either side, cut to 120 characters from the redacted turn (so a
    number split by the cut was masked whole) and masked as cue evidence is."""
    match = BEHAVIOURS[name].search(redacted)
    if match is None:  # redaction took the words (never seen): keep no words rather than guess
        return None
    words = list(WORD.finditer(redacted))
    before = [w for w in words if w.end() <= match.start()][-EVIDENCE_WORDS:]
    after = [w for w in words if w.start() >= match.end()][:EVIDENCE_WORDS]
    start, end = (before[0].start() if before else match.start()), (after[-1].end() if after else match.end())
    while end - start > MAX_BEHAVIOUR_EVIDENCE and (before or after):  # drop context, the far side first
        if before and (not after or match.start() - before[0].start() >= after[-1].end() - match.end()):
            before.pop(0)
        else:
            after.pop()
        start, end = (before[0].start() if before else match.start()), (after[-1].end() if after else match.end())
    return mask_evidence(redacted[start:end][:MAX_BEHAVIOUR_EVIDENCE].strip())


def _alert_once(conv: Conversation, out: Outcome, kind: str, key: str, message: str) -> None:
    if [kind, key] in conv.alerts:
        return
    conv.alerts.append([kind, key])
    shifts = [a for a in conv.alerts if a[0] == "tone_shift"]
    if len(shifts) > MAX_TONE_SHIFTS:  # every other kind has a handful of keys; only these grow with the turns
        stale = shifts[: len(shifts) - MAX_TONE_SHIFTS]
        conv.alerts = [a for a in conv.alerts if a not in stale]
    out.alerts.append({"kind": kind, "message": message})


def _remember_snippet(conv: Conversation, snippet_id: str, final: bool) -> bool:
    """Record a snippet id; False when its final snippet was already processed (a duplicate): a repeated final,
    or an interim one delivered late, whose old words must not come back on screen."""
    if conv.seen.get(snippet_id):
        return False
    conv.seen[snippet_id] = conv.seen.get(snippet_id, False) or final
    if final:
        conv.pieces.pop(snippet_id, None)
    over = len(conv.seen) - MAX_SEEN
    if over > 0:  # forget ids that never had a final first: a final's id is what keeps a resend from counting twice
        drop = [old for old, was_final in conv.seen.items() if not was_final][:over]
        drop += list(conv.seen)[: over - len(drop)] if over > len(drop) else []
        for old in drop:
            conv.seen.pop(old, None)
    return True


def joined(before: str, piece: str, max_chars: int) -> str:
    """An utterance's words so far followed by its next piece, at most max_chars (the latest words kept); a piece
    delivered again (a source's retry) is not added twice."""
    before, piece = before.strip(), piece.strip()
    if not before or before == piece or before.endswith(" " + piece):
        text = before or piece
    else:
        text = f"{before} {piece}"
    if len(text) > max_chars:
        text = text[-max_chars:]
        text = text.split(" ", 1)[1] if " " in text[1:] else text  # not half a word at the start
    return text


def take_piece(conv: Conversation, snippet_id: str, piece: str, max_chars: int, keep: bool = True) -> str:
    """The utterance so far with this piece of it, kept for its next piece (the newest MAX_PIECES utterances);
    the piece alone, keeping nothing, once the utterance's final was taken (the piece is then a duplicate). The
    state keeps the words redacted with every digit run masked, as cue evidence is (a card number read out over
    several pieces is never whole in it), and none without consent or with `keep` false (COPILOT_TRANSCRIPT=none):
    then each piece is shown alone."""
    if conv.seen.get(snippet_id):
        return piece
    text = joined(conv.pieces.pop(snippet_id, ""), piece, max_chars)
    if not (keep and conv.consent):
        return text
    conv.pieces[snippet_id] = mask_evidence(text)
    for stale in list(conv.pieces)[: max(0, len(conv.pieces) - MAX_PIECES)]:
        conv.pieces.pop(stale)  # an utterance whose final never came
    return text


def _admit(conv: Conversation, snippet_id: str, final: bool) -> Outcome:
    """Refuse snippets of an ended conversation, except one whose final was taken before (a source resending a
    batch whose answer it lost), which is a duplicate as it would have been before the end; mark a final
    snippet seen before as a duplicate."""
    if conv.ended_at is not None:
        if conv.seen.get(snippet_id):
            return Outcome(duplicate=True)
        raise InvalidSnippet("the conversation has ended")
    return Outcome(duplicate=not _remember_snippet(conv, snippet_id, final))


def choose_stage(conv: Conversation, cue_names: set[str]) -> str:
    """The stage the next suggestion should serve. A crisis outranks everything, agent protection included: the
    customer's wellbeing comes first."""
    if "crisis" in cue_names:
        return "check-in"
    if conv.abuse_active:
        return "agent-protection"
    if conv.after_verification_due:
        return "after-verification"
    if "gratitude" in cue_names and not (cue_names & NEGATIVE_CUES):
        return "close-the-loop"
    if conv.pending:
        return "check-in"
    if sum(conv.acknowledged.values()) >= 2:
        return "options"
    return "investigate"


def on_customer(conv: Conversation, snippet_id: str, text: str, final: bool, cues: list[CueSeen],
                emotions: dict[str, float], now: float, cooldown_s: float) -> Outcome:
    """Take one customer snippet with its detected cues."""
    out = _admit(conv, snippet_id, final)
    if out.duplicate:
        return out
    strong = [c for c in cues if (c.cue in EMOTION_CUES and c.score >= STRONG_SCORE)
              or c.cue in {"crisis", "abuse", "escalation_request", "churn_risk"}]
    quiet = conv.mode == "transactional" and not strong
    shown_cues = [] if quiet else cues
    if final:
        conv.customer_turns += 1
        for c in cues:
            conv.counts[c.cue] = conv.counts.get(c.cue, 0) + 1
            if conv.consent:
                words = [mask_evidence(text[s:e]) for s, e in c.spans][:2]  # state keeps no PII either
                conv.evidence[c.cue] = (conv.evidence.get(c.cue, []) + words)[-MAX_EVIDENCE:]
        tone = tone_of(emotions)
        if {c.cue for c in cues} & HARD_CUES:  # "third time I've called" is not a positive turn, whatever its words
            tone = min(tone, HARD_CUE_TONE)
        conv.tones.append(round(tone, 4))
        conv.tones = conv.tones[-50:]
        level = triage_for(cues, conv.counts)
        conv.triage_history = (conv.triage_history + [level])[-50:]
        names = {c.cue for c in cues}
        _update_modes(conv, names, out)
        _open_episodes(conv, names, now)
        _tone_alert(conv, out)
        if "crisis" in names:
            conv.crisis = True
            _alert_once(conv, out, "crisis", "crisis", "Possible crisis: slow down, check on the customer's "
                                                        "wellbeing and offer support before the account.")
        if {"escalation_request", "churn_risk"} & names and (
                conv.counts.get("frustration", 0) >= 2 or conv.counts.get("repeat_contact", 0) >= 1):
            key = "churn_risk" if "churn_risk" in names else "escalation_request"
            _alert_once(conv, out, "escalation_risk", key, "Escalation risk: repeated frustration with a request to "
                                                          f"{'leave' if key == 'churn_risk' else 'escalate'}.")
        if conv.mode == "verification" and names & NEGATIVE_CUES:
            conv.verification_seen_negative = True
        conv.timeline = (conv.timeline + [{"snippet_id": snippet_id, "at": now, "cues": sorted(names),
                                           "triage_level": conv.triage_level}])[-MAX_TIMELINE:]
        if not quiet and conv.guidance:
            out.suggest_stage, out.suggest_cues = _suggestion_due(conv, cues, now, cooldown_s)
    if shown_cues or final:
        out.highlight = {
            "snippet_id": snippet_id, "final": final, "speaker": "customer", "text": text,
            "triage_level": conv.triage_level,
            "cues": [{"cue": c.cue, "score": round(c.score, 4), "spans": [list(s) for s in c.spans],
                      "count": conv.counts.get(c.cue, 0) if final else conv.counts.get(c.cue, 0) + 1}
                     for c in shown_cues],
            "tone": tone_label(conv.tones),
            "line": line_for(list(shown_cues), conv.counts) if final else line_for(list(shown_cues), {}),
            "mode": "agent-protection" if conv.abuse_active else conv.mode,
        }
    return out


def _update_modes(conv: Conversation, names: set[str], out: Outcome) -> None:
    if "abuse" in names:
        conv.turns_since_abuse = 0
        if not conv.abuse_active:
            conv.abuse_active = True
            conv.alerts = [a for a in conv.alerts if a != ["agent_protection", "abuse"]]
            _alert_once(conv, out, "agent_protection", "abuse", "Abusive language: you do not have to accept it. "
                                                                "Set a boundary, and follow the abuse procedure.")
    elif conv.abuse_active:
        conv.turns_since_abuse += 1
        if conv.turns_since_abuse >= ABUSE_CLEAR_TURNS:
            conv.abuse_active = False


def _open_episodes(conv: Conversation, names: set[str], now: float) -> None:
    for cue in sorted(names & NEGATIVE_CUES):
        if cue not in conv.pending:
            conv.pending[cue] = conv.agent_turns
            conv.pending_since[cue] = now
            conv.episodes += 1
            conv.cue_episodes[cue] = conv.cue_episodes.get(cue, 0) + 1


def _tone_alert(conv: Conversation, out: Outcome) -> None:
    if len(conv.tones) < 2:
        return
    previous = conv.tones[-TONE_WINDOW - 1:-1]
    drop = sum(previous) / len(previous) - conv.tones[-1]
    if drop >= TONE_SHIFT:
        _alert_once(conv, out, "tone_shift", f"turn-{conv.customer_turns}",
                    "Tone shift: the customer's tone just turned sharply more negative.")


def cues_by_count(conv: Conversation) -> list[str]:
    """The cues this conversation raised, the most mentioned first."""
    return sorted(conv.counts, key=lambda c: -conv.counts[c])


def _suggestion_due(conv: Conversation, cues: list[CueSeen], now: float, cooldown_s: float) -> tuple[str | None, list[str]]:
    if conv.mode == "verification":
        return None, []
    names = [c.cue for c in sorted(cues, key=lambda c: -c.score)]
    if not names and not conv.after_verification_due:
        return None, []
    crisis_now = "crisis" in names and "crisis_suggested" not in conv.flags
    abuse_now = "abuse" in names and conv.abuse_active
    if now - conv.last_push_at < cooldown_s and not (crisis_now or abuse_now):
        return None, []
    stage = choose_stage(conv, set(names))
    if "crisis" in names:
        names = ["crisis"]  # crisis phrasings only: no escalation or protection card beside them
    elif stage == "agent-protection":
        names = ["abuse"]
    elif stage == "after-verification":
        names = names or cues_by_count(conv)
    if crisis_now:
        conv.flags.append("crisis_suggested")
    return stage, names


def on_agent(conv: Conversation, snippet_id: str, text: str, final: bool, now: float, keep_words: bool = True) -> Outcome:
    """Take one agent snippet: notice acknowledgment and other behaviours; nudge when an emotion waits too long.
    The scorecard's evidence keeps the words only with consent and keep_words (false: COPILOT_TRANSCRIPT=none)."""
    out = _admit(conv, snippet_id, final)
    if out.duplicate or not final:
        return out
    conv.agent_turns += 1
    out.highlight = {"snippet_id": snippet_id, "final": True, "speaker": "agent", "text": text, "cues": [],
                     "triage_level": conv.triage_level, "tone": tone_label(conv.tones), "line": "",
                     "mode": "agent-protection" if conv.abuse_active else conv.mode}  # so every screen shows the turn
    found = agent_behaviours(text)
    for name in found:
        conv.behaviours[name] = conv.behaviours.get(name, 0) + 1
    _record_evidence(conv, found, text, keep_words)
    if {"acknowledging", "naming_emotion"} & set(found) and conv.pending:
        for cue in conv.pending:
            conv.acknowledged[cue] = conv.acknowledged.get(cue, 0) + 1
        conv.acks = (conv.acks + [[cue, opened, conv.agent_turns] for cue, opened in sorted(conv.pending.items())]
                     )[-MAX_ACKS:]
        conv.resolved += len(conv.pending)
        conv.pending.clear()
        conv.pending_since.clear()
    for cue, opened in sorted(conv.pending.items()):
        if conv.agent_turns - opened >= ACK_WINDOW_TURNS:
            _alert_once(conv, out, "unacknowledged", cue,
                        f"{cue.replace('_', ' ').capitalize()} not acknowledged yet: the customer mentioned it "
                        f"{conv.counts.get(cue, 1)} time(s).")
    return out


def _record_evidence(conv: Conversation, found: list[str], text: str, keep_words: bool) -> None:
    """Each behaviour's first turn and words; closing the loop's latest (the scorecard wants it at the end), and
    acknowledging or naming the emotion first after a negative cue over any said before one was raised."""
    raised = first_raised(conv)
    redacted = None
    for name in found:
        kept = conv.behaviour_evidence.get(name)
        stale = kept is not None and name in ACKNOWLEDGING and raised is not None and kept[0] <= raised
        if kept is None or stale or name == "closing_the_loop":
            words = None
            if conv.consent and keep_words:
                redacted = redact(text) if redacted is None else redacted
                words = behaviour_words(redacted, name)
            conv.behaviour_evidence[name] = [conv.agent_turns, words]


def check_in_due(conv: Conversation, mode: str) -> bool:
    """Whether changing to `mode` makes the after-verification check-in due: the conversation leaves
    verification, and a negative cue was raised while it lasted."""
    return conv.mode == "verification" and mode != "verification" and conv.verification_seen_negative


def set_mode(conv: Conversation, mode: str) -> bool:
    """Change mode; leaving verification with negative cues seen makes the after-verification check-in due.
    Returns whether a suggestion is now due."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    due = check_in_due(conv, mode)
    conv.mode = mode
    if due:
        conv.after_verification_due = True
    return due


def after_verification_query(conv: Conversation, mode: str) -> str | None:
    """What to look up the after-verification check-in by, when changing to `mode` will make it due and the
    conversation gets guidance: the cues raised during verification, the most mentioned first. None otherwise."""
    if not (check_in_due(conv, mode) and conv.guidance):
        return None
    return "now that you are verified, about the " + " ".join(cues_by_count(conv)).replace("_", " ")


def on_mode(conv: Conversation, mode: str) -> Outcome:
    """Take a mode change: the after-verification check-in's stage and cues when it is now due and the
    conversation gets guidance (no stage otherwise)."""
    out = Outcome()
    if set_mode(conv, mode) and conv.guidance:
        out.suggest_stage, out.suggest_cues = "after-verification", cues_by_count(conv)
    return out


def record_push(conv: Conversation, ids: list[str], now: float) -> None:
    """Remember what went on screen (it replaces what was there)."""
    conv.shown.extend(i for i in ids if i not in conv.shown)
    del conv.shown[:-MAX_SHOWN]
    conv.on_screen = ids[:2]
    conv.last_push_at = now
    conv.after_verification_due = False


def record_feedback(conv: Conversation, suggestion_id: str, action: str) -> None:
    """used / dismissed take a card off screen; helpful / not_helpful rate it."""
    if action not in FEEDBACK:
        raise ValueError(f"action must be one of {', '.join(FEEDBACK)}")
    if suggestion_id not in conv.shown:
        raise NotFound(f"suggestion {suggestion_id} was not shown in this conversation")
    if action in ("used", "dismissed"):
        target = conv.used if action == "used" else conv.dismissed
        if suggestion_id not in target:
            target.append(suggestion_id)
        conv.on_screen = [i for i in conv.on_screen if i != suggestion_id]
    else:
        conv.rated[suggestion_id] = action


def handoff_note(conv: Conversation) -> str:
    """The emotional history for the next agent, in one or two sentences."""
    parts = []
    if conv.counts.get("repeat_contact"):
        parts.append(f"Customer says they have contacted us before ({conv.counts['repeat_contact']} mention"
                     f"{'s' if conv.counts['repeat_contact'] > 1 else ''})")
    feelings = []
    for cue in EMOTION_CUES:
        n = conv.counts.get(cue, 0)
        if n and cue in NEGATIVE_CUES:
            ack = conv.acknowledged.get(cue, 0)
            feelings.append(f"{cue} x{n}, acknowledged {'once' if ack == 1 else f'{ack} times' if ack else 'not yet'}")
    if feelings:
        parts.append("; ".join(feelings))
    for cue, words in (("escalation_request", "asked to escalate"), ("churn_risk", "mentioned leaving"),
                       ("urgency", "under time pressure"), ("abuse", "used abusive language")):
        if conv.counts.get(cue):
            parts.append(words)
    parts.append("crisis signs present: handle with care" if conv.crisis else "no crisis signs")
    tone = tone_label(conv.tones)
    parts.append(f"tone {tone['label']}, {tone['trend']}; triage {conv.triage_level}")
    note = "; ".join(parts) + "."
    return note[0].upper() + note[1:]


def escalation_handoff(conv: Conversation, cues: Iterable[CueSeen], final: bool) -> str | None:
    """The handoff note a final customer turn asking to escalate calls for, once per conversation; else None."""
    if not final or "escalation_request" not in {c.cue for c in cues} or "escalation_handoff" in conv.flags:
        return None
    conv.flags.append("escalation_handoff")
    return handoff_note(conv)


def transfer(conv: Conversation, to_queue: str, to_agent: str = "") -> str:
    """Hand the conversation on to a queue (and an agent, who may then act on it too); the note for them."""
    conv.transfers = (conv.transfers + [to_queue])[-MAX_TRANSFERS:]
    if to_agent and to_agent != conv.agent and to_agent not in conv.agents:
        conv.agents = (conv.agents + [to_agent])[-MAX_AGENTS:]
    return handoff_note(conv)


def end(conv: Conversation, now: float) -> bool:
    """End the conversation; False when it had ended already (the first end stands, and nothing changes)."""
    if conv.ended_at is not None:
        return False
    conv.ended_at = now
    conv.pieces.clear()  # words of turns that never got their final are kept no longer than the call
    return True


def claimable(conv: Conversation) -> bool:
    """Whether the conversation is running and unclaimed: a transcript source started it for no agent."""
    return conv.agent == "" and conv.ended_at is None


def claim(conv: Conversation, agent: str, consent: bool = True, queue: str = "", customer_ref: str = "") -> bool:
    """Make an unclaimed running conversation this agent's; False when it is not (another agent got there first).
    What the agent's start says joins what the source said: consent can only be withdrawn, and a queue or
    customer reference fills one the source left empty (the customer's reference is what erasure finds)."""
    if not claimable(conv):
        return False
    conv.agent = agent
    conv.consent = conv.consent and consent
    conv.queue = conv.queue or queue
    conv.customer_ref = conv.customer_ref or customer_ref
    return True


def join_experiment(conv: Conversation, experiment_id: str, variant: str, guidance: bool) -> None:
    """Put the conversation in an experiment's variant; a variant without guidance gets no suggestions."""
    conv.experiment, conv.guidance = [experiment_id, variant], guidance


def feedback_cue(conv: Conversation, phrasing_cues: tuple[str, ...]) -> str:
    """The cue feedback on a phrasing counts under: the first of its cues this conversation raised, else its
    first."""
    return next((c for c in phrasing_cues if c in conv.counts), phrasing_cues[0])


def summary(conv: Conversation) -> dict[str, Any]:
    """The end-of-conversation summary: timeline, counts, resolution, suggestions."""
    return {
        "conversation_id": conv.id, "channel": conv.channel, "queue": conv.queue,
        "started_at": conv.started_at, "ended_at": conv.ended_at,
        "customer_turns": conv.customer_turns, "agent_turns": conv.agent_turns,
        "counts": dict(conv.counts), "acknowledged": dict(conv.acknowledged),
        "negative_episodes": conv.episodes, "resolved": conv.resolved,
        "emotional_resolution_rate": conv.resolution_rate,
        "max_triage_level": max([3] if conv.crisis else conv.triage_history or [1]),
        "behaviours": dict(conv.behaviours), "timeline": list(conv.timeline),
        "suggestions": {"shown": list(conv.shown), "used": list(conv.used), "dismissed": list(conv.dismissed),
                        "rated": dict(conv.rated)},
        "alerts": [a[0] for a in conv.alerts],
        "experiment": conv.experiment, "handoff_note": handoff_note(conv),
        "episodes": dict(conv.cue_episodes), "scorecard": scorecard(conv),
    }
