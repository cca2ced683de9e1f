"""Synthetic event logs shaped like the server's (copilot.assist.event and the end summary), for the analytics
benchmark and tests: conversations of a start, customer and agent turns, some feedback and an end, spread over
`days` days, `agents` agents and `tenants` tenants. The words are placeholders: no customer's text is copied."""
from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CUES = ("frustration", "anger", "confusion", "anxiety", "sadness", "disappointment", "gratitude",
        "repeat_contact", "escalation_request", "churn_risk", "urgency")
NEGATIVE = {"frustration", "anger", "confusion", "anxiety", "sadness", "disappointment"}
BEHAVIOURS = ("acknowledging", "naming_emotion", "open_question", "offering_options", "closing_the_loop")
QUEUES = ("billing", "tech", "sales", "retention")
CHANNELS = ("voice", "chat", "email")
PHRASINGS = tuple(f"p-{n:03d}" for n in range(60))
DAY_S = 86400.0


def conversation(rng: random.Random, tenant: str, number: int, agent: str, start_at: float,
                 turns: int) -> list[dict[str, Any]]:
    """One conversation's events, in order: start, `turns` customer and agent turns each, feedback, end."""
    cid = f"c-{tenant}-{number}"
    base = {"tenant": tenant, "conversation_id": cid, "agent": agent, "channel": rng.choice(CHANNELS),
            "queue": rng.choice(QUEUES), "customer_ref": f"cust-{rng.randrange(10**6)}"}
    experiment = ["exp-1", rng.choice(("control", "guided"))] if rng.random() < 0.5 else None
    at = start_at
    out = [{**base, "type": "conversation.start", "at": at, "consent": True, "experiment": experiment}]
    counts: dict[str, int] = {}
    episodes: dict[str, int] = {}
    acknowledged: dict[str, int] = {}
    behaviours: dict[str, int] = {}
    shown: list[str] = []
    pending: set[str] = set()
    for turn in range(turns):
        at += rng.uniform(5, 30)
        cues = rng.sample(CUES, rng.choice((0, 0, 1, 1, 2)))
        for cue in cues:
            counts[cue] = counts.get(cue, 0) + 1
            if cue in NEGATIVE and cue not in pending:
                pending.add(cue)
                episodes[cue] = episodes.get(cue, 0) + 1
        suggestions = [rng.choice(PHRASINGS)] if cues and rng.random() < 0.4 else []
        shown.extend(s for s in suggestions if s not in shown)
        out.append({**base, "type": "transcript.snippet", "at": at, "snippet_id": f"s{turn}c", "speaker": "customer",
                    "cues": cues, "triage_level": 2 if cues else 1, "suggestions": suggestions, "alerts": [],
                    "text": "placeholder customer words"})
        at += rng.uniform(5, 30)
        said = [b for b in BEHAVIOURS if rng.random() < 0.2]
        for b in said:
            behaviours[b] = behaviours.get(b, 0) + 1
        if {"acknowledging", "naming_emotion"} & set(said):
            for cue in pending:
                acknowledged[cue] = acknowledged.get(cue, 0) + 1
            pending.clear()
        out.append({**base, "type": "transcript.snippet", "at": at, "snippet_id": f"s{turn}a", "speaker": "agent",
                    "behaviours": said, "alerts": [], "text": "placeholder agent words"})
    used = [s for s in shown if rng.random() < 0.3]
    for sid in used:
        out.append({**base, "type": "suggestion.feedback", "at": at, "suggestion_id": sid, "action": "used"})
    negative, resolved = sum(episodes.values()), sum(acknowledged.values())
    at += rng.uniform(5, 30)
    items = [{"item": b, "met": b in behaviours, "turn": None, "evidence": None, "why": "synthetic"}
             for b in ("timely_acknowledgment", *BEHAVIOURS[1:])]
    met = sum(1 for i in items if i["met"])
    summary = {"conversation_id": cid, "channel": base["channel"], "queue": base["queue"], "started_at": start_at,
               "ended_at": at, "customer_turns": turns, "agent_turns": turns, "counts": counts,
               "acknowledged": acknowledged, "episodes": episodes, "negative_episodes": negative,
               "resolved": resolved, "emotional_resolution_rate": round(resolved / negative, 4) if negative else None,
               "max_triage_level": 2 if counts else 1, "behaviours": behaviours,
               "suggestions": {"shown": shown, "used": used, "dismissed": [], "rated": {}}, "alerts": [],
               "experiment": experiment, "handoff_note": "",
               "scorecard": {"score": round(100 * met / len(items), 1), "items": items}}
    out.append({**base, "type": "conversation.end", "at": at, "summary": summary})
    return out


def events(count: int, tenants: int = 5, agents: int = 1000, days: int = 30, seed: int = 16,
           end_at: float = 1.79e9) -> Iterator[dict[str, Any]]:
    """About `count` events (whole conversations), each with a unique id, oldest conversations first."""
    rng = random.Random(seed)
    made, number = 0, 0
    start = end_at - days * DAY_S
    while made < count:
        tenant = f"tenant-{number % tenants}"
        agent = f"agent-{rng.randrange(agents)}"
        start_at = start + (days * DAY_S - 3600) * made / count
        for event in conversation(rng, tenant, number, agent, start_at, rng.randrange(3, 12)):
            yield {"id": uuid.UUID(int=rng.getrandbits(128)).hex, **event}
            made += 1
        number += 1


def write_log(path: Path, count: int, **kwargs: Any) -> int:
    """An event log file (the embedded server's JSON lines) of about `count` events; returns how many."""
    written = 0
    with path.open("w") as out:
        for event in events(count, **kwargs):
            out.write(json.dumps(event) + "\n")
            written += 1
    return written
