"""The exact dedup index of one partition: ``(account, event_id)`` hash -> the first record's
position, for the dedup horizon, with almost nothing of it in RAM.

It is a small log-structured index, the shape RocksDB itself has (sorted immutable runs, a
filter in front of each):

* ``recent``: the ids first seen since the last snapshot, in a dict (bounded by the flush
  interval). A snapshot turns them into a *chunk*: the changelog record ``{p}:d:{seq}`` and a
  sorted run kept in RAM (``_Run``), looked up with one vectorised ``searchsorted`` per batch.
* Once the chunks in RAM hold ``seal_at`` ids they are merged into one sealed run: sorted pages
  in the ``RunStore`` (RocksDB in the worker, ``streams.store.rocks``), with a blocked Bloom
  filter (16 bits an id, about 0.5 % false positives) and the first hash of every page in RAM.
  A batch tests every sealed filter at once; only the few ids a filter lets through cost a read.
* Expiry works per chunk, as before: a chunk whose newest ``ts`` is older than the dedup horizon
  is tombstoned and its ids count as absent (every entry carries its chunk's newest ``ts``, and
  ``floor`` is where the last expiry cut); a run goes as a whole once all its ids are gone.

The filter only spares reads: an id is a duplicate only when a run holds it, so the index is
exact. Nothing of it needs to survive the local disk: every chunk is in the changelog, and a
restore rebuilds the runs from them (``load_chunk``, then ``seal``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt
from xxhash import xxh3_128_digest

# One id of a run: the two halves of its 128-bit hash (big-endian halves, as the digest reads),
# the first record's position and the newest ``ts`` of the chunk it came with.
ENTRY = np.dtype([("hi", "<u8"), ("lo", "<u8"), ("pos", "<i8"), ("ts", "<i8")])
# A chunk record in the changelog: its newest ts, then (hi, lo, pos) per id, sorted by hash.
_CHUNK_ID = np.dtype([("hi", "<u8"), ("lo", "<u8"), ("pos", "<i8")])
_CHUNK_MAGIC = b"SPD1"
_HALVES = np.dtype(">u8")

CHUNK_MAX_IDS = 1 << 16  # ids per chunk record (1.5 MiB, far below the changelog's limit)
PAGE_IDS = 1024  # ids per page of a sealed run (32 KiB)
SEAL_AT = 1 << 18  # ids in RAM chunks (32 bytes each) before they are sealed into a run
_FILTER_BITS_PER_ID = 16
_FILTER_K = 8  # bits set per id, all in one 64-bit word (a blocked Bloom filter)

U64 = npt.NDArray[np.uint64]


def id_key(account: str, event_id: str) -> bytes:
    """The 16-byte dedup key of an event: scoped by account, so one account's ids cannot
    suppress another's."""
    return xxh3_128_digest(f"{account}\x00{event_id}".encode())


class RunStore(Protocol):
    """Where the pages of one partition's sealed runs live."""

    def put_run(self, run: int, pages: Sequence[bytes]) -> None: ...

    def page(self, run: int, page: int) -> bytes: ...

    def delete_run(self, run: int, pages: int) -> None: ...

    def clear(self) -> None: ...


class MemoryRunStore:
    """Pages in a dict: the unit tests' store (the worker's is ``streams.store.rocks``)."""

    def __init__(self) -> None:
        self.pages: dict[tuple[int, int], bytes] = {}

    def put_run(self, run: int, pages: Sequence[bytes]) -> None:
        for i, page in enumerate(pages):
            self.pages[(run, i)] = page

    def page(self, run: int, page: int) -> bytes:
        return self.pages[(run, page)]

    def delete_run(self, run: int, pages: int) -> None:
        for i in range(pages):
            self.pages.pop((run, i), None)

    def clear(self) -> None:
        self.pages.clear()


class Chunk(NamedTuple):
    """The ids one snapshot captured: its sequence number, newest ts and sorted entries."""

    seq: int
    newest_ts: int
    entries: npt.NDArray[np.void]

    def encode(self) -> bytes:
        ids = np.empty(len(self.entries), dtype=_CHUNK_ID)
        for name in ("hi", "lo", "pos"):
            ids[name] = self.entries[name]
        return _CHUNK_MAGIC + np.int64(self.newest_ts).tobytes() + ids.tobytes()


def decode_chunk(seq: int, data: bytes) -> Chunk:
    """A chunk record, in this format or the JSON ``[newest_ts, [[hi, lo, pos], ...]]`` of
    state written before it."""
    if data.startswith(_CHUNK_MAGIC):
        newest = int(np.frombuffer(data, dtype="<i8", count=1, offset=4)[0])
        ids = np.frombuffer(data, dtype=_CHUNK_ID, offset=12)
    else:
        import orjson

        newest, triples = orjson.loads(data)
        ids = np.array([tuple(t) for t in triples], dtype=_CHUNK_ID)
    entries = np.empty(len(ids), dtype=ENTRY)
    for name in ("hi", "lo", "pos"):
        entries[name] = ids[name]
    entries["ts"] = newest
    entries.sort(order=("hi", "lo"))
    return Chunk(seq, newest, entries)


def _halves(keys: Sequence[bytes]) -> tuple[U64, U64]:
    both = np.frombuffer(b"".join(keys), dtype=_HALVES).astype(np.uint64).reshape(-1, 2)
    return both[:, 0], both[:, 1]


def _filter_words(hi: U64, lo: U64, words: int) -> tuple[npt.NDArray[np.intp], U64]:
    """Per id, the word of a blocked Bloom filter it lives in and the bits it sets there."""
    idx = (hi & np.uint64(words - 1)).astype(np.intp)
    mask = np.zeros(len(lo), dtype=np.uint64)
    one, six, bits = np.uint64(1), np.uint64(6), np.uint64(63)
    v = lo
    for _ in range(_FILTER_K):
        mask |= one << (v & bits)
        v = v >> six
    return idx, mask


class _Run:
    """Sorted entries: in RAM (``entries``), or sealed on the store (pages, filter, fences)."""

    __slots__ = ("entries", "fences", "filter", "newest_ts", "pages", "run_id", "size")

    def __init__(self, entries: npt.NDArray[np.void], run_id: int = -1) -> None:
        self.entries: npt.NDArray[np.void] | None = entries
        self.run_id = run_id
        self.size = len(entries)
        self.newest_ts = int(entries["ts"].max()) if len(entries) else -1
        self.filter: U64 | None = None
        self.fences: U64 | None = None  # the first hi of every page
        self.pages = 0

    def seal(self, store: RunStore) -> None:
        entries = self.entries
        assert entries is not None
        pages = [entries[i:i + PAGE_IDS].tobytes() for i in range(0, len(entries), PAGE_IDS)]
        store.put_run(self.run_id, pages)
        self.pages = len(pages)
        self.fences = entries["hi"][::PAGE_IDS].copy()
        words = 1 << max(6, int(np.ceil(np.log2(max(1, len(entries)) * _FILTER_BITS_PER_ID
                                                 / 64))))
        bits = np.zeros(words, dtype=np.uint64)
        idx, mask = _filter_words(entries["hi"], entries["lo"], words)
        np.bitwise_or.at(bits, idx, mask)
        self.filter = bits
        self.entries = None

    def find(self, hi: U64, lo: U64, store: RunStore, floor: int,
             idx_mask: dict[int, tuple[npt.NDArray[np.intp], U64]]) -> Iterable[tuple[int, int]]:
        """(index into the batch, position) of the batch ids this run holds, not expired."""
        if self.entries is not None:
            yield from _search(self.entries, hi, lo, np.arange(len(hi)), floor)
            return
        assert self.filter is not None and self.fences is not None
        words = len(self.filter)
        if words not in idx_mask:
            idx_mask[words] = _filter_words(hi, lo, words)
        idx, mask = idx_mask[words]
        maybe = np.flatnonzero((self.filter[idx] & mask) == mask)
        if not len(maybe):
            return
        # A hash's entries may start on the page before the fence that equals it.
        first = np.maximum(np.searchsorted(self.fences, hi[maybe], side="left") - 1, 0)
        last = np.searchsorted(self.fences, hi[maybe], side="right") - 1
        pages = sorted({page for lo_page, hi_page in zip(first.tolist(), last.tolist(),
                                                          strict=True)
                        for page in range(lo_page, hi_page + 1)})
        for page in pages:
            on = maybe[(first <= page) & (last >= page)]
            entries = np.frombuffer(store.page(self.run_id, page), dtype=ENTRY)
            yield from _search(entries, hi[on], lo[on], on, floor)


def _search(entries: npt.NDArray[np.void], hi: U64, lo: U64, where: npt.NDArray[np.intp],
            floor: int) -> Iterable[tuple[int, int]]:
    if not len(entries) or not len(hi):
        return
    ehi = entries["hi"]
    at = np.searchsorted(ehi, hi, side="left")
    inside = at < len(ehi)
    hit = np.zeros(len(hi), dtype=bool)
    hit[inside] = ehi[at[inside]] == hi[inside]
    for j in np.flatnonzero(hit):
        i = int(at[j])
        # equal high halves are next to each other (sorted by hi, lo): compare the low ones
        while i < len(ehi) and ehi[i] == hi[j]:
            e = entries[i]
            if e["lo"] == lo[j] and e["ts"] >= floor:
                yield int(where[j]), int(e["pos"])
                break
            i += 1


class DedupIndex:
    """The dedup index of one partition (see the module docstring)."""

    __slots__ = (
        "_next_run",
        "chunk_seq",
        "chunks",
        "floor",
        "ram_ids",
        "recent",
        "recent_ts",
        "runs",
        "seal_at",
        "store",
    )

    def __init__(self, store: RunStore | None = None, seal_at: int = SEAL_AT) -> None:
        self.store: RunStore = store if store is not None else MemoryRunStore()
        self.seal_at = seal_at
        self.recent: dict[bytes, int] = {}  # ids first seen since the last snapshot
        self.recent_ts = -1  # their newest ts
        self.chunks: dict[int, int] = {}  # every live chunk: seq -> newest ts
        self.chunk_seq = 0
        self.runs: list[_Run] = []
        self.ram_ids = 0  # ids in runs not sealed yet
        self.floor = -1  # ids of chunks whose newest ts is below this are gone
        self._next_run = 0

    # --- lookups --------------------------------------------------------------------------
    def older(self, keys: Sequence[bytes]) -> dict[bytes, int]:
        """The positions of the ``keys`` that a chunk holds (those of ``recent`` excluded:
        the caller looks there first, as the batch adds to it)."""
        if not self.runs or not keys:
            return {}
        hi, lo = _halves(keys)
        found: dict[bytes, int] = {}
        cache: dict[int, tuple[npt.NDArray[np.intp], U64]] = {}
        for run in self.runs:
            for j, pos in run.find(hi, lo, self.store, self.floor, cache):
                found[keys[j]] = pos
        return found

    def add(self, key: bytes, position: int, ts: int) -> None:
        self.recent[key] = position
        if ts > self.recent_ts:
            self.recent_ts = ts

    # --- snapshots ------------------------------------------------------------------------
    def capture(self) -> list[Chunk]:
        """The ids of ``recent`` as the next chunks, at most ``CHUNK_MAX_IDS`` each (the
        caller writes them, ``Chunk.encode``); they are looked up in their runs from now on."""
        if not self.recent:
            return []
        keys = list(self.recent)
        positions = list(self.recent.values())
        chunks = []
        for start in range(0, len(keys), CHUNK_MAX_IDS):
            part = keys[start:start + CHUNK_MAX_IDS]
            hi, lo = _halves(part)
            entries = np.empty(len(part), dtype=ENTRY)
            entries["hi"], entries["lo"] = hi, lo
            entries["pos"] = positions[start:start + CHUNK_MAX_IDS]
            entries["ts"] = self.recent_ts
            entries.sort(order=("hi", "lo"))
            self.chunk_seq += 1
            chunk = Chunk(self.chunk_seq, self.recent_ts, entries)
            self._add_chunk(chunk)
            chunks.append(chunk)
        self.recent, self.recent_ts = {}, -1
        return chunks

    def give_back(self, chunk: Chunk) -> None:
        """A captured chunk that was not written: its ids are recent again."""
        self.chunks.pop(chunk.seq, None)
        self.runs = [r for r in self.runs if r.entries is not chunk.entries]
        self.ram_ids -= len(chunk.entries)
        for e in chunk.entries:
            key = int(e["hi"]).to_bytes(8, "big") + int(e["lo"]).to_bytes(8, "big")
            self.recent.setdefault(key, int(e["pos"]))
        self.recent_ts = max(self.recent_ts, chunk.newest_ts)

    def seal(self, keep: Sequence[Chunk] = ()) -> None:
        """Merge the runs in RAM (but those of ``keep``, not written yet) into one sealed run."""
        kept = {id(c.entries) for c in keep}
        ram = [r for r in self.runs if r.entries is not None and id(r.entries) not in kept]
        if not ram:
            return
        merged = np.concatenate([r.entries for r in ram if r.entries is not None])
        merged.sort(order=("hi", "lo"))
        gone = {id(r) for r in ram}
        self.runs = [r for r in self.runs if id(r) not in gone]
        self.ram_ids -= len(merged)
        run = _Run(merged, self._next_run)
        self._next_run += 1
        run.seal(self.store)
        self.runs.append(run)

    def seal_due(self) -> bool:
        return self.ram_ids >= self.seal_at

    def _add_chunk(self, chunk: Chunk) -> None:
        self.chunks[chunk.seq] = chunk.newest_ts
        if len(chunk.entries):
            self.runs.append(_Run(chunk.entries))
            self.ram_ids += len(chunk.entries)

    # --- restore and expiry ---------------------------------------------------------------
    def load_chunk(self, chunk: Chunk) -> None:
        """A chunk read back from the changelog (sealed as they add up)."""
        self._add_chunk(chunk)
        self.chunk_seq = max(self.chunk_seq, chunk.seq)
        if self.seal_due():
            self.seal()

    def expire(self, floor: int) -> list[int]:
        """Drop the chunks whose newest ts is below ``floor``; their sequence numbers."""
        if floor <= self.floor:
            return []
        self.floor = floor
        gone = [seq for seq, newest in self.chunks.items() if newest < floor]
        for seq in gone:
            del self.chunks[seq]
        kept: list[_Run] = []
        for run in self.runs:
            if run.newest_ts >= floor:
                kept.append(run)
            elif run.entries is not None:
                self.ram_ids -= run.size
            else:
                self.store.delete_run(run.run_id, run.pages)
        self.runs = kept
        return gone

    def clear(self) -> None:
        self.store.clear()
