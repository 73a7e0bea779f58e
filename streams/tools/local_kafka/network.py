"""Talking to a broker over the network: :func:`free_port` picks an unused port on 127.0.0.1,
:func:`is_reachable` checks that something accepts TCP connections at a bootstrap address, and
the metadata probe asks the broker, over the client listener and with the caller's client
settings (TLS, SASL), how many brokers its cluster has, which is the proof that it serves clients.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for brokers, workers, tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_reachable(bootstrap: str, timeout: float) -> bool:
    """Whether something accepts TCP connections at the first ``host:port`` of ``bootstrap``."""
    first = bootstrap.split(",", 1)[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    host, _, port = first.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


async def _broker_count(
    bootstrap: str, timeout: float, client_config: Mapping[str, Any] | None = None
) -> int:
    ms = max(1000, int(timeout * 1000))
    # The caller's client settings (TLS context, SASL credentials) minus the address, which is
    # the broker's own: a secured listener is probed the way its clients will talk to it.
    auth = {k: v for k, v in (client_config or {}).items() if k != "bootstrap_servers"}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ms, **auth)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return len(cluster.get("brokers") or [])
    finally:
        await admin.close()


def _answers_metadata(
    bootstrap: str, timeout: float, client_config: Mapping[str, Any] | None = None
) -> bool:
    # start() is synchronous and may be called from inside a running event loop (an async test
    # or fixture), where asyncio.run() is refused: so the probe gets a loop on its own thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(asyncio.run, _broker_count(bootstrap, timeout, client_config))
        try:
            return future.result(timeout=timeout + 5) > 0
        except Exception:
            return False
