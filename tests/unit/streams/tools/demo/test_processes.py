"""The demo's children: stopped in reverse order, killed when deaf, and gone with ``up`` itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from streams.tools.demo.processes import Child, Children, Interrupted, stop_signals_interrupt
from tests.support.processes import ROOT


def test_children_stop_last_started_first_and_past_a_failure() -> None:
    stopped: list[str] = []
    children = Children()
    children.on_stop("kafka", lambda: stopped.append("kafka"))

    def broken() -> None:
        stopped.append("worker")
        raise RuntimeError("already gone")

    children.on_stop("worker", broken)
    children.on_stop("prometheus", lambda: stopped.append("prometheus"))
    children.stop_all()
    assert stopped == ["prometheus", "worker", "kafka"]
    assert children.stoppers == []


def test_a_child_deaf_to_sigterm_is_killed_after_its_grace(tmp_path: Path) -> None:
    child = Child("deaf", ["sh", "-c", "trap '' TERM; echo ready; sleep 60"],
                  tmp_path / "deaf.log", stop_timeout_s=0.5)
    child.start()
    deadline = time.monotonic() + 10
    while "ready" not in (tmp_path / "deaf.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    child.stop()
    assert child.proc is not None and child.proc.returncode == -signal.SIGKILL
    assert not child.running()


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
def test_sighup_and_sigterm_take_ctrl_c_s_path(signum: signal.Signals) -> None:
    before = signal.getsignal(signum)
    with pytest.raises(KeyboardInterrupt) as caught, stop_signals_interrupt():
        os.kill(os.getpid(), signum)
        time.sleep(5)  # interrupted at once by the handler
    assert isinstance(caught.value, Interrupted)
    assert signal.getsignal(signum) == before


def test_a_child_dies_with_up_when_up_is_killed(tmp_path: Path) -> None:
    """``up`` killed with SIGKILL runs no clean-up: PR_SET_PDEATHSIG still ends its children."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from streams.tools.demo.processes import Child
        child = Child("sleeper", ["sleep", "60"], Path({str(tmp_path / 'sleeper.log')!r}))
        print(child.start().pid, flush=True)
        time.sleep(60)
    """)
    up = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert up.stdout is not None
    grandchild = psutil.Process(int(up.stdout.readline()))
    assert grandchild.is_running()
    try:
        up.kill()
        up.wait()
        grandchild.wait(timeout=10)  # psutil.TimeoutExpired if it outlived its parent
        assert not grandchild.is_running()
    finally:
        if grandchild.is_running():
            grandchild.kill()
