"""The aggregation engine: validated events in, bucketed KPI state out, no Kafka in sight.

The worker feeds it each partition's fetched records with their offsets; the flusher asks it for
a snapshot of what changed, writes that to the changelog and only then acks the records; the
series are read from it. Its collaborators each do one thing: ``LabelCaps`` (admission under the
caps), ``streams.core.rules`` (what each event type adds), ``Expiry`` (what leaves the windows),
``SnapshotEncoder`` and ``restore_partition`` (the changelog). Keeping them in plain classes,
with the clock as an argument, is what lets unit tests drive every rule (late, duplicate, replay
after a crash, window edges, both clocks) directly.

Per-event rules, in order (SPEC §2, §5):

1. a record at or below the partition's last flushed offset was fully applied before a crash:
   skipped (``replayed``);
2. invalid -> rejected (dead-letter topic);
3. ``ts`` older than the partition's clock minus (largest window + grace) -> late, not applied;
4. the partition's stream time advances to ``ts``;
5. an ``event_id`` already applied at an *earlier* offset -> duplicate;
6. applied to each record (bucket per window, account core) whose ``applied`` offset is below it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import NamedTuple, Protocol

from xxhash import xxh3_128_intdigest

from schemas.events import Event, Rejected
from schemas.validate import parse
from streams.core.aggregates import AccountCore, Bucket, record_fingerprint
from streams.core.caps import LabelCaps
from streams.core.changelog import Snapshot, SnapshotEncoder, restore_partition
from streams.core.expiry import Expiry
from streams.core.manifest import StateManifest
from streams.core.outcome import DeadLetter, Outcome
from streams.core.partition import PartitionState
from streams.core.rules import BUCKET_RULES, CORE_TYPES, AccountRules, BucketRule, apply_campaign
from streams.core.steps import run
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

    def __init__(self, settings: Settings, now_ms: Callable[[], int] = wall_ms) -> None:
        self.settings = settings
        self.windows: tuple[Window, ...] = settings.window_specs
        self.retention_ms = settings.retention_ms
        self.dedup_ms = max(int(settings.dedup_horizon_seconds * 1000), self.retention_ms)
        self.event_clock = settings.clock == "event"
        self.now_ms = now_ms
        self.partitions: dict[int, PartitionState] = {}
        self.max_record_bytes = settings.max_record_bytes
        self.future_ms = int(settings.future_tolerance_seconds * 1000)
        self.caps = LabelCaps(settings, self.partitions)
        self.account_rules = AccountRules(self.windows, self.retention_ms)
        self.expiry = Expiry(self.windows, self.retention_ms, self.dedup_ms)
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
            ps = self.partitions[p] = PartitionState()
            ps.manifest, ps.manifest_dirty = self.manifest, True
        return ps

    def ingest_batch(
        self,
        records: Iterable[tuple[int, int, bytes | None, bytes | None]],
        out: Outcome | None = None,
    ) -> Outcome:
        """Apply ``(partition, offset, key, value)`` records in order."""
        out = out or Outcome()
        wall = self.now_ms()
        for p, offset, key, raw in records:
            self.ingest(p, offset, key, raw, wall, out)
        return out

    def resume_offset(self, p: int, first: int) -> int | None:
        """None when a batch starting at offset ``first`` continues what partition ``p`` applied
        (or overlaps it); otherwise the offset to read the partition again from (-1: its first
        offset, when nothing was applied). Every state record skips offsets at or below its own
        ``applied``, which is exact only if a partition's records are applied without a hole.

        A batch that still starts past that offset right after a read from there has a real hole
        in front of it (records deleted by retention, transaction markers): it is accepted.
        """
        ps = self.partitions.get(p) or self.partition(p)
        expected = ps.last_offset + 1 if ps.last_offset >= 0 else -1
        if 0 <= first <= max(expected, 0) or ps.rewound_to == expected:
            ps.rewound_to = None
            return None
        ps.rewound_to = expected
        return expected

    def ingest_records(
        self, p: int, records: Sequence[InputRecord], wall: int, out: Outcome
    ) -> None:
        """Apply one partition's fetched batch, in offset order (the worker's hot path)."""
        ps = self.partitions.get(p) or self.partition(p)
        self.batches += 1
        flushed = ps.mark.flushed
        max_bytes, future_ms = self.max_record_bytes, self.future_ms
        # "In the future" is measured from the later of the wall clock and the newest event time
        # applied, that one capped at the highest wall reading seen: a wall clock stepped back
        # does not turn valid events into future ones, and events cannot walk time forward.
        if wall > self.wall_high:
            self.wall_high = wall
        now = max(wall, min(ps.mark.stream_time, self.wall_high))
        rejected = out.rejected.append
        apply = self._apply
        replayed = 0
        for r in records:
            offset = r.offset
            if offset <= flushed:
                replayed += 1
                continue
            raw = r.value
            ev = parse(raw if raw is not None else b"", now_ms=now, max_bytes=max_bytes,
                       future_tolerance_ms=future_ms)
            if isinstance(ev, Rejected):
                rejected(DeadLetter(p, offset, r.key, raw or b"", ev))
            else:
                apply(ps, offset, ev, wall, out)
        out.records += len(records)
        out.replayed += replayed
        if records and records[-1].offset > ps.last_offset:
            ps.last_offset = records[-1].offset
            ps.last_fingerprint = record_fingerprint(records[-1].value)

    def ingest(
        self, p: int, offset: int, key: bytes | None, raw: bytes | None, wall: int, out: Outcome
    ) -> None:
        """Apply one record; ``wall`` is the caller's clock reading (one per batch is enough)."""
        self.ingest_records(p, (_Raw(offset, key, raw),), wall, out)

    def _apply(
        self, ps: PartitionState, offset: int, ev: Event, wall: int, out: Outcome
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
        h = xxh3_128_intdigest(ev.event_id.encode())
        first_offset = ps.dedup.get(h)
        if first_offset is not None and first_offset < offset:
            out.duplicates += 1
            return
        if first_offset is None:
            ps.dedup[h] = offset
            ps.new_ids.append((h, offset))
            if ts > ps.new_ids_ts:
                ps.new_ids_ts = ts
        account = ev.account
        core = ps.cores.get(account)
        if (core is None or ev.platform not in core.platforms
                or (ev.campaign is not None and ev.campaign not in core.campaigns)
                or (ev.goal is not None and ev.goal not in core.goals)
                or (ev.currency is not None and ev.currency not in core.currencies)):
            # Not everything admitted yet (most events are): the caps decide, maybe relabel.
            core = self.caps.admit(ps, ev, offset, out)
            account = ev.account
        etype = ev.type
        out.applied[etype] = out.applied.get(etype, 0) + 1
        rule = self._bucket_rules.get(etype)
        floors = self._floors.at(clock)
        for res, w in enumerate(self.windows):
            idx = ts // w.bucket_ms
            if idx < floors[res]:
                continue  # already outside this window for good
            k = (account, res, idx)
            b = ps.buckets.get(k)
            if b is None:
                b = ps.buckets[k] = Bucket()
            elif offset <= b.applied:
                continue
            b.applied = offset
            ps.dirty_buckets.add(k)
            if rule is not None:
                rule(b.platform(ev.platform), ev)
            if etype == "mention":
                ps.add_mentions(self.settings.market_of(account), res, idx, ev.platform, 1)
            if ev.campaign is not None:
                apply_campaign(b, ev)
        if offset > core.applied and etype in CORE_TYPES:
            core.applied = offset
            ps.dirty_cores.add(account)
            self.account_rules.apply(core, ev, clock)

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
        ps = restore_partition(items, self.settings.market_of)
        if ps.manifest is not None:
            ps.manifest.check(self.manifest, p)
        else:
            ps.manifest, ps.manifest_dirty = self.manifest, True
        self.partitions[p] = ps
        return ps

    def drop(self, p: int) -> None:
        """Forget a revoked partition: its new owner rebuilds it from the changelog."""
        self.partitions.pop(p, None)

    # --- reading ------------------------------------------------------------------------------
    def accounts(self) -> list[str]:
        seen: set[str] = set()
        for ps in self.partitions.values():
            seen.update(ps.cores)
        return sorted(seen)

    def iter_cores(self, account: str) -> Iterator[AccountCore]:
        for ps in self.partitions.values():
            core = ps.cores.get(account)
            if core is not None:
                yield core

    def window_buckets(self, account: str, res: int, now: int) -> Iterator[Bucket]:
        buckets = self.windows[res].bucket_range(now)
        for ps in self.partitions.values():
            for idx in buckets:
                b = ps.buckets.get((account, res, idx))
                if b is not None:
                    yield b
