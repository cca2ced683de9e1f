"""The floor service: what a team lead does from the board (watch, take an alert, answer a raised hand, whisper to
an agent), joining the floor's core to the conversation store. It returns what to acknowledge, what to send the
agent and what changed on the board; the transport delivers."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from copilot import floor
from copilot.assist import event, room
from copilot.concurrency import run_here
from copilot.conversation import Conversation
from copilot.conversation_store import ConversationStore
from copilot.errors import UnknownConversation
from copilot.floor import BoardChange
from copilot.floor_rules import FloorRules
from copilot.protocol import FLOOR_EVENTS, validate, validate_whisper
from copilot.redact import redact
from copilot.security import Identity, RateLimits

WHISPER_RATE_PER_S = 1.0  # a lead's whispers, over all their connections to this worker
WHISPER_BURST = 5


@dataclass
class FloorReply:
    """An acknowledgment for the lead, the events for the agent's conversation room (on /copilot), and what
    changed on the board."""

    ack: dict[str, Any]
    to_agent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    agent_room: str = ""
    board: BoardChange | None = None


class FloorService:
    """A lead's board and the lead's actions on it, one tenant at a time (the identity's)."""

    def __init__(self, store: ConversationStore, rules: FloorRules, transcript: str = "redacted",
                 off_loop: Callable[..., Any] = run_here, clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.rules, self.transcript, self.off_loop, self.clock = store, rules, transcript, off_loop, clock
        self.whispers = RateLimits(WHISPER_RATE_PER_S, WHISPER_BURST, "lead's whispers", clock)
        self.built: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}  # (tenant, queue) -> (began, snapshot)
        self.building: dict[tuple[str, str], threading.Lock] = {}
        self.lock = threading.Lock()

    @property
    def words(self) -> bool:
        """Whether the floor may show the customer's words (evidence): not with COPILOT_TRANSCRIPT=none."""
        return self.transcript != "none"

    @staticmethod
    def _lead(who: Identity) -> None:
        who.require("lead")

    def snapshot(self, who: Identity, queue: str = "", since: float | None = None) -> dict[str, Any]:
        """The tenant's board: every live conversation's row by risk, and their alerts, read after `since` (the
        service's clock; now when None). The conversations are decoded and the rows built off the event loop
        (2,000 conversations take about 0.3 s), one build at a time per board: leads who ask together (every lead
        reconnecting after a restart) share a build that began after they asked."""
        self._lead(who)
        since = self.clock() if since is None else since
        key = (who.tenant, queue)
        with self.lock:
            building = self.building.setdefault(key, threading.Lock())
        with building:
            built = self.built.get(key)
            if built is not None and built[0] >= since:
                return built[1]
            began, now = self.clock(), time.time()
            conversations = self.store.live_conversations(who.tenant, self.off_loop)
            snapshot = self.off_loop(floor.snapshot, conversations, now, self.words, queue)
            with self.lock:
                self.built = {k: v for k, v in self.built.items() if began - v[0] < 10.0}  # keep few, and fresh
                self.built[key] = (began, snapshot)
                # and the locks of boards no longer built or building: a lead may name any queue
                self.building = {k: lock for k, lock in self.building.items() if k in self.built or lock.locked()}
            return snapshot

    @staticmethod
    def queue_of(payload: Any) -> str:
        """The queue a floor.watch asks for ("" for every queue; no payload is every queue too), as conversations
        store it (redacted)."""
        data = validate("floor.watch", {} if payload is None else payload, 0, FLOOR_EVENTS)
        return redact(data.get("queue", ""))

    def watching(self, who: Identity, payload: Any) -> str:
        """The queue a lead's floor.watch asks for, once the identity is a lead's (Forbidden otherwise)."""
        self._lead(who)
        return self.queue_of(payload)

    def claim(self, who: Identity, payload: Any) -> FloorReply:
        """alert.claim ("I'm on it"): the lead takes the alert, and every lead sees who did."""
        self._lead(who)
        data = validate("alert.claim", payload, 0, FLOOR_EVENTS)
        now = time.time()

        def change(c: Conversation):
            alert = floor.claim(c, data["alert_id"], who.agent, now)
            events = [event(c, "floor.claim", alert_id=alert["id"], lead=alert["taken_by"]["lead"])]
            board = floor.board_change(c, now, [], self.words)
            board.alerts = [floor.alert_card(c, alert, self.words)]
            return board, events

        board = self._update(who, data["conversation_id"], change)
        return FloorReply({"ok": True, "alert": board.alerts[0] if board.alerts else None}, board=board)

    def answer(self, who: Identity, payload: Any) -> FloorReply:
        """hand.answer: the lead's answer to a raised hand, shown in the agent's sidebar."""
        self._lead(who)
        data = validate("hand.answer", payload, 0, FLOOR_EVENTS)
        now = time.time()

        def change(c: Conversation):
            hand = floor.answer_hand(c, data["answer"], who.agent, now)
            events = [event(c, "floor.hand_answer", answer=data["answer"], lead=who.agent)]
            return (dict(hand), floor.board_change(c, now, [], self.words)), events

        hand, board = self._update(who, data["conversation_id"], change)
        message = {"conversation_id": data["conversation_id"], "answer": data["answer"],
                   "message": floor.HAND_ANSWERS[data["answer"]], "lead": who.agent}
        return FloorReply({"ok": True, "hand": hand}, [("lead.answer", message)],
                          room(who.tenant, data["conversation_id"]), board)

    def whisper(self, who: Identity, payload: Any) -> FloorReply:
        """floor.whisper: a short note to the agent's sidebar only, logged redacted like transcript text, and at
        most WHISPER_RATE_PER_S a second per lead (rate_limited)."""
        self._lead(who)
        data = validate_whisper(payload)
        self.whispers[who.tenant, who.agent].take()
        now = time.time()

        def change(c: Conversation):
            floor.open_for_floor(c)
            logged = {"text": redact(data["text"])} if c.consent and self.transcript != "none" else {}
            return None, [event(c, "floor.whisper", lead=who.agent, **logged)]

        self._update(who, data["conversation_id"], change)
        message = {"conversation_id": data["conversation_id"], "text": data["text"], "lead": who.agent, "at": now}
        return FloorReply({"ok": True, "at": now}, [("lead.whisper", message)], room(who.tenant,
                                                                                     data["conversation_id"]))

    def _update(self, who: Identity, conversation_id: str, change: Callable[[Conversation], Any]) -> Any:
        """One change to a conversation of the lead's tenant (the tenant is in the store's key: another tenant's
        conversation is unknown, as one that never was)."""
        try:
            return self.store.update(who.tenant, conversation_id, change)
        except UnknownConversation:
            raise UnknownConversation(f"no conversation {conversation_id} on this tenant's floor") from None

    def rules_of(self, who: Identity) -> dict[str, dict[str, Any]]:
        """The tenant's alert rules (a lead's or admin's)."""
        self._lead(who)
        return self.rules.of(who.tenant)

    def change_rules(self, who: Identity, change: Any) -> dict[str, dict[str, Any]]:
        """Merge a partial map of rules onto the tenant's (a lead's or admin's)."""
        self._lead(who)
        return self.rules.change(who.tenant, change)
