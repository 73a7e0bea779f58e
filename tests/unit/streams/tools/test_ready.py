"""streams.tools.ready: a server that becomes ready, one that exits first, one that never is."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from streams.tools.preflight import CliError
from streams.tools.ready import wait_ready


class _Readiness(BaseHTTPRequestHandler):
    """``/-/ready``: 503 for the first ``not_ready`` requests, then 200."""

    not_ready = 0
    seen = 0

    def do_GET(self) -> None:
        cls = type(self)
        cls.seen += 1
        ok = self.path == "/-/ready" and cls.seen > cls.not_ready
        self.send_response(200 if ok else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Readiness]]]:
    handler = type("Handler", (_Readiness,), {"not_ready": 2, "seen": 0})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_it_returns_once_the_server_answers_200(server: tuple[str, type[_Readiness]]) -> None:
    url, handler = server
    wait_ready(url, what="Prometheus", timeout_s=10, running=lambda: True)
    assert handler.seen == 3  # two 503s, then ready


def test_a_server_that_exits_first_is_an_error_naming_its_log(
    server: tuple[str, type[_Readiness]], tmp_path: Path,
) -> None:
    url, _ = server
    with pytest.raises(CliError, match=f"Alertmanager exited; see {tmp_path / 'am.log'}"):
        wait_ready(url, what="Alertmanager", running=lambda: False, log=tmp_path / "am.log")


def test_a_server_never_ready_times_out(server: tuple[str, type[_Readiness]]) -> None:
    url, handler = server
    handler.not_ready = 10**9
    with pytest.raises(CliError, match=r"Prometheus on http://127\.0\.0\.1:\d+ not ready after"):
        wait_ready(url, what="Prometheus", timeout_s=1)
