"""PII that real input carries, hunted in everything a deployment keeps: the Redis state and event stream, and
the server's log. Numbers read out over several snippets, separators of every kind, spoken and spaced emails,
must never be stored raw. (Evidence words kept in state are masked too: tests/unit/test_conversation.py.)"""
import json
import re
import time

import pytest
import redis

from copilot.security import Tokens
from tests.conftest import AgentClient
from tests.servers import RedisServer, ServerProcess

SECRET = "pii-at-rest-secret-0123456789abcdef0123456789"
CARD = "4111111111111111"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pii")
    store = RedisServer(workdir / "redis")
    store.start()
    worker = ServerProcess({"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
                            "REDIS_URL": store.url, "COPILOT_SUGGESTION_COOLDOWN_S": "0",
                            "COPILOT_RATE_PER_S": "100", "COPILOT_RATE_BURST": "200"}, workdir)
    worker.workdir = workdir
    yield store, worker
    worker.stop()
    store.stop()


def strings(value) -> list[str]:
    """Every string leaf of a JSON value (numbers such as timestamps are not text anyone wrote)."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]
        return strings(parsed) if isinstance(parsed, (dict, list)) else [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings(k), *strings(v))]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in strings(v)]
    return []


def kept_for(store: RedisServer, worker: ServerProcess, cid: str) -> tuple[str, str]:
    """The text Redis keeps about one conversation (its state and its stream entries, string leaves only: ids
    and timestamps aside), and the server's log."""
    client = redis.Redis.from_url(store.url, decode_responses=True)
    kept = [client.get(key) for key in client.scan_iter(f"*{cid}*") if client.type(key) == "string"]
    for key in client.scan_iter("*"):
        if client.type(key) == "stream":
            kept += [f["event"] for _, f in client.xrange(key)
                     if "event" in f and json.loads(f["event"]).get("conversation_id") == cid]
    client.close()
    assert kept, "the conversation left nothing to inspect"
    # an event's id is 32 random hex digits of ours (the analytics loader's key): any four digits may turn up in it
    texts = [t for t in strings(kept) if t != cid and not re.fullmatch(r"s\d+|[0-9a-f]{32}", t)]
    return "\n".join(texts), (worker.workdir / f"server-{worker.port}.log").read_text()


def digits_only(text: str) -> str:
    return re.sub(r"\D", "", text)


@pytest.mark.parametrize("snippets", [
    ["my card is 4111", "1111", "1111", "1111"],
    ["it's 4111 1111", "1111 1111 thanks"],
    ["card\u00a04111\u00a01111\u00a01111\u00a01111 please"],
    ["card 4111\u200b1111\u200b1111\u200b1111"],
    ["the number is 4111/1111/1111/1111"],
    ["card4111111111111111"],
    ["4111\t1111  1111_1111 is the card, I'm really worried"],
], ids=["four-snippets", "two-snippets", "nbsp", "zero-width", "slashes", "glued", "mixed"])
def test_no_digits_of_a_card_are_kept_however_it_is_written(deployment, snippets):
    store, worker = deployment
    agent = AgentClient(worker.url, Tokens(SECRET).issue("acme", "agent", "amy"))
    cid = f"card-{time.time_ns()}"
    assert agent.call("conversation.start", {"conversation_id": cid, "channel": "voice"})["ok"]
    for number, text in enumerate(snippets):
        assert agent.say(cid, f"s{number}", text)["ok"]
    assert agent.call("conversation.end", {"conversation_id": cid})["ok"]
    agent.close()
    kept, log = kept_for(store, worker, cid)
    assert "4111" not in kept + log and "1111" not in digits_only(kept), kept[:2000]


@pytest.mark.parametrize("email", ["john dot smith at gmail dot com", "john.smith＠example.com",
                                   "john . smith @ example . com", "jo@bücher.de"])
def test_no_email_is_kept_however_it_is_written(deployment, email):
    store, worker = deployment
    agent = AgentClient(worker.url, Tokens(SECRET).issue("acme", "agent", "amy"))
    cid = f"email-{time.time_ns()}"
    assert agent.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
    assert agent.say(cid, "s1", f"my email is {email} and I'm fed up waiting")["ok"]
    assert agent.call("conversation.end", {"conversation_id": cid})["ok"]
    agent.close()
    kept, log = kept_for(store, worker, cid)
    assert "waiting" in kept
    for needle in ("smith", "bücher", "jo@"):
        assert needle not in kept + log, kept[:2000]
