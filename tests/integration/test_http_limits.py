"""The worker's HTTP server under abuse, on a real worker: slowloris connections are closed once
their headers are late, connections beyond the cap are refused at once, and probes still answer.
Before these limits, 200 slow connections stayed open as long as their clients wished.
"""

from __future__ import annotations

import socket
import time
import urllib.error
from pathlib import Path

import orjson
import pytest

from tests.support.processes import Figure, WorkerProc, new_worker

pytestmark = [pytest.mark.integration]

HEADER_TIMEOUT_S = 2.0
MAX_CONNECTIONS = 20
SLOW = 40  # connections opened by the slow client, twice the cap


def _slow_connection(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    s.setblocking(False)
    return s


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(1024) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slow_and_surplus_connections_are_closed(
    worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path, figure: Figure,
) -> None:
    w = new_worker(worker_env, tmp_path,
                   SOCIALPULSE_WEB_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT_S),
                   SOCIALPULSE_WEB_MAX_CONNECTIONS=str(MAX_CONNECTIONS)).start()
    workers.append(w)
    w.wait_ready(timeout=300)
    time.sleep(HEADER_TIMEOUT_S + 1)  # the readiness probe's own connections are gone
    opened = time.monotonic()
    conns = [_slow_connection(w.port) for _ in range(SLOW)]
    closed_at: dict[int, float] = {}
    deadline = opened + 10 * HEADER_TIMEOUT_S
    while len(closed_at) < SLOW and time.monotonic() < deadline:
        for i, s in enumerate(conns):
            if i in closed_at:
                continue
            if _closed(s):
                closed_at[i] = time.monotonic() - opened
            else:
                try:
                    s.send(b"X-Slow: 1\r\n")  # a header line now and then, never the end
                except OSError:
                    closed_at[i] = time.monotonic() - opened
        time.sleep(0.2)
    for s in conns:
        s.close()
    assert len(closed_at) == SLOW, f"{SLOW - len(closed_at)} slow connections still open"
    early = sorted(closed_at.values())
    # The surplus is refused at once; the admitted ones are closed after the header timeout.
    refused = [t for t in early if t < HEADER_TIMEOUT_S / 2]
    assert len(refused) >= SLOW - MAX_CONNECTIONS, early
    assert max(early) < 4 * HEADER_TIMEOUT_S, early
    status = orjson.loads(w.get("/status"))
    assert "partitions" in status
    figure("slowloris", f"{SLOW} slow connections, cap {MAX_CONNECTIONS}: refused at once",
           len(refused))
    figure("slowloris", "last slow connection closed after", round(max(early), 1), "s")


def test_kpis_errors_tell_nothing_about_other_accounts(
    worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path,
) -> None:
    w = new_worker(worker_env, tmp_path).start()
    workers.append(w)
    w.wait_ready(timeout=300)
    for path, code in (("/kpis", 400), ("/kpis?account=nobody%0d%0aX:1", 404)):
        with pytest.raises(urllib.error.HTTPError) as err:
            w.get(path)
        assert err.value.code == code
        body = orjson.loads(err.value.read())
        assert set(body) == {"error"} and "nobody" not in body["error"], body
