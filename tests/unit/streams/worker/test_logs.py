"""The worker's start-up noise: the coordinator's transient errors are INFO until it joins."""

from __future__ import annotations

import logging

import pytest

from streams.worker.logs import COORDINATOR_LOGGER, quiet_coordinator_startup


def test_coordinator_startup_errors_are_quiet_until_joined(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger(COORDINATOR_LOGGER)
    noise = quiet_coordinator_startup(logging.WARNING)
    try:
        with caplog.at_level(logging.INFO, logger=COORDINATOR_LOGGER):
            log.error("Group Coordinator Request failed: %s",
                      "[Error 15] GroupCoordinatorNotAvailableError")
            log.warning("Marking the coordinator dead (node %s)for group %s.", 1, "g")
            log.error("OffsetCommit failed before join, ignoring: %s", "boom")
            log.info("Successfully synced group %s with generation %s", "g", 1)
            log.error("Group Coordinator Request failed: %s",
                      "[Error 15] GroupCoordinatorNotAvailableError")
        shown = [(r.levelname, r.getMessage()[:28]) for r in caplog.records
                 if r.name == COORDINATOR_LOGGER]
        # Before the join: the transient two are dropped at WARNING, a real error stays; after
        # the join the same error is an error again. The INFO line itself is below WARNING.
        assert shown == [("ERROR", "OffsetCommit failed before j"),
                         ("ERROR", "Group Coordinator Request fa")]
        assert noise.settled
    finally:
        log.removeFilter(noise)
        log.setLevel(logging.NOTSET)
