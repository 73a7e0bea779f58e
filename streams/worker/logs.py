"""The worker's logging: start-up conditions that resolve themselves are not logged as errors.

On a fresh broker the consumer group's coordinator is not elected yet when the worker starts:
aiokafka logs ``Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError``
at ERROR, finds it, may be told it is still loading and logs ``Marking the coordinator dead`` at
WARNING, then joins the group a second later. :class:`CoordinatorStartupFilter` lowers those
records to INFO until the worker has joined its group once; the same records afterwards (a broker
that went away) keep their level, as does every other error. aiokafka logs the retriable error at
ERROR on every retry (https://github.com/aio-libs/aiokafka/issues/44); Kafka's Java client logs
it at DEBUG (https://github.com/apache/kafka/pull/10973).
"""

from __future__ import annotations

import logging

#: aiokafka's logger of the group coordinator (``aiokafka/consumer/group_coordinator.py``).
COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"
_JOINED = "Successfully synced group"
_STARTUP_NOISE = ("Marking the coordinator dead",)
_RETRIABLE = "GroupCoordinatorNotAvailableError"


class CoordinatorStartupFilter(logging.Filter):
    """Demotes the coordinator's start-up errors to INFO until the group is joined once, and
    passes a record only at or above ``level`` (the logger itself is opened to INFO so that the
    filter sees the ``Successfully synced group`` line)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level
        self.settled = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.settled:
            message = record.getMessage()
            if message.startswith(_JOINED):
                self.settled = True
            elif record.levelno > logging.INFO and (
                _RETRIABLE in message or message.startswith(_STARTUP_NOISE)
            ):
                record.levelno, record.levelname = logging.INFO, "INFO"
        return record.levelno >= self.level


def quiet_coordinator_startup(level: int) -> CoordinatorStartupFilter:
    """Install the filter on aiokafka's coordinator logger for a worker logging at ``level``."""
    logger = logging.getLogger(COORDINATOR_LOGGER)
    for old in [f for f in logger.filters if isinstance(f, CoordinatorStartupFilter)]:
        logger.removeFilter(old)
    noise = CoordinatorStartupFilter(level)
    logger.addFilter(noise)
    logger.setLevel(min(logging.INFO, level))
    return noise
