"""The sketches: the sparse quantile sketch answers as DDSketch does, merges and reads DDSketch's
dense bins; a reach sketch read back from the changelog estimates as the live one did."""

from __future__ import annotations

import random

from ddsketch import DDSketch

from streams.core.sketches import DDSKETCH_ACCURACY, Hll, Quantiles

QS = (0.0, 0.1, 0.5, 0.9, 0.99, 1.0)


def test_quantiles_equal_ddsketch_for_the_same_values() -> None:
    rng = random.Random(7)
    ours, theirs = Quantiles(), DDSketch(DDSKETCH_ACCURACY)
    values = [0.0] * 5 + [rng.lognormvariate(5, 2) for _ in range(3000)]
    for v in values:
        ours.add(v)
        theirs.add(v)
    assert ours.count == theirs.count and abs(ours.total - theirs.sum) < 1e-6 * theirs.sum
    for q in QS:
        assert ours.quantile(q) == theirs.get_quantile_value(q)


def test_merge_equals_one_sketch_of_both_and_round_trips() -> None:
    rng = random.Random(8)
    a, b, both = Quantiles(), Quantiles(), Quantiles()
    for i in range(500):
        v = rng.uniform(0, 7200)
        (a if i % 3 else b).add(v)
        both.add(v)
    a.merge(b)
    again = Quantiles.from_obj(a.to_obj())
    for q in QS:
        assert a.quantile(q) == both.quantile(q) == again.quantile(q)


def test_dense_bins_of_earlier_state_still_load() -> None:
    ref = DDSketch(DDSKETCH_ACCURACY)
    for v in (1.0, 2.0, 30.0, 30.5, 600.0):
        ref.add(v)
    store = ref._store
    dense = [ref._zero_count, ref._count, ref._sum, ref._min, ref._max, store.offset,
             list(store.bins)]
    q = Quantiles.from_obj(dense)
    for p in QS:
        assert q.quantile(p) == ref.get_quantile_value(p)


def test_an_empty_sketch_has_no_quantile() -> None:
    assert Quantiles().quantile(0.5) is None


def test_a_union_of_restored_reach_sketches_equals_the_live_union() -> None:
    """What a recovery reads back must estimate as the live worker did. A bucket's sketch is in
    coupon mode (a few hundred users), and a union of coupon-mode sketches estimates by HIP,
    which depends on the order of the coupons; a compact serialization keeps them in another
    order than the live hash table. So ``to_b64`` leaves the live sketch as the one it wrote."""
    rng = random.Random(7)
    live = []
    for _ in range(90):
        h = Hll()
        for _ in range(rng.randrange(50, 900)):
            h.add(f"u{rng.randrange(200_000)}")
        live.append(h)
    restored = [Hll.from_b64(h.to_b64()) for h in live]
    assert [h.estimate() for h in restored] == [h.estimate() for h in live]
    assert Hll.union_estimate(restored) == Hll.union_estimate(live)
    assert Hll.union(restored).estimate() == Hll.union(live).estimate()
    for h in live[::3]:  # more users, then a second flush and recovery
        h.add(f"u{rng.randrange(200_000)}")
    again = [Hll.from_b64(h.to_b64()) for h in live]
    assert Hll.union_estimate(again) == Hll.union_estimate(live)
