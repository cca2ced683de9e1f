"""Outcomes in: one record's validation, and CSV and JSON batches where a bad row is reported and the rest count."""
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copilot.analytics.outcomes import FIELDS, MAX_ROWS, InvalidOutcome, Outcome, field_name, parse_csv, parse_json, parse_outcome
from copilot.errors import InvalidPayload

HEADER = "conversation_id,csat,nps,felt_understood,acknowledged_situation,clear_next_steps,survey_scale,resolved," \
         "repeat_contact,repeat_within_days,responded_at"


def test_every_outcome_field_has_a_reader():
    assert set(FIELDS) == set(Outcome.__dataclass_fields__)


def test_a_full_record_becomes_an_outcome():
    outcome = parse_outcome({"conversation_id": "c-1", "csat": 4, "nps": 9, "felt_understood": 6,
                             "acknowledged_situation": 7, "clear_next_steps": 1, "survey_scale": 7, "resolved": True,
                             "repeat_contact": False, "repeat_within_days": 7, "responded_at": "2026-11-30T10:00:00Z"})
    assert outcome == Outcome("c-1", 4, 9, 6, 7, 1, 7, True, False, 7, datetime(2026, 11, 30, 10, tzinfo=UTC).timestamp())


def test_fields_not_sent_are_none_and_the_scale_defaults_to_five():
    assert parse_outcome({"conversation_id": "c-1", "csat": 5}) == Outcome("c-1", csat=5, survey_scale=5)


@pytest.mark.parametrize("record, field", [
    ({"csat": 4}, "conversation_id"),
    ({"conversation_id": "bad id", "csat": 4}, "conversation_id"),
    ({"conversation_id": "c-1", "csat": 6}, "csat"),
    ({"conversation_id": "c-1", "csat": 0}, "csat"),
    ({"conversation_id": "c-1", "csat": 4.5}, "csat"),
    ({"conversation_id": "c-1", "csat": True}, "csat"),
    ({"conversation_id": "c-1", "nps": 11}, "nps"),
    ({"conversation_id": "c-1", "nps": "+-5"}, "nps"),
    ({"conversation_id": "c-1", "felt_understood": 6}, "felt_understood"),  # above the default 1-5 scale
    ({"conversation_id": "c-1", "clear_next_steps": 0, "survey_scale": 7}, "clear_next_steps"),
    ({"conversation_id": "c-1", "survey_scale": 6}, "survey_scale"),
    ({"conversation_id": "c-1", "resolved": "maybe"}, "resolved"),
    ({"conversation_id": "c-1", "repeat_contact": 2}, "repeat_contact"),
    ({"conversation_id": "c-1", "repeat_within_days": 0}, "repeat_within_days"),
    ({"conversation_id": "c-1", "repeat_within_days": 366}, "repeat_within_days"),
    ({"conversation_id": "c-1", "responded_at": "last tuesday"}, "responded_at"),
    ({"conversation_id": "c-1", "responded_at": float("nan")}, "responded_at"),
    ({"conversation_id": "c-1", "responded_at": -5}, "responded_at"),
    ({"conversation_id": "c-1", "csta": 4}, "csta"),
])
def test_a_bad_record_is_refused_with_a_message_naming_the_field(record, field):
    with pytest.raises(InvalidOutcome, match=field):
        parse_outcome(record)


def test_an_invalid_outcome_is_an_invalid_payload_at_the_edge():
    assert issubclass(InvalidOutcome, InvalidPayload)


@pytest.mark.parametrize("value, expected", [(True, True), ("yes", True), ("TRUE", True), ("1", True), (1, True),
                                             ("no", False), ("False", False), ("0", False), (0, False)])
def test_booleans_are_read_in_the_ways_survey_tools_write_them(value, expected):
    assert parse_outcome({"conversation_id": "c-1", "resolved": value}).resolved is expected


@pytest.mark.parametrize("value", ["2026-11-30T10:00:00Z", "2026-11-30T10:00:00+00:00", "2026-11-30T11:00:00+01:00",
                                   "2026-11-30 10:00:00", 1796032800, "1796032800"])
def test_responded_at_is_iso_8601_or_unix_seconds_and_utc_without_a_zone(value):
    assert parse_outcome({"conversation_id": "c-1", "responded_at": value}).responded_at == 1796032800.0


@pytest.mark.parametrize("header, name", [("CSAT", "csat"), ("felt understood", "felt_understood"),
                                          (" Clear-Next-Steps ", "clear_next_steps"), ("\ufeffconversation_id",
                                                                                       "conversation_id")])
def test_csv_headers_are_case_space_and_hyphen_tolerant(header, name):
    assert field_name(header) == name


def test_a_csv_reports_a_bad_row_by_its_spreadsheet_line_and_keeps_the_others():
    text = "Conversation ID,CSAT,Felt understood,resolved\r\nc-1,5,4,yes\r\nc-2,9,4,no\r\n\r\nc-3,,,\r\nc-4,1,,\r\n"
    outcomes, errors = parse_csv(text)
    assert [o.conversation_id for o in outcomes] == ["c-1", "c-3", "c-4"]
    assert outcomes[0] == Outcome("c-1", csat=5, felt_understood=4, resolved=True)
    assert outcomes[1] == Outcome("c-3")  # empty cells are absent, not zero
    assert errors == [{"line": 3, "code": "invalid_outcome", "message": "csat must be a whole number from 1 to 5, not '9'"}]


def test_a_quoted_cell_over_two_lines_still_counts_as_one_spreadsheet_row():
    outcomes, errors = parse_csv('conversation_id,csat,resolved\n"c-1",4,yes\n"c-2\nbroken",4,yes\nc-3,x,no\n')
    assert [o.conversation_id for o in outcomes] == ["c-1"]
    assert [e["line"] for e in errors] == [3, 4]


def test_a_csv_with_an_unknown_column_reads_nothing_so_a_typo_never_drops_a_score():
    outcomes, errors = parse_csv("conversation_id,csta\nc-1,4\n")
    assert outcomes == [] and errors[0]["line"] == 1 and "csta" in errors[0]["message"]


def test_a_csv_without_a_conversation_id_column_or_with_a_column_twice_reads_nothing():
    assert parse_csv("csat\n4\n")[1][0]["message"].startswith("no conversation_id column")
    assert parse_csv("conversation_id,CSAT,csat\nc-1,4,4\n")[1][0]["message"].startswith("a column appears twice")
    assert parse_csv("") == ([], [{"line": 1, "code": "invalid_outcome",
                                   "message": "the CSV is empty: it needs a header row of field names"}])


def test_trailing_empty_cells_are_fine_and_a_value_past_the_header_is_refused():
    outcomes, errors = parse_csv("conversation_id,csat,\nc-1,4,,\nc-2,4,,7\nc-3,3,5\n")
    assert [o.conversation_id for o in outcomes] == ["c-1"]
    assert [e["line"] for e in errors] == [3, 4]


def test_a_later_row_for_the_same_conversation_replaces_the_earlier():
    outcomes, errors = parse_csv("conversation_id,csat\nc-1,2\nc-2,3\nc-1,5\n")
    assert outcomes == [Outcome("c-1", csat=5), Outcome("c-2", csat=3)] and errors == []


@pytest.mark.parametrize("huge", [
    "x" * 200_000,  # past the csv module's field size limit
    '"' + "x" * 200_000 + '"',  # quoted
    '"' + "x" * 100_000 + "\n" + "x" * 100_000 + '"',  # quoted, over two lines, past the limit on the second
], ids=["plain", "quoted", "quoted-over-two-lines"])
def test_a_row_with_a_cell_past_the_csv_field_limit_is_rejected_at_its_line_and_the_rows_after_it_read(huge):
    outcomes, errors = parse_csv(f"conversation_id,csat\nc-1,4\nc-2,{huge}\nc-3,5\nc-4,2\n")
    assert [o.conversation_id for o in outcomes] == ["c-1", "c-3", "c-4"]
    assert errors == [{"line": 3, "code": "invalid_outcome",
                       "message": "the row cannot be read as CSV (field larger than field limit (131072))"}]


def test_a_csv_past_the_row_limit_reads_the_limit_and_says_so_once():
    rows = "".join(f"c-{i},4\n" for i in range(MAX_ROWS + 5))
    outcomes, errors = parse_csv("conversation_id,csat\n" + rows)
    assert len(outcomes) == MAX_ROWS
    assert len(errors) == 1 and errors[0]["line"] == MAX_ROWS + 2


def test_a_hundred_thousand_csv_rows_parse_in_well_under_five_seconds():
    rows = "".join(f"c-{i},{i % 5 + 1},{i % 11},{i % 5 + 1},,3,5,yes,no,,2026-11-30T10:00:00Z\n" for i in range(100_000))
    started = time.perf_counter()
    outcomes, errors = parse_csv(HEADER + "\n" + rows)
    assert len(outcomes) == 100_000 and errors == []
    assert time.perf_counter() - started < 5


def test_json_takes_an_object_with_outcomes_or_a_bare_list_and_reports_bad_records_by_index():
    body = {"outcomes": [{"conversation_id": "c-1", "csat": 5}, {"conversation_id": "c-2", "csat": 7}, "x"]}
    outcomes, errors = parse_json(body)
    assert outcomes == [Outcome("c-1", csat=5)]
    assert [(e["index"], e["code"]) for e in errors] == [(1, "invalid_outcome"), (2, "invalid_outcome")]
    assert parse_json('[{"conversation_id": "c-9", "nps": 10}]') == ([Outcome("c-9", nps=10)], [])


@pytest.mark.parametrize("body", [{"outcome": []}, "not json", 42, {"outcomes": {"c-1": 4}}])
def test_json_that_holds_no_list_of_outcomes_is_an_invalid_payload(body):
    with pytest.raises(InvalidPayload):
        parse_json(body)


@given(st.text(alphabet=st.sampled_from(list('conversation_id,csat,nps\n"\r 1x-5\x00\ufeff')), max_size=300))
def test_any_csv_text_gives_outcomes_and_errors_and_never_raises(text):
    outcomes, errors = parse_csv(text)
    assert all(isinstance(o, Outcome) for o in outcomes) and all(e["code"] == "invalid_outcome" for e in errors)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-20, 20) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(list(FIELDS) + ["x"]),
                                                                                 inner, max_size=4), max_leaves=12)


@given(JSON)
def test_any_json_body_gives_outcomes_and_errors_or_an_invalid_payload(body):
    try:
        outcomes, errors = parse_json(body)
    except InvalidPayload:
        return
    assert all(isinstance(o, Outcome) for o in outcomes) and all("index" in e for e in errors)
