"""The aggregation engine: validated events in, bucketed KPI state out, no Kafka in sight.

The faust agent feeds it raw records with their partition and offset; a timer asks it for a
snapshot of what changed, writes that to the table changelog and only then acks the records. The
exporter reads rolling windows from it. Keeping all of this in one plain class is what lets the unit
tests drive every rule (late, duplicate, replay after a crash, window edges, both clocks) directly.

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
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import orjson
from xxhash import xxh3_128_intdigest

from schemas.events import Event, Rejected
from schemas.validate import parse
from streams.metrics import OTHER_ACCOUNT, OTHER_CAMPAIGN, OTHER_LABEL
from streams.settings import Settings, Window
from streams.sketches import Hll, Quantiles
from streams.state import (
    BOUNCED,
    C_CLICKS,
    C_CONVERSIONS,
    C_IMPRESSIONS,
    CLICKS,
    COMMENTS,
    CONVERSIONS,
    CSAT_GOOD,
    CSAT_N,
    FOLLOWS,
    IMPRESSIONS,
    LEADS,
    LIKES,
    MENTIONS,
    NEEDS_RESPONSE,
    NEGATIVE_SENTIMENT,
    NPS_DETRACTORS,
    NPS_N,
    NPS_PROMOTERS,
    ORDERS,
    PAGE_VIEWS,
    PAID_IMPRESSIONS,
    POSITIVE_SENTIMENT,
    POTENTIAL_REACH,
    RATING_SUM,
    REPLIES,
    REVIEWS,
    SAVES,
    SENTIMENT_N,
    SENTIMENT_NEG,
    SENTIMENT_POS,
    SENTIMENT_SUM,
    SHARES,
    UNFOLLOWS,
    VISIT_DURATION_N,
    VISIT_DURATION_SUM,
    VISITS,
    Bucket,
    Core,
    Followers,
    Message,
    PartitionMark,
    PlatformAgg,
)
from streams.steps import run


class Record(Protocol):
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


BucketKey = tuple[str, int, int]
_LOW64 = (1 << 64) - 1  # (account, resolution index, bucket index)


@dataclass
class Outcome:
    """Counts of what ``ingest_batch`` did, for the health counters (added once per batch)."""

    applied: dict[str, int] = field(default_factory=dict)
    rejected: list[tuple[int, int, bytes | None, bytes, Rejected]] = field(default_factory=list)
    records: int = 0
    late: int = 0
    duplicates: int = 0
    replayed: int = 0
    overflow_accounts: int = 0
    overflow_campaigns: int = 0
    overflow_labels: dict[str, int] = field(default_factory=dict)  # platform, goal, currency


class PartitionState:
    """All state of one input partition."""

    __slots__ = (
        "buckets", "chunk_seq", "chunks", "cores", "dedup", "dirty_buckets", "dirty_cores",
        "dirty_deleted", "dirty_markets", "last_offset", "mark", "market_totals", "new_ids",
        "new_ids_ts", "rewound_to",
    )

    def __init__(self) -> None:
        self.mark = PartitionMark()
        self.buckets: dict[BucketKey, Bucket] = {}
        self.cores: dict[str, Core] = {}
        self.dedup: dict[int, int] = {}  # event_id hash -> offset of its first (applied) record
        self.chunks: dict[int, tuple[int, list[int]]] = {}  # seq -> (max ts, id hashes)
        self.chunk_seq = 0
        self.new_ids: list[tuple[int, int]] = []
        self.new_ids_ts = -1
        self.dirty_buckets: set[BucketKey] = set()
        self.dirty_cores: set[str] = set()
        self.dirty_deleted: list[bytes] = []
        # (market, resolution, bucket index) whose mention total this partition must republish
        self.dirty_markets: set[tuple[str, int, int]] = set()
        # Mentions per (market, resolution, bucket index) and platform, kept as they are applied
        # (summing the accounts of a market at each flush cost more than the events did).
        self.market_totals: dict[tuple[str, int, int], dict[str, float]] = {}
        self.last_offset = -1
        self.rewound_to: int | None = None

    def add_mentions(self, market: str, res: int, idx: int, platform: str, n: float) -> None:
        slot = (market, res, idx)
        totals = self.market_totals.get(slot)
        if totals is None:
            totals = self.market_totals[slot] = {}
        totals[platform] = totals.get(platform, 0) + n
        self.dirty_markets.add(slot)


@dataclass
class Snapshot:
    """What a flush must write: ``first`` before ``marks`` (see ``Engine.snapshot``).

    ``markets`` are this worker's per-partition mention totals by market, for the other workers'
    share of voice (absolute values, so rewriting one is harmless).
    """

    first: list[tuple[int, bytes, bytes | None]]
    marks: list[tuple[int, bytes, bytes | None]]
    offsets: dict[int, int]
    markets: list[tuple[int, bytes, bytes | None]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.first) + len(self.marks) + len(self.markets)


def market_key(p: int, market: str, platform: str, res: int, idx: int) -> bytes:
    return f"{p}|{market}|{platform}|{res}|{idx}".encode()


def parse_market_key(key: bytes) -> tuple[int, str, str, int, int]:
    p, market, platform, res, idx = key.decode().split("|")
    return int(p), market, platform, int(res), int(idx)


def bucket_key(p: int, k: BucketKey) -> bytes:
    return f"{p}:b:{k[0]}:{k[1]}:{k[2]}".encode()


def core_key(p: int, account: str) -> bytes:
    return f"{p}:c:{account}".encode()


def chunk_key(p: int, seq: int) -> bytes:
    return f"{p}:d:{seq}".encode()


def mark_key(p: int) -> bytes:
    return f"{p}:m".encode()


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
        self.max_accounts = settings.max_accounts
        self.max_campaigns = settings.max_campaigns_per_account
        self.max_platforms = settings.max_platforms_per_account
        self.max_goals = settings.max_goals_per_account
        self.max_currencies = settings.max_currencies_per_account
        self._dispatch: dict[str, Callable[[PlatformAgg, Event], None]] = _BUCKET_RULES

    # --- clocks -------------------------------------------------------------------------------
    def partition_clock(self, ps: PartitionState) -> int:
        return ps.mark.stream_time if self.event_clock else self.now_ms()

    def clock(self) -> int:
        """Where windows end now: wall time, or the newest event time of the owned partitions."""
        if not self.event_clock:
            return self.now_ms()
        return max((ps.mark.stream_time for ps in self.partitions.values()), default=-1)

    def newest_event_ms(self) -> int:
        return max((ps.mark.stream_time for ps in self.partitions.values()), default=-1)

    # --- ingest -------------------------------------------------------------------------------
    def partition(self, p: int) -> PartitionState:
        ps = self.partitions.get(p)
        if ps is None:
            ps = self.partitions[p] = PartitionState()
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
        self, p: int, records: Sequence[Record], wall: int, out: Outcome
    ) -> None:
        """Apply one partition's fetched batch, in offset order (the worker's hot path)."""
        ps = self.partitions.get(p) or self.partition(p)
        flushed = ps.mark.flushed
        max_bytes, future_ms = self.max_record_bytes, self.future_ms
        rejected = out.rejected.append
        apply = self._apply
        replayed = 0
        for r in records:
            offset = r.offset
            if offset <= flushed:
                replayed += 1
                continue
            raw = r.value
            ev = parse(raw if raw is not None else b"", now_ms=wall, max_bytes=max_bytes,
                       future_tolerance_ms=future_ms)
            if isinstance(ev, Rejected):
                rejected((p, offset, r.key, raw or b"", ev))
            else:
                apply(ps, offset, ev, wall, out)
        out.records += len(records)
        out.replayed += replayed
        if records and records[-1].offset > ps.last_offset:
            ps.last_offset = records[-1].offset

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
        first = ps.dedup.get(h)
        if first is not None and first < offset:
            out.duplicates += 1
            return
        if first is None:
            ps.dedup[h] = offset
            ps.new_ids.append((h, offset))
            if ts > ps.new_ids_ts:
                ps.new_ids_ts = ts
        account = ev.account
        if account not in ps.cores and not self._admit(account):
            out.overflow_accounts += 1
            ev.account = account = OTHER_ACCOUNT
            ev.campaign = None
        etype = ev.type
        out.applied[etype] = out.applied.get(etype, 0) + 1
        core = ps.cores.get(account)
        if core is None:
            core = ps.cores[account] = Core()
            ps.dirty_cores.add(account)  # the account's admission must survive a restart
        core_fresh = offset > core.applied
        if ev.campaign is not None and ev.campaign not in core.campaigns:
            # Admission only ever grows the set, so a replay decides the same way.
            if len(core.campaigns) < self.max_campaigns:
                if core_fresh:
                    core.campaigns.add(ev.campaign)
                    ps.dirty_cores.add(account)
            else:
                out.overflow_campaigns += 1
                ev.campaign = OTHER_CAMPAIGN
        if ev.platform not in core.platforms and not _admit_label(
                core.platforms, ev.platform, self.max_platforms, core_fresh, ps, account):
            _overflow(out, "platform")
            ev.platform = OTHER_LABEL
        if ev.goal is not None and ev.goal not in core.goals and not _admit_label(
                core.goals, ev.goal, self.max_goals, core_fresh, ps, account):
            _overflow(out, "goal")
            ev.goal = OTHER_LABEL
        if ev.currency is not None and ev.currency not in core.currencies and not _admit_label(
                core.currencies, ev.currency, self.max_currencies, core_fresh, ps, account):
            _overflow(out, "currency")
            ev.currency = OTHER_LABEL
        rule = self._dispatch.get(etype)
        for res, w in enumerate(self.windows):
            idx = ts // w.bucket_ms
            if idx < clock // w.bucket_ms - (BUCKETS - 1):
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
                _campaign_rule(b, ev)
        if core_fresh and etype in _CORE_TYPES:
            core.applied = offset
            ps.dirty_cores.add(account)
            self._apply_core(core, ev, clock)

    def _admit(self, account: str) -> bool:
        if account == OTHER_ACCOUNT:
            return True
        known = 0
        for ps in self.partitions.values():
            if account in ps.cores:
                return True
            known += len(ps.cores)
        return known < self.max_accounts

    # --- core (cross-event) state ---------------------------------------------------------------
    def _apply_core(self, core: Core, ev: Event, clock: int) -> None:
        t = ev.type
        if t == "comment" or t == "mention":
            msg = Message(ev.ts, ev.platform, ev.needs_response)
            core.messages[ev.event_id] = msg
            waiting = core.orphans.pop(ev.event_id, None)
            if waiting:
                horizon = clock - self.retention_ms
                for r_ts, r_platform, r_resolved in waiting:
                    # Same horizon as expiry, applied here so the result never depends on
                    # whether a flush happened to expire the orphan first.
                    if r_ts >= horizon:
                        self._answer(core, ev.event_id, msg, r_ts, r_platform, r_resolved, clock)
            if msg.needs_response and not msg.answered:
                core.pending.add(ev.event_id)
        elif t == "reply":
            target = ev.in_reply_to or ""
            found = core.messages.get(target)
            if found is not None and found.ts < clock - self.retention_ms:
                found = None  # expired, whether or not a flush has dropped it yet
            if found is None:
                core.orphans.setdefault(target, []).append([ev.ts, ev.platform, ev.resolved])
            else:
                self._answer(core, target, found, ev.ts, ev.platform, ev.resolved, clock)
        elif t == "followers":
            self._followers(core, ev.platform).snapshot(ev.ts, ev.count or 0)
        elif t == "follow":
            self._followers(core, ev.platform).change(ev.ts, 1)
        elif t == "unfollow":
            self._followers(core, ev.platform).change(ev.ts, -1)
        elif t == "purchase":
            cur = ev.currency or ""
            per = core.clv.setdefault(ev.platform, {})
            slot = per.get(cur)
            if slot is None:
                slot = per[cur] = [0.0, Hll()]
            slot[0] += ev.amount or 0.0
            if ev.user_id is not None:
                slot[1].add(ev.user_id)

    @staticmethod
    def _followers(core: Core, platform: str) -> Followers:
        f = core.followers.get(platform)
        if f is None:
            f = core.followers[platform] = Followers()
        return f

    def _answer(
        self, core: Core, msg_id: str, msg: Message, reply_ts: int, platform: str,
        resolved: bool, clock: int,
    ) -> None:
        """A reply met its message: a response time at the reply's time, care at the message's."""
        for res, w in enumerate(self.windows):
            floor = clock // w.bucket_ms - (BUCKETS - 1)
            r_idx = reply_ts // w.bucket_ms
            if r_idx >= floor:
                slot = core.care_slot(res, r_idx, platform)
                if slot[2] is None:
                    slot[2] = Quantiles()
                slot[2].add((reply_ts - msg.ts) / 1000.0)
        if not msg.needs_response:
            return
        newly_answered = not msg.answered
        newly_resolved = resolved and not msg.resolved
        msg.answered = True
        msg.resolved = msg.resolved or resolved
        core.pending.discard(msg_id)
        if not (newly_answered or newly_resolved):
            return
        for res, w in enumerate(self.windows):
            m_idx = msg.ts // w.bucket_ms
            if m_idx >= clock // w.bucket_ms - (BUCKETS - 1):
                slot = core.care_slot(res, m_idx, msg.platform)
                slot[0] += newly_answered
                slot[1] += newly_resolved

    # --- expiry -------------------------------------------------------------------------------
    def _evict(self, p: int, ps: PartitionState) -> None:
        clock = self.partition_clock(ps)
        if clock < 0:
            return
        floors = [clock // w.bucket_ms - (BUCKETS - 1) for w in self.windows]
        for k in [k for k in ps.buckets if k[2] < floors[k[1]]]:
            del ps.buckets[k]
            ps.dirty_buckets.discard(k)
            ps.dirty_deleted.append(bucket_key(p, k))
        for slot in [s for s in ps.market_totals if s[2] < floors[s[1]]]:
            del ps.market_totals[slot]
            ps.dirty_markets.discard(slot)  # the board tombstones what expires
        horizon = clock - self.retention_ms
        for account, core in ps.cores.items():
            changed = False
            for ck in [ck for ck in core.care if ck[1] < floors[ck[0]]]:
                del core.care[ck]
                changed = True
            for mid in [mid for mid, m in core.messages.items() if m.ts < horizon]:
                del core.messages[mid]
                core.pending.discard(mid)
                changed = True
            for oid in list(core.orphans):
                kept = [r for r in core.orphans[oid] if r[0] >= horizon]
                if len(kept) != len(core.orphans[oid]):
                    changed = True
                    if kept:
                        core.orphans[oid] = kept
                    else:
                        del core.orphans[oid]
            if changed:
                ps.dirty_cores.add(account)
        dedup_floor = clock - self.dedup_ms
        for seq in [s for s, (ts_max, _) in ps.chunks.items() if ts_max < dedup_floor]:
            for h in ps.chunks.pop(seq)[1]:
                ps.dedup.pop(h, None)
            ps.dirty_deleted.append(chunk_key(p, seq))

    # --- durability ---------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Expire, then encode everything changed since the last snapshot (see
        ``snapshot_steps``)."""
        run(self.evict_steps())
        return run(self.snapshot_steps())

    def evict_steps(self) -> Generator[None, None, None]:
        """Drop what fell out of every window, one partition per step; the tombstones go out
        with the next snapshot. Separate from the snapshot because it may pause between
        partitions, which the snapshot's capture must not."""
        for p, ps in list(self.partitions.items()):
            if self.partitions.get(p) is ps:  # not revoked meanwhile
                self._evict(p, ps)
            yield

    RECORDS_PER_SLICE = 200
    IDS_PER_SLICE = 5_000

    def snapshot_steps(self) -> Generator[None, None, Snapshot]:
        """Encode everything changed since the last snapshot, yielding every few records so the
        caller can let events in meanwhile.

        ``first`` holds buckets, cores and dedup chunks; ``marks`` the partition marks. The caller
        must have ``first`` acknowledged by Kafka before it writes ``marks``, and ``marks`` before
        it acks the input records up to ``offsets``: a mark promises that everything below it is
        in the changelog.

        What is dirty, the marks and the offsets are all taken at the start, in one step. A
        record encoded later may already hold newer events than its mark: harmless, since every
        record carries its own ``applied`` offset (and stays dirty for the next snapshot).
        """
        first: list[tuple[int, bytes, bytes | None]] = []
        marks: list[tuple[int, bytes, bytes | None]] = []
        markets: list[tuple[int, bytes, bytes | None]] = []
        offsets: dict[int, int] = {}
        work: list[tuple[int, PartitionState, set[BucketKey], set[str]]] = []
        chunks: list[tuple[int, int, int, list[tuple[int, int]], list[int]]] = []
        for p, ps in self.partitions.items():
            for market, res, idx in ps.dirty_markets:
                for platform, n in ps.market_totals.get((market, res, idx), {}).items():
                    markets.append((p, market_key(p, market, platform, res, idx),
                                    str(int(n)).encode()))
            ps.dirty_markets = set()
            for dead in ps.dirty_deleted:
                first.append((p, dead, None))
            ps.dirty_deleted = []
            if ps.new_ids:
                ps.chunk_seq += 1
                # The hashes are filled in below, between slices (eviction waits for the flush).
                hashes: list[int] = []
                ps.chunks[ps.chunk_seq] = (ps.new_ids_ts, hashes)
                chunks.append((p, ps.chunk_seq, ps.new_ids_ts, ps.new_ids, hashes))
                ps.new_ids = []
                ps.new_ids_ts = -1
            work.append((p, ps, ps.dirty_buckets, ps.dirty_cores))
            ps.dirty_buckets = set()
            ps.dirty_cores = set()
            if ps.last_offset > ps.mark.flushed:
                ps.mark.flushed = ps.last_offset
                marks.append((p, mark_key(p), ps.mark.encode()))
                offsets[p] = ps.last_offset
        done = 0
        for p, seq, ts_max, ids, hashes in chunks:
            # 128-bit hashes as two 64-bit halves: orjson writes those natively
            triples: list[list[int]] = []
            for i in range(0, len(ids), self.IDS_PER_SLICE):
                part = ids[i:i + self.IDS_PER_SLICE]
                triples.extend([h >> 64, h & _LOW64, o] for h, o in part)
                hashes.extend(h for h, _o in part)
                yield
            first.append((p, chunk_key(p, seq), orjson.dumps([ts_max, triples])))
        for p, ps, buckets, cores in work:
            for k in buckets:
                b = ps.buckets.get(k)
                if b is not None:  # None: expired meanwhile, its tombstone is queued
                    first.append((p, bucket_key(p, k), b.encode()))
                done += 1
                if done % self.RECORDS_PER_SLICE == 0:
                    yield
            for account in cores:
                core = ps.cores.get(account)
                if core is not None:
                    first.append((p, core_key(p, account), core.encode()))
                done += 1
                if done % self.RECORDS_PER_SLICE == 0:
                    yield
        return Snapshot(first, marks, offsets, markets)

    def floors(self, p: int) -> list[int]:
        """Per resolution, the lowest bucket index partition ``p`` still keeps."""
        ps = self.partitions.get(p)
        clock = self.partition_clock(ps) if ps is not None else -1
        return [clock // w.bucket_ms - (BUCKETS - 1) for w in self.windows]

    def restore(self, p: int, items: Iterable[tuple[bytes, bytes]]) -> PartitionState:
        """Rebuild partition ``p`` from its table records (after faust recovered the table)."""
        ps = PartitionState()
        for key, value in items:
            parts = key.decode().split(":")
            kind = parts[1]
            if kind == "b":
                ps.buckets[(parts[2], int(parts[3]), int(parts[4]))] = Bucket.decode(value)
            elif kind == "c":
                ps.cores[parts[2]] = Core.decode(value)
            elif kind == "d":
                seq = int(parts[2])
                ts_max, triples = orjson.loads(value)
                ids = [((hi << 64) | lo, off) for hi, lo, off in triples]
                ps.dedup.update(ids)
                ps.chunks[seq] = (ts_max, [h for h, _off in ids])
                ps.chunk_seq = max(ps.chunk_seq, seq)
            elif kind == "m":
                ps.mark = PartitionMark.decode(value)
        market_of = self.settings.market_of
        for (account, res, idx), b in ps.buckets.items():
            for platform, agg in b.platforms.items():
                if agg.c[MENTIONS]:
                    ps.add_mentions(market_of(account), res, idx, platform, agg.c[MENTIONS])
        # Republished once (absolute totals): a crash may have come between a mark and them.
        ps.last_offset = ps.mark.flushed
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

    def iter_cores(self, account: str) -> Iterator[Core]:
        for ps in self.partitions.values():
            core = ps.cores.get(account)
            if core is not None:
                yield core

    def window_buckets(self, account: str, res: int, now: int) -> Iterator[Bucket]:
        w = self.windows[res]
        hi = now // w.bucket_ms
        for ps in self.partitions.values():
            for idx in range(hi - (BUCKETS - 1), hi + 1):
                b = ps.buckets.get((account, res, idx))
                if b is not None:
                    yield b


BUCKETS = 30


def _admit_label(
    admitted: set[str], value: str, cap: int, fresh: bool, ps: PartitionState, account: str
) -> bool:
    """Per-account cap on a label value from event data, like the campaign cap: admission only
    ever grows the set (persisted with the account's core), so a replay decides the same way."""
    if len(admitted) >= cap:
        return False
    if fresh:
        admitted.add(value)
        ps.dirty_cores.add(account)
    return True


def _overflow(out: Outcome, kind: str) -> None:
    out.overflow_labels[kind] = out.overflow_labels.get(kind, 0) + 1


# --- per-type bucket rules: plain functions over one PlatformAgg ----------------------------------
def _impression(a: PlatformAgg, ev: Event) -> None:
    c = a.c
    c[IMPRESSIONS] += 1
    if ev.paid:
        c[PAID_IMPRESSIONS] += 1
    if ev.user_id is not None:
        if a.reach is None:
            a.reach = Hll()
        a.reach.add(ev.user_id)


def _counter(slot: int) -> Callable[[PlatformAgg, Event], None]:
    def rule(a: PlatformAgg, ev: Event) -> None:
        a.c[slot] += 1

    return rule


def _sentiment(c: list[float], s: float | None) -> None:
    if s is not None:
        c[SENTIMENT_SUM] += s
        c[SENTIMENT_N] += 1
        if s > POSITIVE_SENTIMENT:
            c[SENTIMENT_POS] += 1
        elif s < NEGATIVE_SENTIMENT:
            c[SENTIMENT_NEG] += 1


def _comment(a: PlatformAgg, ev: Event) -> None:
    c = a.c
    c[COMMENTS] += 1
    if ev.needs_response:
        c[NEEDS_RESPONSE] += 1
    _sentiment(c, ev.sentiment)


def _mention(a: PlatformAgg, ev: Event) -> None:
    c = a.c
    c[MENTIONS] += 1
    if ev.needs_response:
        c[NEEDS_RESPONSE] += 1
    if ev.author_followers is not None:
        c[POTENTIAL_REACH] += ev.author_followers
    _sentiment(c, ev.sentiment)


def _share(a: PlatformAgg, ev: Event) -> None:
    a.c[SHARES] += 1
    if ev.author_followers is not None:
        a.c[POTENTIAL_REACH] += ev.author_followers


def _visit(a: PlatformAgg, ev: Event) -> None:
    c = a.c
    c[VISITS] += 1
    c[PAGE_VIEWS] += ev.pages or 0
    if ev.bounced:
        c[BOUNCED] += 1
    if ev.duration_seconds is not None:
        c[VISIT_DURATION_SUM] += ev.duration_seconds
        c[VISIT_DURATION_N] += 1
    if ev.user_id is not None:
        if a.visitors is None:
            a.visitors = Hll()
        a.visitors.add(ev.user_id)


def _conversion(a: PlatformAgg, ev: Event) -> None:
    a.c[CONVERSIONS] += 1
    goal = ev.goal or ""
    a.goals[goal] = a.goals.get(goal, 0) + 1


def _purchase(a: PlatformAgg, ev: Event) -> None:
    a.c[ORDERS] += 1
    cur = ev.currency or ""
    a.revenue[cur] = a.revenue.get(cur, 0.0) + (ev.amount or 0.0)
    a.orders_cur[cur] = a.orders_cur.get(cur, 0) + 1


def _spend(a: PlatformAgg, ev: Event) -> None:
    cur = ev.currency or ""
    a.spend[cur] = a.spend.get(cur, 0.0) + (ev.amount or 0.0)


def _survey(a: PlatformAgg, ev: Event) -> None:
    c = a.c
    score = ev.score or 0
    if ev.survey == "csat":
        c[CSAT_N] += 1
        if score >= 4:
            c[CSAT_GOOD] += 1
    else:
        c[NPS_N] += 1
        if score >= 9:
            c[NPS_PROMOTERS] += 1
        elif score <= 6:
            c[NPS_DETRACTORS] += 1


def _review(a: PlatformAgg, ev: Event) -> None:
    a.c[REVIEWS] += 1
    a.c[RATING_SUM] += ev.rating or 0


def _present(a: PlatformAgg, ev: Event) -> None:
    """A followers snapshot adds to no windowed count, but its platform is one the account has
    in the window: its series are exported (zeros, and ratios over the follower count)."""


_BUCKET_RULES: dict[str, Callable[[PlatformAgg, Event], None]] = {
    "followers": _present,
    "impression": _impression,
    "like": _counter(LIKES),
    "save": _counter(SAVES),
    "comment": _comment,
    "share": _share,
    "click": _counter(CLICKS),
    "mention": _mention,
    "reply": _counter(REPLIES),
    "follow": _counter(FOLLOWS),
    "unfollow": _counter(UNFOLLOWS),
    "visit": _visit,
    "lead": _counter(LEADS),
    "conversion": _conversion,
    "purchase": _purchase,
    "spend": _spend,
    "survey": _survey,
    "review": _review,
}
_CORE_TYPES = frozenset({"comment", "mention", "reply", "followers", "follow", "unfollow",
                         "purchase"})


def _campaign_rule(b: Bucket, ev: Event) -> None:
    t = ev.type
    if t == "impression":
        b.campaign(ev.campaign or "").c[C_IMPRESSIONS] += 1
    elif t == "click":
        b.campaign(ev.campaign or "").c[C_CLICKS] += 1
    elif t == "conversion":
        b.campaign(ev.campaign or "").c[C_CONVERSIONS] += 1
    elif t == "purchase":
        ca = b.campaign(ev.campaign or "")
        cur = ev.currency or ""
        ca.revenue[cur] = ca.revenue.get(cur, 0.0) + (ev.amount or 0.0)
    elif t == "spend":
        ca = b.campaign(ev.campaign or "")
        cur = ev.currency or ""
        ca.spend[cur] = ca.spend.get(cur, 0.0) + (ev.amount or 0.0)
