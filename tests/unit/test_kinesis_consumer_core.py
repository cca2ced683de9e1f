"""The Kinesis consumer's decisions, against fakes: a closed shard before its children, retries that never skip,
the one unreadable record found and left, checkpoints that move only after a 200 and resume after a restart."""
from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from copilot.sources.kinesis import (
    EXIT_FAILED,
    EXIT_REFUSED,
    Checkpoints,
    Consumer,
    Stop,
    _record_body,
    backoff_s,
    halves,
    main,
    read_to_end,
    ready,
    resend_wanted,
)


class FakeKinesis:
    """Kinesis as its API reference describes it, in memory: shards with parents, and a closed shard's last
    GetRecords answers without a NextShardIterator once its records are all read."""

    def __init__(self, shards: dict[str, dict]) -> None:
        self.shards = shards  # id -> {"records": [data, ...], "parent": id or None, "closed": bool}

    def append(self, shard_id: str, *data: str) -> None:
        self.shards[shard_id]["records"] += list(data)

    def list_shards(self, **_) -> dict:
        listed = []
        for sid, shard in self.shards.items():
            described = {"ShardId": sid, "SequenceNumberRange": {"StartingSequenceNumber": "1"}}
            if shard.get("parent"):
                described["ParentShardId"] = shard["parent"]
            if shard.get("closed"):
                described["SequenceNumberRange"]["EndingSequenceNumber"] = str(len(shard["records"]))
            listed.append(described)
        return {"Shards": listed}

    def get_shard_iterator(self, StreamName, ShardId, ShardIteratorType, StartingSequenceNumber=None, **_) -> dict:
        position = int(StartingSequenceNumber) if ShardIteratorType == "AFTER_SEQUENCE_NUMBER" else 0
        return {"ShardIterator": f"{ShardId}:{position}"}

    def get_records(self, ShardIterator, Limit) -> dict:
        sid, position = ShardIterator.rsplit(":", 1)
        shard, start = self.shards[sid], int(position)
        taken = shard["records"][start:start + Limit]
        records = [{"SequenceNumber": str(start + n + 1), "Data": json.dumps(d).encode()} for n, d in enumerate(taken)]
        end = start + len(taken)
        done = shard.get("closed") and end == len(shard["records"])
        return {"Records": records, "MillisBehindLatest": 0, "NextShardIterator": None if done else f"{sid}:{end}"}


class FakeRelay:
    """The server's side: each POST's records kept; the answers scripted first, then 200."""

    url = "http://copilot.test/api/v1/sources/contact-lens"

    def __init__(self, *answers) -> None:
        self.answers, self.posts = list(answers), []

    def post(self, records: list) -> tuple[int, dict]:
        self.posts.append(records)
        answer = self.answers.pop(0) if self.answers else None
        if callable(answer):
            answer = answer(records)
        if isinstance(answer, Exception):
            raise answer
        return answer or (200, {"ok": True, "accepted": len(records), "errors": []})

    def token_changed(self) -> bool:
        return False


def consume(kinesis, relay, path, seconds: float = 0.3, **options) -> tuple[Consumer, int]:
    settings = {"limit": 2, "poll_s": 0.01, "list_s": 0.01, "max_backoff_s": 0.01, **options}
    consumer = Consumer(kinesis, "calls", relay, Checkpoints.load(path, "calls"), "trim_horizon", **settings)
    return consumer, consumer.run(max_seconds=seconds)


def posted(relay: FakeRelay) -> list:
    return [r for records in relay.posts for r in records]


@pytest.mark.parametrize("shard, finished, expected", [
    ({"ShardId": "a"}, set(), True),
    ({"ShardId": "b", "ParentShardId": "a"}, set(), False),
    ({"ShardId": "b", "ParentShardId": "a"}, {"a"}, True),
    ({"ShardId": "m", "ParentShardId": "a", "AdjacentParentShardId": "b"}, {"a"}, False),
    ({"ShardId": "m", "ParentShardId": "a", "AdjacentParentShardId": "b"}, {"a", "b"}, True),
    ({"ShardId": "c", "ParentShardId": "gone"}, set(), True),  # its parent has aged out of the stream
])
def test_a_shard_is_ready_once_its_parents_are_read_to_their_end(shard, finished, expected):
    assert ready(shard, {"a", "b", "m", "c"}, finished) is expected


def test_a_closed_shard_is_read_to_its_end_only_at_its_ending_sequence_number():
    assert read_to_end("12", "12") and read_to_end("13", "12")
    assert not read_to_end("11", "12") and not read_to_end("12", None) and not read_to_end(None, "3")


def test_backoff_doubles_up_to_its_cap_and_never_waits_less_than_half():
    waits = [backoff_s(n, cap_s=5) for n in range(1, 12)]
    assert all(w <= 5 for w in waits) and waits[-1] >= 2.5
    assert 0.1 <= backoff_s(1, cap_s=5) <= 0.2


def test_halves_split_a_batch_without_losing_a_record():
    assert halves([1, 2, 3]) == [[1], [2, 3]]


def test_only_busy_codes_ask_for_the_batch_again():
    answer = {"errors": [{"code": "text_too_long"}, {"code": "rate_limited"}]}
    assert resend_wanted(answer) == [{"code": "rate_limited"}]
    assert resend_wanted({"errors": [{"code": "invalid_payload"}]}) == []


def test_a_closed_shard_is_relayed_to_its_end_before_its_children_start(tmp_path):
    kinesis = FakeKinesis({"p": {"records": ["p1", "p2", "p3"], "closed": True},
                           "c1": {"records": ["c1-1", "c1-2"], "parent": "p"},
                           "c2": {"records": ["c2-1"], "parent": "p"}})
    relay = FakeRelay()
    consumer, code = consume(kinesis, relay, tmp_path / "cp.json")
    assert code == 0
    records = posted(relay)
    assert records[:3] == ["p1", "p2", "p3"] and sorted(records[3:]) == ["c1-1", "c1-2", "c2-1"]
    saved = Checkpoints.load(tmp_path / "cp.json", "calls")
    assert saved.finished == {"p"} and saved.sequences == {"p": "3", "c1": "2", "c2": "1"}


def test_a_restart_resumes_after_the_checkpoint(tmp_path):
    kinesis, relay = FakeKinesis({"s": {"records": ["a", "b", "c"]}}), FakeRelay()
    consume(kinesis, relay, tmp_path / "cp.json")
    kinesis.append("s", "d", "e")
    again = FakeRelay()
    consume(kinesis, again, tmp_path / "cp.json")
    assert posted(relay) == ["a", "b", "c"] and posted(again) == ["d", "e"]


def test_server_errors_and_a_busy_answer_are_retried_and_the_checkpoint_waits_for_the_200(tmp_path):
    kinesis = FakeKinesis({"s": {"records": ["a", "b"]}})
    relay = FakeRelay((503, {}), OSError("connection refused"), (429, {}),
                      (200, {"accepted": 0, "errors": [{"index": 0, "code": "rate_limited"}]}))
    consume(kinesis, relay, tmp_path / "cp.json")
    assert relay.posts == [["a", "b"]] * 5  # the same batch until it was taken, nothing skipped
    assert Checkpoints.load(tmp_path / "cp.json", "calls").sequences == {"s": "2"}


class PagedKinesis(FakeKinesis):
    """ListShards one shard a page; the first second page asked for answers that its NextToken has expired."""

    def __init__(self, shards: dict[str, dict]) -> None:
        super().__init__(shards)
        self.calls: list[dict] = []

    def list_shards(self, **params) -> dict:
        self.calls.append(params)
        listed = super().list_shards()["Shards"]
        page = int(params.get("NextToken", "0"))
        if page and sum("NextToken" in c for c in self.calls) == 1:
            raise ClientError({"Error": {"Code": "ExpiredNextTokenException", "Message": "expired"}}, "ListShards")
        more = {"NextToken": str(page + 1)} if page + 1 < len(listed) else {}
        return {"Shards": listed[page:page + 1], **more}


def test_an_expired_list_shards_page_token_lists_again_from_the_first_page(tmp_path):
    kinesis = PagedKinesis({"a": {"records": ["a1"]}, "b": {"records": ["b1"]}})
    relay = FakeRelay()
    _, code = consume(kinesis, relay, tmp_path / "cp.json")
    assert code == 0 and sorted(posted(relay)) == ["a1", "b1"]
    assert kinesis.calls[:3] == [{"StreamName": "calls"}, {"NextToken": "1"}, {"StreamName": "calls"}]


def test_a_batch_the_server_cannot_read_is_halved_until_only_the_unreadable_record_is_left(tmp_path, caplog):
    kinesis = FakeKinesis({"s": {"records": ["a", "bad", "c"]}})
    relay = FakeRelay(*[lambda records: (400, {"error": {"code": "invalid_payload", "message": "no"}})
                        if "bad" in records else None] * 6)
    consume(kinesis, relay, tmp_path / "cp.json", limit=3)
    # the empty batch after the first 400 asks whether the server would take any request: it would
    assert relay.posts == [["a", "bad", "c"], [], ["a"], ["bad", "c"], ["bad"], ["c"]]
    assert "shard=s sequence=2 skipped" in caplog.text
    assert Checkpoints.load(tmp_path / "cp.json", "calls").sequences == {"s": "3"}


def test_a_400_for_the_consumer_s_own_request_stops_it_without_skipping_or_checkpointing(tmp_path, caplog):
    kinesis = FakeKinesis({"s": {"records": ["a", "b", "c"]}})
    relay = FakeRelay(*[(400, {"error": {"code": "invalid_payload", "message": "no option qeue"}})] * 10)
    _, code = consume(kinesis, relay, tmp_path / "cp.json", limit=3)
    assert code == EXIT_FAILED and "the server refuses every request (invalid_payload: no option qeue)" in caplog.text
    assert relay.posts == [["a", "b", "c"], []] and "sequence=1 skipped" not in caplog.text
    assert Checkpoints.load(tmp_path / "cp.json", "calls").sequences == {}


def test_a_misspelt_option_is_a_usage_error_before_anything_is_read(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--stream", "calls", "--server", "http://copilot.test", "--token-file", str(tmp_path / "none"),
              "--checkpoints", str(tmp_path / "cp.json"), "--option", "qeue=billing"])
    assert stopped.value.code == 2 and "--option: no option qeue" in capsys.readouterr().err
    assert not (tmp_path / "cp.json").exists()


def test_a_record_nested_too_deep_to_read_is_sent_as_its_text():
    deep = b"[" * 100_000 + b"]" * 100_000
    assert _record_body({"SequenceNumber": "1", "Data": deep}) == deep.decode()


def test_a_refused_token_stops_the_consumer_with_exit_code_3_and_no_checkpoint(tmp_path, caplog):
    kinesis = FakeKinesis({"s": {"records": ["a"]}})
    _, code = consume(kinesis, FakeRelay((401, {"error": {"code": "token_expired", "message": "expired"}})),
                      tmp_path / "cp.json")
    assert code == EXIT_REFUSED and "the server refused the token" in caplog.text
    assert Checkpoints.load(tmp_path / "cp.json", "calls").sequences == {}


def test_a_stop_during_a_post_finishes_that_batch_and_checkpoints_it(tmp_path):
    kinesis = FakeKinesis({"s": {"records": ["a", "b", "c"]}})
    relay = FakeRelay()
    consumer = Consumer(kinesis, "calls", relay, Checkpoints.load(tmp_path / "cp.json", "calls"), "trim_horizon",
                        limit=2, poll_s=0.01, list_s=0.01)
    relay.answers.append(lambda records: consumer.stop() or (200, {"accepted": 2}))  # SIGTERM mid-request
    assert consumer.run(max_seconds=5) == 0
    assert relay.posts == [["a", "b"]]
    assert Checkpoints.load(tmp_path / "cp.json", "calls").sequences == {"s": "2"}


def test_a_stop_while_the_server_is_away_exits_cleanly_and_keeps_the_batch_for_the_next_start(tmp_path):
    kinesis = FakeKinesis({"s": {"records": ["a"]}})
    relay = FakeRelay(*[OSError("connection refused")] * 1000)
    consumer = Consumer(kinesis, "calls", relay, Checkpoints.load(tmp_path / "cp.json", "calls"), "trim_horizon",
                        poll_s=0.01, list_s=0.01, max_backoff_s=0.01)
    relay.answers.insert(3, lambda records: consumer.stop() or OSError("connection refused"))
    assert consumer.run(max_seconds=5) == 0
    assert Checkpoints.load(tmp_path / "cp.json", "calls").sequences == {}


def test_checkpoints_are_written_whole_and_belong_to_one_stream(tmp_path):
    path = tmp_path / "cp.json"
    Checkpoints(path, "calls", 1700000000.0, {"s1": "49590338271490256608559692538361571095921575989136588898"},
                {"s0"}).save()
    saved = Checkpoints.load(path, "calls")
    assert saved.since == 1700000000.0 and saved.finished == {"s0"}
    assert saved.sequences == {"s1": "49590338271490256608559692538361571095921575989136588898"}
    assert [p.name for p in tmp_path.iterdir()] == ["cp.json"]  # no temporary file left behind
    with pytest.raises(Stop, match="stream 'calls', not 'other'"):
        Checkpoints.load(path, "other")
    path.write_text("{not json")
    with pytest.raises(Stop, match="not a checkpoint file"):
        Checkpoints.load(path, "calls")
