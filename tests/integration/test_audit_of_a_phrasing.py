"""The audit of one phrasing (`/api/v1/audit?phrasing_id=`): read by the store, whatever came before it, and only
ever of the caller's own tenant. Both stores, and the API over a live server."""
import pytest
import requests

from copilot.errors import StoreUnavailable
from copilot.library.phrasing import parse_phrasing
from copilot.library.store import Change, RedisLibraryStore, SqliteLibraryStore
from copilot.security import Tokens
from tests.conftest import TEST_SECRET

LATE = parse_phrasing({"id": "aaa-late-phrasing", "text": "Which part of this would help most to go through together?",
                       "cues": ["confusion"], "stage": "investigate", "use_when": ["I don't get it", "what is this"],
                       "status": "draft"})


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SqliteLibraryStore(tmp_path / "lib.sqlite3")
    return RedisLibraryStore(request.getfixturevalue("redis_url"))


def test_a_phrasing_written_after_1500_others_reads_back_its_own_audit_entries(store):
    store.commit("acme", [Change(None, LATE.with_changes(id=f"early-{i:05d}"), "lee", "import") for i in range(1500)])
    store.commit("acme", [Change(None, LATE, "lee", "create")])
    edited = LATE.with_changes(text="Which part of this letter would help most to go through together?", version=2)
    store.commit("acme", [Change(LATE, edited, "kim", "edit")])
    entries = store.audit("acme", 0, 1000, LATE.id)
    assert [(e.phrasing_id, e.action, e.actor) for e in entries] == [(LATE.id, "create", "lee"), (LATE.id, "edit", "kim")]
    assert [e.action for e in store.audit("acme", entries[0].seq, 1000, LATE.id)] == ["edit"]
    assert len(store.audit("acme", 0, 1, LATE.id)) == 1
    assert store.audit("acme", 0, 1000, "no-such-phrasing") == []
    assert len(store.audit("acme", 0, 1000)) == 1000  # without the filter: the log from its start, as before


def test_one_tenants_phrasing_id_reads_nothing_of_another_tenants_audit(store):
    store.commit("acme", [Change(None, LATE, "lee", "create")])
    store.commit("globex", [Change(None, LATE.with_changes(id="globex-own-01"), "gia", "create")])
    assert store.audit("globex", 0, 1000, LATE.id) == []
    assert [e.phrasing_id for e in store.audit("globex", 0, 1000)] == ["globex-own-01"]


def test_a_redis_audit_written_before_entries_were_numbered_filters_by_phrasing_too(redis_url):
    store = RedisLibraryStore(redis_url)
    key = store.key("acme", "audit")
    for i in range(12):  # as the commit script used to write them: ids chosen by Redis
        store.redis.xadd(key, {"revision": 1, "at": 1.0, "actor": "lee", "action": "seed",
                               "id": LATE.id if i in (3, 9) else f"old-{i:02d}", "before": "", "after": ""})
    assert [e.seq for e in store.audit("acme", 0, 10, LATE.id)] == [4, 10]
    assert [e.seq for e in store.audit("acme", 4, 10, LATE.id)] == [10]


def test_the_redis_audit_of_one_phrasing_reads_its_own_entries_not_the_tenants_log(redis_url):
    store = RedisLibraryStore(redis_url)
    store.commit("acme", [Change(None, LATE.with_changes(id=f"early-{i:05d}"), "lee", "import") for i in range(1500)])
    store.commit("acme", [Change(None, LATE, "lee", "create")])
    store.redis.config_resetstat()
    sent = store.redis.info("stats")["total_net_output_bytes"]
    assert [e.seq for e in store.audit("acme", 0, 1000, LATE.id)] == [1501]
    assert store.audit("acme", 0, 1000, "no-such-phrasing") == []
    read = store.redis.info("stats")["total_net_output_bytes"] - sent
    assert read < 20_000, f"the audit of one phrasing read {read / 1e3:.0f} kB of a 1,501-entry log"
    stats = store.redis.info("commandstats")
    assert stats["cmdstat_xrange"]["calls"] == 1, "one entry read, by its id"
    assert "cmdstat_eval" not in stats, "a log that began with the index needs no indexing"


def test_an_old_redis_audit_is_indexed_once_in_bounded_runs_then_read_by_phrasing(redis_url):
    store = RedisLibraryStore(redis_url)
    store.INDEX_CHUNK, store.INDEX_RUNS = 5, 2
    key = store.key("acme", "audit")
    for i in range(12):  # as the commit script used to write them: ids chosen by Redis, no index
        store.redis.xadd(key, {"revision": 1, "at": 1.0, "actor": "lee", "action": "seed",
                               "id": LATE.id if i in (3, 9) else f"old-{i:02d}", "before": "", "after": ""})
    store.commit("acme", [Change(None, LATE, "kim", "create")])  # indexed as it is written, numbered 13
    with pytest.raises(StoreUnavailable, match="retry"):
        store.audit("acme", 0, 10, LATE.id)  # 10 of 13 entries indexed by this request, the rest by the next
    assert [(e.seq, e.actor) for e in store.audit("acme", 0, 10, LATE.id)] == [(4, "lee"), (10, "lee"), (13, "kim")]
    assert [e.seq for e in store.audit("acme", 0, 100) if e.phrasing_id == LATE.id] == [4, 10, 13]
    assert [e.seq for e in store.audit("acme", 4, 1, LATE.id)] == [10]
    assert store.audit("globex", 0, 10, LATE.id) == []


@pytest.fixture
def server(library_server):
    return library_server


def auth(tenant="acme", role="lead"):
    return {"Authorization": f"Bearer {Tokens(TEST_SECRET).issue(tenant, role, 'lee')}"}


def get(server, path, tenant="acme", role="lead", **params):
    return requests.get(server.url + path, params=params, headers=auth(tenant, role), timeout=30)


def test_the_api_reads_one_phrasings_audit_and_never_another_tenants(server):
    created = requests.post(server.url + "/api/v1/phrasings", json=LATE.as_dict(), headers=auth(), timeout=30)
    assert created.status_code == 201
    mine = get(server, "/api/v1/audit", phrasing_id=LATE.id).json()
    assert mine["ok"] and [(e["phrasing_id"], e["action"]) for e in mine["entries"]] == [(LATE.id, "create")]
    theirs = get(server, "/api/v1/audit", tenant="globex", phrasing_id=LATE.id, limit=1000).json()
    assert theirs == {"ok": True, "entries": []}
    assert get(server, "/api/v1/audit", role="agent", phrasing_id=LATE.id).status_code == 403


@pytest.mark.parametrize("bad", ["", "A", "x" * 65, "has space", "id\n"])
def test_the_api_refuses_a_phrasing_id_that_no_phrasing_could_have(server, bad):
    reply = get(server, "/api/v1/audit", phrasing_id=bad)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "invalid_payload"
