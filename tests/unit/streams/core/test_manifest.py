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


@pytest.mark.parametrize(("flushed", "committed", "end", "stored", "found"), [
    (-1, None, 0, -1, None),      # a new deployment
    (-1, None, 500, -1, None),    # state not flushed yet, nothing committed
    (-1, 0, 500, -1, None),
    (4999, 5000, 5000, 7, 7),     # caught up, the same record at the mark
    (4999, 4000, 9000, 7, 7),     # committed behind the mark: a crash between mark and commit
    (4999, None, 9000, 7, 7),     # no commit yet (a crash before the first), or expired offsets
    (4999, 5000, 9000, 7, None),  # the record at the mark is gone (retention): not checkable
    (4999, 5000, 9000, -1, 3),    # a mark written before fingerprints
])
def test_offsets_that_fit(
    flushed: int, committed: int | None, end: int, stored: int, found: int | None
) -> None:
    check_offsets("in", 0, "g", flushed, committed, end, stored, found)


@pytest.mark.parametrize(("flushed", "committed", "end", "stored", "found", "says"), [
    (4999, 12, 12, 7, None, "recreated or truncated"),  # the input ends below the state
    (4999, None, 9000, 7, 8, "not the one the state was built from"),  # a recreated input
    (-1, 5000, 5000, -1, None, "the state changelog was deleted"),
])
def test_offsets_that_do_not_fit(
    flushed: int, committed: int | None, end: int, stored: int, found: int | None, says: str
) -> None:
    with pytest.raises(StateMismatch, match=says):
        check_offsets("in", 0, "g", flushed, committed, end, stored, found)
