"""A throw-away, single-node Apache Kafka broker for development and tests.

Kafka's broker jars are fetched from Maven Central with ``mvn`` (the only place this project can
get them from) into a cache directory outside the work tree, ``<cache_dir>/kafka-<version>/libs``,
once per version. A broker is then run from those jars in KRaft mode (one process acting as both
broker and controller) bound to 127.0.0.1, with all of its state in one data directory:

``server.properties``
    the broker configuration written by :func:`start` (defaults plus the caller's overrides);
``kafka.log``
    the broker's stdout/stderr, appended to across restarts;
``kafka.pid`` / ``kafka.bootstrap``
    the running broker's pid and the address :func:`start` returned for it;
``logs/``
    the partition and metadata logs (formatted once, kept across restarts).

The broker is detached from the caller (its own session), so it outlives the process that started
it: :func:`stop` or :func:`kill` ends it, :func:`status` finds it again from the data directory.

Nothing here reads the environment: the version, cache directory, heap and ports come from the
caller (in production code, from :mod:`streams.settings`).

The package is split by job: :mod:`.classpath` resolves the jars, :mod:`.config` writes the
broker's configuration and formats its storage (SCRAM and SASL_SSL included), :mod:`.process`
starts, finds and ends the broker process, and :mod:`.network` holds the port, reachability and
metadata probes. Everything a caller needs is importable from the package itself.

Typical use::

    broker = start(data_dir=Path("var/kafka"), port=9092, controller_port=9093,
                   version=DEFAULT_VERSION, cache_dir=Path.home() / ".cache" / "socialpulse")
    ...  # clients use broker.bootstrap
    stop(broker.data_dir)
"""

from __future__ import annotations

from .classpath import DEFAULT_VERSION, resolve_classpath
from .config import SCRAM_MECHANISMS, _redact, _scram_args, _write_properties, sasl_ssl_config
from .network import free_port, is_reachable
from .process import LocalKafka, kill, start, status, stop

__all__ = [
    "DEFAULT_VERSION",
    "SCRAM_MECHANISMS",
    "LocalKafka",
    # Private helpers, re-exported because the unit tests call them as attributes of the package.
    "_redact",
    "_scram_args",
    "_write_properties",
    "free_port",
    "is_reachable",
    "kill",
    "resolve_classpath",
    "sasl_ssl_config",
    "start",
    "status",
    "stop",
]
