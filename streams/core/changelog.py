"""The state changelog: a snapshot of what changed, encoded a slice at a time, and the restore
of a partition from its records.

A flush writes a snapshot's ``state`` records (buckets, account cores, dedup chunks and
tombstones) first, its ``marks`` only once Kafka acknowledged those, and acks the input records
up to ``offsets`` only after the marks: a mark promises that everything below it is in the
changelog (SPEC §5). ``streams.worker.flusher`` does the writing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from streams.core.aggregates import (
    ADMITTED,
    MENTIONS,
    UNDECIDED,
    AccountCore,
    Bucket,
    PartitionMark,
)
from streams.core.dedup import Chunk, DedupIndex, decode_chunk
from streams.core.keys import (
    BUCKET,
    CORE,
    DEDUP_CHUNK,
    MANIFEST,
    MARK,
    MESSAGES,
    TOTALS,
    BucketKey,
    MarketKey,
    bucket_key,
    chunk_key,
    core_key,
    manifest_key,
    mark_key,
    message_part_key,
    parse_state_key,
    totals_key,
)
from streams.core.labels import OTHER_ACCOUNT, market_of_other
from streams.core.manifest import StateManifest
from streams.core.partition import MarketSlot, PartitionState
from streams.core.totals import Totals


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
    """Each key's newest record, where the newest was: a part stays ahead of the core that
    lists it, a core ahead of its buckets."""
    newest: dict[tuple[int, bytes], StateRecord] = {}
    for r in records:
        newest.pop((r.partition, r.key), None)
        newest[(r.partition, r.key)] = r
    return list(newest.values())


class _Work(NamedTuple):
    partition: int
    ps: PartitionState
    buckets: set[BucketKey]
    cores: set[str]
    totals: set[str]


class _NewChunk(NamedTuple):
    partition: int
    ps: PartitionState
    chunk: Chunk


class SnapshotEncoder:
    """Encodes everything changed since the last snapshot, yielding every few records so that
    the caller can let events in meanwhile.

    What is dirty, the marks and the offsets are all taken at the start, in one step. A record
    encoded later may already hold newer events than its mark: harmless, since every record
    carries its own ``applied`` offset (and stays dirty for the next snapshot).
    """

    RECORDS_PER_SLICE = 200

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
            chunks.extend(_NewChunk(p, ps, c) for c in ps.dedup.capture())
            work.append(_Work(p, ps, ps.dirty_buckets, ps.dirty_cores, ps.dirty_totals))
            ps.dirty_buckets = set()
            ps.dirty_cores = set()
            ps.dirty_totals = set()
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
            for new in chunks:
                state.append(StateRecord(new.partition, chunk_key(new.partition, new.chunk.seq),
                                         new.chunk.encode()))
                yield
            # Sealing moves chunks from RAM to the store: only those written before (or in the
            # backlog), never one this snapshot may still give back.
            for item in work:
                if item.ps.dedup.seal_due():
                    item.ps.dedup.seal(keep=[new.chunk for new in chunks if new.ps is item.ps])
                    yield
            # Cores before buckets (and dedup chunks before both): the changelog partition keeps
            # this order, so a flush cut short never leaves a bucket whose account decision or
            # first-seen ids are missing (a replay would decide them again, maybe otherwise).
            for p, ps, buckets, cores, totals in work:
                for account in cores:
                    core = ps.cores.get(account)
                    if core is not None:
                        # its changed message parts, then the core that lists them, then the
                        # parts they supersede (the core is the commit point)
                        written, superseded = core.encode_parts()
                        for part, gen, data in written:
                            state.append(StateRecord(
                                p, message_part_key(p, account, part, gen), data))
                        state.append(StateRecord(p, core_key(p, account), core.encode()))
                        for part, gen in superseded:
                            state.append(StateRecord(
                                p, message_part_key(p, account, part, gen), None))
                    done += 1
                    if done % self.RECORDS_PER_SLICE == 0:
                        yield
                # Totals and buckets after the cores: they are under the label a core decided.
                # Each is looked up when its turn comes (None: released or expired meanwhile,
                # its tombstone is queued).
                later: Iterator[tuple[bytes, Totals | Bucket | None]] = itertools.chain(
                    ((totals_key(p, label), ps.totals.get(label)) for label in totals),
                    ((bucket_key(p, k), ps.buckets.get(k)) for k in buckets))
                for key, record in later:
                    if record is not None:
                        state.append(StateRecord(p, key, record.encode()))
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
        item.ps.dirty_totals |= item.totals
        for account in item.cores:
            core = item.ps.cores.get(account)
            if core is not None:  # parts written under generations the changelog never got
                core.dirty_parts = set(range(core.n_parts))
    for ps, deleted, markets in dead_keys:
        ps.dirty_deleted[:0] = deleted
        ps.dirty_markets |= markets
    for ps, before in marked:
        ps.mark.flushed, ps.mark.fingerprint = before.flushed, before.fingerprint
        ps.mark.flushed_rekeyed = before.flushed_rekeyed
    for new in chunks:
        new.ps.dedup.give_back(new.chunk)


def restore_partition(
    items: Iterable[tuple[bytes, bytes]], market_of: Callable[[str], str],
    dedup: DedupIndex | None = None,
) -> PartitionState:
    """Rebuild one partition from its state records (after faust recovered the table);
    ``dedup``: an empty index to load the dedup chunks into."""
    ps = PartitionState(dedup)
    parts: dict[tuple[str, int, int], tuple[bytes, bytes]] = {}
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
        elif k.kind == TOTALS:
            ps.totals[k.account] = Totals.decode(value)
        elif k.kind == MESSAGES:
            parts[(k.account, k.part, k.seq)] = (key, value)
        elif k.kind == DEDUP_CHUNK:
            ps.dedup.load_chunk(decode_chunk(k.seq, value))
        elif k.kind == MARK:
            ps.mark = PartitionMark.decode(value)
        elif k.kind == MANIFEST:
            ps.manifest = StateManifest.decode(value)
    for account, core in ps.cores.items():
        for part, gen in core.part_gens.items():
            found = parts.pop((account, part, gen), None)
            if found is not None:
                core.load_part(found[1])
        if core.dirty_parts:  # messages of state written before parts: moved into parts
            ps.dirty_cores.add(account)
    for key, _value in parts.values():  # superseded: a flush cut short before their tombstones
        ps.dirty_deleted.append(key)
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
