"""The demo's view: numbers formatted for people, the rich screen and the plain lines."""

from __future__ import annotations

from rich.console import Console

from streams.tools.demo.probe import AccountRow, AlertRow, Snapshot
from streams.tools.demo.view import DemoInfo, dead_letters, duration, percent, plain_lines, screen

NOW = 1_800_000_000.0
INFO = DemoInfo(rate=300, scenario="engagement-drop", target="acme", scenario_at=NOW + 90,
                started_at=NOW - 60, worker_url="http://127.0.0.1:6066", worker_log="w.log",
                window="5m", alert_window="1m", prometheus_url="http://127.0.0.1:9090",
                alertmanager_url="http://127.0.0.1:9094")
SNAP = Snapshot(
    at=NOW, produced=12_000, produced_per_s=301.4, consumed=11_900, consumed_per_s=298.0, lag=7,
    dead_letters={"invalid_json": 3, "schema": 1},
    accounts=(AccountRow("acme", 1960, 0.0337, 0.0012, 0.0071, 0.4688, 252.0, 9),
              AccountRow("globex")),
    alerts=(AlertRow("EngagementRateDrop", "firing", "acme", NOW - 75,
                     "Engagement rate of acme dropped sharply"),),
)


def test_numbers_read_as_people_write_them() -> None:
    assert duration(38) == "38 s" and duration(252) == "4m12s" and duration(3900) == "1h05m"
    assert duration(None) == "-" and percent(0.0337) == "3.37 %"
    assert dead_letters({}) == "0"
    assert dead_letters({"schema": 1, "invalid_json": 3}) == "4 (invalid_json 3, schema 1)"


def test_the_screen_shows_rates_accounts_and_alerts() -> None:
    console = Console(width=110, record=True, color_system=None)
    console.print(screen(INFO, SNAP, now=NOW))
    text = console.export_text()
    assert "produced 301/s (12,000)" in text and "consumed 298/s (11,900)" in text
    assert "lag 7" in text and "dead letters 4 (invalid_json 3, schema 1)" in text
    assert "scenario engagement-drop on acme from" in text and "(in 1m30s)" in text
    for cell in ("acme", "1,960", "3.37 %", "0.12 %", "46.88 %", "4m12s", "globex"):
        assert cell in text, cell
    assert "FIRING   EngagementRateDrop acme for 1m15s" in text


def test_without_prometheus_there_is_no_alert_part() -> None:
    console = Console(width=110, record=True, color_system=None)
    info = DemoInfo(**{**INFO.__dict__, "prometheus_url": None, "alert_window": None})
    console.print(screen(info, Snapshot(**{**SNAP.__dict__, "alerts": None}), now=NOW))
    text = console.export_text()
    assert "alerts" not in text and "Prometheus" not in text and "acme" in text


def test_plain_lines_carry_the_same_figures() -> None:
    lines = plain_lines(INFO, Snapshot(**{**SNAP.__dict__, "alerts": ()}))
    assert "produced 301/s consumed 298/s lag 7" in lines[0]
    assert "acme: 5m impressions 1,960 engagement rate 3.37 % (1m 0.12 %)" in lines[1]
    assert lines[-1].endswith("alerts: none pending or firing")
