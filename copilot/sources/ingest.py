"""Applying a batch of utterances from a transcript source: each one spends the tenant's rate, starts its
conversation when the source says so, and goes through the service as a transcript.snippet, delivered to the
conversation's room as an agent's own snippet would be. REST and the /ingest namespace answer the same.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from copilot.assist import CopilotService, Reply
from copilot.errors import ConversationExists, CopilotError, InvalidSnippet, RateLimited, UnknownConversation
from copilot.security import Identity
from copilot.sources.contract import Batch, Utterance, in_order, parse_batch

SENDERS = ("integration", "lead")  # the roles that may send transcripts, by REST or /ingest; a lead's rank takes in admin
# what a source should send again: the utterance may land then (the Kinesis consumer resends these)
RESEND = frozenset({"rate_limited", "store_unavailable"})


class Ingest:
    """Batches in, one answer out: accepted, duplicates, started, ended, ignored, and each error with its index."""

    def __init__(self, service: CopilotService, deliver: Callable[[Reply], Any],
                 admit: Callable[[str], None]) -> None:
        self.service, self.deliver, self.admit = service, deliver, admit
        self.metrics = service.metrics

    def read(self, payload: Any) -> Batch:
        """The generic body as a Batch (copilot.sources.contract.parse_batch at the service's text limit)."""
        return parse_batch(payload, self.service.max_text_chars)

    def apply(self, who: Identity, batch: Batch, source: str = "transcripts") -> dict[str, Any]:
        """Apply the batch's utterances in order, then its ends; a refused or failed utterance is an error of its
        own and the rest carry on. Once the tenant's rate is spent, the rest are rate_limited (retry them: their
        ids make a repeat harmless). A conversation with an utterance that failed for a while (rate_limited,
        store_unavailable: a resend may land it) is not ended, so that the resend finds it open."""
        index = {id(u): batch.position(n) for n, u in enumerate(batch.utterances)}
        applied = in_order(batch.utterances)
        replaced, repeats = self._dropped(batch.utterances, applied)
        answer: dict[str, Any] = {"ok": True, "accepted": 0, "duplicates": repeats, "started": [], "ended": [],
                                  "ignored": batch.ignored, "errors": list(batch.refused)}
        held: dict[str, str] = {}  # conversation -> the code of an utterance of it to resend: not ended yet
        spent = False  # the tenant's rate ran out: the rest of the batch is rate_limited
        for u in applied:
            try:
                if spent:
                    raise RateLimited("the tenant's rate was spent earlier in this batch; retry this utterance")
                self.admit(who.tenant)
                ack = self._snippet(who, u, answer["started"])
            except CopilotError as error:
                spent = spent or isinstance(error, RateLimited)
                if error.code in RESEND:
                    held.setdefault(u.conversation_id, error.code)
                answer["errors"].append({"index": index[id(u)], "utterance_id": u.utterance_id,
                                         "conversation_id": u.conversation_id, "code": error.code,
                                         "message": str(error)})
                continue
            answer["duplicates" if ack.get("duplicate") else "accepted"] += 1 + replaced.get(id(u), 0)
        for position, cid in enumerate(batch.ended):
            self._end(who, cid, position, held, answer)
        answer["errors"].sort(key=lambda e: (e.get("index", len(batch.utterances)), e.get("end", 0)))
        answer["ok"] = not answer["errors"]
        self._count(source, answer)
        return answer

    def _count(self, source: str, answer: dict[str, Any]) -> None:
        """The answer in /metrics, by source (the route's name, "transcripts" for the generic contract)."""
        for result, key in (("accepted", "accepted"), ("duplicate", "duplicates"), ("ignored", "ignored")):
            if answer[key]:
                self.metrics.ingest.labels(source, result).inc(answer[key])
        for error in answer["errors"]:
            self.metrics.ingest.labels(source, error["code"]).inc()

    @staticmethod
    def _dropped(listed: list[Utterance], applied: list[Utterance]) -> tuple[dict[int, int], int]:
        """What in_order left out of a batch: per applied utterance, the interim results of it that came before
        and were replaced (they count as it does: accepted or duplicate), and the repeats (a final result again,
        an interim one after its final), which are duplicates."""
        chosen = {id(u) for u in applied}
        kept = {(u.conversation_id, u.utterance_id): (position, u) for position, u in enumerate(listed)
                if id(u) in chosen}
        replaced: dict[int, int] = {}
        repeats = 0
        for position, u in enumerate(listed):
            if id(u) in chosen:
                continue
            at, winner = kept[u.conversation_id, u.utterance_id]
            if u.final or (winner.final and at < position):
                repeats += 1
            else:
                replaced[id(winner)] = replaced.get(id(winner), 0) + 1
        return replaced, repeats

    def _snippet(self, who: Identity, u: Utterance, started: list[str]) -> dict[str, Any]:
        """One utterance through the service, its conversation started first when it is not running and the
        source says how (another worker starting it at the same time is fine)."""
        try:
            reply = self.service.snippet(who, u.snippet(), piece=u.piece)
        except UnknownConversation:
            if u.start is None:
                raise
            if self.service.store.ended_lately(who.tenant, u.conversation_id):
                raise InvalidSnippet("the conversation has ended (a finished call sent again is not started "
                                     "again)") from None
            try:
                self.deliver(self.service.start(who, u.start.payload(u.conversation_id), agent=u.start.agent))
                started.append(u.conversation_id)
            except ConversationExists:
                pass
            reply = self.service.snippet(who, u.snippet(), piece=u.piece)
        return self.deliver(reply)

    def _end(self, who: Identity, cid: str, position: int, held: dict[str, str], answer: dict[str, Any]) -> None:
        """End a conversation the source says has ended; an unknown or ended one is no error (sources repeat
        their end events)."""
        if cid in held:
            answer["errors"].append({"end": position, "conversation_id": cid, "code": held[cid],
                                     "message": f"not ended: utterances of it were {held[cid]}; send them again, "
                                                "then the end"})
            return
        try:
            if self.service.store.get(who.tenant, cid).ended_at is not None:
                return
            self.deliver(self.service.end(who, {"conversation_id": cid}))
        except UnknownConversation:
            return
        except CopilotError as error:
            answer["errors"].append({"end": position, "conversation_id": cid, "code": error.code,
                                     "message": str(error)})
            return
        answer["ended"].append(cid)
