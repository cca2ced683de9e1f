"""The Socket.IO transport under attack, on a real server process over loopback (issue #11, defects 1, 8 and 12):
binary attachments that never complete, sessions that squat without joining /copilot, rate limits shared by an
agent's and a tenant's connections, expired tokens on open connections, bad requests that flooded the log, an
event flood from one connection, events that skipped the rate limits, deeply nested JSON, lone surrogates, too many
connections of one identity, and Engine.IO's responses without the security headers. Every attack is bounded in
count and time."""
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
import socketio
from websocket import WebSocketBadStatusException, WebSocketException, WebSocketTimeoutException, create_connection

from copilot.security import Tokens
from tests.conftest import AgentClient, ServerProcess

SECRET = "transport-test-secret-0123456789abcdef0123"
JOIN_DEADLINE_S = 2
MAX_PENDING = 8
AGENT_RATE, AGENT_BURST = 10, 20
TENANT_RATE, TENANT_BURST = 30, 60  # above one agent's limit, below what ten agents' would allow together
MAX_CONNECTIONS = 10  # per identity; test_one_agent_s_connections_share_one_rate_limit opens ten


def token(tenant="acme", agent="amy", **kw):
    return Tokens(SECRET).issue(tenant, "agent", agent, **kw)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python wsgi.py` with a short join deadline, a small pending cap, low agent and tenant rates, and one trusted
    proxy hop, so that tests can speak from different client addresses with X-Forwarded-For."""
    workdir = tmp_path_factory.mktemp("transport")
    process = ServerProcess({"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
                             "COPILOT_JOIN_DEADLINE_S": str(JOIN_DEADLINE_S),
                             "COPILOT_MAX_PENDING_PER_ADDRESS": str(MAX_PENDING), "COPILOT_PROXY_HOPS": "1",
                             "COPILOT_AGENT_RATE_PER_S": str(AGENT_RATE), "COPILOT_AGENT_RATE_BURST": str(AGENT_BURST),
                             "COPILOT_TENANT_RATE_PER_S": str(TENANT_RATE),
                             "COPILOT_TENANT_RATE_BURST": str(TENANT_BURST),
                             "COPILOT_MAX_CONNECTIONS_PER_AGENT": str(MAX_CONNECTIONS)}, workdir)
    yield process
    process.stop()


def engineio_session(server, address: str):
    """A raw WebSocket with an Engine.IO session (no Socket.IO namespace yet), speaking from `address`."""
    ws = create_connection(server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket", timeout=5,
                           header=[f"X-Forwarded-For: {address}"])
    assert ws.recv().startswith("0{")
    return ws


def join(ws, tok: str) -> None:
    ws.send("40/copilot," + json.dumps({"token": tok}))
    assert ws.recv().startswith("40/copilot,{")


def closed_within(ws, seconds: float) -> bool:
    """Whether the server closes this session within `seconds`, answering its pings meanwhile as a squatter does."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        ws.settimeout(max(0.05, deadline - time.time()))
        try:
            message = ws.recv()
        except (WebSocketTimeoutException, TimeoutError):
            return False
        except (WebSocketException, OSError):
            return True
        if message == "2":
            ws.send("3")
        elif message in ("", "1"):  # a close frame, or Engine.IO's CLOSE packet
            return True
    return False


def honest_agent_is_served(server, agent="honest", address="10.9.9.9") -> None:
    client = AgentClient(server.url, token(agent=agent), headers={"X-Forwarded-For": address})
    try:
        cid = f"honest-{time.time_ns()}"
        assert client.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
        assert client.say(cid, "s1", "I have been waiting for an hour and nobody helps me")["ok"]
        client.wait_for("cue.highlight", lambda d: d["conversation_id"] == cid)
    finally:
        client.close()


def test_binary_attachments_that_never_complete_close_the_connection_without_growing_memory(server):
    process = psutil.Process(server.pid)
    before = process.memory_info().rss
    frame = b"\x00" * 900_000
    sent, started, attackers = 0, time.time(), []
    try:
        for attempt in range(3):  # three connections at once, each bounded in frames, all in seconds
            ws = engineio_session(server, f"10.1.0.{attempt}")
            attackers.append(ws)
            join(ws, token(agent=f"attacker{attempt}"))
            try:
                # Engine.IO message (4) carrying a Socket.IO BINARY_EVENT (5) that announces 9,999,999,999
                # attachments, none of which ever completes it
                ws.send('459999999999-/copilot,["transcript.snippet",{"_placeholder":true,"num":0}]')
                for _ in range(80):
                    ws.send_binary(frame)
                    sent += len(frame)
                    if time.time() - started > 10:
                        break
            except (WebSocketException, OSError):
                pass  # the server closed the session: what it should do
        time.sleep(1)
        grown_mb = (process.memory_info().rss - before) / 2**20  # while the attackers' sessions are still open
    finally:
        for ws in attackers:
            ws.close()
    assert grown_mb < 100, f"the server grew {grown_mb:.0f} MB after {sent / 2**20:.0f} MB of attachments"
    honest_agent_is_served(server)


def test_a_binary_message_on_its_own_closes_the_session(server):
    ws = engineio_session(server, "10.1.1.1")
    join(ws, token(agent="binary"))
    ws.send_binary(b"\x04\x00garbage")
    assert closed_within(ws, 3)


def test_a_client_that_sends_binary_data_in_an_event_gets_invalid_payload_and_stays_connected(server):
    client = AgentClient(server.url, token(agent="bytes"), headers={"X-Forwarded-For": "10.1.2.1"})
    try:
        ack = client.call("transcript.snippet", {"conversation_id": "c", "snippet_id": "s", "speaker": "customer",
                                                 "text": b"\x00" * 1000, "final": True})
        assert not ack["ok"] and ack["error"]["code"] == "invalid_payload"
        assert client.call("conversation.start", {"conversation_id": f"b-{time.time_ns()}", "channel": "chat"})["ok"]
    finally:
        client.close()


def test_a_session_that_never_joins_copilot_is_closed_at_the_join_deadline(server):
    squatters = [engineio_session(server, f"10.2.0.{n}") for n in range(5)]
    member = AgentClient(server.url, token(agent="member"), headers={"X-Forwarded-For": "10.2.1.1"})
    try:
        started = time.time()
        assert all(closed_within(ws, JOIN_DEADLINE_S + 3) for ws in squatters)
        assert time.time() - started < JOIN_DEADLINE_S + 3
        time.sleep(max(0.0, JOIN_DEADLINE_S + 1 - (time.time() - started)))
        assert member.sio.connected  # a session on /copilot is never in the lobby
        assert member.call("conversation.start", {"conversation_id": f"m-{time.time_ns()}", "channel": "voice"})["ok"]
    finally:
        member.close()
        for ws in squatters:
            ws.close()


def test_one_address_may_hold_only_so_many_sessions_that_have_not_joined(server):
    squatters = [engineio_session(server, "10.3.0.1") for _ in range(MAX_PENDING)]
    try:
        with pytest.raises(WebSocketBadStatusException):
            squatters.append(engineio_session(server, "10.3.0.1"))
        refused = requests.get(server.url + "/socket.io/?EIO=4&transport=polling", timeout=5,
                               headers={"X-Forwarded-For": "10.3.0.1"})
        assert refused.status_code == 401 and refused.json()["code"] == "too_many_pending"
        honest_agent_is_served(server, address="10.3.0.2")  # another address is not held up
    finally:
        for ws in squatters:
            ws.close()


def flood_starts(clients: list, seconds: float) -> tuple[int, set[str]]:
    """Every client starts conversations as fast as it can for `seconds`, pausing 20 ms after each refusal (one
    that retries at once, hundreds of times a second, is closed as a flood): the starts acknowledged, and the error
    codes of the others."""
    ok, codes, lock = [0], set(), threading.Lock()
    stop_at = time.time() + seconds

    def run(n: int, client) -> None:
        i = 0
        while time.time() < stop_at:
            ack = client.call("conversation.start", {"conversation_id": f"f-{n}-{i}-{time.time_ns()}",
                                                     "channel": "chat"})
            i += 1
            with lock:
                if ack["ok"]:
                    ok[0] += 1
                else:
                    codes.add(ack["error"]["code"])
            if not ack["ok"]:
                time.sleep(0.02)
    threads = [threading.Thread(target=run, args=(n, c)) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    return ok[0], codes


def flood_and_close(clients, seconds):
    """flood_starts over these clients, then close them: (starts acknowledged ok, error codes, seconds taken)."""
    try:
        started = time.time()
        ok, codes = flood_starts(clients, seconds)
        return ok, codes, time.time() - started
    finally:
        for client in clients:
            client.close()


def test_one_agent_s_connections_share_one_rate_limit(server):
    tok = token(tenant="rates", agent="ann")
    ok, codes, elapsed = flood_and_close([AgentClient(server.url, tok, headers={"X-Forwarded-For": "10.4.0.1"})
                                          for _ in range(10)], 2.0)
    # Ten connections with only their own limits (40 and 20 a second each) let through 10 x 80 in two seconds.
    assert ok <= AGENT_BURST + AGENT_RATE * elapsed + 5, f"{ok} starts in {elapsed:.1f} s"
    assert codes == {"rate_limited"}


def test_one_tenant_s_agents_share_the_tenant_s_rate_limit(server):
    ok, codes, elapsed = flood_and_close([AgentClient(server.url, token(tenant="busy", agent=f"agent{n}"),
                                                      headers={"X-Forwarded-For": "10.5.0.1"}) for n in range(10)], 2.0)
    assert ok <= TENANT_BURST + TENANT_RATE * elapsed + 5, f"{ok} starts in {elapsed:.1f} s"
    assert codes == {"rate_limited"}


def test_an_expired_token_is_refused_on_its_open_connection_until_the_client_refreshes_it(server):
    client = AgentClient(server.url, token(agent="brief", ttl_s=2), headers={"X-Forwarded-For": "10.6.0.1"})
    try:
        cid = f"brief-{time.time_ns()}"
        assert client.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
        time.sleep(2.2)
        ack = client.say(cid, "s1", "hello?")
        assert not ack["ok"] and ack["error"]["code"] == "token_expired"
        assert client.sio.connected  # the sidebar can recover without reconnecting
        other = client.call("token.refresh", {"token": token(agent="someone-else")})
        assert not other["ok"] and other["error"]["code"] == "forbidden"
        refreshed = client.call("token.refresh", {"token": token(agent="brief")})
        assert refreshed["ok"] and refreshed["expires"] > time.time() + 3600
        assert client.say(cid, "s1", "hello?")["ok"]
    finally:
        client.close()


def test_bad_requests_without_a_token_add_at_most_a_short_line_each_to_the_log(server):
    log = Path(server.log.name)
    before = log.read_bytes()
    for n in range(10):
        polling = {"X-Forwarded-For": f"10.7.1.{n}"}
        session = requests.get(server.url + "/socket.io/?EIO=4&transport=polling", headers=polling, timeout=5).text
        sid = json.loads(session[session.index("{"):])["sid"]
        requests.post(server.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}", data="garbage", headers=polling,
                      timeout=5)
        for bad in ("4zzz", "44", "42/copilot,[1]", "49"):
            ws = engineio_session(server, f"10.7.0.{n}")
            try:
                ws.send(bad)
                closed_within(ws, 0.3)
            finally:
                ws.close()
    time.sleep(0.5)
    added = log.read_bytes()[len(before):].decode(errors="replace").splitlines()
    assert len(added) < 50, "\n".join(added[:20])
    assert all(len(line) < 300 for line in added), max(added, key=len)



# A client that sends events in a tight loop and never reads: a known event refused by the rate limit, an unknown
# one and one with two arguments, over and over; whenever the server closes it, it connects again.
FLOODER = r"""
import sys, time
from websocket import WebSocketException, create_connection
url, token, seconds, address = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
packets = ['42/copilot,1["conversation.join",{"conversation_id":"nope"}]', '42/copilot,2["no.such.event",{}]',
           '42/copilot,3["conversation.join",{},{}]']
sent = connections = 0
stop_at = time.time() + seconds
while time.time() < stop_at:
    try:
        ws = create_connection(url, timeout=5, header=["X-Forwarded-For: " + address])
        ws.recv()
        ws.send('40/copilot,{"token":"%s"}' % token)
        joined = ws.recv().startswith("40/copilot,{")
    except (WebSocketException, OSError):
        time.sleep(0.05)
        continue
    if not joined:
        ws.shutdown()
        time.sleep(0.05)
        continue
    connections += 1
    try:
        while time.time() < stop_at:
            for packet in packets:
                ws.send(packet)
            sent += len(packets)
    except (WebSocketException, OSError):
        pass
    ws.shutdown()
print(sent, connections)
"""


def snippet_ack_seconds(client, cid: str, n: int, timeout: float) -> float:
    """How long one snippet's acknowledgment takes (timeout when none comes)."""
    started = time.perf_counter()
    try:
        ack = client.sio.call("transcript.snippet", {"conversation_id": cid, "snippet_id": f"s{n}",
                                                     "speaker": "customer", "text": "I'm worried about my bill",
                                                     "final": True}, namespace="/copilot", timeout=timeout)
    except socketio.exceptions.TimeoutError:
        return timeout
    assert ack["ok"], ack
    return time.perf_counter() - started


def test_one_connection_s_event_flood_neither_holds_up_another_tenant_nor_grows_the_worker(server):
    process = psutil.Process(server.pid)
    probe = AgentClient(server.url, token(tenant="bystander", agent="probe"), headers={"X-Forwarded-For": "10.8.0.2"})
    flooder = None
    try:
        cid = f"probe-{time.time_ns()}"
        assert probe.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
        snippet_ack_seconds(probe, cid, 0, 10)  # warm
        before = process.memory_info().rss
        flooder = subprocess.Popen([sys.executable, "-c", FLOODER, server.url.replace("http", "ws") +
                                    "/socket.io/?EIO=4&transport=websocket", token(tenant="flooders", agent="flood"),
                                    "6", "10.8.0.1"], stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        latencies = []
        while flooder.poll() is None and len(latencies) < 40:
            latencies.append(snippet_ack_seconds(probe, cid, len(latencies) + 1, 5))
            time.sleep(0.1)
        sent, connections = map(int, flooder.communicate(timeout=30)[0].split())
        time.sleep(1)
        grown_mb = (process.memory_info().rss - before) / 2**20
    finally:
        if flooder is not None and flooder.poll() is None:
            flooder.kill()
        probe.close()
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    assert len(latencies) >= 10 and p95 < 1.0, f"snippet acks p95 {p95:.2f} s, max {latencies[-1]:.2f} s " \
                                               f"while {sent} events were flooded over {connections} connections"
    assert grown_mb < 60, f"the worker grew {grown_mb:.0f} MB after {sent} flooded events"
    honest_agent_is_served(server, agent="after-flood")


def test_unknown_events_and_events_with_two_arguments_spend_the_rate_limit(server):
    for agent, send in (("unknowns", lambda c: c.call("no.such.event", {})),
                        ("two-args", lambda c: c.sio.call("conversation.join", ({}, {}), namespace="/copilot",
                                                          timeout=10))):
        client = AgentClient(server.url, token(tenant=f"spend-{agent}", agent=agent),
                             headers={"X-Forwarded-For": "10.8.1.1"})
        try:
            codes = [send(client)["error"]["code"] for _ in range(AGENT_BURST + 10)]
            assert "rate_limited" in codes, f"{agent}: {set(codes)}"
            after = client.call("conversation.start", {"conversation_id": f"spent-{time.time_ns()}",
                                                       "channel": "chat"})
            assert after.get("error", {}).get("code") == "rate_limited", after  # the events spent the budget
        finally:
            client.close()


def test_deeply_nested_json_closes_the_session_with_one_short_log_line(server):
    log = Path(server.log.name)
    before = len(log.read_bytes())
    for n in range(3):
        ws = engineio_session(server, f"10.8.2.{n}")
        try:
            join(ws, token(agent=f"deep{n}"))
            ws.send('42/copilot,1["conversation.join",' + "[" * 5000 + "]" * 5000 + "]")
            assert closed_within(ws, 3)
        finally:
            ws.close()
    time.sleep(0.5)
    added = log.read_bytes()[before:].decode(errors="replace").splitlines()
    assert len(added) <= 3 and all(len(line) < 300 for line in added), "\n".join(added[:20])
    honest_agent_is_served(server, agent="after-deep")


def test_snippet_text_with_a_lone_surrogate_gets_invalid_payload(server):
    client = AgentClient(server.url, token(agent="surrogate"), headers={"X-Forwarded-For": "10.8.3.1"})
    try:
        cid = f"sur-{time.time_ns()}"
        assert client.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
        ack = client.say(cid, "s1", "I am upset \ud800")
        assert not ack["ok"] and ack["error"]["code"] == "invalid_payload", ack
        assert client.say(cid, "s2", "I am upset")["ok"]
    finally:
        client.close()


def test_one_identity_may_hold_only_so_many_connections(server):
    tok = token(tenant="crowd", agent="one")
    sessions = [engineio_session(server, f"10.8.4.{n}") for n in range(MAX_CONNECTIONS + 1)]
    try:
        for ws in sessions[:MAX_CONNECTIONS]:
            join(ws, tok)
        sessions[-1].send("40/copilot," + json.dumps({"token": tok}))
        refused = sessions[-1].recv()
        assert refused.startswith("44/copilot,"), refused
        assert json.loads(refused[len("44/copilot,"):])["data"]["code"] == "too_many_connections"
        other = AgentClient(server.url, token(tenant="crowd", agent="two"), headers={"X-Forwarded-For": "10.8.4.99"})
        assert other.sio.connected  # another agent of the tenant is not counted
        other.close()
        sessions[0].close()
        time.sleep(0.5)
        sessions[-1].send("40/copilot," + json.dumps({"token": tok}))  # a closed connection frees its place
        assert sessions[-1].recv().startswith("40/copilot,{")
    finally:
        for ws in sessions:
            ws.close()


def test_engine_io_responses_send_the_security_headers(server):
    for response in (requests.get(server.url + "/socket.io/?EIO=4&transport=polling", timeout=5,
                                  headers={"X-Forwarded-For": "10.8.5.1"}),
                     requests.get(server.url + "/socket.io/?EIO=4&transport=nonsense", timeout=5,
                                  headers={"X-Forwarded-For": "10.8.5.2"}),
                     requests.get(server.url + "/healthz", timeout=5)):
        assert response.headers.get("Referrer-Policy") == "no-referrer", (response.url, response.headers)
        assert response.headers.get("X-Content-Type-Options") == "nosniff", (response.url, response.headers)
