"""The copilot service: one method per protocol event, joining the detector, the conversation engine, the
library and the stores. It returns what to acknowledge and what to emit; the transport only delivers.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from copilot import conversation as engine
from copilot import floor
from copilot.conversation import Conversation, CueSeen
from copilot.conversation_store import ConversationStore
from copilot.cues.detector import CueDetector
from copilot.errors import ConversationExists, CopilotError, UnknownConversation
from copilot.floor import DEFAULT_RULES, BoardChange
from copilot.library import experiments as exp
from copilot.library.service import Library
from copilot.metrics import Metrics
from copilot.protocol import validate
from copilot.redact import redact, redact_snippet
from copilot.security import Identity
from copilot.suggest import Request, Suggestion

log = logging.getLogger("copilot.assist")


@dataclass
class Reply:
    """An acknowledgment, and the events to emit to its rooms: the conversation's room (which the caller joins,
    or leaves once the conversation has ended) and any rooms `also` names (a team lead's floor, say), which it
    never joins. `then` is bookkeeping that need not delay the emits (usage counters): the caller runs it after
    emitting and before acknowledging. `board` is what the event changed on the tenant's live floor, which the
    transport shares with the leads."""

    ack: dict[str, Any]
    room: str
    emits: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    leave: bool = False
    then: list[Callable[[], None]] = field(default_factory=list)
    also: tuple[str, ...] = ()
    board: BoardChange | None = None

    @property
    def rooms(self) -> tuple[str, ...]:
        """Every room each emit goes to, the conversation's first, each once."""
        return tuple(dict.fromkeys((self.room, *self.also)))

    @property
    def to(self) -> str | list[str]:
        """The rooms as Socket.IO's `to` takes them: the one room, or a list (a client in several of them gets
        each emit once)."""
        rooms = self.rooms
        return rooms[0] if len(rooms) == 1 else list(rooms)


def room(tenant: str, conversation_id: str) -> str:
    """The Socket.IO room of one conversation (tenant-qualified, so ids never collide across tenants)."""
    return f"{tenant}/{conversation_id}"


def event(conv: Conversation, kind: str, **fields: Any) -> dict[str, Any]:
    """One event of the log about this conversation."""
    where = {"customer_ref": conv.customer_ref} if conv.customer_ref else {}  # what erasure by customer finds
    return {"type": kind, "tenant": conv.tenant, "conversation_id": conv.id, "agent": conv.agent,
            "channel": conv.channel, "queue": conv.queue, **where, **fields}


def no_rules_changed(tenant: str) -> dict[str, dict[str, Any]]:
    """The default floor rules, for a service built without a rules store."""
    return DEFAULT_RULES


class CopilotService:
    """Protocol events in, acknowledgments and emits out."""

    def __init__(self, detector: CueDetector, library: Library, store: ConversationStore, metrics: Metrics,
                 max_text_chars: int = 4000, cooldown_s: float = 20.0, transcript: str = "redacted",
                 floor_rules: Callable[[str], dict[str, dict[str, Any]]] = no_rules_changed) -> None:
        self.floor_rules = floor_rules  # a tenant's floor alert rules (copilot.floor_rules, cached)
        self.detector = detector
        self.library = library
        self.store = store
        self.metrics = metrics
        self.max_text_chars = max_text_chars
        self.cooldown_s = cooldown_s
        self.transcript = transcript

    # -- helpers ------------------------------------------------------------------------------------------------
    def _event(self, conv: Conversation, kind: str, **fields: Any) -> dict[str, Any]:
        return event(conv, kind, **fields)

    def _board(self, conv: Conversation, now: float, events: list[dict], rules: dict | None = None,
               hand: bool = False) -> BoardChange:
        """What this change shows the floor (with the page of a hand just raised); with `rules`, the alerts the
        tenant's rules now call for are raised (once each) and logged in the same change."""
        alerts = floor.due_alerts(conv, rules, now) if rules is not None and conv.ended_at is None else []
        events.extend(self._event(conv, "floor.alert", rule=a["rule"], reason=a["reason"]) for a in alerts)
        return floor.board_change(conv, now, alerts, words=self.transcript != "none", hand=hand)

    def _text_for_log(self, conv: Conversation, speaker: str, text: str) -> dict[str, str]:
        """The text as the event log may keep it: redacted, or nothing without consent or with COPILOT_TRANSCRIPT=none.
        A number read out over several final snippets is redacted in each: the state keeps how many digits are
        still open at the end of this speaker's last snippet, never the digits."""
        if not conv.consent or self.transcript == "none":  # no text is ever kept: nothing to redact or carry over
            return {}
        logged, conv.open_digits[speaker] = redact_snippet(text, conv.open_digits.get(speaker, 0))
        return {"text": logged}

    def _suggest(self, conv: Conversation, stage: str, cues: list[str], embedding) -> list[Suggestion]:
        """Suggestions for this turn; any failure here costs only the suggestion, never the snippet's counts, its
        log line or its alerts, which commit in the same change."""
        try:
            request = Request(embedding, cues, conv.channel, stage, frozenset(conv.shown), k=2,
                              counts=dict(conv.counts))
            suggestions = self.library.suggest(conv.tenant, request)
            variant = self.library.variant(conv.tenant, *conv.experiment) if conv.experiment else None
            return [s for s in suggestions if variant.allows(s.id)] if variant is not None else suggestions
        except Exception:  # noqa: BLE001 - degrade the suggestion, keep the snippet
            log.exception("suggestions failed for %s/%s; the snippet is kept without them", conv.tenant, conv.id)
            self.metrics.errors.labels("suggestion_failed").inc()
            return []

    def _quietly(self, what: str, work: Callable[[], None]) -> None:
        """Bookkeeping after a change has committed (usage counts, experiment outcomes): a failure is logged and
        counted, never turned into an error for an event that has already been applied."""
        try:
            work()
        except Exception:  # noqa: BLE001 - the event is applied; its acknowledgment must say so
            log.exception("%s failed after the change was applied", what)
            self.metrics.errors.labels("bookkeeping_failed").inc()

    @staticmethod
    def _open(who: Identity, conv: Conversation) -> Conversation:
        """The conversation, if this identity may act on it; another agent's looks unknown."""
        if not conv.open_to(who.agent, who.role):
            raise UnknownConversation(f"no conversation {conv.id}; start it first")
        return conv

    def _push(self, conv: Conversation, suggestions: list[Suggestion], now: float) -> dict[str, Any] | None:
        if not suggestions:
            return None
        engine.record_push(conv, [s.id for s in suggestions], now)
        return {"conversation_id": conv.id, "suggestions": [s.as_dict() for s in suggestions]}

    def _count_shown(self, tenant: str, where: tuple[str, str], push: dict[str, Any] | None) -> None:
        if not push:
            return
        queue, channel = where
        for s in push["suggestions"]:
            self.library.count_usage(tenant, s["id"], "shown", s["cues"][0], queue, channel)
        self.metrics.suggestions.labels("shown").inc(len(push["suggestions"]))

    # -- events -------------------------------------------------------------------------------------------------
    def start(self, who: Identity, payload: Any, agent: str | None = None) -> Reply:
        """Start a conversation: the agent's own, or, when a transcript source starts it (copilot.sources; an
        integration, lead or admin), `agent`'s ("" unclaimed). An agent's start of a running unclaimed one claims
        it and answers as join does."""
        data = validate("conversation.start", payload, self.max_text_chars)
        if who.role == "agent" or (agent is None and who.role != "integration"):
            owner = who.agent  # an agent's own; a lead's or admin's that names no agent
        else:
            owner = agent or ""  # a source's: the agent it names, or unclaimed
        conv = Conversation(id=data["conversation_id"], tenant=who.tenant, agent=owner, channel=data["channel"],
                            queue=redact(data.get("queue", "")), customer_ref=redact(data.get("customer_ref", "")),
                            locale=data.get("locale", "en"), consent=data.get("consent", True), started_at=time.time())
        assigned = self.library.assignment(who.tenant, conv.queue)  # never raises: a broken definition is skipped
        if assigned is not None:
            engine.join_experiment(conv, assigned[0], assigned[1].name, assigned[1].guidance)
        try:
            self.store.create(conv, [self._event(conv, "conversation.start", consent=conv.consent,
                                                 experiment=conv.experiment)])
        except ConversationExists:
            claimed = self._claim(who, self.store.get(who.tenant, conv.id), conv)
            if claimed is None:
                raise
            existing, board = claimed
            return Reply({"ok": True, "conversation_id": conv.id, "experiment": existing.experiment,
                          "guidance": existing.guidance, "claimed": True, **self._resume(who, existing)},
                         room(who.tenant, conv.id), board=board)
        board = self._board(conv, conv.started_at, [])
        if conv.experiment:
            self._quietly("exposure log", partial(self.library.log_exposure, who.tenant, conv.experiment[0],
                                                  conv.experiment[1], conv.id))
        self.metrics.conversations.inc()
        return Reply({"ok": True, "conversation_id": conv.id, "experiment": conv.experiment, "guidance": conv.guidance},
                     room(who.tenant, conv.id), board=board)

    def snippet(self, who: Identity, payload: Any, piece: bool = False) -> Reply:
        """Take a transcript snippet. A `piece` (an interim result in pieces of its own words, from a transcript
        source) is joined with the utterance's pieces before it, kept in the conversation's state so that every
        worker joins the same: the joined words are what is analysed and shown."""
        started = time.perf_counter()
        data = validate("transcript.snippet", payload, self.max_text_chars)
        cid, sid, text, final = data["conversation_id"], data["snippet_id"], data["text"], data["final"]
        piece_text = text if piece and not final else None
        if piece_text is not None:  # joined here for the model; the change joins again with the state it commits
            kept = self._open(who, self.store.get(who.tenant, cid)).pieces.get(sid, "")
            text = engine.joined(kept, piece_text, self.max_text_chars)
        else:
            self.store.require(who.tenant, cid)  # unknown conversations fail before any model work
        if data["speaker"] == "agent":
            reply = self._agent_snippet(who, cid, sid, text, final, piece_text)
        else:
            reply = self._customer_snippet(who, cid, sid, text, final, piece_text)
        self.metrics.snippets.labels(data["speaker"]).inc()
        self.metrics.latency.observe(time.perf_counter() - started)
        return reply

    def _customer_snippet(self, who: Identity, cid: str, sid: str, text: str, final: bool,
                          piece: str | None = None) -> Reply:
        analysis = self.detector.analyse(text, explain=final) if text.strip() else None
        cues = [CueSeen(h.cue, h.score, h.spans) for h in analysis.cues] if analysis else []
        emotions = dict(analysis.emotions) if analysis else {}
        now = time.time()
        rules = self.floor_rules(who.tenant) if final else None

        def change(conv: Conversation):
            self._open(who, conv)
            if piece is not None:
                engine.take_piece(conv, sid, piece, self.max_text_chars, self.transcript != "none")
            out = engine.on_customer(conv, sid, text, final, cues, emotions, now, self.cooldown_s)
            push = None
            if out.suggest_stage and analysis is not None:
                push = self._push(conv, self._suggest(conv, out.suggest_stage, out.suggest_cues, analysis.embedding), now)
            note = engine.escalation_handoff(conv, cues, final)
            events = []
            if final and not out.duplicate:
                events.append(self._event(conv, "transcript.snippet", snippet_id=sid, speaker="customer",
                                          cues=[c.cue for c in cues], triage_level=conv.triage_level,
                                          suggestions=[s["id"] for s in push["suggestions"]] if push else [],
                                          alerts=[a["kind"] for a in out.alerts],
                                          **self._text_for_log(conv, "customer", text)))
            board = self._board(conv, now, events, rules) if final and not out.duplicate else None
            return (out, push, note, (conv.queue, conv.channel), board), events

        out, push, note, where, board = self.store.update(who.tenant, cid, change)
        reply = Reply({"ok": True, "snippet_id": sid, "duplicate": out.duplicate}, room(who.tenant, cid), board=board)
        if out.highlight is not None:
            reply.emits.append(("cue.highlight", {"conversation_id": cid, **out.highlight}))
            if final:
                for c in out.highlight["cues"]:
                    self.metrics.cues.labels(c["cue"]).inc()
        reply.emits.extend(("alert", {"conversation_id": cid, **a}) for a in out.alerts)
        if push:
            reply.emits.append(("suggestion.push", push))
        if note:
            reply.emits.append(("handoff.note", {"conversation_id": cid, "note": note, "reason": "escalation"}))
        if push:
            reply.then.append(partial(self._quietly, "usage count", partial(self._count_shown, who.tenant, where, push)))
        return reply

    def _agent_snippet(self, who: Identity, cid: str, sid: str, text: str, final: bool,
                       piece: str | None = None) -> Reply:
        now = time.time()
        rules = self.floor_rules(who.tenant) if final else None

        def change(conv: Conversation):
            self._open(who, conv)
            if piece is not None:
                engine.take_piece(conv, sid, piece, self.max_text_chars, self.transcript != "none")
            out = engine.on_agent(conv, sid, text, final, now, keep_words=self.transcript != "none")
            events = []
            if final and not out.duplicate:
                events.append(self._event(conv, "transcript.snippet", snippet_id=sid, speaker="agent",
                                          behaviours=engine.agent_behaviours(text),
                                          alerts=[a["kind"] for a in out.alerts],
                                          **self._text_for_log(conv, "agent", text)))
            board = self._board(conv, now, events, rules) if final and not out.duplicate else None
            return (out, board), events

        out, board = self.store.update(who.tenant, cid, change)
        reply = Reply({"ok": True, "snippet_id": sid, "duplicate": out.duplicate}, room(who.tenant, cid), board=board)
        if out.highlight is not None:
            reply.emits.append(("cue.highlight", {"conversation_id": cid, **out.highlight}))
        reply.emits.extend(("alert", {"conversation_id": cid, **a}) for a in out.alerts)
        return reply

    def mode(self, who: Identity, payload: Any) -> Reply:
        data = validate("conversation.mode", payload, self.max_text_chars)
        conv = self._open(who, self.store.get(who.tenant, data["conversation_id"]))
        text = engine.after_verification_query(conv, data["mode"])  # embedded here: no model work in the change
        query = self.detector.model.embed([text])[0] if text is not None else None
        now = time.time()

        def change(c: Conversation):
            self._open(who, c)
            out = engine.on_mode(c, data["mode"])
            push = None
            if out.suggest_stage and query is not None:
                push = self._push(c, self._suggest(c, out.suggest_stage, out.suggest_cues, query), now)
            events = [self._event(c, "conversation.mode", mode=data["mode"])]
            return (push, self._board(c, now, events)), events

        push, board = self.store.update(who.tenant, data["conversation_id"], change)
        reply = Reply({"ok": True, "mode": data["mode"]}, room(who.tenant, data["conversation_id"]), board=board)
        if push:
            reply.emits.append(("suggestion.push", push))
            reply.then.append(partial(self._quietly, "usage count",
                                      partial(self._count_shown, who.tenant, (conv.queue, conv.channel), push)))
        return reply

    def feedback(self, who: Identity, payload: Any) -> Reply:
        data = validate("suggestion.feedback", payload, self.max_text_chars)
        sid, action = data["suggestion_id"], data["action"]

        def change(c: Conversation):
            self._open(who, c)
            engine.record_feedback(c, sid, action)
            return c, [self._event(c, "suggestion.feedback", suggestion_id=sid, action=action)]

        conv = self.store.update(who.tenant, data["conversation_id"], change)
        self._quietly("usage count", partial(self._count_feedback, who.tenant, conv, sid, action))
        self.metrics.suggestions.labels(action).inc()
        return Reply({"ok": True, "suggestion_id": sid, "action": action}, room(who.tenant, data["conversation_id"]))

    def _count_feedback(self, tenant: str, conv: Conversation, sid: str, action: str) -> None:
        try:
            cues = self.library.get(tenant, sid).cues
        except CopilotError:
            cues = ("",)
        self.library.count_usage(tenant, sid, action, engine.feedback_cue(conv, cues), conv.queue, conv.channel)

    def transfer(self, who: Identity, payload: Any) -> Reply:
        data = validate("conversation.transfer", payload, self.max_text_chars)
        to_queue, to_agent = redact(data.get("to_queue", "")), data.get("to_agent", "")

        def change(c: Conversation):
            self._open(who, c)
            note = engine.transfer(c, to_queue, to_agent)
            return note, [self._event(c, "conversation.transfer", to_queue=to_queue, to_agent=to_agent, note=note)]

        note = self.store.update(who.tenant, data["conversation_id"], change)
        payload_out = {"conversation_id": data["conversation_id"], "note": note, "reason": "transfer",
                       "to_queue": to_queue}
        return Reply({"ok": True, "note": note}, room(who.tenant, data["conversation_id"]),
                     [("handoff.note", payload_out)])

    def end(self, who: Identity, payload: Any) -> Reply:
        data = validate("conversation.end", payload, self.max_text_chars)

        def change(c: Conversation):
            self._open(who, c)
            if not engine.end(c, time.time()):
                return (engine.summary(c), None), []
            result = engine.summary(c)
            events = [self._event(c, "conversation.end", summary={k: v for k, v in result.items() if k != "timeline"})]
            return (result, self._board(c, c.ended_at, events)), events

        result, board = self.store.update(who.tenant, data["conversation_id"], change)
        if result.get("experiment"):
            exp_id, variant = result["experiment"]
            self._quietly("experiment outcome", partial(self.library.record_outcome, who.tenant, exp_id, variant,
                                                        data["conversation_id"], exp.outcome_of(result)))
        if result["emotional_resolution_rate"] is not None:
            self.metrics.resolution.observe(result["emotional_resolution_rate"])
        return Reply({"ok": True, "summary": result}, room(who.tenant, data["conversation_id"]),
                     [("conversation.summary", result)], leave=True, board=board)

    def raise_hand(self, who: Identity, payload: Any) -> Reply:
        """The agent asks a team lead for help: every lead of the tenant is paged with the conversation's cues."""
        data = validate("conversation.raise_hand", payload, self.max_text_chars)
        now = time.time()

        def change(c: Conversation):
            self._open(who, c)
            if not floor.raise_hand(c, now):
                return (c.hand["raised_at"], None), []
            events = [self._event(c, "conversation.raise_hand")]
            return (now, self._board(c, now, events, hand=True)), events

        raised_at, board = self.store.update(who.tenant, data["conversation_id"], change)
        return Reply({"ok": True, "raised_at": raised_at}, room(who.tenant, data["conversation_id"]), board=board)

    def _claim(self, who: Identity, conv: Conversation, started: Conversation | None = None
               ) -> tuple[Conversation, BoardChange | None] | None:
        """An agent's claim of a running conversation a source started unclaimed: it becomes theirs (logged as
        conversation.claim, shown on the floor), with what their start says (`started`: consent withdrawn, a queue
        or customer reference); None when it is not unclaimed, or who is no agent."""
        if who.role != "agent" or not engine.claimable(conv):
            return None
        now = time.time()
        said = (started.consent, started.queue, started.customer_ref) if started else (True, "", "")  # a join says none

        def change(c: Conversation):
            if not engine.claim(c, who.agent, *said):
                return ((c, None) if c.agent == who.agent else None), []  # claimed meanwhile, here or elsewhere
            events = [self._event(c, "conversation.claim", consent=c.consent)]
            return (c, self._board(c, now, events)), events

        return self.store.update(who.tenant, conv.id, change)

    def join(self, who: Identity, payload: Any) -> Reply:
        """Resume a conversation after a reconnect (on any worker): rejoin its room and get its state back. An
        agent's join of a running unclaimed conversation (a source started it) claims it first."""
        data = validate("conversation.join", payload, self.max_text_chars)
        conv = self.store.get(who.tenant, data["conversation_id"])
        claimed = self._claim(who, conv)
        if claimed is not None:
            conv, board = claimed
            return Reply({"ok": True, "conversation_id": conv.id, "claimed": True, **self._resume(who, conv)},
                         room(who.tenant, conv.id), board=board)
        conv = self._open(who, conv)
        return Reply({"ok": True, "conversation_id": conv.id, **self._resume(who, conv)}, room(who.tenant, conv.id))

    def _resume(self, who: Identity, conv: Conversation) -> dict[str, Any]:
        """What a join answers besides the id: the conversation's state, for the sidebar to show it again."""
        screen = []
        for pid in conv.on_screen:
            try:
                p = self.library.get(who.tenant, pid)
                screen.append({"id": p.id, "text": p.text, "cues": list(p.cues), "stage": p.stage})
            except CopilotError:
                continue
        return {"mode": conv.mode, "counts": dict(conv.counts), "triage_level": conv.triage_level,
                "tone": engine.tone_label(conv.tones), "shown": list(conv.shown), "on_screen": screen,
                "ended": conv.ended_at is not None, "hand": conv.hand}

    def ping(self) -> bool:
        """Whether the conversation store answers (for /readyz)."""
        return self.store.ping()
