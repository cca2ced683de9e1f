"""The after-contact empathy scorecard (pure): the seeds' rubric scored from what the agent said, item by item,
each with the turn and the words that show it. It scores behaviours in text, never anyone's emotions.
"""
from __future__ import annotations

from typing import Any

ACK_WINDOW_TURNS = 2  # agent turns a negative cue may wait for acknowledgment: the rubric's "timely", and the nudge's
CLOSING_TURNS = 3  # closing the loop counts in the agent's last three turns
ITEMS = ("timely_acknowledgment", "naming_emotion", "open_question", "offering_options", "closing_the_loop")
ACKNOWLEDGING = ("acknowledging", "naming_emotion")  # the behaviours that acknowledge a negative cue


def first_raised(conv: Any) -> int | None:
    """The agent turns taken before the first negative cue still remembered was raised; None before any."""
    return min([opened for _, opened, _ in conv.acks] + list(conv.pending.values()), default=None)


def _item(item: str, met: bool | None, why: str, seen: list | None = None) -> dict[str, Any]:
    turn, words = seen if seen else (None, None)
    return {"item": item, "met": met, "turn": turn, "evidence": words, "why": why}


def _late(conv: Any) -> list[tuple[int, str, int | None]]:
    """Episodes whose window ran out before an acknowledgment, as (the turn it ran out, cue, agent turns waited;
    None when never acknowledged)."""
    late = [(opened + ACK_WINDOW_TURNS, cue, acked - opened) for cue, opened, acked in conv.acks
            if acked - opened > ACK_WINDOW_TURNS]
    late += [(opened + ACK_WINDOW_TURNS, cue, None) for cue, opened in conv.pending.items()
             if conv.agent_turns - opened >= ACK_WINDOW_TURNS]
    return sorted(late)


def _timely(conv: Any) -> dict[str, Any]:
    name = "timely_acknowledgment"
    if not conv.episodes:
        return _item(name, None, "no negative cue was raised")
    late = _late(conv)
    if late:
        turn, cue, waited = late[0]
        wait = f"waited {waited} agent turns for an acknowledgment" if waited is not None else "was not acknowledged"
        return _item(name, False, f"{cue.replace('_', ' ')} {wait} (the window is {ACK_WINDOW_TURNS})", [turn, None])
    if not conv.acks:
        return _item(name, None, "the conversation ended before a negative cue's window ran out")
    first = conv.acks[0][2]
    seen = next((conv.behaviour_evidence[b] for b in ACKNOWLEDGING
                 if conv.behaviour_evidence.get(b, [None])[0] == first), [first, None])
    return _item(name, True, f"every negative cue judged was acknowledged within {ACK_WINDOW_TURNS} agent turns", seen)


def _behaviour(conv: Any, name: str, met_why: str, unmet_why: str, after: int | None = None) -> dict[str, Any]:
    seen = conv.behaviour_evidence.get(name)
    if seen and (after is None or seen[0] > after):
        return _item(name, True, met_why, seen)
    return _item(name, False, unmet_why)


def _closing(conv: Any) -> dict[str, Any]:
    seen = conv.behaviour_evidence.get("closing_the_loop")  # its latest turn, not its first
    if seen and seen[0] > conv.agent_turns - CLOSING_TURNS:
        return _item("closing_the_loop", True, f"the agent closed the loop in their last {CLOSING_TURNS} turns", seen)
    return _item("closing_the_loop", False, f"no recap, next step or 'anything else' in the agent's last {CLOSING_TURNS} "
                                            "turns")


def scorecard(conv: Any) -> dict[str, Any]:
    """The scorecard of a copilot.conversation.Conversation: each item met, missed or not applicable (None), with
    its turn, evidence and why; score = 100 x met / applicable, None when no item applies."""
    if not conv.agent_turns:
        items = [_item(item, None, "the agent took no turn") for item in ITEMS]
    else:
        naming = (_behaviour(conv, "naming_emotion", "the agent named the customer's emotion",
                             "a negative cue was raised and no agent turn after it named the emotion", first_raised(conv))
                  if conv.episodes else _item("naming_emotion", None, "no negative cue was raised"))
        items = [
            _timely(conv),
            naming,
            _behaviour(conv, "open_question", "the agent asked an open question", "no open question"),
            _behaviour(conv, "offering_options", "the agent offered options", "no options offered"),
            _closing(conv),
        ]
    judged = [i["met"] for i in items if i["met"] is not None]
    return {"score": round(100 * sum(judged) / len(judged), 1) if judged else None, "items": items}
