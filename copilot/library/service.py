"""The library service: each tenant's phrasings and FAISS index, kept in step with the store, and the usage
counts and experiments kept beside them. Callers reach both stores through it, never directly.

Every tenant starts from the shipped library. Edits go to the store in one transaction, then into this worker's
index incrementally; other workers notice the store's revision moved (checked at most every `sync_interval_s`)
and apply just the changed phrasings, so an approval reaches every worker within a second without a restart.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from copilot.concurrency import Pools, run_here
from copilot.errors import (
    Conflict,
    CopilotError,
    ExperimentRunning,
    ImportRejected,
    InvalidPhrasingError,
    LibraryFull,
    NotFound,
    PayloadTooLarge,
    PhrasingExists,
    StoreUnavailable,
    TooManyExperiments,
    UnknownPhrasing,
)
from copilot.index import Entry, PhrasingIndex, load_or_build
from copilot.library import experiments as exp
from copilot.library.experiments import Experiment, Variant
from copilot.library.files import MAX_LISTED_ROWS, ParsedRows, dump, load_library, parse_rows, read_rows
from copilot.library.phrasing import InvalidPhrasing, Phrasing, parse_phrasing
from copilot.library.store import (
    AuditEntry,
    Change,
    LibraryStore,
    RedisLibraryStore,
    SqliteLibraryStore,
    StaleRevision,
    Version,
    pausing,
)
from copilot.library.usage import UsageStore, usage_beside
from copilot.security import Identity
from copilot.settings import Settings
from copilot.suggest import Request, Suggestion, retrieve

if TYPE_CHECKING:
    from copilot.cues.detector import CueDetector

# Cosine between two phrasings' own texts at or above which we warn of a near-duplicate. From
# `python -m copilot.index dupes`: no two distinct approved shipped phrasings reach 0.74, while 75% of 20
# hand-written rewordings (data/retrieval/paraphrases.jsonl) reach 0.78. A warning, not a refusal: the lead decides.
NEAR_DUPLICATE = 0.78
EMBED_CACHE = 50_000
EMBED_BATCH = 64
log = logging.getLogger(__name__)


@dataclass
class TenantState:
    """What one worker holds of one tenant's library."""

    revision: int
    phrasings: dict[str, Phrasing]
    index: PhrasingIndex
    checked_at: float = 0.0
    lock: threading.RLock = field(default_factory=threading.RLock)  # one writer at a time: commits and syncs
    index_lock: threading.Lock = field(default_factory=threading.Lock)  # held only to change or read the index


def _read_and_parse(body: str, fmt: str) -> ParsedRows:
    return parse_rows(read_rows(body, fmt), MAX_LISTED_ROWS)


class Library:
    """Curated phrasings per tenant, their index, and retrieval over it."""

    def __init__(self, store: LibraryStore, embed: Callable[[list[str]], np.ndarray], shipped: list[Phrasing],
                 shipped_index: PhrasingIndex | None = None,
                 sync_interval_s: float = Settings.library_sync_ms / 1000,
                 near_duplicate: float = NEAR_DUPLICATE, offload: Callable[..., Any] | None = None,
                 max_phrasings: int = Settings.max_phrasings, max_experiment_bytes: int = Settings.max_experiment_bytes,
                 max_experiments: int = Settings.max_experiments, usage: UsageStore | None = None) -> None:
        """`offload(fn, *args)` runs pure, CPU-heavy work (parsing a bulk import) off the caller's thread; the
        event-loop server passes one so that a large import does not hold up live conversations. The caps are
        per tenant and answered with coded errors. `usage` defaults to the one kept beside `store`."""
        self.offload = offload or run_here
        self.max_phrasings = max_phrasings
        self.max_experiment_bytes = max_experiment_bytes
        self.max_experiments = max_experiments
        self.experiment_cache: dict[str, tuple[float, dict[str, Experiment]]] = {}
        self.broken_logged: set[tuple[str, str, str]] = set()
        self.store = store
        self.usage = usage if usage is not None else usage_beside(store)
        self.embed_batch = embed
        self.shipped = shipped
        self.shipped_index = shipped_index
        self.sync_interval_s = sync_interval_s
        self.near_duplicate = near_duplicate
        self.states: dict[str, TenantState] = {}
        self.lock = threading.Lock()
        self.cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.cache_lock = threading.Lock()

    # -- embeddings and index -----------------------------------------------------------------------------------
    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors for texts, from the cache where we have them."""
        with self.cache_lock:
            known = {t: self.cache[t] for t in texts if t in self.cache}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            fresh = {}
            for start in range(0, len(missing), EMBED_BATCH):  # bounded batches keep memory flat on bulk edits
                chunk = missing[start:start + EMBED_BATCH]
                fresh.update(zip(chunk, self.embed_batch(chunk)))
            known.update(fresh)
            with self.cache_lock:
                self.cache.update(fresh)
                while len(self.cache) > EMBED_CACHE:
                    self.cache.popitem(last=False)
        return np.stack([known[t] for t in texts])

    def _vectors(self, phrasing: Phrasing) -> tuple[tuple[str, ...], np.ndarray]:
        texts = (phrasing.text, *phrasing.use_when)
        if self.shipped_index is not None and phrasing.id in self.shipped_index \
                and self.shipped_index.entries[phrasing.id].texts == texts:
            return texts, self.shipped_index.vectors(phrasing.id)
        return texts, self.embed(list(texts))

    def _apply(self, state: TenantState, phrasing: Phrasing) -> None:
        """One phrasing into this worker's view. The index lock is held for the change alone (embedding comes
        first), so a live snippet's retrieval waits for one phrasing at most, never for a whole bulk edit."""
        entry = None
        if phrasing.status == "approved":
            texts, vectors = self._vectors(phrasing)
            entry = Entry(phrasing.id, phrasing.version, texts)
        with state.index_lock:
            state.phrasings[phrasing.id] = phrasing
            if entry is not None:
                state.index.add(entry, vectors)
            else:
                state.index.remove(phrasing.id)

    # -- tenant state -------------------------------------------------------------------------------------------
    def _seed(self, tenant: str) -> None:
        changes = [Change(None, p, "system", "seed") for p in self.shipped]
        try:
            self.store.commit(tenant, changes, expected_revision=0)
        except StaleRevision:
            pass  # another worker seeded it first

    def state(self, tenant: str) -> TenantState:
        """This worker's view of a tenant, seeded on first use and synced with the store."""
        with self.lock:
            state = self.states.get(tenant)
            if state is None:
                if not self.store.seeded(tenant):
                    self._seed(tenant)
                revision = self.store.revision(tenant)
                phrasings = self.store.current(tenant)
                state = TenantState(revision, {}, PhrasingIndex(), time.monotonic())
                for p in phrasings.values():
                    self._apply(state, p)
                self.states[tenant] = state
                return state
        self.sync(state, tenant)
        return state

    def sync(self, state: TenantState, tenant: str, force: bool = False) -> None:
        """Apply the store's changes since this worker's revision (at most every sync_interval_s)."""
        now = time.monotonic()
        if not force and now - state.checked_at < self.sync_interval_s:
            return
        if not state.lock.acquire(blocking=force):
            return  # a bulk edit is being applied: readers use what is applied so far, and never wait for it
        try:
            state.checked_at = now
            try:
                revision = self.store.revision(tenant)
                if revision == state.revision:
                    return
                if revision < state.revision:  # the store lost the revision key: keep this worker's whole view
                    self._log_once(tenant, "", f"library of tenant {tenant!r}: the store's revision {revision} is "
                                               f"behind this worker's {state.revision} (keys evicted?); serving "
                                               "the view it holds, and edits will be refused")
                    return
                for pid in sorted(self.store.changes_since(tenant, state.revision)):
                    phrasing = self.store.get(tenant, pid)
                    if phrasing is not None:
                        self._apply(state, phrasing)
                state.revision = revision
            except StoreUnavailable as error:
                if force:
                    raise
                log.warning("library of tenant %r not synced, serving the view this worker holds: %s", tenant, error)
        finally:
            state.lock.release()

    def phrasings(self, tenant: str) -> dict[str, Phrasing]:
        """The tenant's current phrasings by id."""
        return dict(self.state(tenant).phrasings)

    def get(self, tenant: str, phrasing_id: str) -> Phrasing:
        """One current phrasing, or UnknownPhrasing."""
        phrasing = self.state(tenant).phrasings.get(phrasing_id)
        if phrasing is None:
            raise UnknownPhrasing(f"no phrasing '{phrasing_id}' in this library")
        return phrasing

    def history(self, tenant: str, phrasing_id: str) -> list[Version]:
        """Every stored version of a current phrasing, oldest first, or UnknownPhrasing."""
        self.get(tenant, phrasing_id)
        return self.store.history(tenant, phrasing_id)

    def audit(self, tenant: str, after: int = 0, limit: int = 100,
              phrasing_id: str | None = None) -> list[AuditEntry]:
        """One page of the tenant's audit log (of one phrasing, if given): the entries numbered after `after`,
        at most `limit` of them."""
        # Read in place, not offloaded: both stores read one phrasing's page through an index (at most `limit`
        # entries, as an unfiltered page), and a Redis client must stay on the loop's thread under gevent.
        return self.store.audit(tenant, after, limit, phrasing_id)

    def seeded(self, tenant: str) -> bool:
        """Whether the tenant's library exists in the store yet (it is seeded on first use)."""
        return self.store.seeded(tenant)

    def ping(self) -> bool:
        """Whether both stores answer."""
        return self.store.ping() and self.usage.ping()

    # -- curation -----------------------------------------------------------------------------------------------
    def _commit(self, identity: Identity, changes: list[Change]) -> None:
        state = self.state(identity.tenant)
        with state.lock:
            self.sync(state, identity.tenant, force=True)
            try:
                revision = self.store.commit(identity.tenant, changes, expected_revision=state.revision)
            except StaleRevision as error:
                raise Conflict(str(error)) from None
            for change in pausing(changes):
                self._apply(state, change.after)
            state.revision = revision

    def validate(self, tenant: str, data: Mapping[str, Any]) -> tuple[Phrasing, list[dict]]:
        """Parse and check a phrasing, and list near-duplicates among the approved ones (a dry run)."""
        try:
            phrasing = parse_phrasing(data)
        except InvalidPhrasing as error:
            raise InvalidPhrasingError(error) from None
        return phrasing, self.near_duplicates(tenant, phrasing.text, exclude=phrasing.id)

    def near_duplicates(self, tenant: str, text: str, exclude: str | None = None) -> list[dict]:
        """Approved phrasings whose text is within the near-duplicate cosine of this text."""
        state = self.state(tenant)
        vector = self.embed([text])[0]
        with state.index_lock:  # FAISS is not safe to search while another thread updates it
            hits = state.index.search(vector, k=5, text_only=True)
        return [{"id": pid, "text": state.phrasings[pid].text, "similarity": round(score, 3)}
                for pid, score in hits if score >= self.near_duplicate and pid != exclude]

    def create(self, identity: Identity, data: Mapping[str, Any]) -> tuple[Phrasing, list[dict]]:
        """Add a new phrasing as a draft (whatever status was asked for)."""
        identity.require("lead")
        phrasing, duplicates = self.validate(identity.tenant, {**data, "status": "draft", "version": 1})
        current = self.state(identity.tenant).phrasings
        if phrasing.id in current:
            raise PhrasingExists(f"'{phrasing.id}' already exists; edit it instead")
        self._check_room(len(current), 1)
        self._commit(identity, [Change(None, phrasing, identity.agent, "create")])
        return phrasing, duplicates

    def edit(self, identity: Identity, phrasing_id: str, data: Mapping[str, Any]) -> tuple[Phrasing, list[dict]]:
        """Save a new version of a phrasing; the old versions stay in its history. Status is changed elsewhere."""
        identity.require("lead")
        before = self.get(identity.tenant, phrasing_id)
        merged = {**before.as_dict(), **{k: v for k, v in data.items() if k not in {"id", "version", "status"}}}
        merged.update(id=phrasing_id, version=before.version + 1, status=before.status)
        after, duplicates = self.validate(identity.tenant, merged)
        self._commit(identity, [Change(before, after, identity.agent, "edit")])
        return after, duplicates

    def set_status(self, identity: Identity, phrasing_id: str, action: str) -> Phrasing:
        """approve, retire or restore (back to draft) a phrasing, as a new version."""
        return self.set_status_many(identity, [phrasing_id], action)[0]

    def set_status_many(self, identity: Identity, phrasing_ids: list[str], action: str) -> list[Phrasing]:
        """The same status change for many phrasings, in one all-or-nothing write."""
        identity.require("lead")
        status = {"approve": "approved", "retire": "retired", "restore": "draft"}[action]
        befores = [self.get(identity.tenant, pid) for pid in dict.fromkeys(phrasing_ids)]
        afters = [b.with_changes(status=status, version=b.version + 1) for b in befores]
        if status == "approved":  # embed the whole batch at once before the index takes them one by one
            self.embed([t for p in afters for t in (p.text, *p.use_when)])
        self._commit(identity, [Change(b, a, identity.agent, action) for b, a in zip(befores, afters)])
        return afters

    def import_rows(self, identity: Identity, body: str, fmt: str) -> dict[str, Any]:
        """Import YAML or CSV all-or-nothing: new ids become drafts, known ids new versions (status kept)."""
        identity.require("lead")
        parsed = self.offload(_read_and_parse, body, fmt)
        if parsed.rejected:
            raise ImportRejected(parsed)
        current = self.state(identity.tenant).phrasings
        self._check_room(len(current), sum(p.id not in current for p in parsed.good))
        changes = []
        for p in parsed.good:
            before = current.get(p.id)
            if before is None:
                changes.append(Change(None, p.with_changes(status="draft", version=1), identity.agent, "import"))
            else:
                changes.append(Change(before, p.with_changes(status=before.status, version=before.version + 1),
                                      identity.agent, "import"))
        if changes:
            self._commit(identity, changes)
        return {"imported": len(changes), "created": sum(c.before is None for c in changes),
                "updated": sum(c.before is not None for c in changes), "rejected": []}

    def _check_room(self, stored: int, new: int) -> None:
        if new and stored + new > self.max_phrasings:
            raise LibraryFull(f"this would make {stored + new} phrasings; a library holds at most "
                              f"{self.max_phrasings} (drafts and retired ones count): nothing was written")

    def export(self, tenant: str, fmt: str, status: str | None = None) -> str:
        """The tenant's library as YAML or CSV."""
        phrasings = sorted(self.phrasings(tenant).values(), key=lambda p: p.id)
        return dump([p for p in phrasings if status is None or p.status == status], fmt)

    # -- retrieval ----------------------------------------------------------------------------------------------
    def suggest(self, tenant: str, request: Request) -> list[Suggestion]:
        """Retrieval over the tenant's approved phrasings."""
        state = self.state(tenant)
        with state.index_lock:
            return retrieve(state.phrasings, state.index, request)

    def search(self, tenant: str, query: str, k: int = 10) -> list[tuple[Phrasing, float]]:
        """Semantic search over the approved phrasings (for leads looking for wording)."""
        state = self.state(tenant)
        vector = self.embed([query])[0]
        with state.index_lock:
            hits = state.index.search(vector, k=k)
        return [(state.phrasings[pid], score) for pid, score in hits]

    # -- usage --------------------------------------------------------------------------------------------------
    def count_usage(self, tenant: str, phrasing_id: str, action: str, cue: str, queue: str, channel: str) -> None:
        """One more shown, used, dismissed, helpful or not_helpful for a phrasing, in its cue, queue and channel."""
        self.usage.count_usage(tenant, phrasing_id, action, cue, queue, channel)

    def usage_table(self, tenant: str, by: tuple[str, ...]) -> list[dict]:
        """The tenant's usage counts summed by the `by` keys, with acceptance."""
        return exp.usage_table(self.usage.usage(tenant), by)

    # -- experiments --------------------------------------------------------------------------------------------
    def experiments(self, tenant: str) -> dict[str, dict]:
        """The tenant's stored experiment definitions by id, as JSON objects."""
        return self.usage.experiments(tenant)

    def put_experiment(self, identity: Identity, data: Any) -> Experiment:
        """Define or redefine an experiment, within the size and count caps. Once it has exposures its variant
        names are fixed (ExperimentRunning): a new set of variants is a new experiment."""
        identity.require("lead")
        experiment = exp.parse_experiment(data)
        size = len(json.dumps(experiment.as_dict()).encode())
        if size > self.max_experiment_bytes:
            raise PayloadTooLarge(f"the experiment is {size} bytes as JSON; at most {self.max_experiment_bytes}")
        tenant = identity.tenant
        stored = self.usage.experiment(tenant, experiment.id)
        if stored is None:
            if self.usage.experiment_count(tenant) >= self.max_experiments:
                raise TooManyExperiments(f"a tenant has at most {self.max_experiments} experiments; "
                                         "redefine one of them instead")
        else:
            try:
                before = exp.parse_experiment(stored)
            except CopilotError:
                before = None  # a definition that no longer parses gives way to a valid one
            if before is not None:
                problem = exp.redefinition_problem(before, experiment, self.usage.exposure_count(tenant, experiment.id))
                if problem:
                    raise ExperimentRunning(problem)
        self.usage.put_experiment(tenant, experiment.as_dict())
        self.experiment_cache.pop(tenant, None)
        return experiment

    def log_exposure(self, tenant: str, experiment_id: str, variant: str, conversation_id: str) -> None:
        """A conversation was assigned this variant of an experiment."""
        self.usage.log_exposure(tenant, experiment_id, variant, conversation_id)

    def record_outcome(self, tenant: str, experiment_id: str, variant: str, conversation_id: str,
                       outcome: dict[str, Any]) -> None:
        """A conversation of an experiment ended with this outcome (what experiments.report sums)."""
        self.usage.record_outcome(tenant, experiment_id, variant, conversation_id, outcome)

    def experiment_report(self, tenant: str, experiment_id: str) -> dict[str, Any]:
        """Acceptance and resolution per variant with 95% intervals, and the exposures logged."""
        data = self.usage.experiment(tenant, experiment_id)
        if data is None:
            raise NotFound(f"no experiment '{experiment_id}'")
        experiment = exp.parse_experiment(data)
        outcomes = self.usage.outcomes(tenant, experiment_id)
        return exp.report(experiment, outcomes, self.usage.exposure_count(tenant, experiment_id))

    def _parsed_experiments(self, tenant: str) -> dict[str, Experiment]:
        """The tenant's valid experiments, read from the store at most every sync_interval_s; a broken
        definition is skipped and logged once."""
        now = time.monotonic()
        cached = self.experiment_cache.get(tenant)
        if cached is not None and now - cached[0] < self.sync_interval_s:
            return cached[1]
        parsed = {}
        for ident, data in self.usage.experiments(tenant).items():
            try:
                parsed[ident] = exp.parse_experiment(data)
            except CopilotError as error:
                self._log_once(tenant, ident, f"skipping experiment {ident!r} of tenant {tenant!r}: {error}")
        self.experiment_cache[tenant] = (now, parsed)
        return parsed

    def _log_once(self, tenant: str, ident: str, message: str) -> None:
        key = (tenant, ident, message)
        if key not in self.broken_logged and len(self.broken_logged) < 10_000:
            self.broken_logged.add(key)
            log.warning(message)

    def assignment(self, tenant: str, queue: str) -> tuple[str, Variant] | None:
        """The first active experiment that assigns this queue now, and its variant; None when none does.
        Never raises: a store error or a broken definition means no experiment (and a log line)."""
        try:
            for experiment in self._parsed_experiments(tenant).values():
                if not experiment.active:
                    continue
                name = exp.assign(experiment, queue)
                variant = experiment.variant(name) if name is not None else None
                if variant is not None:
                    return experiment.id, variant
        except CopilotError as error:  # an experiment must never cost a conversation
            log.warning("no experiment for a conversation of tenant %r: %s", tenant, error)
        except Exception:  # a bug: still no experiment, but with its traceback
            log.exception("no experiment for a conversation of tenant %r", tenant)
        return None

    def variant(self, tenant: str, experiment_id: str, variant_name: str) -> Variant | None:
        """A conversation's variant as defined now; None when the experiment or the variant is gone (it was
        redefined or is broken) or the store cannot say. Never raises: the caller then applies no variant."""
        try:
            experiment = self._parsed_experiments(tenant).get(experiment_id)
        except CopilotError as error:  # an experiment must never cost a snippet
            log.warning("experiment %r of tenant %r unreadable: %s", experiment_id, tenant, error)
            return None
        except Exception:  # a bug: still no variant, but with its traceback
            log.exception("experiment %r of tenant %r unreadable", experiment_id, tenant)
            return None
        variant = experiment.variant(variant_name) if experiment is not None else None
        if variant is None:
            self._log_once(tenant, experiment_id, f"experiment {experiment_id!r} of tenant {tenant!r} has no "
                                                  f"variant {variant_name!r} any more: no variant applied")
        return variant


def open_library(settings: Settings, detector: CueDetector, pools: Pools) -> Library:
    """Each tenant's phrasings over the shipped library and its prebuilt index, in Redis or the embedded file."""
    if settings.redis_url:
        store: LibraryStore = RedisLibraryStore(settings.redis_url)
    else:
        store = SqliteLibraryStore(settings.library_db, offload=pools.bulk)

    def embed(texts: list[str]) -> np.ndarray:
        """A bulk approval embeds thousands of texts: on its own thread, not queued ahead of live snippets."""
        return pools.bulk(detector.model.embed_here, texts) if pools.bulk else detector.model.embed(texts)
    shipped = load_library()
    return Library(store, embed, shipped, load_or_build(shipped, detector.model.embed),
                   sync_interval_s=settings.library_sync_ms / 1000, offload=pools.python,
                   max_phrasings=settings.max_phrasings, max_experiment_bytes=settings.max_experiment_bytes,
                   max_experiments=settings.max_experiments)
