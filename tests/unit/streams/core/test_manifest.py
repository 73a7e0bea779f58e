"""streams.core.manifest: state that fits its settings and its input, and each way it does not."""

from __future__ import annotations

import pytest

from streams.core.manifest import StateManifest, StateMismatch, check_offsets
from streams.core.windows import Window

W = tuple(Window.parse(w) for w in ("5m", "1h", "24h"))


def test_a_manifest_round_trips_and_fits_itself() -> None:
    m = StateManifest.of(W, "social.interactions", 6)
    assert StateManifest.decode(m.encode()) == m
    m.check(StateManifest.of(W, "social.interactions", 6), 0)


@pytest.mark.parametrize(("wanted", "names"), [
    (StateManifest.of(W[:2], "social.interactions", 6), "SOCIALPULSE_WINDOWS"),
    (StateManifest.of(W, "other.topic", 6), "SOCIALPULSE_INPUT_TOPIC"),
    (StateManifest.of(W, "social.interactions", 12), "has 12 partitions"),
])
def test_each_mismatch_names_its_setting(wanted: StateManifest, names: str) -> None:
    with pytest.raises(StateMismatch, match=names):
        StateManifest.of(W, "social.interactions", 6).check(wanted, 3)


@pytest.mark.parametrize(("flushed", "committed", "end"), [
    (-1, None, 0),      # a new deployment
    (-1, None, 500),    # state not flushed yet, nothing committed
    (-1, 0, 500),
    (4999, 5000, 5000),  # caught up
    (4999, 4000, 9000),  # committed behind the mark: a crash between mark and commit
])
def test_offsets_that_fit(flushed: int, committed: int | None, end: int) -> None:
    check_offsets("in", 0, "g", flushed, committed, end)


@pytest.mark.parametrize(("flushed", "committed", "end", "says"), [
    (4999, 12, 12, "recreated or truncated"),        # the input ends below the state
    (4999, None, 9000, "no committed offset"),       # a deleted topic's offsets are gone
    (-1, 5000, 5000, "the state changelog was deleted"),
])
def test_offsets_that_do_not_fit(flushed: int, committed: int | None, end: int, says: str) -> None:
    with pytest.raises(StateMismatch, match=says):
        check_offsets("in", 0, "g", flushed, committed, end)
