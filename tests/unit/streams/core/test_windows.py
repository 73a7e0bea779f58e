"""streams.core.windows: the bucket rule, and floors cached between bucket edges."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.core.windows import BUCKETS_PER_WINDOW, Window, WindowFloors

WINDOWS = (Window.parse("1m"), Window.parse("5m"), Window.parse("7m"), Window.parse("1h"))


def test_a_window_holds_thirty_buckets_ending_at_the_clock() -> None:
    w = Window.parse("5m")
    assert (w.length_ms, w.bucket_ms) == (300_000, 10_000)
    r = w.bucket_range(1_000_005)
    assert len(r) == BUCKETS_PER_WINDOW == 30
    assert r[-1] == w.bucket_of(1_000_005) == 100 and r[0] == w.first_bucket(1_000_005) == 71


@given(st.lists(st.integers(min_value=0, max_value=10**13), min_size=1, max_size=50))
def test_cached_floors_equal_the_formula(clocks: list[int]) -> None:
    """Whatever order the clocks come in (partitions take turns), edges included."""
    floors = WindowFloors(WINDOWS)
    edges = [c + d for c in clocks for d in (-1, 0, 1) if c + d >= 0]
    for clock in sorted(edges) + edges:
        assert floors.at(clock) == tuple(w.first_bucket(clock) for w in WINDOWS), clock
