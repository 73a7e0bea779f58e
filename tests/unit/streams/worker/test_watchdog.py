"""streams.worker.watchdog: when a worker with work left counts as stalled, and when it never
does."""

from __future__ import annotations

import pytest

from streams.worker.watchdog import PartitionProgress as P
from streams.worker.watchdog import ProgressWatchdog, Verdict


def _dog() -> ProgressWatchdog:
    return ProgressWatchdog(warn_after_s=10, exit_after_s=30)


def test_a_partition_never_fetched_warns_then_exits() -> None:
    dog = _dog()
    assert dog.observe(0, {0: P(end=100, applied=None, committed=None)}).verdict is Verdict.OK
    r = dog.observe(9, {0: P(100, None, None)})
    assert r.verdict is Verdict.OK and r.stalled_seconds == 9
    r = dog.observe(10, {0: P(100, None, None)})
    assert (r.verdict, r.stuck, r.half) == (Verdict.STALLED, (0,), "applying")
    assert dog.latest == r
    assert dog.observe(30, {0: P(100, None, None)}).verdict is Verdict.EXIT


def test_one_stuck_partition_among_flowing_ones_is_a_stall() -> None:
    dog = _dog()
    for t in range(0, 12, 2):
        r = dog.observe(t, {0: P(1000, 10 * t, 10 * t), 1: P(50, 5, 5)})
    assert (r.verdict, r.stuck) == (Verdict.STALLED, (1,))


def test_reading_without_committing_is_a_stall() -> None:
    dog = _dog()
    for t in range(0, 12, 2):
        r = dog.observe(t, {0: P(end=1000, applied=100 * t, committed=5)})
    assert (r.verdict, r.half, r.stuck) == (Verdict.STALLED, "committing", (0,))


def test_slow_progress_never_fires() -> None:
    dog = _dog()
    for t in range(0, 300, 5):  # one record every 5 s, against a huge backlog
        r = dog.observe(t, {0: P(10**9, t // 5, t // 5)})
        assert r.verdict is Verdict.OK, t


def test_idle_worker_with_nothing_to_do_never_fires() -> None:
    dog = _dog()
    for t in range(0, 300, 5):
        assert dog.observe(t, {0: P(500, 500, 500), 1: P(None, None, None)}).verdict is Verdict.OK


def test_takeover_with_everything_already_committed_is_not_work() -> None:
    dog = _dog()
    for t in range(0, 60, 5):  # nothing applied here: the previous owner committed it all
        assert dog.observe(t, {0: P(800, None, 800)}).verdict is Verdict.OK


def test_recovery_pauses_the_clock_however_long_it_takes() -> None:
    dog = _dog()
    for t in range(0, 601, 5):
        assert dog.observe(t, {0: P(100, None, None)}, paused=True).verdict is Verdict.OK
    assert dog.observe(605, {0: P(100, None, None)}).stalled_seconds == 5
    assert dog.observe(615, {0: P(100, None, None)}).verdict is Verdict.STALLED


def test_progress_clears_a_stall_and_revoked_partitions_are_forgotten() -> None:
    dog = _dog()
    dog.observe(0, {0: P(100, 1, 1)})
    assert dog.observe(20, {0: P(100, 1, 1)}).verdict is Verdict.STALLED
    assert dog.observe(21, {0: P(100, 2, 2)}).verdict is Verdict.OK
    assert dog.observe(40, {}).verdict is Verdict.OK  # revoked
    # assigned again later: a new baseline, not the old one's stall time
    assert dog.observe(41, {0: P(100, 2, 2)}).stalled_seconds == 0


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        ProgressWatchdog(warn_after_s=10, exit_after_s=5)
    with pytest.raises(ValueError):
        ProgressWatchdog(warn_after_s=0, exit_after_s=5)


def test_an_empty_partition_has_no_work() -> None:
    """An owned partition nobody wrote to (a repartition partition no forward went to) is not
    stalled, however long it stays empty."""
    w = ProgressWatchdog(10, 20)
    for now in (0.0, 15.0, 30.0):
        r = w.observe(now, {("rekey", 0): P(0, None, None),
                            ("in", 0): P(5, 5, 5)})
    assert r.verdict is Verdict.OK


def test_a_recovery_that_never_reads_a_changelog_partition_warns_then_exits() -> None:
    """faust's recovery hang: the input is paused, the changes left to read never move."""
    dog = _dog()
    lagging = {0: P(end=100, applied=None, committed=None)}
    left = {("changelog", 1): 528, ("changelog", 2): 0}
    assert dog.observe(0, lagging, paused=True, recovering=left).verdict is Verdict.OK
    r = dog.observe(10, lagging, paused=True, recovering=left)
    assert (r.verdict, r.stuck, r.half) == (Verdict.STALLED, (("changelog", 1),), "recovery")
    assert dog.observe(30, lagging, paused=True, recovering=left).verdict is Verdict.EXIT


def test_a_recovery_that_reads_on_never_fires_however_long_it_takes() -> None:
    dog = _dog()
    for t in range(0, 600, 5):
        r = dog.observe(t, {}, paused=True, recovering={("changelog", 0): 10_000 - t})
        assert r.verdict is Verdict.OK, t
    # Over, and the input flows: nothing of the recovery is remembered.
    assert dog.observe(600, {}, recovering=None).verdict is Verdict.OK
    r = dog.observe(605, {}, paused=True, recovering={("changelog", 0): 9_400})
    assert (r.verdict, r.stalled_seconds) == (Verdict.OK, 0)


def test_a_restarted_recovery_counting_again_is_movement() -> None:
    """Another rebalance starts the recovery over: its new count is not a stall."""
    dog = _dog()
    dog.observe(0, {}, paused=True, recovering={("changelog", 0): 500})
    r = dog.observe(9, {}, paused=True, recovering={("changelog", 0): 800})
    assert (r.verdict, r.stalled_seconds) == (Verdict.OK, 0)
    assert dog.observe(19, {}, paused=True,
                       recovering={("changelog", 0): 800}).verdict is Verdict.STALLED
