"""The phrasing schema and its validation (pure): what a team lead may put in front of an agent.

A phrasing is an open-ended question or invitation, at most 25 words, never a script or a promise. Phrasings of
the agent-protection stage are guidance to the agent instead, and need not be questions.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from copilot.cues.taxonomy import CUES

STAGES = ("check-in", "investigate", "options", "close-the-loop", "after-verification", "agent-protection")
CHANNELS = ("voice", "chat", "email")
STATUSES = ("draft", "approved", "retired")
LOCALES = ("en",)
MAX_WORDS = 25
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{2,63}")  # always fullmatch: `$` would let "id\n" through
RESERVED_IDS = frozenset({"import", "export"})
# An error lists at most this many problems, each cut to a length: a hostile row (10,000 unknown cues, a
# megabyte-long field name) must not turn into a reply far larger than itself.
MAX_PROBLEMS = 10
MAX_PROBLEM_CHARS = 200

# Closed (yes/no) openings. Invitations to the customer to talk that start the same way are allowed below; an
# offer ("Would you like me to tell you...?") is answered yes or no, so it is closed.
CLOSED_START = re.compile(
    r"^(?:is|are|am|was|were|do|does|did|have|has|had|will|would|should|shall|can|could|may|might|must|"
    r"isn't|aren't|don't|doesn't|didn't|won't|wouldn't|haven't|hasn't|any|anything else)\b", re.IGNORECASE)
INVITATION_START = re.compile(
    r"^(?:could|can|would|will) you (?:please )?(?:tell|share|walk|describe|explain|say more|talk me through|"
    r"help me understand|give me a sense)|"
    r"^would you (?:like|be willing|prefer) to (?:tell|share|talk|describe|explain|walk|go through|say)|"
    r"^would it help (?:if|to) (?:you|we|i) (?:told|shared|talked|walked|went)",
    re.IGNORECASE)
OPEN_MARKERS = re.compile(r"\b(?:what|how|which|where|when|who|why|tell me|walk me through|help me understand|"
                          r"i'd like to understand|i'm wondering|i wonder|share)\b", re.IGNORECASE)
SCRIPT_PATTERNS = {
    "a stock apology": r"apologi[sz]e for any inconvenience|sorry for (?:any|the) inconvenience",
    "a claim to know how the customer feels": r"i (?:completely |totally )?understand (?:exactly )?how you feel|"
                                              r"i know (?:exactly )?how you feel",
    "telling the customer to calm down": r"calm down|relax\b",
    "a promise": r"\bi promise\b|\bguarantee|\bdefinitely\b|\bi will make sure\b|\brest assured\b|"
                 r"\bi'll make sure\b|\bwe will fix\b",
    "blame or policy language": r"\bas i (?:said|mentioned)\b|\bunfortunately\b|\bpolicy\b|\bvalued customer\b",
    "a placeholder": r"[{}<>\[\]]",
    "an exclamation mark": r"!",
}
SCRIPT_RES = {reason: re.compile(p, re.IGNORECASE) for reason, p in SCRIPT_PATTERNS.items()}


class InvalidPhrasing(ValueError):
    """A phrasing breaks the schema or the house rules; `problems` lists each as {field, message}."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        listed = [{"field": _cut(p["field"], 80), "message": _cut(p["message"], MAX_PROBLEM_CHARS)}
                  for p in problems[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            listed.append({"field": "phrasing", "message": f"and {len(problems) - MAX_PROBLEMS} more problems"})
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in listed))
        self.problems = listed


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


@dataclass(frozen=True)
class Phrasing:
    """One vetted open question (or agent guidance), with what it is for and its curation state."""

    id: str
    text: str
    cues: tuple[str, ...]
    stage: str
    channels: tuple[str, ...] = CHANNELS
    use_when: tuple[str, ...] = ()
    status: str = "draft"
    locale: str = "en"
    notes: str = ""
    version: int = 1

    def as_dict(self) -> dict[str, Any]:
        """JSON/YAML form, lists instead of tuples."""
        data = asdict(self)
        for key in ("cues", "channels", "use_when"):
            data[key] = list(data[key])
        return data

    def with_changes(self, **changes: Any) -> Phrasing:
        """A copy with some fields changed (validation is the caller's next step)."""
        return replace(self, **changes)


def text_problems(text: str, stage: str) -> list[str]:
    """House-rule problems of a phrasing's text, as messages a team lead can act on."""
    problems = []
    words = text.split()
    if not words:
        return ["is empty"]
    if len(words) > MAX_WORDS:
        problems.append(f"has {len(words)} words; keep it to {MAX_WORDS} or fewer so an agent can take it in at a glance")
    for reason, regex in SCRIPT_RES.items():
        if regex.search(text):
            problems.append(f"reads like a script: it contains {reason} ('{regex.search(text).group(0)}')")
    if stage != "agent-protection":
        last_sentence = re.split(r"(?<=[.?])\s+", text.strip())[-1]
        if CLOSED_START.match(last_sentence) and not INVITATION_START.match(last_sentence):
            problems.append("is a closed yes/no question; ask it openly, e.g. start with 'What', 'How' or "
                            "'Could you tell me more about...'")
        elif not (OPEN_MARKERS.search(text) or INVITATION_START.match(last_sentence)):
            problems.append("is not an open question or invitation; use 'What', 'How', 'Tell me' or "
                            "'Could you tell me more about...'")
    return problems


def parse_phrasing(data: Mapping[str, Any]) -> Phrasing:
    """Build a Phrasing from loose data (YAML, JSON, CSV row), or raise InvalidPhrasing with every problem."""
    problems: list[dict[str, str]] = []

    def bad(name: str, message: str) -> None:
        problems.append({"field": name, "message": message})

    if not isinstance(data, Mapping):
        raise InvalidPhrasing([{"field": "phrasing", "message": "must be an object with named fields"}])
    known = {"id", "text", "cues", "stage", "channels", "use_when", "status", "locale", "notes", "version"}
    for extra in sorted(set(data) - known):
        bad(str(extra), "is not a phrasing field")
    ident = data.get("id")
    if not isinstance(ident, str) or not ID_PATTERN.fullmatch(ident):
        bad("id", "must be 3-64 characters of lower-case letters, digits, '-' or '_'")
    elif ident in RESERVED_IDS:
        bad("id", f"'{ident}' is reserved by the API; choose another id")
    text = data.get("text")
    stage = data.get("stage")
    if stage not in STAGES:
        bad("stage", f"must be one of {', '.join(STAGES)}")
    if not isinstance(text, str):
        bad("text", "must be text")
    else:
        text = " ".join(text.split())
        for message in text_problems(text, stage if isinstance(stage, str) else ""):
            bad("text", message)
    cues = _string_list(data.get("cues"), "cues", bad)
    if cues is not None:
        if not 1 <= len(cues) <= 3:
            bad("cues", "name one to three cues")
        for cue in cues:
            if cue not in CUES:
                bad("cues", f"'{cue}' is not a cue; known cues: {', '.join(CUES)}")
    channels = _string_list(data.get("channels", list(CHANNELS)), "channels", bad)
    if channels is not None:
        if not channels:
            bad("channels", "name at least one channel")
        for channel in channels:
            if channel not in CHANNELS:
                bad("channels", f"'{channel}' is not a channel; use voice, chat or email")
    use_when = _string_list(data.get("use_when", []), "use_when", bad)
    if use_when is not None and not 2 <= len(use_when) <= 4:
        bad("use_when", "give two to four short example customer utterances")
    status = data.get("status", "draft")
    if status not in STATUSES:
        bad("status", "must be draft, approved or retired")
    locale = data.get("locale", "en")
    if locale not in LOCALES:
        bad("locale", f"only {', '.join(LOCALES)} is supported")
    notes = data.get("notes", "") or ""
    if not isinstance(notes, str) or len(notes) > 500:
        bad("notes", "must be text of at most 500 characters")
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        bad("version", "must be a positive whole number")
    if problems:
        raise InvalidPhrasing(problems)
    return Phrasing(ident, text, tuple(dict.fromkeys(cues)), stage, tuple(dict.fromkeys(channels)),
                    tuple(use_when), status, locale, notes, version)


def _string_list(value: Any, name: str, bad) -> list[str] | None:
    if isinstance(value, str):
        value = [v.strip() for v in value.split("|") if v.strip()] if "|" in value else [value.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        bad(name, "must be a list of non-empty texts")
        return None
    if any(len(v) > 300 for v in value):
        bad(name, "each item must be at most 300 characters")
        return None
    return [v.strip() for v in value]


def check_phrasing(phrasing: Phrasing) -> Phrasing:
    """Validate an existing Phrasing object (after an edit) and return it."""
    return parse_phrasing(phrasing.as_dict())
