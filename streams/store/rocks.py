"""The dedup index's sealed runs in RocksDB (``rocksdict``), one key per page.

One database per worker under ``SOCIALPULSE_DATA_DIR``; keys are ``partition (4 bytes) | run
(8) | page (4)``, big-endian, so a partition's pages are one key range. Nothing here must survive
a restart: every run is rebuilt from the changelog's dedup chunks when a partition is assigned
(``streams.core.dedup``), so the database is opened fresh, without a write-ahead log (a crash
loses nothing the changelog does not hold), and its directory may be deleted at any time the
worker is down.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Sequence
from pathlib import Path

from rocksdict import (
    AccessType,
    BlockBasedOptions,
    Cache,
    Options,
    Rdict,
    WriteBatch,
    WriteOptions,
)

_KEY = struct.Struct(">IQI")
_PREFIX = struct.Struct(">I")
# Small memtables and cache: the pages are read rarely (only ids a filter lets through), so
# RAM spent here would be RAM the index was moved out of.
_WRITE_BUFFER_BYTES = 8 << 20
_BLOCK_CACHE_BYTES = 16 << 20


class RocksDatabase:
    """The worker's one RocksDB database, and a ``RunStore`` per partition on it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        shutil.rmtree(path, ignore_errors=True)  # runs are rebuilt from the changelog
        path.parent.mkdir(parents=True, exist_ok=True)
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_write_buffer_size(_WRITE_BUFFER_BYTES)
        opts.set_max_write_buffer_number(2)
        table = BlockBasedOptions()
        table.set_bloom_filter(10, False)
        table.set_block_cache(Cache(_BLOCK_CACHE_BYTES))
        opts.set_block_based_table_factory(table)
        self.db = Rdict(str(path), opts, access_type=AccessType.read_write())
        writes = WriteOptions()
        # a property at run time; rocksdict's stub declares it a method
        writes.disable_wal = True  # type: ignore[method-assign,assignment]
        self.db.set_write_options(writes)
        self._stores: dict[int, RocksRunStore] = {}

    def run_store(self, partition: int) -> RocksRunStore:
        store = self._stores.get(partition)
        if store is None:
            store = self._stores[partition] = RocksRunStore(self.db, partition)
        return store

    def close(self) -> None:
        self.db.close()


class RocksRunStore:
    """One partition's pages (``streams.core.dedup.RunStore``)."""

    def __init__(self, db: Rdict, partition: int) -> None:
        self.db = db
        self.partition = partition

    def put_run(self, run: int, pages: Sequence[bytes]) -> None:
        batch = WriteBatch(raw_mode=True)
        for i, page in enumerate(pages):
            batch.put(_KEY.pack(self.partition, run, i), page)
        self.db.write(batch)

    def page(self, run: int, page: int) -> bytes:
        value = self.db.get(_KEY.pack(self.partition, run, page))
        if value is None:
            raise KeyError(f"dedup run {run} page {page} of partition {self.partition}")
        return bytes(value)

    def delete_run(self, run: int, pages: int) -> None:
        self.db.delete_range(_KEY.pack(self.partition, run, 0),
                             _KEY.pack(self.partition, run + 1, 0))

    def clear(self) -> None:
        self.db.delete_range(_PREFIX.pack(self.partition), _PREFIX.pack(self.partition + 1))
