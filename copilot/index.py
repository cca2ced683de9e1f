"""The FAISS index of phrasings: build, add, remove, search, save, load. Nothing else imports faiss.

Each phrasing contributes several vectors (its text and each `use_when` example), all under one slot; a search
scores a phrasing by its best vector. Vectors are L2-normalised, so inner product is cosine similarity.

    python -m copilot.index build     embed the approved shipped library into index/phrasings.faiss

The command line itself (build, eval, dupes) is copilot/library/index_cli.py.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
INDEX_DIR = ROOT / "index"
VECTORS_PER_SLOT = 8  # the text and up to seven examples
DIM = 384
# One query vector per search: OpenMP threads gain nothing on it and would wake up to compete with the model for
# the cores (a search over the shipped library takes about 0.1 ms on one thread).
faiss.omp_set_num_threads(1)


@dataclass(frozen=True)
class Entry:
    """What the index knows of one phrasing: its id, version and the texts it embedded."""

    phrasing_id: str
    version: int
    texts: tuple[str, ...]


class PhrasingIndex:
    """An inner-product FAISS index keyed by phrasing id, updated in place."""

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.faiss = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.slots: dict[str, int] = {}
        self.entries: dict[str, Entry] = {}
        self.by_slot: dict[int, str] = {}
        self._next_slot = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, phrasing_id: str) -> bool:
        return phrasing_id in self.entries

    def add(self, entry: Entry, vectors: np.ndarray) -> None:
        """Add or replace a phrasing's vectors (row 0 is the phrasing's own text)."""
        if len(vectors) != len(entry.texts) or not 1 <= len(vectors) <= VECTORS_PER_SLOT:
            raise ValueError("one vector per text, at most eight")
        self.remove(entry.phrasing_id)
        slot = self._next_slot
        self._next_slot += 1
        ids = np.arange(len(vectors), dtype=np.int64) + slot * VECTORS_PER_SLOT
        self.faiss.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self.slots[entry.phrasing_id] = slot
        self.by_slot[slot] = entry.phrasing_id
        self.entries[entry.phrasing_id] = entry

    def remove(self, phrasing_id: str) -> bool:
        """Drop a phrasing's vectors; False when it was not there."""
        slot = self.slots.pop(phrasing_id, None)
        if slot is None:
            return False
        self.entries.pop(phrasing_id)
        self.by_slot.pop(slot)
        ids = np.arange(VECTORS_PER_SLOT, dtype=np.int64) + slot * VECTORS_PER_SLOT
        self.faiss.remove_ids(faiss.IDSelectorBatch(ids))
        return True

    def vector(self, phrasing_id: str) -> np.ndarray:
        """The vector of a phrasing's own text."""
        return self.faiss.reconstruct(int(self.slots[phrasing_id] * VECTORS_PER_SLOT))

    def vectors(self, phrasing_id: str) -> np.ndarray:
        """All vectors of a phrasing, in the order of its texts."""
        base = self.slots[phrasing_id] * VECTORS_PER_SLOT
        return np.stack([self.faiss.reconstruct(int(base + i)) for i in range(len(self.entries[phrasing_id].texts))])

    def search(self, query: np.ndarray, k: int, only: Iterable[str] | None = None,
               text_only: bool = False) -> list[tuple[str, float]]:
        """The k best phrasings for a query vector as (id, cosine), optionally among some ids only."""
        if not self.entries:
            return []
        allowed = list(only) if only is not None else list(self.entries)
        wanted = [pid for pid in allowed if pid in self.slots]
        if not wanted:
            return []
        per = 1 if text_only else VECTORS_PER_SLOT
        ids = np.array([self.slots[p] * VECTORS_PER_SLOT + i for p in wanted for i in range(per)], dtype=np.int64)
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(ids))
        depth = min(len(ids), max(k, 1) * per)
        scores, found = self.faiss.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), depth,
                                          params=params)
        best: dict[str, float] = {}
        for score, vid in zip(scores[0], found[0]):
            if vid < 0:
                continue
            pid = self.by_slot[int(vid) // VECTORS_PER_SLOT]
            if pid not in best:
                best[pid] = float(score)
            if len(best) >= k:
                break
        return sorted(best.items(), key=lambda kv: -kv[1])[:k]

    def copy(self) -> PhrasingIndex:
        """An independent copy (a tenant's index starts as a copy of the shipped one)."""
        twin = PhrasingIndex(self.dim)
        twin.faiss = faiss.clone_index(self.faiss)
        twin.slots = dict(self.slots)
        twin.entries = dict(self.entries)
        twin.by_slot = dict(self.by_slot)
        twin._next_slot = self._next_slot
        return twin

    def save(self, folder: Path, name: str = "phrasings") -> None:
        """Write name.faiss and name.json (the slot map and entries) atomically."""
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.faiss.tmp"
        faiss.write_index(self.faiss, str(tmp))
        meta = {"dim": self.dim, "next_slot": self._next_slot,
                "entries": [{"id": e.phrasing_id, "version": e.version, "slot": self.slots[e.phrasing_id],
                             "texts": list(e.texts)} for e in self.entries.values()]}
        tmp_meta = folder / f".{name}.json.tmp"
        tmp_meta.write_text(json.dumps(meta, indent=1) + "\n")
        tmp.replace(folder / f"{name}.faiss")
        tmp_meta.replace(folder / f"{name}.json")

    @classmethod
    def load(cls, folder: Path, name: str = "phrasings") -> PhrasingIndex:
        """Read an index written by save()."""
        meta = json.loads((folder / f"{name}.json").read_text())
        index = cls(meta["dim"])
        index.faiss = faiss.read_index(str(folder / f"{name}.faiss"))
        index._next_slot = meta["next_slot"]
        for item in meta["entries"]:
            index.slots[item["id"]] = item["slot"]
            index.by_slot[item["slot"]] = item["id"]
            index.entries[item["id"]] = Entry(item["id"], item["version"], tuple(item["texts"]))
        return index


def progress(done: int, total: int, label: str = "", width: int = 30) -> None:
    """A one-line progress bar on stderr."""
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def build(phrasings, embed, batch: int = 32, show_progress: bool = True) -> PhrasingIndex:
    """Embed approved phrasings (text and use_when examples) into a new index."""
    index = PhrasingIndex()
    approved = [p for p in phrasings if p.status == "approved"]
    for start in range(0, len(approved), batch):
        chunk = approved[start:start + batch]
        texts = [t for p in chunk for t in (p.text, *p.use_when)]
        vectors = embed(texts)
        row = 0
        for p in chunk:
            n = 1 + len(p.use_when)
            index.add(Entry(p.id, p.version, (p.text, *p.use_when)), vectors[row:row + n])
            row += n
        if show_progress:
            progress(min(start + batch, len(approved)), len(approved), "embedding phrasings")
    return index


def load_or_build(phrasings, embed, folder: Path = INDEX_DIR) -> PhrasingIndex:
    """The committed shipped index, or one built now when it is missing (entries that went stale since the
    build are re-embedded by the library service, which compares texts)."""
    if (folder / "phrasings.faiss").is_file() and (folder / "phrasings.json").is_file():
        return PhrasingIndex.load(folder)
    return build(phrasings, embed, show_progress=False)


if __name__ == "__main__":  # `python -m copilot.index`: the command line lives beside the library it reads
    from copilot.library.index_cli import main

    sys.exit(main())
