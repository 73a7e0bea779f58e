"""The aggregation engine: validated events in, bucketed KPI state out, no Kafka in sight.

The worker feeds it each partition's fetched records with their offsets; the flusher asks it for
a snapshot of what changed, writes that to the changelog and only then acks the records; the
series are read from it. Its collaborators each do one thing: ``LabelCaps`` (admission under the
caps), ``streams.core.rules`` (what each event type adds), ``Expiry`` (what leaves the windows),
``SnapshotEncoder`` and ``restore_partition`` (the changelog). Keeping them in plain classes,
with the clock as an argument, is what lets unit tests drive every rule (late, duplicate, replay
after a crash, window edges, both clocks) directly.

Every partition's state has two sources, each read in offset order: the input topic's partition,
and the same partition of the repartition topic, which holds the records some other input
partition read although their account lives here (``streams.core.partitioner``: a null key, or a
key that is not the account; SPEC §1). Every offset-based rule below is kept per source.

Per-record rules, in order (SPEC §1, §2, §5):

1. a record at or below its source's last flushed offset was fully applied before a crash:
   skipped (``replayed``);
2. invalid -> rejected (dead-letter topic);
3. an input record whose account lives in another partition -> forwarded there (``forwards``),
   nothing else: its home partition applies it, with its own clock;
4. ``ts`` older than the partition's clock minus (largest window + grace) -> late, not applied;
5. the partition's stream time advances to ``ts``;
6. an ``(account, event_id)`` already applied from another record -> duplicate;
7. the account's label decided (``LabelCaps``), once per retention horizon;
8. applied to each record (bucket per window, account core) whose ``applied`` offset for the
   record's source is below it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import NamedTuple, Protocol

from schemas.events import Event, Rejected
from schemas.validate import parse
from streams.core.aggregates import (
    ADMITTED,
    OVERFLOW,
    RANKING_OF,
    UNDECIDED,
    AccountCore,
    Bucket,
    record_fingerprint,
)
from streams.core.caps import LabelCaps
from streams.core.changelog import Snapshot, SnapshotEncoder, restore_partition
from streams.core.dedup import DedupIndex, MemoryRunStore, RunStore, id_key
from streams.core.expiry import Expiry
from streams.core.labels import OTHER_ACCOUNT
from streams.core.manifest import StateManifest
from streams.core.outcome import DeadLetter, Forward, Outcome
from streams.core.partition import PartitionState, rekeyed_position
from streams.core.partitioner import home_partition
from streams.core.rules import BUCKET_RULES, CORE_TYPES, AccountRules, BucketRule, apply_campaign
from streams.core.steps import run
from streams.core.totals import TOTAL_RULES, Totals
from streams.core.windows import Window, WindowFloors
from streams.settings import Settings


class InputRecord(Protocol):
    """What the engine reads of an input record (an ``aiokafka`` ``ConsumerRecord`` has it)."""

    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class _Raw(NamedTuple):
    offset: int
    key: bytes | None
    value: bytes | None


def wall_ms() -> int:
    return int(time.time() * 1000)


class Engine:
    """Applies events of the partitions this worker owns; see the module docstring for rules."""

    def __init__(
        self, settings: Settings, now_ms: Callable[[], int] = wall_ms,
        run_store: Callable[[int], RunStore] | None = None,
    ) -> None:
        """``run_store``: where partition ``p``'s sealed dedup runs live (the worker passes
        RocksDB's, ``streams.store.rocks``; by default they stay in RAM)."""
        self.settings = settings
        self.run_store: Callable[[int], RunStore] = run_store or (lambda p: MemoryRunStore())
        self._stores: dict[int, RunStore] = {}
        self.windows: tuple[Window, ...] = settings.window_specs
        self.retention_ms = settings.retention_ms
        self.dedup_ms = max(int(settings.dedup_horizon_seconds * 1000), self.retention_ms)
        self.event_clock = settings.clock == "event"
        self.now_ms = now_ms
        self.partitions: dict[int, PartitionState] = {}
        self.max_record_bytes = settings.max_record_bytes
        self.future_ms = int(settings.future_tolerance_seconds * 1000)
        self.caps = LabelCaps(settings, self.windows[-1].bucket_ms, self.retention_ms)
        self.topic_partitions = settings.topic_partitions
        self.account_rules = AccountRules(self.windows, self.retention_ms,
                                          settings.business_hours_of)
        self.expiry = Expiry(self.windows, self.retention_ms, self.dedup_ms, self.caps)
        self.encoder = SnapshotEncoder()
        self._floors = WindowFloors(self.windows)
        # What every partition's state must have been built with (``restore`` checks it).
        self.manifest = StateManifest.of(self.windows, settings.input_topic,
                                         settings.topic_partitions)
        self.wall_high = -1  # the highest wall-clock reading ingest was given
        self.batches = 0  # fetched batches ingested: readers tell fresh answers from stale ones
        self._bucket_rules: dict[str, BucketRule] = BUCKET_RULES

    # --- clocks -------------------------------------------------------------------------------
    def expiry_clock(self, ps: PartitionState) -> int:
        """Where a partition's expiry may cut: its clock, but never past the newest event time
        it applied. A wall clock that jumps ahead (an NTP step, a VM resumed) must not delete
        windows that the event times seen do not justify; an idle partition's old buckets wait
        for its next event (the reads end windows at the clock anyway)."""
        if self.event_clock:
            return ps.mark.stream_time
        return min(self.now_ms(), ps.mark.stream_time)

    def clock(self) -> int:
        """Where windows end now: wall time, or the newest event time of the owned partitions."""
        if not self.event_clock:
            return self.now_ms()
        return self.newest_event_ms()

    def newest_event_ms(self) -> int:
        return max((ps.mark.stream_time for ps in self.partitions.values()), default=-1)

    # --- ingest -------------------------------------------------------------------------------
    def partition(self, p: int) -> PartitionState:
        ps = self.partitions.get(p)
        if ps is None:
            ps = self.partitions[p] = PartitionState(DedupIndex(self._store(p)))
            ps.manifest, ps.manifest_dirty = self.manifest, True
        return ps

    def _store(self, p: int) -> RunStore:
        """Partition ``p``'s run store, emptied: its runs are rebuilt from the changelog."""
        store = self._stores.get(p)
        if store is None:
            store = self._stores[p] = self.run_store(p)
        store.clear()
        return store

    def ingest_batch(
        self,
        records: Iterable[tuple[int, int, bytes | None, bytes | None]],
        out: Outcome | None = None,
    ) -> Outcome:
        """Apply ``(partition, offset, key, value)`` records in order, in process: a record
        outside its account's home partition is applied there right away, as the next record of
        that partition's repartition log (the worker writes it to the topic instead)."""
        out = out or Outcome()
        wall = self.now_ms()
        for p, offset, key, raw in records:
            self.ingest(p, offset, key, raw, wall, out)
            while out.forwards:
                f = out.forwards.pop(0)
                home = self.partition(f.partition)
                self.ingest(f.partition, home.rekeyed_last + 1, f.key, f.value, wall, out,
                            rekeyed=True)
                out.rekeyed += 1
        return out

    def resume_offset(self, p: int, first: int, rekeyed: bool = False) -> int | None:
        """None when a batch starting at offset ``first`` continues what partition ``p`` applied
        (or overlaps it); otherwise the offset to read the partition again from (-1: its first
        offset, when nothing was applied). Every state record skips offsets at or below its own
        ``applied``, which is exact only if a partition's records are applied without a hole.

        A batch that still starts past that offset right after a read from there has a real hole
        in front of it (records deleted by retention, transaction markers): it is accepted.
        """
        ps = self.partitions.get(p) or self.partition(p)
        last = ps.rekeyed_last if rekeyed else ps.last_offset
        rewound_to = ps.rekeyed_rewound_to if rekeyed else ps.rewound_to
        expected = last + 1 if last >= 0 else -1
        accept = 0 <= first <= max(expected, 0) or rewound_to == expected
        if rekeyed:
            ps.rekeyed_rewound_to = None if accept else expected
        else:
            ps.rewound_to = None if accept else expected
        return None if accept else expected

    def ingest_records(
        self, p: int, records: Sequence[InputRecord], wall: int, out: Outcome,
        rekeyed: bool = False,
    ) -> None:
        """Apply one partition's fetched batch, in offset order (the worker's hot path).

        ``rekeyed``: the records come from the repartition topic (already in their home)."""
        ps = self.partitions.get(p) or self.partition(p)
        self.batches += 1
        flushed = ps.mark.flushed_rekeyed if rekeyed else ps.mark.flushed
        max_bytes, future_ms = self.max_record_bytes, self.future_ms
        # "In the future" is measured from the later of the wall clock and the newest event time
        # applied, that one capped at the highest wall reading seen: a wall clock stepped back
        # does not turn valid events into future ones, and events cannot walk time forward.
        if wall > self.wall_high:
            self.wall_high = wall
        now = max(wall, min(ps.mark.stream_time, self.wall_high))
        rejected = out.rejected.append
        forward = out.forwards.append
        partitions = self.topic_partitions
        replayed = 0
        valid: list[tuple[int, Event]] = []
        keep = valid.append
        for r in records:
            offset = r.offset
            if offset <= flushed:
                replayed += 1
                continue
            raw = r.value
            ev = parse(raw if raw is not None else b"", now_ms=now, max_bytes=max_bytes,
                       future_tolerance_ms=future_ms)
            if isinstance(ev, Rejected):
                rejected(DeadLetter(p, offset, r.key, raw or b"", ev, rekeyed))
                continue
            if not rekeyed:
                home = home_partition(ev.account, partitions)
                if home != p:
                    forward(Forward(home, ev.account.encode(), raw or b"", p, offset))
                    continue
            keep((offset, ev))
        if valid:
            # The index's older ids are looked up once for the whole batch (its runs hold still
            # until the next snapshot); ids the batch itself adds are in ``recent``.
            keys = [id_key(ev.account, ev.event_id) for _offset, ev in valid]
            older = ps.dedup.older(keys)
            apply = self._apply
            for (offset, ev), key in zip(valid, keys, strict=True):
                apply(ps, p, offset, ev, wall, out, rekeyed, key, older)
        if rekeyed:
            out.rekeyed_records += len(records)
        else:
            out.records += len(records)
        out.replayed += replayed
        if not records:
            return
        if rekeyed:
            if records[-1].offset > ps.rekeyed_last:
                ps.rekeyed_last = records[-1].offset
        elif records[-1].offset > ps.last_offset:
            ps.last_offset = records[-1].offset
            ps.last_fingerprint = record_fingerprint(records[-1].value)

    def ingest(
        self, p: int, offset: int, key: bytes | None, raw: bytes | None, wall: int, out: Outcome,
        rekeyed: bool = False,
    ) -> None:
        """Apply one record; ``wall`` is the caller's clock reading (one per batch is enough)."""
        self.ingest_records(p, (_Raw(offset, key, raw),), wall, out, rekeyed)

    def _apply(
        self, ps: PartitionState, p: int, offset: int, ev: Event, wall: int, out: Outcome,
        rekeyed: bool, key: bytes, older: dict[bytes, int],
    ) -> None:
        mark = ps.mark
        clock = mark.stream_time if self.event_clock else wall
        ts = ev.ts
        if ts < clock - self.retention_ms:
            out.late += 1
            return
        if ts > mark.stream_time:
            mark.stream_time = ts
            if self.event_clock:
                clock = ts
        account = ev.account
        position = rekeyed_position(offset) if rekeyed else offset
        dedup = ps.dedup
        first = dedup.recent.get(key)
        if first is None:
            first = older.get(key)
        if first is not None and first != position:
            out.duplicates += 1
            return
        if first is None:
            dedup.add(key, position, ts)
        core = ps.cores.get(account)
        if core is None:
            core = ps.cores[account] = AccountCore()
            ps.dirty_cores.add(account)
        applied = core.applied_rekeyed if rekeyed else core.applied
        seen = ts // self.caps.decision_ms
        if seen > core.seen_bucket:
            if core.label != UNDECIDED and self.caps.lapsed(core, clock):
                self.caps.release(ps, p, account, core)  # quiet for the horizon: decided anew
            core.seen_bucket = seen
            ps.dirty_cores.add(account)
        if core.label == UNDECIDED:
            self.caps.decide(ps, p, account, core, clock)
        platform = ev.platform  # the event's own, before a cap may relabel it
        if (core.label == ADMITTED and platform in core.platforms
                and (ev.campaign is None or ev.campaign in core.campaigns)
                and (ev.goal is None or ev.goal in core.goals)
                and (ev.currency is None or ev.currency in core.currencies)
                and (ev.agent is None or ev.agent in core.agents)
                and (ev.team is None or ev.team in core.teams)):
            label = account  # everything admitted already (most events)
        else:
            label = self.caps.relabel(ps, core, ev, offset, rekeyed, out)
        etype = ev.type
        out.applied[etype] = out.applied.get(etype, 0) + 1
        # Lifetime totals, by arrival: whatever window the event's time falls in (or none).
        totals = ps.totals.get(label)
        if totals is None:
            totals = ps.totals[label] = Totals()
        if rekeyed:
            totals_fresh = offset > totals.applied_rekeyed
            if totals_fresh:
                totals.applied_rekeyed = offset
        else:
            totals_fresh = offset > totals.applied
            if totals_fresh:
                totals.applied = offset
        if totals_fresh:
            ps.dirty_totals.add(label)
            TOTAL_RULES[etype](totals.platform(ev.platform), ev)
        rule = self._bucket_rules.get(etype)
        floors = self._floors.at(clock)
        market = self.settings.market_of(account) if etype == "mention" else ""
        # Top posts are ranked per account: not for "_other", which stands for many.
        ranking = RANKING_OF.get(etype) if ev.post_id is not None and label == account else None
        post_id = ev.post_id or ""
        for res, w in enumerate(self.windows):
            idx = ts // w.bucket_ms
            if idx < floors[res]:
                continue  # already outside this window for good
            k = (label, res, idx)
            b = ps.buckets.get(k)
            if b is None:
                b = ps.buckets[k] = Bucket()
            if rekeyed:
                if offset <= b.applied_rekeyed:
                    continue
                b.applied_rekeyed = offset
            else:
                if offset <= b.applied:
                    continue
                b.applied = offset
            ps.dirty_buckets.add(k)
            if rule is not None:
                rule(b.platform(ev.platform), ev)
            if market:
                ps.add_mentions(market, res, idx, ev.platform, 1)
            if ev.campaign is not None:
                apply_campaign(b, ev)
            if ranking is not None:
                b.add_post(ranking, post_id)
        if offset > applied and etype in CORE_TYPES:
            if rekeyed:
                core.applied_rekeyed = offset
            else:
                core.applied = offset
            ps.dirty_cores.add(account)
            self.account_rules.apply(core, ev, clock, platform)

    # --- expiry and durability ----------------------------------------------------------------
    def evict_steps(self) -> Generator[None, None, None]:
        """Drop what fell out of every window, one partition per step; the tombstones go out
        with the next snapshot. Separate from the snapshot because it may pause between
        partitions, which the snapshot's capture must not."""
        for p, ps in list(self.partitions.items()):
            if self.partitions.get(p) is ps:  # not revoked meanwhile
                self.expiry.evict(p, ps, self.expiry_clock(ps))
            yield

    def snapshot_steps(self) -> Generator[None, None, Snapshot]:
        """Everything changed since the last snapshot (``SnapshotEncoder.steps``)."""
        return self.encoder.steps(self.partitions)

    def snapshot(self) -> Snapshot:
        """Expire, then encode everything changed since the last snapshot, in one go."""
        run(self.evict_steps())
        return run(self.snapshot_steps())

    def floors(self, p: int) -> list[int]:
        """Per resolution, the lowest bucket index partition ``p`` still keeps (expiry's)."""
        ps = self.partitions.get(p)
        clock = self.expiry_clock(ps) if ps is not None else -1
        return [w.first_bucket(clock) for w in self.windows]

    def restore(self, p: int, items: Iterable[tuple[bytes, bytes]]) -> PartitionState:
        """Rebuild partition ``p`` from its state records (after faust recovered the table).

        Raises ``StateMismatch`` (one line naming the setting) when the state was built with
        other settings; the partition is then left out. State without a manifest (empty, or
        written before manifests existed) is taken as built with these settings."""
        ps = restore_partition(items, self.settings.market_of, DedupIndex(self._store(p)))
        if ps.manifest is not None:
            ps.manifest.check(self.manifest, p)
        else:
            ps.manifest, ps.manifest_dirty = self.manifest, True
        self.partitions[p] = ps
        return ps

    def drop(self, p: int) -> None:
        """Forget a revoked partition: its new owner rebuilds it from the changelog."""
        ps = self.partitions.pop(p, None)
        if ps is not None:
            ps.dedup.clear()

    # --- reading ------------------------------------------------------------------------------
    def accounts(self) -> list[str]:
        """The exported accounts: those holding a slot, and ``_other`` for the overflowed."""
        seen: set[str] = set()
        for ps in self.partitions.values():
            seen.update(ps.admitted)
            if ps.others or any(c.label == OVERFLOW for c in ps.cores.values()):
                seen.add(OTHER_ACCOUNT)
        return sorted(seen)

    def iter_cores(self, account: str) -> Iterator[AccountCore]:
        """The cores behind an exported account: its own, or for ``_other`` those of every
        overflowed account."""
        other = account == OTHER_ACCOUNT
        for ps in self.partitions.values():
            if other:
                yield from (c for c in ps.cores.values() if c.label == OVERFLOW)
                continue
            core = ps.cores.get(account)
            if core is not None and core.label == ADMITTED:
                yield core

    def iter_named_cores(self, account: str) -> Iterator[tuple[str, AccountCore]]:
        """``iter_cores`` with each core's own account name."""
        other = account == OTHER_ACCOUNT
        for ps in self.partitions.values():
            if other:
                yield from ((n, c) for n, c in ps.cores.items() if c.label == OVERFLOW)
                continue
            core = ps.cores.get(account)
            if core is not None and core.label == ADMITTED:
                yield account, core

    def window_buckets(self, account: str, res: int, now: int) -> Iterator[Bucket]:
        """The buckets of an exported account in window ``res`` ending at ``now`` (for
        ``_other``, those of every market)."""
        buckets = self.windows[res].bucket_range(now)
        for ps in self.partitions.values():
            for name in ps.others if account == OTHER_ACCOUNT else (account,):
                for idx in buckets:
                    b = ps.buckets.get((name, res, idx))
                    if b is not None:
                        yield b

