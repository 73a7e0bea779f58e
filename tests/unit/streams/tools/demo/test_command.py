"""The demo's command: its worker's settings and business hours."""

from __future__ import annotations

from pathlib import Path

from streams.settings import Settings, read_business_hours
from streams.tools.demo import command


def test_the_demo_uses_the_example_business_hours() -> None:
    assert command.DEMO_BUSINESS_HOURS.is_file()
    schedules, env = command.demo_business_hours(Settings())
    assert env == {"SOCIALPULSE_BUSINESS_HOURS_FILE": str(command.DEMO_BUSINESS_HOURS)}
    assert schedules == read_business_hours(command.DEMO_BUSINESS_HOURS)
    assert schedules.of("acme", "default") is not None
    # A configured file wins, and the worker reads it from the environment it inherits.
    own = Settings(business_hours_file=command.DEMO_BUSINESS_HOURS)
    assert command.demo_business_hours(own) == (own.business_hours, {})


def test_the_demo_worker_adds_the_rules_window_under_its_own_app_id(tmp_path: Path) -> None:
    ws = command.worker_settings(Settings())
    assert ws.windows == ["1m", "5m", "1h", "24h"] and ws.app_id == "socialpulse-demo"
    worker = command.DemoWorker(ws, tmp_path / "w.log", {"X": "1"})
    assert worker.env["SOCIALPULSE_WINDOWS"] == "1m,5m,1h,24h"
    assert worker.env["SOCIALPULSE_APP_ID"] == "socialpulse-demo" and worker.env["X"] == "1"
    # Windows that hold it already keep their app id (and state).
    own = Settings(windows=["1m", "1h"], app_id="mine")
    assert command.worker_settings(own) is own
