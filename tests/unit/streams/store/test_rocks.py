"""The RocksDB run store: pages by partition and run, deleted by run and by partition."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.core.dedup import DedupIndex, id_key
from streams.store.rocks import RocksDatabase


def test_pages_round_trip_and_deletes_are_scoped(tmp_path: Path) -> None:
    db = RocksDatabase(tmp_path / "dedup")
    a, b = db.run_store(0), db.run_store(1)
    a.put_run(0, [b"p0", b"p1"])
    a.put_run(1, [b"q0"])
    b.put_run(0, [b"r0"])
    assert (a.page(0, 1), a.page(1, 0), b.page(0, 0)) == (b"p1", b"q0", b"r0")
    a.delete_run(0, 2)
    with pytest.raises(KeyError):
        a.page(0, 0)
    assert a.page(1, 0) == b"q0"
    a.clear()
    with pytest.raises(KeyError):
        a.page(1, 0)
    assert b.page(0, 0) == b"r0"  # another partition's pages stay
    db.close()


def test_a_new_database_starts_empty(tmp_path: Path) -> None:
    db = RocksDatabase(tmp_path / "dedup")
    db.run_store(0).put_run(0, [b"x"])
    db.close()
    again = RocksDatabase(tmp_path / "dedup")  # runs are rebuilt from the changelog
    with pytest.raises(KeyError):
        again.run_store(0).page(0, 0)
    again.close()


def test_an_index_sealed_on_rocksdb_finds_its_ids(tmp_path: Path) -> None:
    db = RocksDatabase(tmp_path / "dedup")
    index = DedupIndex(db.run_store(3), seal_at=10)
    for i in range(3000):
        index.add(id_key("acme", f"e{i}"), i, ts=i)
    index.capture()
    index.seal()
    assert index.runs and all(r.entries is None for r in index.runs)
    probe = [id_key("acme", f"e{i}") for i in range(0, 6000, 7)]
    assert index.older(probe) == {id_key("acme", f"e{i}"): i for i in range(0, 3000, 7)}
    db.close()
