"""The legend the pages draw with: every cue of the taxonomy once, with a label and a colour of its own."""
import re

from copilot.cues.taxonomy import CUES, NEGATIVE_CUES
from copilot.library.phrasing import STAGES
from copilot.web.legend import CUE_COLOURS, cue_label, legend


def test_the_legend_lists_every_cue_of_the_taxonomy_in_its_order():
    assert [c["name"] for c in legend()["cues"]] == list(CUES)
    assert set(CUE_COLOURS) == set(CUES)


def test_each_cue_has_its_own_colour_as_a_six_digit_hex():
    colours = [c["colour"] for c in legend()["cues"]]
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours), colours
    assert len(set(colours)) == len(colours)


def test_a_cue_label_is_its_name_in_words():
    assert cue_label("repeat_contact") == "Repeat contact"
    assert cue_label("frustration") == "Frustration"
    assert [c["label"] for c in legend()["cues"] if c["name"] == "escalation_request"] == ["Escalation request"]


def test_the_legend_marks_the_negative_cues_and_lists_the_stages_and_triage_levels():
    assert {c["name"] for c in legend()["cues"] if c["negative"]} == NEGATIVE_CUES
    assert legend()["stages"] == list(STAGES)
    assert [(t["level"], t["label"]) for t in legend()["triage"]] == [
        (1, "mild"), (2, "significant distress"), (3, "crisis")]
