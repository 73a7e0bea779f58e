"""Expiry: what fell out of every window leaves memory, and its tombstone leaves the changelog.

Buckets and market totals go once they are older than the largest window; messages, orphan
replies, follower deltas (folded into their count) and dedup chunks once they are older than the
retention (or dedup) horizon; an account's label decision lapses after a horizon without events.
"""

from __future__ import annotations

from streams.core.caps import LabelCaps
from streams.core.keys import bucket_key, chunk_key
from streams.core.labels import market_of_other
from streams.core.partition import PartitionState
from streams.core.windows import Window


class Expiry:
    """Drops a partition's expired state and queues the tombstones for the next snapshot."""

    def __init__(
        self, windows: tuple[Window, ...], retention_ms: int, dedup_ms: int, caps: LabelCaps
    ) -> None:
        self.windows = windows
        self.caps = caps
        self.retention_ms = retention_ms
        self.dedup_ms = dedup_ms

    def evict(self, p: int, ps: PartitionState, clock: int) -> None:
        if clock < 0:
            return
        floors = [w.first_bucket(clock) for w in self.windows]
        gone = [k for k in ps.buckets if k[2] < floors[k[1]]]
        for k in gone:
            del ps.buckets[k]
            ps.dirty_buckets.discard(k)
            ps.dirty_deleted.append(bucket_key(p, k))
        if gone and ps.others:
            ps.others = {k[0] for k in ps.buckets if market_of_other(k[0]) is not None}
        for slot in [s for s in ps.market_totals if s[2] < floors[s[1]]]:
            del ps.market_totals[slot]
            ps.dirty_markets.discard(slot)  # the board tombstones what expires
        horizon = clock - self.retention_ms
        for account, core in ps.cores.items():
            changed = False
            if core.label and self.caps.lapsed(core, clock):
                self.caps.release(ps, p, account, core)
                changed = True
            for f in core.followers.values():
                changed = f.prune(horizon) or changed
            for ck in [ck for ck in core.care if ck[1] < floors[ck[0]]]:
                del core.care[ck]
                changed = True
            for ck in [ck for ck in core.staff if ck[1] < floors[ck[0]]]:
                del core.staff[ck]
                changed = True
            for mid in [mid for mid, m in core.messages.items() if m.ts < horizon]:
                del core.messages[mid]
                core.pending.discard(mid)
                core.touch(mid)
                changed = True
            for oid in list(core.orphans):
                kept = [r for r in core.orphans[oid] if r[0] >= horizon]
                if len(kept) != len(core.orphans[oid]):
                    changed = True
                    core.touch(oid)
                    if kept:
                        core.orphans[oid] = kept
                    else:
                        del core.orphans[oid]
            if changed:
                ps.dirty_cores.add(account)
        for seq in ps.dedup.expire(clock - self.dedup_ms):
            ps.dirty_deleted.append(chunk_key(p, seq))
