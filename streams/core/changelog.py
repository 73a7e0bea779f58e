"""The state changelog: a snapshot of what changed, encoded a slice at a time, and the restore
of a partition from its records.

A flush writes a snapshot's ``state`` records (buckets, account cores, dedup chunks and
tombstones) first, its ``marks`` only once Kafka acknowledged those, and acks the input records
up to ``offsets`` only after the marks: a mark promises that everything below it is in the
changelog (SPEC §5). ``streams.worker.flusher`` does the writing.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from streams.core.aggregates import (
    ADMITTED,
    MENTIONS,
    UNDECIDED,
    AccountCore,
    Bucket,
    PartitionMark,
)
from streams.core.keys import (
    BUCKET,
    CORE,
    DEDUP_CHUNK,
    MANIFEST,
    MARK,
    BucketKey,
    MarketKey,
    bucket_key,
    chunk_key,
    core_key,
    manifest_key,
    mark_key,
    parse_state_key,
)
from streams.core.labels import OTHER_ACCOUNT, market_of_other
from streams.core.manifest import StateManifest
from streams.core.partition import DedupChunk, MarketSlot, PartitionState

_LOW64 = (1 << 64) - 1


class StateRecord(NamedTuple):
    """One record to write: to the changelog (or market topic) partition ``partition``; a
    ``None`` value is a tombstone."""

    partition: int
    key: bytes
    value: bytes | None


@dataclass
class Snapshot:
    """What one flush must write, in this order: ``state``, then ``marks``, then the acks up to
    ``offsets``. ``markets`` are this worker's per-partition mention totals by market, for the
    other workers' share of voice (absolute values, so rewriting one is harmless); they go with
    the marks."""

    state: list[StateRecord]
    marks: list[StateRecord]
    offsets: dict[int, int]  # partition -> last input offset the snapshot covers
    markets: list[StateRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.state) + len(self.marks) + len(self.markets)

    def absorb(self, newer: Snapshot) -> None:
        """Take in a later snapshot that has not been written either: a key keeps its newest
        record (every record is an absolute value, a tombstone included), so a backlog of
        unwritten snapshots is bounded by the state's keys, not by the time the broker is away."""
        self.state = _newest_per_key([*self.state, *newer.state])
        self.marks = _newest_per_key([*self.marks, *newer.marks])
        self.markets = _newest_per_key([*self.markets, *newer.markets])
        for p, last in newer.offsets.items():
            self.offsets[p] = max(last, self.offsets.get(p, -1))

    def without(self, partitions: set[int]) -> None:
        """Drop the records of ``partitions`` (revoked: their next owner writes them)."""
        self.state = [r for r in self.state if r.partition not in partitions]
        self.marks = [r for r in self.marks if r.partition not in partitions]
        self.markets = [r for r in self.markets if r.partition not in partitions]
        self.offsets = {p: o for p, o in self.offsets.items() if p not in partitions}


def _newest_per_key(records: list[StateRecord]) -> list[StateRecord]:
    newest = {(r.partition, r.key): r for r in records}
    return list(newest.values())


class _Work(NamedTuple):
    partition: int
    ps: PartitionState
    buckets: set[BucketKey]
    cores: set[str]


class _NewChunk(NamedTuple):
    partition: int
    seq: int
    newest_ts: int
    ids: list[tuple[int, int]]
    hashes: list[int]  # the chunk's hash list, filled in while it is encoded


class SnapshotEncoder:
    """Encodes everything changed since the last snapshot, yielding every few records so that
    the caller can let events in meanwhile.

    What is dirty, the marks and the offsets are all taken at the start, in one step. A record
    encoded later may already hold newer events than its mark: harmless, since every record
    carries its own ``applied`` offset (and stays dirty for the next snapshot).
    """

    RECORDS_PER_SLICE = 200
    IDS_PER_SLICE = 5_000

    def steps(self, partitions: Mapping[int, PartitionState]) -> Generator[None, None, Snapshot]:
        state: list[StateRecord] = []
        marks: list[StateRecord] = []
        markets: list[StateRecord] = []
        offsets: dict[int, int] = {}
        work: list[_Work] = []
        chunks: list[_NewChunk] = []
        marked: list[tuple[PartitionState, PartitionMark]] = []  # and the mark before
        unwritten: list[PartitionState] = []  # whose manifest this snapshot writes
        dead_keys: list[tuple[PartitionState, list[bytes], set[MarketSlot]]] = []
        for p, ps in partitions.items():
            dead_keys.append((ps, ps.dirty_deleted, ps.dirty_markets))
            for market, res, idx in ps.dirty_markets:
                for platform, n in ps.market_totals.get((market, res, idx), {}).items():
                    key = MarketKey(p, market, platform, res, idx).encode()
                    markets.append(StateRecord(p, key, str(int(n)).encode()))
            ps.dirty_markets = set()
            for dead in ps.dirty_deleted:
                state.append(StateRecord(p, dead, None))
            ps.dirty_deleted = []
            if ps.new_ids:
                ps.chunk_seq += 1
                # The hashes are filled in below, between slices (eviction waits for the flush).
                hashes: list[int] = []
                ps.chunks[ps.chunk_seq] = DedupChunk(ps.new_ids_ts, hashes)
                chunks.append(_NewChunk(p, ps.chunk_seq, ps.new_ids_ts, ps.new_ids, hashes))
                ps.new_ids = []
                ps.new_ids_ts = -1
            work.append(_Work(p, ps, ps.dirty_buckets, ps.dirty_cores))
            ps.dirty_buckets = set()
            ps.dirty_cores = set()
            if ps.manifest_dirty and ps.manifest is not None:
                # Before the first mark: a mark is only ever read beside its manifest.
                state.append(StateRecord(p, manifest_key(p), ps.manifest.encode()))
                ps.manifest_dirty = False
                unwritten.append(ps)
            mark = ps.mark
            if ps.last_offset > mark.flushed or ps.rekeyed_last > mark.flushed_rekeyed:
                marked.append((ps, PartitionMark(mark.stream_time, mark.flushed,
                                                 mark.fingerprint, mark.flushed_rekeyed)))
                mark.flushed = ps.last_offset
                mark.fingerprint = ps.last_fingerprint
                mark.flushed_rekeyed = ps.rekeyed_last
                marks.append(StateRecord(p, mark_key(p), mark.encode()))
                offsets[p] = ps.last_offset
        try:
            done = 0
            for chunk in chunks:
                # 128-bit hashes as two 64-bit halves: orjson writes those natively
                triples: list[list[int]] = []
                ids = chunk.ids
                for i in range(0, len(ids), self.IDS_PER_SLICE):
                    part = ids[i:i + self.IDS_PER_SLICE]
                    triples.extend([h >> 64, h & _LOW64, o] for h, o in part)
                    chunk.hashes.extend(h for h, _o in part)
                    yield
                state.append(StateRecord(chunk.partition, chunk_key(chunk.partition, chunk.seq),
                                         orjson.dumps([chunk.newest_ts, triples])))
            # Cores before buckets (and dedup chunks before both): the changelog partition keeps
            # this order, so a flush cut short never leaves a bucket whose account decision or
            # first-seen ids are missing (a replay would decide them again, maybe otherwise).
            for p, ps, buckets, cores in work:
                for account in cores:
                    core = ps.cores.get(account)
                    if core is not None:
                        state.append(StateRecord(p, core_key(p, account), core.encode()))
                    done += 1
                    if done % self.RECORDS_PER_SLICE == 0:
                        yield
                for k in buckets:
                    b = ps.buckets.get(k)
                    if b is not None:  # None: expired meanwhile, its tombstone is queued
                        state.append(StateRecord(p, bucket_key(p, k), b.encode()))
                    done += 1
                    if done % self.RECORDS_PER_SLICE == 0:
                        yield
        except BaseException:
            # Nothing captured may be lost (an encoding error, a cancelled flush): what was taken
            # for this snapshot is dirty again and the marks are back where the changelog is.
            _give_back(work, chunks, marked, dead_keys)
            for ps in unwritten:
                ps.manifest_dirty = True
            raise
        return Snapshot(state, marks, offsets, markets)


def _give_back(
    work: list[_Work], chunks: list[_NewChunk], marked: list[tuple[PartitionState, PartitionMark]],
    dead_keys: list[tuple[PartitionState, list[bytes], set[MarketSlot]]],
) -> None:
    for item in work:
        item.ps.dirty_buckets |= item.buckets
        item.ps.dirty_cores |= item.cores
    for ps, deleted, markets in dead_keys:
        ps.dirty_deleted[:0] = deleted
        ps.dirty_markets |= markets
    for ps, before in marked:
        ps.mark.flushed, ps.mark.fingerprint = before.flushed, before.fingerprint
        ps.mark.flushed_rekeyed = before.flushed_rekeyed
    for chunk in chunks:
        ps = next(w.ps for w in work if w.partition == chunk.partition)
        ps.chunks.pop(chunk.seq, None)
        ps.new_ids[:0] = chunk.ids
        ps.new_ids_ts = max(ps.new_ids_ts, chunk.newest_ts)


def restore_partition(
    items: Iterable[tuple[bytes, bytes]], market_of: Callable[[str], str]
) -> PartitionState:
    """Rebuild one partition from its state records (after faust recovered the table)."""
    ps = PartitionState()
    for key, value in items:
        k = parse_state_key(key)
        if k.kind == BUCKET:
            assert k.bucket is not None
            ps.buckets[k.bucket] = Bucket.decode(value)
        elif k.kind == CORE:
            core = ps.cores[k.account] = AccountCore.decode(value)
            if k.account == OTHER_ACCOUNT:
                # not an account: the label values admitted for the overflowed ones (its
                # label was ADMITTED in state written before admission per partition)
                core.label = UNDECIDED
            elif core.label == ADMITTED:
                ps.admitted.add(k.account)
        elif k.kind == DEDUP_CHUNK:
            newest_ts, triples = orjson.loads(value)
            ids = [((hi << 64) | lo, off) for hi, lo, off in triples]
            ps.dedup.update(ids)
            ps.chunks[k.seq] = DedupChunk(newest_ts, [h for h, _off in ids])
            ps.chunk_seq = max(ps.chunk_seq, k.seq)
        elif k.kind == MARK:
            ps.mark = PartitionMark.decode(value)
        elif k.kind == MANIFEST:
            ps.manifest = StateManifest.decode(value)
    # Republished once (absolute totals): a crash may have come between a mark and them.
    for (account, res, idx), b in ps.buckets.items():
        market = market_of_other(account)
        if market is not None:
            ps.others.add(account)
        for platform, agg in b.platforms.items():
            if agg.counts[MENTIONS]:
                ps.add_mentions(market or market_of(account), res, idx, platform,
                                agg.counts[MENTIONS])
    ps.last_offset, ps.last_fingerprint = ps.mark.flushed, ps.mark.fingerprint
    ps.rekeyed_last = ps.mark.flushed_rekeyed
    return ps
