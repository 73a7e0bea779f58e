"""The dedup index: exact through sealing, page edges, expiry, a lost snapshot and a restore."""

from __future__ import annotations

import random

import orjson
import pytest

from streams.core import dedup as dedup_module
from streams.core.dedup import DedupIndex, MemoryRunStore, decode_chunk, id_key


def _key(i: int) -> bytes:
    return id_key("acme", f"e{i}")


def _snapshot(index: DedupIndex) -> list[bytes]:
    """Capture and 'write' the chunks, sealing as the snapshot would; their records."""
    chunks = index.capture()
    if index.seal_due():
        index.seal(keep=chunks)
    return [c.encode() for c in chunks]


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pages of 8 ids: a run of a few hundred ids spans many pages and page edges.
    monkeypatch.setattr(dedup_module, "PAGE_IDS", 8)


def test_every_id_found_after_sealing_and_no_other() -> None:
    index = DedupIndex(MemoryRunStore(), seal_at=100)
    seen = list(range(0, 1000, 2))
    for n, i in enumerate(seen):
        index.add(_key(i), i, ts=1_000 + n)
        if n % 37 == 0:
            _snapshot(index)
    _snapshot(index)
    assert any(r.entries is None for r in index.runs)  # some runs are sealed on the store
    assert any(r.entries is not None for r in index.runs)  # and the newest still in RAM
    keys = [_key(i) for i in range(1000)]
    found = index.older(keys)
    assert found == {_key(i): i for i in seen}


def test_equal_high_halves_across_a_page_edge_are_told_apart() -> None:
    index = DedupIndex(MemoryRunStore(), seal_at=1)
    # 20 keys sharing their first 8 bytes: they sort next to each other over three pages.
    keys = [b"\x01" * 8 + i.to_bytes(8, "big") for i in range(0, 40, 2)]
    for i, k in enumerate(keys):
        index.add(k, i, ts=5)
    _snapshot(index)
    index.seal()
    assert all(r.entries is None for r in index.runs)
    probe = [b"\x01" * 8 + i.to_bytes(8, "big") for i in range(40)]
    assert index.older(probe) == {k: i for i, k in enumerate(keys)}


def test_expired_chunks_are_gone_and_their_runs_deleted() -> None:
    store = MemoryRunStore()
    index = DedupIndex(store, seal_at=50)
    for i in range(300):
        index.add(_key(i), i, ts=i)
        if i % 60 == 59:
            _snapshot(index)
    _snapshot(index)
    gone = index.expire(floor=120)
    # every chunk whose newest ts is below 120 goes; ids of a kept chunk stay
    assert gone and all(seq not in index.chunks for seq in gone)
    found = index.older([_key(i) for i in range(300)])
    assert set(found) == {_key(i) for i in range(120, 300)}
    index.expire(floor=10_000)
    assert not index.runs and not store.pages


def test_a_chunk_given_back_is_recent_again() -> None:
    index = DedupIndex(MemoryRunStore())
    index.add(_key(1), 10, ts=7)
    [chunk] = index.capture()
    assert index.older([_key(1)]) == {_key(1): 10}
    index.give_back(chunk)
    assert index.recent == {_key(1): 10} and index.recent_ts == 7
    assert not index.runs and not index.chunks


def test_restore_from_the_chunk_records_equals_the_index() -> None:
    rng = random.Random(3)
    first = DedupIndex(MemoryRunStore(), seal_at=64)
    records: dict[int, bytes] = {}
    ids = rng.sample(range(10**9), 400)
    for n, i in enumerate(ids):
        first.add(_key(i), n, ts=n)
        if n % 50 == 49:
            seq0 = first.chunk_seq
            for j, data in enumerate(_snapshot(first)):
                records[seq0 + 1 + j] = data
    restored = DedupIndex(MemoryRunStore(), seal_at=64)
    for seq, data in records.items():
        restored.load_chunk(decode_chunk(seq, data))
    probe = [_key(i) for i in ids] + [_key(i) for i in range(50)]
    assert restored.older(probe) == first.older(probe)
    assert restored.chunk_seq == first.chunk_seq


def test_json_chunks_of_earlier_state_still_load() -> None:
    h = int.from_bytes(_key(5), "big")
    old = orjson.dumps([123, [[h >> 64, h & ((1 << 64) - 1), 42]]])
    chunk = decode_chunk(9, old)
    index = DedupIndex(MemoryRunStore())
    index.load_chunk(chunk)
    assert chunk.newest_ts == 123
    assert index.older([_key(5), _key(6)]) == {_key(5): 42}


def test_chunks_are_capped_in_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedup_module, "CHUNK_MAX_IDS", 10)
    index = DedupIndex(MemoryRunStore())
    for i in range(25):
        index.add(_key(i), i, ts=i)
    chunks = index.capture()
    assert [len(c.entries) for c in chunks] == [10, 10, 5]
    assert index.older([_key(i) for i in range(25)]) == {_key(i): i for i in range(25)}
