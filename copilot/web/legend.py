"""The legend every page draws with: each cue's label and colour, the phrasing stages and the triage levels.

Written once here and rendered into the sidebar and the console as one JSON data block (`copilot-legend`).
"""
from __future__ import annotations

from typing import Any

from copilot.cues.taxonomy import CUES, NEGATIVE_CUES
from copilot.library.phrasing import STAGES

# One palette: the console draws its lines in these, the sidebar tints its highlights with them (mixed into the
# page's background, so one colour serves the light and the dark theme).
CUE_COLOURS: dict[str, str] = {
    "frustration": "#c0563a", "disappointment": "#8a5bb0", "confusion": "#b69a1c", "anxiety": "#3f7fc4",
    "sadness": "#6b7280", "gratitude": "#3c9a5a", "repeat_contact": "#a8743a", "escalation_request": "#c24f7a",
    "churn_risk": "#d0503c", "urgency": "#d88a2b", "abuse": "#6f55b8", "crisis": "#b03030",
}
TRIAGE_LABELS: dict[int, str] = {1: "mild", 2: "significant distress", 3: "crisis"}


def cue_label(cue: str) -> str:
    """The words an agent reads for a cue: "repeat_contact" is "Repeat contact"."""
    return cue.replace("_", " ").capitalize()


def legend() -> dict[str, Any]:
    """The cues (in taxonomy order), stages and triage levels as the pages read them."""
    return {
        "cues": [{"name": c, "label": cue_label(c), "colour": CUE_COLOURS[c], "negative": c in NEGATIVE_CUES}
                 for c in CUES],
        "stages": list(STAGES),
        "triage": [{"level": level, "label": label} for level, label in TRIAGE_LABELS.items()],
    }
