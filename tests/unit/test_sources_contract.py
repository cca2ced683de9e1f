"""The ingest contract (pure): reading the generic body into a Batch, and the order a batch is applied in."""
import pytest

from copilot.errors import InvalidPayload
from copilot.sources.contract import MAX_UTTERANCES, Batch, Start, Utterance, in_order, parse_batch


def item(uid="u-1", cid="c-1", speaker="customer", text="hello", final=True, **extra):
    return {"conversation_id": cid, "utterance_id": uid, "speaker": speaker, "text": text, "final": final, **extra}


def u(uid, final=True, cid="c-1", text="hello", start_ms=None):
    return Utterance(cid, uid, "customer", text, final, start_ms=start_ms)


def test_a_whole_body_reads_into_utterances_with_their_start_and_the_conversations_that_ended():
    batch = parse_batch({"start": {"agent": "amy", "channel": "voice", "queue": "billing"},
                         "utterances": [item(start_ms=1200, end_ms=3400.5)], "end": ["c-1"]}, 4000)
    assert batch == Batch(utterances=[Utterance("c-1", "u-1", "customer", "hello", True, 1200.0, 3400.5,
                                                Start(agent="amy", queue="billing"))], ended=["c-1"])


def test_a_bare_list_is_a_list_of_utterances_that_never_start_a_conversation():
    batch = parse_batch([item(), item("u-2", speaker="agent", final=False)], 4000)
    assert [(x.utterance_id, x.speaker, x.final, x.start) for x in batch.utterances] == [
        ("u-1", "customer", True, None), ("u-2", "agent", False, None)]


@pytest.mark.parametrize("start, expected", [
    (True, Start()), (False, None), (None, None), ({}, Start()),
    ({"agent": "", "consent": False, "locale": "fr", "customer_ref": "acct 12"},
     Start(consent=False, locale="fr", customer_ref="acct 12")),
])
def test_the_body_start_applies_to_every_utterance(start, expected):
    batch = parse_batch({"start": start, "utterances": [item(), item("u-2")]}, 4000)
    assert [x.start for x in batch.utterances] == [expected, expected]


def test_an_utterance_start_overrides_the_body_start():
    batch = parse_batch({"start": {"agent": "amy"}, "utterances": [
        item("u-1", start={"agent": "bob", "channel": "chat"}), item("u-2", start=False), item("u-3")]}, 4000)
    assert [x.start for x in batch.utterances] == [Start(agent="bob", channel="chat"), None, Start(agent="amy")]


@pytest.mark.parametrize("bad, code", [
    (item(text="x" * 41), "text_too_long"),
    (item(speaker="bot"), "invalid_payload"),
    (item(uid="bad id"), "invalid_payload"),
    (item(cid=""), "invalid_payload"),
    (item(final="yes"), "invalid_payload"),
    (item(text=7), "invalid_payload"),
    (item(text="a\x00b"), "invalid_payload"),
    (item(start_ms=-1), "invalid_payload"),
    (item(end_ms=True), "invalid_payload"),
    (item(start_ms=float("nan")), "invalid_payload"),
    (item(end_ms=10 ** 400), "invalid_payload"),  # an integer past a float's range
    (item(confidence=0.9), "invalid_payload"),
    (item(start={"channel": "fax"}), "invalid_payload"),
    (item(start={"agent": "amy smith"}), "invalid_payload"),
    (item(start="yes"), "invalid_payload"),
    ({k: v for k, v in item().items() if k != "final"}, "invalid_payload"),
    ("hello", "invalid_payload"),
])
def test_a_bad_utterance_is_refused_with_its_index_and_code_and_the_rest_are_read(bad, code):
    batch = parse_batch([item("u-0"), bad, item("u-2")], 40)
    assert [x.utterance_id for x in batch.utterances] == ["u-0", "u-2"]
    assert [(r["index"], r["code"]) for r in batch.refused] == [(1, code)]
    assert batch.refused[0]["message"]


def test_a_refusal_names_the_ids_it_could_read_and_never_echoes_a_bad_one():
    batch = parse_batch([item("u-9", text="x" * 50), item(uid="no good" * 40)], 40)
    assert batch.refused[0]["utterance_id"] == "u-9" and batch.refused[0]["conversation_id"] == "c-1"
    assert "utterance_id" not in batch.refused[1] and batch.refused[1]["conversation_id"] == "c-1"


@pytest.mark.parametrize("body", [
    "utterances", 42, None, {"utterances": {"u-1": item()}}, {"utterances": [item()], "extra": 1},
    {"start": {"channel": "fax"}, "utterances": [item()]}, {"end": "c-1"}, {"end": ["c-1"] * (MAX_UTTERANCES + 1)},
])
def test_a_body_that_cannot_be_read_raises_invalid_payload_and_reads_nothing(body):
    with pytest.raises(InvalidPayload):
        parse_batch(body, 4000)


def test_more_utterances_than_the_limit_refuse_the_whole_body():
    parse_batch([item(f"u-{i}") for i in range(MAX_UTTERANCES)], 4000)
    with pytest.raises(InvalidPayload, match="500"):
        parse_batch([item(f"u-{i}") for i in range(MAX_UTTERANCES + 1)], 4000)
    with pytest.raises(InvalidPayload):
        parse_batch([item(), item("u-2")], 4000, max_utterances=1)


def test_a_bad_id_in_end_is_refused_by_its_position_and_the_rest_of_the_body_is_read():
    batch = parse_batch({"utterances": [item()], "end": ["not an id", "c-1", {}]}, 4000)
    assert [x.utterance_id for x in batch.utterances] == ["u-1"] and batch.ended == ["c-1"]
    assert [(r["end"], r["code"]) for r in batch.refused] == [(0, "invalid_payload"), (2, "invalid_payload")]
    assert all("index" not in r and "conversation_id" not in r and r["message"] for r in batch.refused)


def test_an_end_only_body_is_read_and_repeated_ends_collapse():
    assert parse_batch({"end": ["c-1", "c-2", "c-1"]}, 4000) == Batch(ended=["c-1", "c-2"])


def test_in_order_keeps_only_the_final_result_of_an_utterance_whichever_order_they_came_in():
    assert in_order([u("u-1", False, text="I"), u("u-1", True, text="I am"), u("u-1", False, text="I a")]) == [
        u("u-1", True, text="I am")]
    assert in_order([u("u-1", True, text="first"), u("u-1", True, text="again")]) == [u("u-1", True, text="first")]


def test_in_order_keeps_the_last_interim_result_when_no_final_one_came():
    assert in_order([u("u-1", False, text="I"), u("u-1", False, text="I am")]) == [u("u-1", False, text="I am")]


def test_in_order_sorts_a_reversed_batch_by_offset_within_each_conversation_in_order_of_first_appearance():
    batch = [u("u-3", start_ms=3000), u("b-2", cid="c-2", start_ms=20), u("u-2", start_ms=2000),
             u("b-1", cid="c-2", start_ms=10), u("u-1", start_ms=1000)]
    assert [(x.conversation_id, x.utterance_id) for x in in_order(batch)] == [
        ("c-1", "u-1"), ("c-1", "u-2"), ("c-1", "u-3"), ("c-2", "b-1"), ("c-2", "b-2")]


def test_in_order_keeps_utterances_without_offsets_in_their_place_after_the_one_before_them():
    batch = [u("u-1"), u("u-2"), u("u-4", start_ms=400), u("u-5"), u("u-3", start_ms=300)]
    assert [x.utterance_id for x in in_order(batch)] == ["u-1", "u-2", "u-3", "u-4", "u-5"]
