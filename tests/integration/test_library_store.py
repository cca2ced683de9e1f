"""Both library stores (embedded SQLite and a real Redis) keep versions, audit and revisions the same way, and both
usage stores beside them keep usage counts and experiments the same way."""
import pytest

from copilot.errors import LibraryDamaged, StoreUnavailable
from copilot.library.phrasing import parse_phrasing
from copilot.library.store import Change, RedisLibraryStore, SqliteLibraryStore, StaleRevision
from copilot.library.usage import RedisUsageStore, SqliteUsageStore, usage_beside

PHRASING = parse_phrasing({"id": "confusion-investigate-01", "text": "Which part of the bill looks different?",
                           "cues": ["confusion"], "stage": "investigate", "use_when": ["why is it higher", "what is this"],
                           "status": "draft"})


@pytest.fixture(params=["sqlite", "sqlite-offloaded", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SqliteLibraryStore(tmp_path / "lib.sqlite3")
    if request.param == "sqlite-offloaded":  # large commits written on another thread, as the server does
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1)
        request.addfinalizer(pool.shutdown)
        return SqliteLibraryStore(tmp_path / "lib.sqlite3", offload=lambda fn, *args: pool.submit(fn, *args).result())
    return RedisLibraryStore(request.getfixturevalue("redis_url"))


@pytest.fixture(params=["sqlite", "sqlite-beside", "redis", "redis-beside"])
def usage(request, tmp_path):
    """A usage store on its own, or kept beside a library store (the same SQLite connection, the same Redis client)."""
    if request.param == "sqlite":
        return SqliteUsageStore(tmp_path / "lib.sqlite3")
    if request.param == "sqlite-beside":
        return usage_beside(SqliteLibraryStore(tmp_path / "lib.sqlite3"))
    if request.param == "redis":
        return RedisUsageStore(request.getfixturevalue("redis_url"))
    return usage_beside(RedisLibraryStore(request.getfixturevalue("redis_url")))


def test_a_commit_bumps_the_revision_and_is_readable(store):
    assert store.revision("acme") == 0 and not store.seeded("acme")
    revision = store.commit("acme", [Change(None, PHRASING, "lead-1", "create")])
    assert revision == 1 and store.seeded("acme") and store.tenants() == ["acme"]
    assert store.get("acme", PHRASING.id) == PHRASING
    assert list(store.current("acme")) == [PHRASING.id]


def test_every_version_is_kept_and_the_audit_log_has_before_and_after(store):
    store.commit("acme", [Change(None, PHRASING, "lead-1", "create")])
    v2 = PHRASING.with_changes(text="Which part of the bill surprised you?", version=2)
    store.commit("acme", [Change(PHRASING, v2, "lead-2", "edit")])
    assert [v.phrasing.version for v in store.history("acme", PHRASING.id)] == [1, 2]
    entries = store.audit("acme")
    assert [(e.action, e.actor) for e in entries] == [("create", "lead-1"), ("edit", "lead-2")]
    assert entries[1].before["text"] == PHRASING.text and entries[1].after["text"] == v2.text
    assert store.audit("acme", after=entries[0].seq)[0].action == "edit"


def test_changes_since_names_only_what_changed_after_a_revision(store):
    other = PHRASING.with_changes(id="confusion-investigate-02")
    store.commit("acme", [Change(None, PHRASING, "a", "create")])
    store.commit("acme", [Change(None, other, "a", "create")])
    assert store.changes_since("acme", 1) == {other.id}
    assert store.changes_since("acme", 0) == {PHRASING.id, other.id}


def test_a_stale_expected_revision_refuses_the_write(store):
    store.commit("acme", [Change(None, PHRASING, "a", "create")])
    with pytest.raises(StaleRevision):
        store.commit("acme", [Change(None, PHRASING.with_changes(id="x-y-z"), "a", "create")], expected_revision=0)
    assert store.revision("acme") == 1 and store.get("acme", "x-y-z") is None


def test_text_round_trips_exactly_through_the_store(store):
    """Quotes, backslashes, slashes, emoji and right-to-left text, through the Redis store's script too."""
    odd = PHRASING.with_changes(text='What does "fine" mean for you \\ here/there? 🙂 שלום \u00e9',
                                notes="a/b \\n \"quoted\"")
    store.commit("acme", [Change(None, odd, "lee \"the lead\"", "create")])
    assert store.get("acme", odd.id) == odd
    assert store.history("acme", odd.id)[0].phrasing == odd and store.history("acme", odd.id)[0].actor == 'lee "the lead"'
    assert store.audit("acme")[0].after["text"] == odd.text


def test_a_bulk_commit_is_one_revision_with_every_version_and_audit_entry(store):
    many = [PHRASING.with_changes(id=f"confusion-bulk-{n:03d}") for n in range(500)]
    revision = store.commit("acme", [Change(None, p, "lee", "import") for p in many])
    assert revision == 1 and store.revision("acme") == 1
    assert set(store.current("acme")) == {p.id for p in many} == store.changes_since("acme", 0)
    assert len(store.audit("acme", limit=1000)) == 500
    assert store.history("acme", many[-1].id)[0].phrasing == many[-1]
    with pytest.raises(StaleRevision):  # a stale bulk write is refused whichever thread writes it
        store.commit("acme", [Change(None, p.with_changes(id=f"x-{p.id}"), "lee", "import") for p in many],
                     expected_revision=0)
    assert store.revision("acme") == 1 and store.get("acme", f"x-{many[0].id}") is None


def test_tenants_do_not_see_each_other(store):
    store.commit("acme", [Change(None, PHRASING, "a", "create")])
    assert store.get("globex", PHRASING.id) is None and store.current("globex") == {}
    assert store.audit("globex") == []


def test_usage_counts_add_up_per_slice(usage):
    for _ in range(3):
        usage.count_usage("acme", "p1", "shown", "frustration", "billing", "chat")
    usage.count_usage("acme", "p1", "used", "frustration", "billing", "chat")
    rows = {(r["action"], r["count"]) for r in usage.usage("acme")}
    assert rows == {("shown", 3), ("used", 1)} and usage.usage("globex") == []


def test_experiments_exposures_and_outcomes_are_stored(usage):
    usage.put_experiment("acme", {"id": "e1", "variants": []})
    usage.log_exposure("acme", "e1", "on", "c1")
    usage.record_outcome("acme", "e1", "on", "c1", {"shown": 2, "used": 1})
    assert list(usage.experiments("acme")) == ["e1"]
    assert usage.experiment("acme", "e1") == {"id": "e1", "variants": []} and usage.experiment("acme", "e2") is None
    assert usage.experiment_count("acme") == 1 and usage.experiment_count("globex") == 0
    assert usage.exposures("acme", "e1")[0]["variant"] == "on"
    assert usage.exposure_count("acme", "e1") == 1 and usage.exposure_count("acme", "e2") == 0
    assert usage.outcomes("acme", "e1")[0]["used"] == 1


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_usage_written_beside_the_library_is_read_back_by_a_fresh_usage_store(backend, tmp_path, request):
    """The split keeps the data where it was: the same file and tables, the same Redis keys."""
    where = request.getfixturevalue("redis_url") if backend == "redis" else tmp_path / "lib.sqlite3"
    library = RedisLibraryStore(where) if backend == "redis" else SqliteLibraryStore(where)
    library.commit("acme", [Change(None, PHRASING, "lee", "create")])
    usage_beside(library).count_usage("acme", PHRASING.id, "shown", "confusion", "billing", "chat")
    fresh = RedisUsageStore(where) if backend == "redis" else SqliteUsageStore(where)
    assert [r["count"] for r in fresh.usage("acme")] == [1] and library.revision("acme") == 1


def test_the_sqlite_usage_store_beside_the_library_shares_its_connection(tmp_path):
    library = SqliteLibraryStore(tmp_path / "lib.sqlite3")
    assert usage_beside(library).file is library.file


def test_ping_answers(store):
    assert store.ping()


def test_usage_ping_answers(usage):
    assert usage.ping()


def test_redis_ping_is_false_when_the_server_is_gone():
    assert RedisLibraryStore("redis://127.0.0.1:1/0").ping() is False
    assert RedisUsageStore("redis://127.0.0.1:1/0").ping() is False


def test_audit_pages_follow_one_another_without_gaps(store):
    store.commit("acme", [Change(None, PHRASING.with_changes(id=f"page-{i:03d}"), "lee", "import") for i in range(25)])
    store.commit("acme", [Change(None, PHRASING, "lee", "create")])
    pages, after = [], 0
    while page := store.audit("acme", after, 10):
        pages.append(page)
        after = page[-1].seq
    assert [len(p) for p in pages] == [10, 10, 6]
    assert [e.phrasing_id for p in pages for e in p][-1] == PHRASING.id


def test_one_phrasings_audit_pages_are_the_whole_log_filtered_to_it(store):
    for i in range(6):
        store.commit("acme", [Change(None, PHRASING.with_changes(id=f"other-{i:02d}"), "lee", "create"),
                              Change(None, PHRASING.with_changes(version=i + 1), "kim", "edit")])
    whole = [e.seq for e in store.audit("acme", 0, 1000) if e.phrasing_id == PHRASING.id]
    pages, after = [], 0
    while page := store.audit("acme", after, 4, PHRASING.id):
        pages.append([e.seq for e in page])
        after = page[-1].seq
    assert [len(p) for p in pages] == [4, 2] and [seq for p in pages for seq in p] == whole
    assert store.audit("acme", whole[-1], 4, PHRASING.id) == []


def test_redis_audit_entries_are_numbered_so_a_page_is_one_bounded_read(redis_url):
    store = RedisLibraryStore(redis_url)
    store.commit("acme", [Change(None, PHRASING.with_changes(id=f"page-{i:03d}"), "lee", "import") for i in range(30)])
    assert [e.seq for e in store.audit("acme", 25, 3)] == [26, 27, 28]
    assert store.redis.xrange(store.key("acme", "audit"), count=1)[0][0] == "0-1"


def test_a_redis_audit_written_before_entries_were_numbered_still_pages(redis_url):
    store = RedisLibraryStore(redis_url)
    store.commit("acme", [Change(None, PHRASING.with_changes(id="old-seed"), "system", "seed")])
    key = store.key("acme", "audit")
    store.redis.delete(key)
    for i in range(12):  # as the script used to write them: ids chosen by Redis
        store.redis.xadd(key, {"revision": 1, "at": 1.0, "actor": "lee", "action": "seed", "id": f"old-{i:02d}",
                               "before": "", "after": ""})
    store.commit("acme", [Change(None, PHRASING, "lee", "create")])
    assert [e.phrasing_id for e in store.audit("acme", 10, 5)] == ["old-10", "old-11", PHRASING.id]
    assert [e.seq for e in store.audit("acme", 0, 2)] == [1, 2]


@pytest.mark.parametrize("lost", ["current", "rev", "changes"])
def test_a_redis_library_that_lost_a_key_is_neither_loaded_nor_written(redis_url, lost):
    store = RedisLibraryStore(redis_url)
    store.commit("acme", [Change(None, PHRASING.with_changes(id=f"kept-{i:03d}"), "system", "seed") for i in range(5)])
    store.redis.delete(store.key("acme", lost))  # what allkeys-lru eviction does
    with pytest.raises(LibraryDamaged) as error:
        store.current("acme")
    assert error.value.code == "store_unavailable" and "noeviction" in str(error.value)
    with pytest.raises(LibraryDamaged):
        store.commit("acme", [Change(None, PHRASING, "lee", "create")])
    assert store.get("acme", PHRASING.id) is None, "the refused commit wrote nothing"


def test_redis_out_of_memory_is_store_unavailable_and_reads_go_on(redis_server):
    store = RedisLibraryStore(redis_server.url)
    store.redis.flushall()
    store.commit("acme", [Change(None, PHRASING, "system", "seed")])
    store.redis.config_set("maxmemory", 1)
    try:
        with pytest.raises(StoreUnavailable, match="maxmemory"):
            store.commit("acme", [Change(None, PHRASING.with_changes(id="new-one-01"), "lee", "create")])
        with pytest.raises(StoreUnavailable):
            usage_beside(store).put_experiment("acme", {"id": "e1", "variants": []})
        assert list(store.current("acme")) == [PHRASING.id] and store.revision("acme") == 1
    finally:
        store.redis.config_set("maxmemory", 0)


def test_an_unreachable_redis_is_store_unavailable():
    with pytest.raises(StoreUnavailable):
        RedisLibraryStore("redis://127.0.0.1:1/0").revision("acme")
    with pytest.raises(StoreUnavailable):
        RedisUsageStore("redis://127.0.0.1:1/0").experiments("acme")
