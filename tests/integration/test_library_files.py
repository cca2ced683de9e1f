"""Bulk files: YAML read one row at a time with aliases refused, CSV rows, and bounded error lists."""
import resource
import time

import pytest

from copilot.library.files import MAX_LISTED_ROWS, UnreadableFile, dump, load_library, parse_rows, read_rows

GOOD_ROW = ("  - id: imp-row-{i:05d}\n    text: \"What happened when you called about bill {i}?\"\n"
            "    cues: [repeat_contact]\n    stage: investigate\n    use_when: [\"I called again {i}\", \"still no fix\"]\n")
BAD_ROW = ("  - id: bad-row-{i:06d}\n    text: \"Is it broken number {i}?\"\n    cues: [frustration, nonsense_{i}]\n"
           "    stage: check-in\n    channels: [chat, fax]\n    use_when: [\"this is broken {i}\", \"fix it\"]\n")


def rows(body, fmt="yaml"):
    return list(read_rows(body, fmt))


@pytest.mark.parametrize("body", [
    "a: &x [1]\nphrasings: [*x]",
    "phrasings:\n  - &row {id: a}\n  - *row",
    "phrasings: &all\n  - {id: a}",
    "phrasings:\n  - {<<: {id: x}, text: y}",
    "lol: &l [lol, lol]\nlols: &m [*l, *l, *l]\nphrasings: [{id: x, cues: *m}]",
])
def test_anchors_aliases_and_merge_keys_are_refused_with_a_clear_message(body):
    with pytest.raises(UnreadableFile, match="anchors and aliases"):
        rows(body)


@pytest.mark.parametrize("body, message", [
    ("- " + "[" * 20 + "]" * 20, "nested"),
    ("", "must be a list"),
    ("phrasings: 3", "must be a list"),
    ("just text", "must be a list"),
    ("--- [1]\n--- [2]", "one document"),
    ("{x: [", "not valid YAML"),
])
def test_files_of_the_wrong_shape_are_unreadable(body, message):
    with pytest.raises(UnreadableFile, match=message):
        rows(body)


def test_both_yaml_shapes_and_other_top_level_keys_read_the_same_rows():
    assert rows("- {id: a}\n- {id: b}") == [{"id": "a"}, {"id": "b"}]
    assert rows("version: 2\nphrasings:\n  - {id: a}\nnotes: {x: [1]}") == [{"id": "a"}]


def test_the_shipped_library_round_trips_through_yaml_and_csv():
    shipped = load_library()
    for fmt in ("yaml", "csv"):
        parsed = parse_rows(read_rows(dump(shipped, fmt), fmt))
        assert parsed.rejected == 0 and [p.id for p in parsed.good] == [p.id for p in shipped]


def test_a_file_of_bad_rows_lists_the_first_hundred_and_counts_all():
    body = "phrasings:\n" + "".join(BAD_ROW.format(i=i) for i in range(1000)) + GOOD_ROW.format(i=1)
    parsed = parse_rows(read_rows(body, "yaml"))
    assert (parsed.rows, parsed.rejected, len(parsed.good)) == (1001, 1000, 1)
    assert len(parsed.errors) == MAX_LISTED_ROWS and parsed.errors[-1].row == MAX_LISTED_ROWS


def test_five_megabytes_of_bad_rows_parse_in_flat_memory_and_seconds():
    body = "phrasings:\n" + "".join(BAD_ROW.format(i=i) for i in range(26_000))
    assert 4.5e6 < len(body) < 5 * 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    parsed = parse_rows(read_rows(body, "yaml"))
    took = time.perf_counter() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert parsed.rejected == 26_000 and len(parsed.errors) == MAX_LISTED_ROWS
    assert grown_mb < 60, f"peak memory grew {grown_mb:.0f} MB (the whole-file loader took 280 MB)"
    assert took < 15, f"took {took:.1f} s"
