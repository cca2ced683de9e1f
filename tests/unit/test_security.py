"""Tokens, names, rate limits and the lobby of sessions not yet on /copilot (pure logic, a fake clock)."""
import logging
import sys

import pytest

from copilot.errors import (
    Flooding,
    Forbidden,
    InvalidToken,
    RateLimited,
    TokenExpired,
    TooManyConnections,
    TooManyPending,
)
from copilot.realtime import (
    BINARY_PAYLOAD,
    BadInputLog,
    BadPacket,
    BinaryEvents,
    Connections,
    JsonPacket,
)
from copilot.security import Identity, Lobby, RateLimits, TokenBucket, Tokens, check_names, take_together

SECRET = "unit-secret-0123456789abcdef0123456789ab"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("tenant, agent", [("acme\n", "amy"), ("acme", "amy\n"), ("acme", "amy\r\n")])
def test_names_that_end_in_a_newline_are_refused(tenant, agent):
    with pytest.raises(ValueError):
        check_names(tenant, "agent", agent)


def test_a_verified_identity_carries_its_token_s_expiry():
    identity = Tokens(SECRET).verify(Tokens(SECRET).issue("acme", "agent", "amy", ttl_s=60, now=5000.0), now=5001.0)
    assert identity.expires == 5060
    assert identity.expired(now=5060) and not identity.expired(now=5059)
    assert identity == Identity("acme", "agent", "amy")  # the expiry is not part of who it is


def test_a_token_whose_expiry_is_not_a_number_is_invalid():
    forged = Tokens(SECRET).serializer.dumps({"t": "acme", "r": "agent", "a": "amy", "exp": "never"})
    with pytest.raises(InvalidToken):
        Tokens(SECRET).verify(forged)


def test_an_event_refused_by_one_bucket_spends_none_of_the_others():
    clock = Clock()
    own, shared = TokenBucket(10, 5, clock), TokenBucket(1, 1, clock, scope="tenant")
    take_together([own, shared])
    with pytest.raises(RateLimited, match="tenant"):
        take_together([own, shared])
    assert own.tokens == 4


def test_rate_limits_are_shared_by_key_and_refill_over_time():
    clock = Clock()
    limits = RateLimits(2, 2, "agent", clock)
    limits["a"].take()
    limits["a"].take()
    with pytest.raises(RateLimited):
        limits["a"].take()
    limits["b"].take()  # another key has its own bucket
    clock.now += 0.5
    limits["a"].take()


def test_full_buckets_are_dropped_once_there_are_many():
    clock = Clock()
    limits = RateLimits(1, 1, "agent", clock, prune_above=4)
    for key in range(4):
        limits[key].take()
    clock.now += 10  # all four are full again
    limits["new"].take()
    assert set(limits.buckets) == {"new"}


def test_one_agent_s_connections_spend_one_shared_budget():
    clock = Clock()
    connections = Connections(rate=100, burst=100, agent_rate=1, agent_burst=3, clock=clock)
    amy = Identity("acme", "agent", "amy")
    for sid in ("c1", "c2", "c3"):
        connections.add(sid, amy)
        connections.admit(sid)
    with pytest.raises(RateLimited, match="agent"):
        connections.admit("c1")
    connections.add("c4", Identity("acme", "agent", "bob"))
    connections.admit("c4")


def test_a_tenant_s_agents_spend_one_shared_budget():
    connections = Connections(rate=100, burst=100, tenant_rate=1, tenant_burst=2, clock=Clock())
    for n in range(3):
        connections.add(f"c{n}", Identity("acme", "agent", f"agent{n}"))
    connections.admit("c0")
    connections.admit("c1")
    with pytest.raises(RateLimited, match="tenant"):
        connections.admit("c2")


def test_events_after_expiry_are_refused_until_the_token_is_refreshed():
    connections = Connections(clock=Clock())
    connections.add("c1", Identity("acme", "agent", "amy", expires=1.0))
    with pytest.raises(TokenExpired):
        connections.admit("c1")
    connections.admit("c1", expired_ok=True)  # token.refresh itself
    connections.refresh("c1", Identity("acme", "lead", "amy", expires=float("inf")))
    assert connections.admit("c1").role == "lead"


@pytest.mark.parametrize("other", [Identity("acme", "agent", "bob"), Identity("umbrella", "agent", "amy")])
def test_a_refresh_must_name_the_same_tenant_and_agent(other):
    connections = Connections(clock=Clock())
    connections.add("c1", Identity("acme", "agent", "amy"))
    with pytest.raises(Forbidden):
        connections.refresh("c1", other)


def test_an_identity_may_hold_only_so_many_connections_and_a_closed_one_frees_its_place():
    connections = Connections(max_per_agent=2, clock=Clock())
    amy = Identity("acme", "agent", "amy")
    connections.add("c1", amy)
    connections.add("c2", amy)
    with pytest.raises(TooManyConnections):
        connections.add("c3", amy)
    connections.add("c3", Identity("acme", "agent", "bob"))  # another agent, and amy elsewhere, are not counted
    connections.add("c4", Identity("umbrella", "agent", "amy"))
    connections.remove("c1")
    connections.remove("c1")  # a second disconnect of one connection frees nothing more
    connections.add("c5", amy)
    with pytest.raises(TooManyConnections):
        connections.add("c6", amy)
    assert TooManyConnections.code == "too_many_connections"


def test_a_connection_refused_far_beyond_its_limit_is_flooding_and_one_slowing_down_is_not():
    clock = Clock()
    connections = Connections(rate=5, burst=10, clock=clock)
    connections.add("c1", Identity("acme", "agent", "amy"))
    for _ in range(10):
        connections.admit("c1")
    for _ in range(20):  # 2 x burst refusals are plain rate_limited
        with pytest.raises(RateLimited) as refused:
            connections.admit("c1")
        assert not isinstance(refused.value, Flooding)
    with pytest.raises(Flooding):
        connections.admit("c1")
    clock.now += 10  # a client that backs off is served again
    connections.admit("c1")
    refusals = []
    for _ in range(200):  # 20 events a second for 10 s, 15 of them refused each second: never flooding
        clock.now += 0.05
        try:
            connections.admit("c1")
        except RateLimited as error:
            refusals.append(error)
    assert len(refusals) > 100 and not any(isinstance(error, Flooding) for error in refusals)


def test_deeply_nested_json_is_a_bad_packet_not_a_recursion_error():
    with pytest.raises(BadPacket, match="RecursionError"):
        JsonPacket(encoded_packet='2/copilot,1["conversation.join",' + "[" * 5000 + "]" * 5000 + "]")
    with pytest.raises(BadPacket):
        BinaryEvents().screen("s", '51-/copilot,1["x",' + "[" * 5000 + "]" * 5000 + "]")


def test_an_address_may_keep_only_so_many_sessions_in_the_lobby():
    lobby = Lobby(deadline_s=10, max_per_address=2, clock=Clock())
    lobby.enter("s1", "10.0.0.1")
    lobby.enter("s2", "10.0.0.1")
    with pytest.raises(TooManyPending):
        lobby.enter("s3", "10.0.0.1")
    lobby.enter("s4", "10.0.0.2")
    lobby.leave("s1")  # joined /copilot: a place frees up
    lobby.enter("s3", "10.0.0.1")
    lobby.enter("s5", "10.0.0.1", capped=False)  # a session that left /copilot comes back whatever the count


def test_sessions_past_the_deadline_are_overdue_once_and_joined_ones_never():
    clock = Clock()
    lobby = Lobby(deadline_s=10, max_per_address=5, clock=clock)
    lobby.enter("squatter", "a")
    lobby.enter("member", "a")
    lobby.leave("member")
    clock.now += 9
    assert list(lobby.overdue()) == []
    clock.now += 1
    assert list(lobby.overdue()) == ["squatter"]
    assert list(lobby.overdue()) == [] and len(lobby) == 0
    assert lobby.per_address == {}


def test_a_session_back_in_the_lobby_gets_a_new_deadline():
    clock = Clock()
    lobby = Lobby(deadline_s=10, clock=clock)
    lobby.enter("s", "a")
    clock.now += 5
    lobby.leave("s")
    lobby.enter("s", "a", capped=False)
    clock.now += 5
    assert list(lobby.overdue()) == []  # the first deadline is stale
    clock.now += 5
    assert list(lobby.overdue()) == ["s"]


@pytest.mark.parametrize("encoded", [
    '59999999999-/copilot,["transcript.snippet",{"_placeholder":true,"num":0}]',  # binary event
    '61-/copilot,1[{"_placeholder":true,"num":0}]',  # binary ack
    b"\x04\x00 raw bytes",
    "4", "7", "9/copilot,", "zzz", "42/copilot,[1]", "2/copilot,", '2/copilot,{"a":1}', "2/copilot,[", "3/copilot,1{}",
])
def test_packets_outside_the_json_protocol_are_refused_while_decoding(encoded):
    with pytest.raises(BadPacket):
        JsonPacket(encoded_packet=encoded)


@pytest.mark.parametrize("encoded", ['0/copilot,{"token":"t"}', "1/copilot,", '2/copilot,5["conversation.end",{}]',
                                     '3/copilot,5[{"ok":true}]'])
def test_the_packets_a_client_sends_still_decode(encoded):
    assert JsonPacket(encoded_packet=encoded).attachment_count == 0


def test_a_decoding_error_is_logged_as_one_line_and_others_keep_their_traceback():
    quiet = BadInputLog()

    def record(error):
        try:
            raise error
        except Exception as raised:
            return logging.LogRecord("engineio.server", logging.ERROR, __file__, 1, "message handler error", (),
                                     (type(raised), raised, sys.exc_info()[2]))
    bad = record(BadPacket("binary messages are not part of this protocol"))
    assert quiet.filter(bad) and bad.exc_info is None and "\n" not in bad.getMessage()
    again = record(BadPacket("again"))
    quiet.filter(again)
    assert again.levelno == logging.INFO
    real = record(KeyError("a bug"))
    assert quiet.filter(real) and real.exc_info is not None


def test_a_binary_event_reaches_its_handler_without_its_attachments_once_they_have_all_arrived():
    binary = BinaryEvents()
    assert binary.screen("s", '52-/copilot,7["transcript.snippet",{"_placeholder":true,"num":0}]') is None
    assert binary.screen("s", b"x" * 1000) is None
    event = JsonPacket(encoded_packet=binary.screen("s", b"y"))
    assert (event.packet_type, event.namespace, event.id, event.data) == (2, "/copilot", 7,
                                                                          ["transcript.snippet", BINARY_PAYLOAD])
    assert binary.pending == {}
    assert binary.screen("s", '2/copilot,["conversation.end",{}]') == '2/copilot,["conversation.end",{}]'


@pytest.mark.parametrize("messages", [
    ['59999999999-/copilot,["transcript.snippet",{"_placeholder":true,"num":0}]'],  # the attack: refused at once
    [b"no header announced this"],
    ['51-/copilot,["conversation.end",{"_placeholder":true,"num":0}]', '2/copilot,["conversation.end",{}]'],
    ['51-/copilot,[1]'],
])
def test_binary_packets_outside_a_small_announced_event_close_the_session(messages):
    binary = BinaryEvents()
    with pytest.raises(BadPacket):
        for message in messages:
            binary.screen("s", message)


def test_a_session_whose_send_queue_reaches_the_cap_is_closed_and_queues_no_more():
    import engineio
    from engineio import packet
    from engineio.socket import Socket

    from copilot.compat import install_send_queue_cap, uninstall_send_queue_cap

    eio = engineio.Server(async_mode="threading")
    assert install_send_queue_cap(eio, max_packets=3)
    try:
        sock = eio.sockets["s1"] = Socket(eio, "s1")
        for _ in range(3):
            sock.send(packet.Packet(packet.MESSAGE, data="ack"))
        assert not sock.closed and sock.queue.qsize() == 3
        sock.send(packet.Packet(packet.MESSAGE, data="one too many"))
        assert sock.closed and "s1" not in eio.sockets
        queued = sock.queue.qsize()
        sock.send(packet.Packet(packet.MESSAGE, data="after the close"))
        assert sock.queue.qsize() == queued
    finally:
        uninstall_send_queue_cap(eio)


@pytest.mark.parametrize("role, needed, allowed", [
    ("integration", ("integration", "lead"), True), ("lead", ("integration", "lead"), True),
    ("admin", ("integration", "lead"), True), ("agent", ("integration", "lead"), False),
    ("integration", ("agent",), False), ("integration", ("lead",), False), ("integration", ("admin",), False),
    ("admin", ("integration",), False), ("lead", ("agent",), True), ("agent", ("lead",), False)])
def test_an_integration_token_meets_only_a_requirement_that_names_it(role, needed, allowed):
    who = Identity("acme", role, "crm")
    if allowed:
        who.require(*needed)
    else:
        with pytest.raises(Forbidden):
            who.require(*needed)


def test_an_integration_token_is_told_what_it_may_do():
    with pytest.raises(Forbidden, match="only send outcomes"):
        Identity("acme", "integration", "crm").require("agent")


def test_integration_tokens_are_issued_and_verified():
    identity = Tokens(SECRET).verify(Tokens(SECRET).issue("acme", "integration", "crm"))
    assert (identity.tenant, identity.role) == ("acme", "integration")
