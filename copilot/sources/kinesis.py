"""Amazon Connect Contact Lens real-time segments from a Kinesis data stream to the copilot: each GetRecords batch
of every shard is POSTed, as the list of its records, to /api/v1/sources/contact-lens, and the shard's checkpoint
moves only once the server has taken it. `python -m copilot.sources.kinesis --stream NAME --server URL ...`."""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from copilot.errors import InvalidPayload
from copilot.sources.registry import options_from

log = logging.getLogger("copilot.sources.kinesis")

ROUTE = "/api/v1/sources/contact-lens"
EXIT_FAILED, EXIT_REFUSED = 1, 3  # 2 is argparse's usage error
# A 200 answer can still ask for a resend: these per-utterance codes are the server being busy, not the words
# being wrong (utterance ids make the resend harmless).
RESEND_CODES = frozenset({"rate_limited", "store_unavailable"})
# Kinesis answers that mean "later", as opposed to a stream or a permission that is not there
KINESIS_LATER = frozenset({"ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException",
                           "KMSThrottlingException", "InternalFailure", "ServiceUnavailable",
                           "ResourceInUseException",  # a stream still being created or resharded
                           "ExpiredNextTokenException"})  # a list_shards page token lives 300 s: list again


class Stop(Exception):
    """The consumer cannot go on (a refused token, a stream that is not there): its message and exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- pure parts ----------------------------------------------------------------------------------------------------
def backoff_s(attempt: int, cap_s: float, base_s: float = 0.2) -> float:
    """How long to wait before retry `attempt` (1, 2, ...): exponential, capped, with jitter so that many
    consumers do not come back at the same instant."""
    return min(cap_s, base_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def ready(shard: dict, listed: set[str], finished: set[str]) -> bool:
    """Whether a shard may be read: its parents (after a split or a merge) have been read to their end, or have
    aged out of the stream, so each contact's records are read in the order they were written."""
    parents = [shard.get("ParentShardId"), shard.get("AdjacentParentShardId")]
    return all(p in finished or p not in listed for p in parents if p)


def read_to_end(sequence: str | None, ending: str | None) -> bool:
    """Whether a closed shard (its EndingSequenceNumber) has been read up to its last record."""
    return ending is not None and int(sequence or 0) >= int(ending)


def halves(records: list) -> list[list]:
    """A batch the server could not read as a whole, in two, to find the record it refuses."""
    middle = len(records) // 2
    return [records[:middle], records[middle:]]


def resend_wanted(answer: dict) -> list[dict]:
    """The per-utterance errors of a 200 answer that ask for the batch again later."""
    return [e for e in answer.get("errors") or [] if isinstance(e, dict) and e.get("code") in RESEND_CODES]


# -- checkpoints ---------------------------------------------------------------------------------------------------
@dataclass
class Checkpoints:
    """Per shard, the last sequence number the server has taken and whether the shard is read to its end, in a
    JSON file replaced atomically; `since` is when the consumer first started (where --from latest begins)."""

    path: Path
    stream: str
    since: float | None = None
    sequences: dict[str, str] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path, stream: str) -> Checkpoints:
        """The file's checkpoints; none when it does not exist yet. A file of another stream is refused."""
        if not path.exists():
            return cls(path, stream)
        try:
            data = json.loads(path.read_text())
            shards = data["shards"]
            if data["stream"] != stream:
                raise Stop(f"{path} holds the checkpoints of stream {data['stream']!r}, not {stream!r}")
            return cls(path, stream, data.get("since"),
                       {s: v["sequence"] for s, v in shards.items() if v.get("sequence")},
                       {s for s, v in shards.items() if v.get("finished")})
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise Stop(f"{path} is not a checkpoint file ({e!r}); move it away to start again") from None

    def save(self) -> None:
        """Write the file whole: a temporary file, synced, renamed over the old one, then the folder synced, so a
        crash at any moment leaves the old checkpoints or the new ones."""
        shards = {s: {"sequence": self.sequences.get(s), "finished": s in self.finished}
                  for s in sorted(set(self.sequences) | self.finished)}
        body = json.dumps({"stream": self.stream, "since": self.since, "shards": shards}, indent=1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        spare = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with spare.open("w") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(spare, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


# -- the server ----------------------------------------------------------------------------------------------------
class Relay:
    """POSTs Contact Lens records to the copilot with the integration token, read from its file again when the
    server refuses it (a token is rotated by replacing the file)."""

    def __init__(self, server: str, token_file: Path | None, token: str = "", options: dict | None = None,
                 timeout_s: float = 30) -> None:
        query = f"?{urlencode(options)}" if options else ""
        self.url = server.rstrip("/") + ROUTE + query
        self.token_file, self.timeout_s = token_file, timeout_s
        self.token = self._read_token() if token_file else token
        if not self.token:
            raise Stop("no token: pass --token-file (or set COPILOT_TOKEN) with an integration token")

    def _read_token(self) -> str:
        try:
            return self.token_file.read_text().strip()
        except OSError as e:
            raise Stop(f"cannot read the token file: {e}") from None

    def post(self, records: list) -> tuple[int, dict]:
        """One POST: the status and the JSON answer ({} when there is none). Raises OSError when the server could
        not be reached or its answer was cut off."""
        request = urllib.request.Request(self.url, data=json.dumps(records).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as e:
            with e:
                return e.code, _json(e.read())
        except HTTPException as e:  # a connection closed mid-answer
            raise OSError(repr(e)) from e

    def check(self) -> None:
        """Ask the server once, with an empty batch, before reading anything: a refused token stops the consumer
        now (EXIT_REFUSED), not when the first contact's segments arrive hours later. A server that cannot be
        reached yet is no reason to stop: the reads retry it."""
        try:
            status, answer = self.post([])
        except OSError as e:
            log.warning("the server cannot be reached yet (%s); starting anyway, batches retry it", e)
            return
        if status in (401, 403):
            raise Stop(f"the server refused the token (HTTP {status} {_error_text(answer)}): give --token-file an "
                       "integration token of the tenant (python -m copilot token --role integration)", EXIT_REFUSED)
        if 400 <= status < 500:
            raise Stop(f"the server refused an empty batch (HTTP {status} {_error_text(answer)}) at {self.url}")

    def token_changed(self) -> bool:
        """Read the token file again; whether it now holds another token."""
        if self.token_file is None:
            return False
        token = self._read_token()
        changed, self.token = token != self.token, token
        return changed


def _json(data: bytes) -> dict:
    try:
        answer = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    return answer if isinstance(answer, dict) else {}


# -- the consumer --------------------------------------------------------------------------------------------------
@dataclass
class Reader:
    """One shard being read: where the next GetRecords starts, and when."""

    shard_id: str
    iterator: str | None = None
    ending: str | None = None  # EndingSequenceNumber once the shard is closed (split or merged)
    due: float = 0.0  # time.monotonic() of the next read
    attempt: int = 0  # Kinesis failures in a row


@dataclass
class Tally:
    """What the server said about one batch, summed over the parts it was sent in."""

    accepted: int = 0
    duplicates: int = 0
    ignored: int = 0
    started: int = 0
    ended: int = 0
    errors: int = 0
    skipped: int = 0  # records in a request the server could not read at all (400/413), logged and left


class Consumer:
    """Reads every shard of the stream in turn and relays each batch; stops when asked (SIGTERM, SIGINT,
    --max-seconds) once the batch in hand is taken and checkpointed."""

    def __init__(self, kinesis: Any, stream: str, relay: Relay, checkpoints: Checkpoints, start_at: str = "latest",
                 limit: int = 100, poll_s: float = 1.0, list_s: float = 30.0, max_backoff_s: float = 10.0) -> None:
        self.kinesis, self.stream, self.relay, self.checkpoints = kinesis, stream, relay, checkpoints
        self.start_at, self.limit, self.poll_s, self.list_s = start_at, limit, poll_s, list_s
        self.max_backoff_s = max_backoff_s
        self.readers: dict[str, Reader] = {}
        self.listed_at = float("-inf")
        self.stopping = False

    def stop(self, *_: Any) -> None:
        """Ask the consumer to stop after the batch in hand (a signal handler)."""
        self.stopping = True

    def run(self, max_seconds: float | None = None) -> int:
        """Consume until stopped; the exit code."""
        deadline = time.monotonic() + max_seconds if max_seconds is not None else float("inf")
        if self.checkpoints.since is None:
            self.checkpoints.since = time.time()
            self.checkpoints.save()
        try:
            while not self.stopping and time.monotonic() < deadline:
                if time.monotonic() >= self.listed_at + self.list_s:
                    self._list_shards()
                reader = min(self.readers.values(), key=lambda r: r.due, default=None)
                if reader is None or reader.due > time.monotonic():
                    self._sleep_until(min(reader.due if reader else deadline, self.listed_at + self.list_s, deadline))
                    continue
                self._read(reader)
        except Stop as e:
            log.error("stopping: %s", e)
            return e.exit_code
        log.info("stopped; checkpoints in %s", self.checkpoints.path)
        return 0

    def _sleep_until(self, when: float) -> None:
        # short naps, so that a signal stops the wait at once
        while not self.stopping and time.monotonic() < when:
            time.sleep(min(0.05, max(0.0, when - time.monotonic())))

    # -- shards ----------------------------------------------------------------------------------------------------
    def _list_shards(self) -> None:
        """Find the stream's shards (new ones appear after a split or a merge) and start those that are ready."""
        shards, token = [], None
        while True:
            page = self._kinesis("list_shards", **({"NextToken": token} if token else {"StreamName": self.stream}))
            if page is None:
                self.listed_at = time.monotonic() - self.list_s + self.poll_s  # try again soon
                return
            shards += page.get("Shards", [])
            token = page.get("NextToken")
            if not token:
                break
        self.listed_at = time.monotonic()
        listed = {s["ShardId"] for s in shards}
        for shard in shards:
            sid = shard["ShardId"]
            ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
            if sid in self.readers:
                self.readers[sid].ending = ending
            elif sid not in self.checkpoints.finished and ready(shard, listed, self.checkpoints.finished):
                log.info("shard=%s reading from %s", sid, self._position(sid))
                self.readers[sid] = Reader(sid, ending=ending)

    def _position(self, shard_id: str) -> str:
        sequence = self.checkpoints.sequences.get(shard_id)
        if sequence:
            return f"after sequence {sequence}"
        return "the oldest record" if self.start_at == "trim_horizon" else "when the consumer first started"

    def _iterator(self, shard_id: str) -> str | None:
        """A shard iterator just after the checkpoint; without one, from --from: the oldest record, or when this
        consumer first started (kept in the checkpoint file, so a crash before the first batch loses nothing)."""
        sequence = self.checkpoints.sequences.get(shard_id)
        where: dict[str, Any]
        if sequence:
            where = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": sequence}
        elif self.start_at == "trim_horizon":
            where = {"ShardIteratorType": "TRIM_HORIZON"}
        else:
            where = {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": self.checkpoints.since}
        answer = self._kinesis("get_shard_iterator", StreamName=self.stream, ShardId=shard_id, **where)
        return answer["ShardIterator"] if answer else None

    def _read(self, reader: Reader) -> None:
        """One GetRecords on a shard; its records relayed and checkpointed; the shard finished at its end."""
        if reader.iterator is None:
            reader.iterator = self._iterator(reader.shard_id)
        answer = None
        if reader.iterator is not None:
            answer = self._kinesis("get_records", ShardIterator=reader.iterator, Limit=self.limit)
        if answer is None:
            self._later(reader)
            return
        if answer == "expired":  # an iterator lives five minutes: take a new one from the checkpoint
            reader.iterator = None
            return
        reader.attempt = 0
        records = answer.get("Records", [])
        if records:
            if not self._relay(reader.shard_id, records):
                return  # stopping while the server was away: the batch is read again on the next start
            self.checkpoints.sequences[reader.shard_id] = records[-1]["SequenceNumber"]
            self.checkpoints.save()
        reader.iterator = answer.get("NextShardIterator")
        sequence = self.checkpoints.sequences.get(reader.shard_id)
        if reader.iterator is None or (not records and read_to_end(sequence, reader.ending)):
            self._finish(reader)
            return
        behind = answer.get("MillisBehindLatest", 0) > 0
        # a shard serves 5 GetRecords a second: one that is behind is read again soon, one that is caught up later
        reader.due = time.monotonic() + (0.2 if behind else self.poll_s)

    def _finish(self, reader: Reader) -> None:
        log.info("shard=%s read to its end (closed by a split or a merge)", reader.shard_id)
        del self.readers[reader.shard_id]
        self.checkpoints.finished.add(reader.shard_id)
        self.checkpoints.save()
        self.listed_at = float("-inf")  # its children may start now

    def _later(self, reader: Reader) -> None:
        reader.attempt += 1
        reader.due = time.monotonic() + backoff_s(reader.attempt, self.max_backoff_s)

    def _kinesis(self, call: str, **params: Any) -> Any:
        """A Kinesis call; None when it should be tried again later, "expired" for an expired iterator; Stop when
        the stream or the permission is not there."""
        try:
            return getattr(self.kinesis, call)(**params)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code == "ExpiredIteratorException":
                return "expired"
            if code in KINESIS_LATER:
                log.warning("kinesis %s: %s; trying again", call, code)
                return None
            raise Stop(f"kinesis {call} on stream {self.stream!r}: {e}",
                       EXIT_REFUSED if "AccessDenied" in code else EXIT_FAILED) from None
        except BotoCoreError as e:
            log.warning("kinesis %s: %s; trying again", call, e)
            return None

    # -- the server ------------------------------------------------------------------------------------------------
    def _relay(self, shard_id: str, records: list[dict]) -> bool:
        """Send one GetRecords batch until the server has taken all of it (True); False when stopping was asked
        while the server was away. One line per batch at INFO."""
        tally, parts, request_checked = Tally(), [records], False
        while parts:
            part = parts.pop(0)
            answer = self._post(shard_id, part)
            if answer is None:
                return False
            status, body = answer
            if status == 200:
                self._count(tally, shard_id, part, body)
                continue
            if status == 400 and not request_checked:
                request_checked = True
                self._check_request(body)
            if len(part) > 1:
                parts[:0] = halves(part)  # find the record the server cannot read, and send the others
            else:
                tally.skipped += 1
                log.error("shard=%s sequence=%s skipped: the server could not read this record (%s %s)", shard_id,
                          part[0]["SequenceNumber"], status, _error_text(body))
        log.info("shard=%s records=%d sequences=%s..%s accepted=%d duplicates=%d ignored=%d started=%d ended=%d "
                 "errors=%d skipped=%d", shard_id, len(records), records[0]["SequenceNumber"],
                 records[-1]["SequenceNumber"], tally.accepted, tally.duplicates, tally.ignored, tally.started,
                 tally.ended, tally.errors, tally.skipped)
        return True

    def _check_request(self, refused: dict) -> None:
        """Stop when the server refuses even an empty batch: the 400 is about the consumer's own request (its
        --option, its --server path), not a record, and skipping records for it would lose them all."""
        try:
            status, answer = self.relay.post([])
        except OSError:
            return  # the server is away: the batch is halved and each part retried as usual
        if status == 400:
            raise Stop(f"the server refuses every request ({_error_text(answer) or _error_text(refused)}) at "
                       f"{self.relay.url}: fix --option or --server; nothing was skipped or checkpointed")

    def _post(self, shard_id: str, part: list[dict]) -> tuple[int, dict] | None:
        """POST one part until the server answers 200 (with nothing to resend) or 400/413; None when stopping
        while it is away. 401/403 and any other refusal stop the consumer."""
        body = [_record_body(r) for r in part]
        span = f"shard={shard_id} sequences={part[0]['SequenceNumber']}..{part[-1]['SequenceNumber']}"
        attempt, token_tried = 0, False
        while True:
            try:
                status, answer = self.relay.post(body)
                why = f"HTTP {status} {_error_text(answer)}"
            except OSError as e:
                status, answer, why = 0, {}, f"cannot reach the server ({e})"
            if status == 200 and not resend_wanted(answer) or status in (400, 413):
                return status, answer
            if status in (401, 403):
                if not token_tried and self.relay.token_changed():
                    token_tried = True  # the file holds a new token: try it once
                    continue
                raise Stop(f"the server refused the token ({why}): give --token-file an integration token of "
                           f"the tenant (python -m copilot token --role integration)", EXIT_REFUSED)
            if 400 <= status < 500 and status not in (408, 429):
                raise Stop(f"the server refused the records ({why}) at {self.relay.url}")
            if status == 200:
                why = f"the server asks for them again ({resend_wanted(answer)[0].get('code')})"
            attempt += 1
            wait = backoff_s(attempt, self.max_backoff_s)
            log.warning("%s: %s; retry %d in %.1f s", span, why, attempt, wait)
            self._sleep_until(time.monotonic() + wait)
            if self.stopping:
                log.warning("%s: stopping before the server took them; they are read again on the next start",
                            span)
                return None

    def _count(self, tally: Tally, shard_id: str, part: list[dict], answer: dict) -> None:
        tally.accepted += answer.get("accepted", 0)
        tally.duplicates += answer.get("duplicates", 0)
        tally.ignored += answer.get("ignored", 0)
        tally.started += len(answer.get("started") or [])
        tally.ended += len(answer.get("ended") or [])
        for error in answer.get("errors") or []:
            tally.errors += 1
            index = error.get("index")
            sequence = part[index]["SequenceNumber"] if isinstance(index, int) and 0 <= index < len(part) else "?"
            log.warning("shard=%s sequence=%s conversation=%s utterance=%s skipped: %s %s", shard_id, sequence,
                        error.get("conversation_id", ""), error.get("utterance_id", ""), error.get("code"),
                        error.get("message", ""))


def _record_body(record: dict) -> Any:
    """A Kinesis record's data as the server reads it: its JSON, or the text when it is not JSON (the server
    answers that message's error, and the rest of the batch lands)."""
    text = record["Data"].decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to read
        return text


def _error_text(answer: dict) -> str:
    error = answer.get("error")
    return f"{error.get('code')}: {error.get('message')}" if isinstance(error, dict) else ""


# -- the command ---------------------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m copilot.sources.kinesis",
                                description="Relay Contact Lens real-time segments from a Kinesis data stream to "
                                            "the copilot (POST /api/v1/sources/contact-lens).")
    p.add_argument("--stream", required=True, help="the Kinesis data stream Contact Lens writes to")
    p.add_argument("--server", required=True, help="the copilot's URL, e.g. https://copilot.example.com")
    p.add_argument("--token-file", type=Path, help="a file holding an integration token (python -m copilot token "
                                                   "--role integration); default: the COPILOT_TOKEN variable")
    p.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    p.add_argument("--endpoint-url", help="another Kinesis endpoint (a VPC endpoint, a local emulator)")
    p.add_argument("--checkpoints", type=Path, help="the checkpoint file (default: kinesis-STREAM.json here)")
    p.add_argument("--from", dest="start_at", choices=("trim_horizon", "latest"), default="latest",
                   help="where a shard without a checkpoint starts: its oldest record, or (default) when this "
                        "consumer first started")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="the endpoint's options, e.g. queue=billing, agent=amy, start=false (repeatable)")
    p.add_argument("--limit", type=int, default=100, help="records per GetRecords (default 100)")
    p.add_argument("--poll-interval", type=float, default=1.0, help="seconds between reads of a caught-up shard")
    p.add_argument("--list-interval", type=float, default=30.0,
                   help="seconds between looks for new shards after a split or a merge")
    p.add_argument("--max-backoff", type=float, default=10.0, help="the longest wait between retries, seconds")
    p.add_argument("--max-seconds", type=float, help="stop after this many seconds (tests, batch jobs)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the consumer; 0 when stopped, 1 when it cannot go on, 3 when the server or AWS refuses it."""
    args = parser().parse_args(argv)
    if not args.stream.strip():
        parser().error("--stream names the Kinesis stream (it is empty)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    options = dict(o.split("=", 1) for o in args.option if "=" in o)
    if len(options) != len(args.option):
        parser().error("--option takes KEY=VALUE")
    try:
        options_from(options)  # as the server reads them, so a misspelt one stops here and not at every request
    except InvalidPayload as e:
        parser().error(f"--option: {e}")
    try:
        relay = Relay(args.server, args.token_file, os.environ.get("COPILOT_TOKEN", ""), options)
        checkpoints = Checkpoints.load(args.checkpoints or Path(f"kinesis-{args.stream}.json"), args.stream)
        session = boto3.Session(region_name=args.region)
        if session.get_credentials() is None:  # no call could ever succeed: say so instead of retrying for ever
            raise Stop("no AWS credentials: boto3 found none in the environment (AWS_ACCESS_KEY_ID, ...), the "
                       "shared files (AWS_PROFILE) or an instance role", EXIT_REFUSED)
        # our own retries with backoff, which a stop can interrupt, rather than botocore's
        kinesis = session.client("kinesis", endpoint_url=args.endpoint_url,
                                 config=Config(retries={"mode": "standard", "total_max_attempts": 1},
                                               connect_timeout=5, read_timeout=30))
        relay.check()
    except Stop as e:
        log.error("%s", e)
        return e.exit_code
    consumer = Consumer(kinesis, args.stream, relay, checkpoints, args.start_at, args.limit, args.poll_interval,
                        args.list_interval, args.max_backoff)
    signal.signal(signal.SIGTERM, consumer.stop)
    signal.signal(signal.SIGINT, consumer.stop)
    log.info("consuming stream %s for %s", args.stream, relay.url)
    return consumer.run(args.max_seconds)


if __name__ == "__main__":
    sys.exit(main())
