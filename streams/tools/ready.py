"""Waiting for a Prometheus or Alertmanager the tools started to answer ``GET /-/ready``.

Used by ``socialpulse up`` (its Prometheus and Alertmanager) and ``socialpulse history`` (the
Prometheus that evaluates the recording rules over a backfill).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from streams.tools.preflight import CliError

POLL_INTERVAL_S = 0.3


def wait_ready(
    url: str, *, what: str, timeout_s: float = 60.0,
    running: Callable[[], bool] | None = None, log: Path | None = None,
) -> None:
    """Until ``{url}/-/ready`` answers 200. A server that exits first (``running`` says so) or
    is not ready within ``timeout_s`` is a ``CliError`` naming ``what`` and its ``log``."""
    see = f"; see {log}" if log is not None else ""
    deadline = time.monotonic() + timeout_s
    while True:
        if running is not None and not running():
            raise CliError(f"{what} exited{see}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise CliError(f"{what} on {url} not ready after {timeout_s:.0f} s{see}")
        time.sleep(POLL_INTERVAL_S)
