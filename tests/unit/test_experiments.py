"""Experiments: definitions, deterministic assignment, Wilson intervals and reports."""
from datetime import UTC, datetime

import pytest

from copilot.errors import InvalidPayload
from copilot.library.experiments import assign, parse_experiment, redefinition_problem, report, usage_table, wilson

QUEUE_EXP = {"id": "guidance-ab", "variants": [{"name": "on"}, {"name": "off", "guidance": False}],
             "assign_by": "queue", "queues": {"billing": "off"}}


def test_listed_queue_gets_its_variant():
    assert assign(parse_experiment(QUEUE_EXP), "billing") == "off"


def test_unlisted_queue_is_assigned_the_same_variant_every_time():
    experiment = parse_experiment(QUEUE_EXP)
    first = assign(experiment, "delivery")
    assert first in {"on", "off"} and all(assign(experiment, "delivery") == first for _ in range(20))


def test_schedule_assignment_follows_the_utc_hour():
    experiment = parse_experiment({"id": "sched", "variants": [{"name": "a"}, {"name": "b"}],
                                   "assign_by": "schedule", "schedule": [[0, 12, "a"], [12, 24, "b"]]})
    assert assign(experiment, "any", datetime(2026, 1, 1, 9, tzinfo=UTC)) == "a"
    assert assign(experiment, "any", datetime(2026, 1, 1, 15, tzinfo=UTC)) == "b"


@pytest.mark.parametrize("bad", [
    {**QUEUE_EXP, "assign_by": "agent_preference"},
    {**QUEUE_EXP, "variants": [{"name": "only"}]},
    {**QUEUE_EXP, "queues": {"billing": "missing"}},
    {**QUEUE_EXP, "id": "Bad Id"},
    {"id": "s", "variants": [{"name": "a"}, {"name": "b"}], "assign_by": "schedule", "schedule": [[5, 3, "a"]]},
    "not an object",
])
def test_bad_definitions_are_refused(bad):
    with pytest.raises(InvalidPayload):
        parse_experiment(bad)


def test_wilson_interval_contains_the_rate_and_narrows_with_more_trials():
    low, high = wilson(30, 100)
    assert low < 0.3 < high
    low2, high2 = wilson(300, 1000)
    assert high2 - low2 < high - low
    assert wilson(0, 0) == (0.0, 0.0)


def test_report_gives_rates_and_intervals_per_variant():
    outcomes = [{"variant": "on", "shown": 4, "used": 2, "negative": 3, "resolved": 2},
                {"variant": "on", "shown": 2, "used": 1, "negative": 1, "resolved": 1},
                {"variant": "off", "shown": 0, "used": 0, "negative": 2, "resolved": 0}]
    result = report(parse_experiment(QUEUE_EXP), outcomes, exposures=3)
    on, off = result["variants"]
    assert on["acceptance_rate"] == 0.5 and on["resolution_rate"] == 0.75 and on["conversations"] == 2
    assert off["acceptance_rate"] is None and off["resolution_rate"] == 0.0
    assert on["acceptance_ci95"][0] < 0.5 < on["acceptance_ci95"][1]


def test_usage_table_sums_actions_per_key():
    rows = [{"phrasing_id": "a", "action": "shown", "cue": "x", "queue": "q", "channel": "chat", "count": 3},
            {"phrasing_id": "a", "action": "used", "cue": "x", "queue": "q", "channel": "chat", "count": 1},
            {"phrasing_id": "b", "action": "shown", "cue": "y", "queue": "q", "channel": "chat", "count": 2}]
    table = usage_table(rows)
    assert table[0] == {"phrasing_id": "a", "shown": 3, "used": 1, "dismissed": 0, "helpful": 0,
                        "not_helpful": 0, "acceptance_rate": 0.3333}


def test_an_unknown_variant_name_gives_none_instead_of_raising():
    experiment = parse_experiment(QUEUE_EXP)
    assert experiment.variant("off").guidance is False
    assert experiment.variant("renamed") is None


@pytest.mark.parametrize("bad", [
    {**QUEUE_EXP, "id": "guidance-ab\n"},
    {**QUEUE_EXP, "variants": [{"name": "on\n"}, {"name": "off"}]},
])
def test_ids_and_variant_names_ending_in_a_newline_are_refused(bad):
    with pytest.raises(InvalidPayload):
        parse_experiment(bad)


@pytest.mark.parametrize("variants, exposures, refused", [
    ([{"name": "on"}, {"name": "off", "guidance": False}], 0, False),
    ([{"name": "alpha"}, {"name": "beta"}], 0, False),
    ([{"name": "alpha"}, {"name": "beta"}], 3, True),
    ([{"name": "on"}, {"name": "off"}, {"name": "third"}], 3, True),
    ([{"name": "off", "guidance": True}, {"name": "on", "guidance": False}], 3, False),
])
def test_variant_names_are_fixed_once_an_experiment_has_exposures(variants, exposures, refused):
    before = parse_experiment(QUEUE_EXP)
    after = parse_experiment({**QUEUE_EXP, "variants": variants, "queues": {}})
    problem = redefinition_problem(before, after, exposures)
    assert (problem is not None) == refused
    if refused:
        assert "new experiment id" in problem


def test_a_variant_shows_only_its_phrasings_or_any_when_it_names_none():
    from copilot.library.experiments import Variant

    assert Variant("on", phrasings=("p1",)).allows("p1") and not Variant("on", phrasings=("p1",)).allows("p2")
    assert Variant("on").allows("p2") and not Variant("on", phrasings=()).allows("p1")


def test_an_ended_conversation_gives_its_experiment_the_counts_the_report_sums():
    from copilot.library.experiments import outcome_of

    summary = {"suggestions": {"shown": ["p1", "p2"], "used": ["p1"], "dismissed": []}, "negative_episodes": 3,
               "resolved": 2, "counts": {"anxiety": 3}}
    outcome = outcome_of(summary)
    assert outcome == {"shown": 2, "used": 1, "negative": 3, "resolved": 2}
    variant = report(parse_experiment({"id": "e", "variants": [{"name": "on"}, {"name": "off"}]}),
                     [{"variant": "on", **outcome}])["variants"][0]
    assert (variant["acceptance_rate"], variant["resolution_rate"]) == (0.5, 0.6667)
