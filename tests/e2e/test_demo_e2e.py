"""The demo as a person runs it: ``socialpulse up`` in a terminal (tmux), looked at, then left.

Each test starts the whole demo (its own local Kafka, worker, Prometheus and Alertmanager, on
free loopback ports and temporary directories) in a tmux pane of its own tmux server, reads the
pane as a person would (``capture-pane``) and then leaves the demo one way or another: its
duration ends, Ctrl-C, or the terminal closes (the tmux session killed: SIGHUP). Whichever way,
no process it started and no port it listened on may remain.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from streams.tools.local_kafka import free_port
from tests.support.processes import ROOT
from tests.support.prometheus import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

ACCOUNTS = ("acme", "globex", "initech", "umbrella")  # the simulator's default accounts


@dataclass
class Pane:
    """One ``socialpulse up`` in a tmux session of a private tmux server."""

    socket: str
    session: str
    directory: Path
    ports: dict[str, int]
    seen: str = ""  # the last non-empty capture (the pane is gone after kill-session)

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=30, check=False)

    def text(self) -> str:
        out = self.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", self.session).stdout
        self.seen = (out.strip() and out) or self.seen
        return out

    def exited(self) -> bool:
        out = self.tmux("list-panes", "-t", self.session, "-F", "#{pane_dead}").stdout
        return out.strip() in ("1", "")

    def leftovers(self) -> list[str]:
        """Processes of this demo still alive and its ports still listening."""
        alive = []
        worker = re.search(r"worker pid (\d+)", self.seen)
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if cmd.startswith("tmux "):  # the test's own tmux server, killed at teardown
                continue
            if str(self.directory) in cmd or (worker and proc.info["pid"] == int(worker[1])):
                alive.append(f"pid {proc.info['pid']}: {cmd[:160]}")
        for name, port in self.ports.items():
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    alive.append(f"{name} port {port} still listening")
        return alive


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Callable[..., Pane]]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux not found: run scripts/setup", pytrace=False)
    started: list[Pane] = []

    def start(*up_args: str) -> Pane:
        ports = {"kafka": free_port(), "controller": free_port(), "worker": free_port(),
                 "prometheus": free_port(), "alertmanager": free_port()}
        env = {
            "SOCIALPULSE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{ports['kafka']}",
            "SOCIALPULSE_KAFKA_CONTROLLER_PORT": str(ports["controller"]),
            "SOCIALPULSE_KAFKA_DATA_DIR": str(tmp_path / "kafka"),
            "SOCIALPULSE_DATA_DIR": str(tmp_path / "worker"),
            "SOCIALPULSE_WEB_PORT": str(ports["worker"]),
            "SOCIALPULSE_DEMO_PROMETHEUS_PORT": str(ports["prometheus"]),
            "SOCIALPULSE_DEMO_ALERTMANAGER_PORT": str(ports["alertmanager"]),
            "SOCIALPULSE_DEMO_DIR": str(tmp_path / "demo"),
            "SOCIALPULSE_DEMO_REFRESH_SECONDS": "1",
            "PYTHONPATH": str(ROOT),
        }
        keep = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALPULSE_")}
        script = tmp_path / "up.sh"
        script.write_text("#!/bin/sh\n" + "".join(
            f"export {k}={shlex.quote(v)}\n" for k, v in {**keep, **env}.items()
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k))
            + f"cd {shlex.quote(str(ROOT))}\n"
            + f"exec {shlex.quote(str(ROOT / '.venv' / 'bin' / 'socialpulse'))} up "
            + " ".join(shlex.quote(a) for a in up_args) + "\n")
        script.chmod(0o755)
        config = tmp_path / "tmux.conf"
        config.write_text("set -g remain-on-exit on\nset -g history-limit 5000\n")
        pane = Pane(f"sp-{uuid.uuid4().hex[:8]}", "demo", tmp_path, ports)
        started.append(pane)
        out = subprocess.run(["tmux", "-L", pane.socket, "-f", str(config), "new-session", "-d",
                              "-s", pane.session, "-x", "120", "-y", "45", str(script)],
                             capture_output=True, text=True, timeout=30, check=False)
        assert out.returncode == 0, out.stderr
        return pane

    yield start
    for pane in started:
        pane.tmux("kill-server")
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if str(pane.directory) in " ".join(proc.info["cmdline"] or []):
                proc.kill()


def _view_with_traffic(pane: Pane) -> str | None:
    """The pane once the view shows traffic produced and consumed and every account's KPIs."""
    text = pane.text()
    produced = re.search(r"produced ([\d,]+)/s \(([\d,]+)\)", text)
    consumed = re.search(r"consumed ([\d,]+)/s \(([\d,]+)\)", text)
    if pane.exited() and not (produced and consumed):
        raise AssertionError(f"socialpulse up ended before its view showed traffic:\n{text}")
    if not (produced and consumed):
        return None
    rates = [int(m[1].replace(",", "")) for m in (produced, consumed)]
    rows = {a: re.search(rf"│{a}\s*│\s*([\d,]+)\s*│", text) for a in ACCOUNTS}
    if min(rates) == 0 or not all(rows.values()):
        return None
    if any(int(m[1].replace(",", "")) == 0 for m in rows.values() if m):
        return None
    return text


def test_the_view_shows_traffic_for_every_account_and_the_duration_ends_it(
    demo: Callable[..., Pane],
) -> None:
    pane = demo("--rate", "200", "--duration", "40")
    text = wait_for(lambda: _view_with_traffic(pane), timeout=200, interval=2,
                    what="the view with non-zero rates for every account",
                    details=pane.text)
    assert "alerts none pending or firing" in text or "alerts\n" in text, text
    assert f"127.0.0.1:{pane.ports['prometheus']}" in text, text
    assert "[ERROR]" not in text and "GroupCoordinator" not in text, text
    wait_for(pane.exited, timeout=150, what="up to end with its duration", details=pane.text)
    assert "stopped local Kafka" in pane.text()
    assert pane.leftovers() == []


@pytest.mark.parametrize("way_out", ["Ctrl-C", "terminal closed"])
def test_every_way_out_stops_everything(demo: Callable[..., Pane], way_out: str) -> None:
    pane = demo("--rate", "100")
    wait_for(lambda: _view_with_traffic(pane), timeout=200, interval=2,
             what="the view with traffic", details=pane.text)
    if way_out == "Ctrl-C":
        pane.tmux("send-keys", "-t", pane.session, "C-c")
        wait_for(pane.exited, timeout=90, what="up to end on Ctrl-C", details=pane.text)
        assert "stopped local Kafka" in pane.text()
    else:
        pane.tmux("kill-session", "-t", pane.session)  # the terminal's processes get SIGHUP
    deadline = time.monotonic() + 90
    while pane.leftovers() and time.monotonic() < deadline:
        time.sleep(1)
    assert pane.leftovers() == []
