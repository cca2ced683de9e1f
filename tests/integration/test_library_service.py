"""The library service with the real model and FAISS: shipped library, incremental index, scale-out, crashes."""
import subprocess
import sys
import time

import pytest

from copilot.cues.taxonomy import CUES
from copilot.errors import ExperimentRunning, LibraryFull, PayloadTooLarge, TooManyExperiments
from copilot.index import PhrasingIndex, load_or_build
from copilot.library.files import dump, load_library
from copilot.library.phrasing import STAGES, check_phrasing
from copilot.library.retrieval_eval import evaluate, read_eval
from copilot.library.service import Library
from copilot.library.store import RedisLibraryStore, SqliteLibraryStore
from copilot.security import Identity
from copilot.suggest import Request
from tests.conftest import ROOT

LEAD = Identity("acme", "lead", "lee")
NEW = {"id": "anxiety-options-99", "text": "Which of these next steps would ease your mind the most?",
       "cues": ["anxiety"], "stage": "options", "channels": ["chat"],
       "use_when": ["I'm really worried about the payment", "what if it bounces"]}


@pytest.fixture(scope="module")
def shipped():
    return load_library()


@pytest.fixture(scope="module")
def shipped_index(shipped, detector):
    return load_or_build(shipped, detector.model.embed)


def make_library(store, detector, shipped, shipped_index, sync=0.05, **caps):
    return Library(store, detector.model.embed, shipped, shipped_index, sync_interval_s=sync, **caps)


def test_shipped_library_is_valid_and_covers_every_cue_and_stage(shipped):
    assert len(shipped) >= 200
    approved = [p for p in shipped if p.status == "approved"]
    for cue in CUES:
        assert sum(cue in p.cues for p in approved) >= 10, cue
    for stage in STAGES:
        assert any(p.stage == stage for p in approved), stage
    for p in shipped:
        assert check_phrasing(p) == p


def test_committed_index_matches_the_shipped_library(shipped, detector):
    index = PhrasingIndex.load(ROOT / "index")
    approved = {p.id: p for p in shipped if p.status == "approved"}
    assert set(index.entries) == set(approved)
    for pid, p in approved.items():
        assert index.entries[pid].texts == (p.text, *p.use_when)


def test_retrieval_beats_the_cue_only_random_baseline_by_a_clear_margin(shipped, shipped_index, detector):
    result = evaluate({p.id: p for p in shipped}, shipped_index, detector.model.embed, read_eval(), seeds=20)
    assert result["lines"] >= 100
    assert result["ours"]["p@1"] >= result["random_cue_only"]["p@1"] + 0.3
    assert result["ours"]["ndcg@3"] > result["random_cue_channel_stage"]["ndcg@3"]


def test_an_approved_phrasing_is_suggested_without_a_rebuild(tmp_path, detector, shipped, shipped_index):
    library = make_library(SqliteLibraryStore(tmp_path / "l.db"), detector, shipped, shipped_index)
    library.create(LEAD, NEW)
    query = detector.model.embed(["I'm worried sick about whether the payment will bounce"])[0]
    request = Request(query, ["anxiety"], "chat", "options", k=3)
    assert NEW["id"] not in [s.id for s in library.suggest("acme", request)]
    library.set_status(LEAD, NEW["id"], "approve")
    assert NEW["id"] in [s.id for s in library.suggest("acme", request)]
    library.set_status(LEAD, NEW["id"], "retire")
    assert NEW["id"] not in [s.id for s in library.suggest("acme", request)]


def test_retrieval_goes_on_while_a_bulk_edit_is_being_written(tmp_path, detector, shipped, shipped_index):
    """A live snippet's retrieval must not wait for a bulk edit's write: the store is held mid-commit (a real
    SQLite store, paused inside commit) while another thread asks for suggestions."""
    import threading

    class Paused(SqliteLibraryStore):
        def __init__(self, path):
            super().__init__(path)
            self.entered, self.go = threading.Event(), threading.Event()

        def commit(self, tenant, changes, expected_revision=None):
            if changes and changes[0].action == "approve":
                self.entered.set()
                assert self.go.wait(10)
            return super().commit(tenant, changes, expected_revision)

    store = Paused(tmp_path / "l.db")
    library = make_library(store, detector, shipped, shipped_index)
    library.create(LEAD, NEW)
    writer = threading.Thread(target=library.set_status_many, args=(LEAD, [NEW["id"]], "approve"))
    writer.start()
    try:
        assert store.entered.wait(10)
        query = detector.model.embed(["I'm worried sick about whether the payment will bounce"])[0]
        answers = []
        reader = threading.Thread(target=lambda: answers.append(
            library.suggest("acme", Request(query, ["anxiety"], "chat", "options", k=3))))
        reader.start()
        reader.join(3)
        assert answers and answers[0], "retrieval waited for the bulk edit being written"
        assert NEW["id"] not in [s.id for s in answers[0]]  # not approved until the write is done
    finally:
        store.go.set()
        writer.join(10)
    assert NEW["id"] in [s.id for s in library.suggest("acme", Request(query, ["anxiety"], "chat", "options", k=3))]


def test_workers_sharing_redis_see_an_approval_within_a_second(redis_url, detector, shipped, shipped_index):
    first = make_library(RedisLibraryStore(redis_url), detector, shipped, shipped_index, sync=0.25)
    second = make_library(RedisLibraryStore(redis_url), detector, shipped, shipped_index, sync=0.25)
    query = detector.model.embed(["I'm worried sick about whether the payment will bounce"])[0]
    request = Request(query, ["anxiety"], "chat", "options", k=3)
    second.suggest("acme", request)
    first.create(LEAD, NEW)
    first.set_status(LEAD, NEW["id"], "approve")
    started = time.monotonic()
    while NEW["id"] not in [s.id for s in second.suggest("acme", request)]:
        assert time.monotonic() - started < 1.0, "the second worker did not see the approval within 1 s"
        time.sleep(0.02)


IMPORT_SCRIPT = """
import sys
from copilot.library.files import load_library
from copilot.library.store import Change, RedisLibraryStore, SqliteLibraryStore
store = RedisLibraryStore(sys.argv[2]) if sys.argv[1] == "redis" else SqliteLibraryStore(sys.argv[2])
shipped = load_library()
store.commit("acme", [Change(None, p, "system", "seed") for p in shipped])
big = [Change(None, shipped[0].with_changes(id=f"bulk-{i:06d}"), "lee", "import") for i in range(60000)]
print("ready", flush=True)
store.commit("acme", big)
print("done", flush=True)
"""


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_process_killed_mid_import_leaves_the_library_as_it_was(backend, tmp_path, request, shipped):
    target = request.getfixturevalue("redis_url") if backend == "redis" else str(tmp_path / "lib.db")
    proc = subprocess.Popen([sys.executable, "-c", IMPORT_SCRIPT, backend, target], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    proc.kill()
    rest = proc.stdout.read()
    proc.wait()
    assert "done" not in rest, "the import finished before the kill; make it bigger"
    store = RedisLibraryStore(target) if backend == "redis" else SqliteLibraryStore(target)
    current = store.current("acme")
    assert len(current) == len(shipped), "a partial import was left behind"
    assert store.revision("acme") == 1


def test_a_library_at_its_cap_refuses_new_phrasings_but_takes_edits(tmp_path, detector, shipped, shipped_index):
    library = make_library(SqliteLibraryStore(tmp_path / "lib.db"), detector, shipped, shipped_index,
                           max_phrasings=len(shipped) + 1)
    library.create(LEAD, NEW)
    with pytest.raises(LibraryFull) as full:
        library.create(LEAD, {**NEW, "id": "anxiety-options-98"})
    assert full.value.code == "library_full"
    library.set_status(LEAD, shipped[0].id, "retire")  # retired phrasings still count
    library.edit(LEAD, NEW["id"], {"notes": "edits of stored phrasings go on"})
    updates = dump([library.get("acme", p.id) for p in shipped[:3]], "yaml")
    assert library.import_rows(LEAD, updates, "yaml")["updated"] == 3
    one_new = dump([library.get("acme", shipped[0].id).with_changes(id="brand-new-01")], "yaml")
    with pytest.raises(LibraryFull):
        library.import_rows(LEAD, one_new, "yaml")
    assert len(library.phrasings("acme")) == len(shipped) + 1


QUEUE_EXP = {"id": "guidance-ab", "variants": [{"name": "on"}, {"name": "off", "guidance": False}],
             "assign_by": "queue", "queues": {"billing": "on"}}


def test_experiments_are_capped_in_size_and_count(tmp_path, detector, shipped, shipped_index):
    library = make_library(SqliteLibraryStore(tmp_path / "lib.db"), detector, shipped, shipped_index,
                           max_experiments=3, max_experiment_bytes=2048)
    for i in range(3):
        library.put_experiment(LEAD, {**QUEUE_EXP, "id": f"exp-{i}"})
    library.put_experiment(LEAD, {**QUEUE_EXP, "id": "exp-0", "name": "redefining one is not a new one"})
    with pytest.raises(TooManyExperiments):
        library.put_experiment(LEAD, {**QUEUE_EXP, "id": "exp-3"})
    big = {**QUEUE_EXP, "id": "exp-1", "variants": [{"name": "on", "phrasings": [f"p-{i:04d}" for i in range(300)]},
                                                     {"name": "off"}]}
    with pytest.raises(PayloadTooLarge) as error:
        library.put_experiment(LEAD, big)
    assert error.value.status == 413 and len(library.experiments("acme")) == 3


def test_renaming_the_variants_of_an_experiment_with_exposures_is_refused(tmp_path, detector, shipped, shipped_index):
    store = SqliteLibraryStore(tmp_path / "lib.db")
    library = make_library(store, detector, shipped, shipped_index)
    library.put_experiment(LEAD, QUEUE_EXP)
    renamed = {**QUEUE_EXP, "variants": [{"name": "alpha"}, {"name": "beta"}], "queues": {}}
    library.put_experiment(LEAD, renamed)  # nobody was assigned yet: a free redefinition
    library.put_experiment(LEAD, QUEUE_EXP)
    library.log_exposure("acme", "guidance-ab", "on", "c-1")
    with pytest.raises(ExperimentRunning, match="new experiment id"):
        library.put_experiment(LEAD, renamed)
    library.put_experiment(LEAD, {**QUEUE_EXP, "queues": {"billing": "off"}, "active": False})
    assert library.usage.experiment("acme", "guidance-ab")["active"] is False


def test_a_stale_or_broken_experiment_gives_no_variant_and_never_raises(tmp_path, detector, shipped, shipped_index,
                                                                        caplog):
    store = SqliteLibraryStore(tmp_path / "lib.db")
    library = make_library(store, detector, shipped, shipped_index, sync=0)
    library.put_experiment(LEAD, QUEUE_EXP)
    assert library.assignment("acme", "billing")[0] == "guidance-ab"
    assert library.variant("acme", "guidance-ab", "on").guidance is True
    library.usage.put_experiment("acme", {**QUEUE_EXP, "variants": [{"name": "alpha"}, {"name": "beta"}],
                                          "queues": {}})  # behind the service's checks, as a second worker might
    assert library.variant("acme", "guidance-ab", "on") is None
    library.usage.put_experiment("acme", {"id": "guidance-ab", "variants": "broken"})
    assert library.variant("acme", "guidance-ab", "on") is None and library.assignment("acme", "billing") is None
    assert library.variant("acme", "never-defined", "on") is None
    unreachable = make_library(RedisLibraryStore("redis://127.0.0.1:1/0"), detector, shipped, shipped_index)
    assert unreachable.variant("acme", "guidance-ab", "on") is None
    assert unreachable.assignment("acme", "billing") is None
    assert "no variant 'on' any more" in caplog.text


def test_a_conversation_in_an_experiment_is_counted_through_the_library(tmp_path, detector, shipped, shipped_index):
    """The copilot service reaches usage, exposures and outcomes through the Library, never its stores."""
    from copilot.analytics.loader import FileSource, Loader
    from copilot.analytics.service import trends as analytics_trends
    from copilot.analytics.store import DuckDBAnalytics
    from copilot.assist import CopilotService
    from copilot.conversation_store import MemoryConversationStore
    from copilot.eventlog import FileEventLog
    from copilot.metrics import Metrics

    library = make_library(SqliteLibraryStore(tmp_path / "lib.db"), detector, shipped, shipped_index, sync=0)
    service = CopilotService(detector, library, MemoryConversationStore(FileEventLog(tmp_path / "events.jsonl")),
                             Metrics(), cooldown_s=0)
    agent = Identity("acme", "agent", "amy")
    library.put_experiment(LEAD, QUEUE_EXP)
    assert service.start(agent, {"conversation_id": "c-1", "channel": "chat", "queue": "billing"}).ack["experiment"] \
        == ["guidance-ab", "on"]
    reply = service.snippet(agent, {"conversation_id": "c-1", "snippet_id": "s1", "speaker": "customer", "final": True,
                                    "text": "This is the third time I've called and I'm furious about this bill"})
    for work in reply.then:
        work()
    (pushed,) = [p for event, p in reply.emits if event == "suggestion.push"]
    shown = pushed["suggestions"][0]["id"]
    service.feedback(agent, {"conversation_id": "c-1", "suggestion_id": shown, "action": "used"})
    service.end(agent, {"conversation_id": "c-1"})
    counts = {(r["phrasing_id"], r["action"]): r["count"] for r in library.usage.usage("acme")}
    assert counts[(shown, "shown")] == 1 and counts[(shown, "used")] == 1
    assert library.usage.exposure_count("acme", "guidance-ab") == 1
    assert library.usage.outcomes("acme", "guidance-ab")[0]["used"] == 1
    assert library.experiment_report("acme", "guidance-ab")["variants"][0]["conversations"] == 1
    analytics = DuckDBAnalytics(tmp_path / "analytics.duckdb")  # the trends now come from the analytics store
    Loader(analytics, FileSource(tmp_path / "events.jsonl")).run_once()
    trends = analytics_trends(analytics.mentions_by_day("acme"), analytics.resolution("acme", by="day"))
    assert trends["resolution"][0]["conversations"] == 1 and trends["cues"][0]["counts"]
