"""A/B experiments on guidance (pure): definitions, deterministic assignment, and reports with intervals.

Assignment is by queue (an explicit map, or a stable hash of the queue name) or by schedule (time slots),
never by agent preference, so the same inputs always give the same variant.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from copilot.analytics.stats import wilson
from copilot.errors import InvalidPayload

ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # always fullmatch: `$` would let "id\n" through


@dataclass(frozen=True)
class Variant:
    """One arm: guidance on or off, and optionally the only phrasings it may show."""

    name: str
    guidance: bool = True
    phrasings: tuple[str, ...] | None = None

    def allows(self, phrasing_id: str) -> bool:
        """Whether this arm may show that phrasing (any, when it names none)."""
        return self.phrasings is None or phrasing_id in self.phrasings


@dataclass(frozen=True)
class Experiment:
    """An experiment: variants and how conversations are assigned to them."""

    id: str
    name: str
    variants: tuple[Variant, ...]
    assign_by: str  # "queue" or "schedule"
    queues: Mapping[str, str]  # queue -> variant (by queue; unlisted queues hash)
    schedule: tuple[tuple[int, int, str], ...]  # (start hour, end hour, variant) in UTC (by schedule)
    active: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The JSON form, as stored and as parse_experiment reads it back."""
        return {"id": self.id, "name": self.name, "assign_by": self.assign_by, "active": self.active,
                "variants": [{"name": v.name, "guidance": v.guidance,
                              "phrasings": list(v.phrasings) if v.phrasings is not None else None}
                             for v in self.variants],
                "queues": dict(self.queues), "schedule": [list(s) for s in self.schedule]}

    def variant(self, name: str) -> Variant | None:
        """The variant of that name; None when the experiment has none (it was redefined since)."""
        return next((v for v in self.variants if v.name == name), None)

    @property
    def variant_names(self) -> tuple[str, ...]:
        """The variants' names, in order."""
        return tuple(v.name for v in self.variants)


def redefinition_problem(before: Experiment, after: Experiment, exposures: int) -> str | None:
    """Why `after` may not replace `before`, or None. Once conversations were assigned, the variant names are
    fixed: those conversations keep their variant, and the report compares them by name."""
    if exposures and set(before.variant_names) != set(after.variant_names):
        return (f"experiment '{before.id}' has {exposures} exposures under variants "
                f"{', '.join(before.variant_names)}; keep those names (assignment, guidance, phrasings and "
                "active may change), or start a new experiment id and set this one active: false")
    return None


def parse_experiment(data: Any) -> Experiment:
    """Build an experiment from JSON, or raise InvalidPayload saying what is wrong."""
    if not isinstance(data, Mapping):
        raise InvalidPayload("an experiment must be a JSON object")
    ident = data.get("id")
    if not isinstance(ident, str) or not ID_PATTERN.fullmatch(ident):
        raise InvalidPayload("id must be 1-64 lower-case letters, digits, '-' or '_'")
    raw_variants = data.get("variants")
    if not isinstance(raw_variants, list) or not 2 <= len(raw_variants) <= 6:
        raise InvalidPayload("variants must be a list of two to six variants")
    variants = []
    for v in raw_variants:
        if not isinstance(v, Mapping) or not isinstance(v.get("name"), str) or not ID_PATTERN.fullmatch(v["name"]):
            raise InvalidPayload("each variant needs a name of lower-case letters, digits, '-' or '_'")
        phrasings = v.get("phrasings")
        if phrasings is not None and (not isinstance(phrasings, list) or not all(isinstance(p, str) for p in phrasings)):
            raise InvalidPayload("a variant's phrasings must be a list of phrasing ids")
        if not isinstance(v.get("guidance", True), bool):
            raise InvalidPayload("a variant's guidance must be true or false")
        variants.append(Variant(v["name"], v.get("guidance", True), tuple(phrasings) if phrasings is not None else None))
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise InvalidPayload("variant names must differ")
    assign_by = data.get("assign_by", "queue")
    if assign_by not in ("queue", "schedule"):
        raise InvalidPayload("assign_by must be queue or schedule (never agent preference)")
    queues = data.get("queues", {}) or {}
    if not isinstance(queues, Mapping) or not all(isinstance(k, str) and v in names for k, v in queues.items()):
        raise InvalidPayload("queues must map queue names to variant names")
    schedule = []
    for slot in data.get("schedule", []) or []:
        if (not isinstance(slot, (list, tuple)) or len(slot) != 3 or not all(isinstance(h, int) for h in slot[:2])
                or not 0 <= slot[0] < slot[1] <= 24 or slot[2] not in names):
            raise InvalidPayload("each schedule slot is [start_hour, end_hour, variant] with 0 <= start < end <= 24")
        schedule.append((slot[0], slot[1], slot[2]))
    if assign_by == "schedule" and not schedule:
        raise InvalidPayload("a schedule experiment needs at least one slot")
    name = data.get("name", ident)
    if not isinstance(name, str) or len(name) > 200:
        raise InvalidPayload("name must be text of at most 200 characters")
    return Experiment(ident, name, tuple(variants), assign_by, dict(queues), tuple(schedule),
                      bool(data.get("active", True)))


def assign(experiment: Experiment, queue: str, at: datetime | None = None) -> str | None:
    """The variant for a conversation on this queue at this time; None when the schedule has no slot."""
    if experiment.assign_by == "queue":
        if queue in experiment.queues:
            return experiment.queues[queue]
        digest = hashlib.sha256(f"{experiment.id}:{queue}".encode()).digest()
        return experiment.variants[int.from_bytes(digest[:8], "big") % len(experiment.variants)].name
    hour = (at or datetime.now(UTC)).astimezone(UTC).hour
    return next((variant for start, end, variant in experiment.schedule if start <= hour < end), None)


def outcome_of(summary: Mapping[str, Any]) -> dict[str, int]:
    """What an experiment keeps of an ended conversation's summary: the counts that report() sums."""
    return {"shown": len(summary["suggestions"]["shown"]), "used": len(summary["suggestions"]["used"]),
            "negative": summary["negative_episodes"], "resolved": summary["resolved"]}


def report(experiment: Experiment, outcomes: Sequence[Mapping[str, Any]], exposures: int | None = None) -> dict:
    """Per variant: conversations, acceptance rate (used / shown) and emotional resolution rate, with 95% CIs."""
    variants = []
    for variant in experiment.variants:
        rows = [o for o in outcomes if o.get("variant") == variant.name]
        shown = sum(int(o.get("shown", 0)) for o in rows)
        used = sum(int(o.get("used", 0)) for o in rows)
        negative = sum(int(o.get("negative", 0)) for o in rows)
        resolved = sum(int(o.get("resolved", 0)) for o in rows)
        variants.append({
            "variant": variant.name, "guidance": variant.guidance, "conversations": len(rows),
            "shown": shown, "used": used,
            "acceptance_rate": round(used / shown, 4) if shown else None,
            "acceptance_ci95": [round(x, 4) for x in wilson(used, shown)],
            "negative_cues": negative, "resolved": resolved,
            "resolution_rate": round(resolved / negative, 4) if negative else None,
            "resolution_ci95": [round(x, 4) for x in wilson(resolved, negative)],
        })
    return {"experiment": experiment.id, "name": experiment.name, "assign_by": experiment.assign_by,
            "exposures": exposures, "variants": variants}


def usage_table(rows: Sequence[Mapping[str, Any]], by: Sequence[str] = ("phrasing_id",)) -> list[dict]:
    """Usage counts (shown, used, dismissed, helpful, not_helpful) summed by the given keys, with acceptance."""
    table: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(row[k] for k in by)
        entry = table.setdefault(key, {**dict(zip(by, key)), "shown": 0, "used": 0, "dismissed": 0,
                                       "helpful": 0, "not_helpful": 0})
        entry[row["action"]] = entry.get(row["action"], 0) + int(row["count"])
    for entry in table.values():
        entry["acceptance_rate"] = round(entry["used"] / entry["shown"], 4) if entry["shown"] else None
    return sorted(table.values(), key=lambda e: tuple(str(e[k]) for k in by))
