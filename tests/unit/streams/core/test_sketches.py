"""The sparse quantile sketch answers as DDSketch does, merges, and reads DDSketch's dense bins."""

from __future__ import annotations

import random

from ddsketch import DDSketch

from streams.core.sketches import DDSKETCH_ACCURACY, Quantiles

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
