"""Business hours: working seconds across weekends, holidays and daylight saving time, the
overdue cut-off, the file format's errors, and what the engine makes of them (SPEC §3, care)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.core.engine import Engine
from streams.core.schedule import BusinessHours, parse_schedules
from streams.core.series import compute
from streams.settings import Settings
from tests.support.oracle import business_seconds as oracle_seconds

BERLIN = {"timezone": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu", "fri"],
          "hours": ["09:00-17:00"], "holidays": [date(2026, 12, 25), "2026-12-24"]}


def _hours(**table: Any) -> BusinessHours:
    return parse_schedules({"schedule": {"desk": {**BERLIN, **table, "default": True}}}).of(
        "any", "any")  # type: ignore[return-value]


def utc(year: int, month: int, day: int, hour: int, minute: int) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


def test_friday_evening_to_monday_morning_is_one_working_hour() -> None:
    h = _hours()
    # Friday 2026-11-27 17:30 Berlin (16:30 UTC) -> Monday 10:00 Berlin (09:00 UTC)
    assert h.seconds_between(utc(2026, 11, 27, 16, 30), utc(2026, 11, 30, 9, 0)) == 3600
    assert not h.is_open(utc(2026, 11, 28, 12, 0))
    assert h.next_open(utc(2026, 11, 28, 12, 0)) == utc(2026, 11, 30, 8, 0)


def test_a_holiday_has_no_working_hours() -> None:
    h = _hours()
    # Wednesday 23 Dec 16:00 Berlin -> Monday 28 Dec 10:00: 1 h + (24th, 25th off) + 1 h
    assert h.seconds_between(utc(2026, 12, 23, 15, 0), utc(2026, 12, 28, 9, 0)) == 2 * 3600
    assert h.intervals_on(date(2026, 12, 24)) == ()


@pytest.mark.parametrize("hours,expected_h", [
    (["09:00-17:00"], 8.0),  # wall-clock shifts: eight hours on the day the clocks go back
    (["00:00-24:00"], 25.0),  # the whole day: 25 hours long on 25 October 2026
])
def test_daylight_saving_time_ends(hours: list[str], expected_h: float) -> None:
    h = _hours(hours=hours, days=["sun"])
    # Berlin's 25 October 2026, midnight to midnight
    day = (utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 23, 0))
    assert h.seconds_between(*day) / 3600 == expected_h
    assert oracle_seconds(h, *day) / 3600 == expected_h


def test_daylight_saving_time_starts_in_new_york() -> None:
    h = _hours(timezone="America/New_York", hours=["00:00-24:00"], days=["sun"])
    # 8 March 2026 in New York is 23 hours long
    assert h.seconds_between(utc(2026, 3, 8, 5, 0), utc(2026, 3, 9, 4, 0)) == 23 * 3600


def test_seconds_between_agrees_with_the_oracles_minute_walk() -> None:
    h = _hours(hours=["08:15-12:00", "13:00-18:45"], days=["mon", "tue", "sat"])
    start = utc(2026, 3, 20, 7, 3) + 17_250  # odd milliseconds at both ends
    for k in range(0, 200):
        end = start + k * 3_600_123
        assert h.seconds_between(start, end) == pytest.approx(
            oracle_seconds(h, start, end), abs=1e-6), k


def test_overdue_before_is_the_instant_the_sla_of_working_time_is_passed() -> None:
    h = _hours()
    now = utc(2026, 11, 30, 9, 0)  # Monday 10:00 Berlin
    cut = int(h.overdue_before(now, 3_600_000))
    assert cut == utc(2026, 11, 27, 16, 0)  # Friday 17:00 Berlin
    for ts in (cut - 1, cut, cut + 1, utc(2026, 11, 27, 16, 30), utc(2026, 11, 26, 12, 0)):
        assert (ts < cut) == (h.seconds_between(ts, now) * 1000 > 3_600_000)


@pytest.mark.parametrize("doc,message", [
    ({}, "no [schedule.<name>] table"),
    ({"schedule": {"a": {"timezone": "Mars/Olympus"}}}, "unknown time zone 'Mars/Olympus'"),
    ({"schedule": {"a": {"timezone": "UTC", "days": ["monday"]}}}, "days must be some of"),
    ({"schedule": {"a": {"timezone": "UTC", "hours": ["9-17"]}}}, "is not HH:MM-HH:MM"),
    ({"schedule": {"a": {"timezone": "UTC", "hours": ["17:00-09:00"]}}}, "must end after"),
    ({"schedule": {"a": {"timezone": "UTC", "hours": ["09:00-12:00", "11:00-13:00"]}}},
     "hours overlap"),
    ({"schedule": {"a": {"timezone": "UTC", "holidays": ["25.12.2026"]}}}, "is not a date"),
    ({"schedule": {"a": {"timezone": "UTC", "accounts": ["x"]},
                   "b": {"timezone": "UTC", "accounts": ["x"]}}}, "already in schedule 'a'"),
    ({"schedule": {"a": {"timezone": "UTC", "sla": 3}}}, "unknown keys ['sla']"),
])
def test_a_bad_schedule_is_refused_with_the_field_at_fault(doc: dict[str, Any],
                                                           message: str) -> None:
    with pytest.raises(ValueError, match=None) as err:
        parse_schedules(doc)
    assert message in str(err.value)


def test_a_bad_file_is_a_bad_setting(tmp_path: Path) -> None:
    bad = tmp_path / "hours.toml"
    bad.write_text('[schedule.a]\ntimezone = "Nowhere/Land"\n')
    with pytest.raises(ValueError, match="unknown time zone"):
        Settings(business_hours_file=bad)
    with pytest.raises(ValueError, match="cannot read"):
        Settings(business_hours_file=tmp_path / "missing.toml")


# --- the engine with business hours ---------------------------------------------------------

FRIDAY_1730 = utc(2026, 11, 27, 16, 30)  # Berlin


def _settings(tmp_path: Path, sla_s: float = 3600) -> Settings:
    f = tmp_path / "hours.toml"
    f.write_text('[schedule.desk]\ntimezone = "Europe/Berlin"\nhours = ["09:00-17:00"]\n'
                 'accounts = ["acme"]\n')
    # A message of Friday evening is still in state on Monday only with a window that long.
    return Settings(clock="wall", windows=["5m", "4d"], grace_seconds=300,
                    business_hours_file=f, response_sla_seconds=sla_s)


def ev(n: str, etype: str, ts: int, account: str = "acme", **fields: Any) -> bytes:
    return orjson.dumps({"event_id": n, "type": etype, "ts": ts, "account": account,
                         "platform": "x", **fields})


def test_a_message_of_friday_evening_is_not_overdue_on_saturday(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    saturday = utc(2026, 11, 28, 11, 0)
    e = Engine(s, now_ms=lambda: saturday)
    e.ingest_batch([(0, 0, b"acme", ev("m1", "comment", FRIDAY_1730, needs_response=True)),
                    (0, 1, b"acme", ev("m2", "comment", utc(2026, 11, 27, 14, 0),
                                       needs_response=True)),
                    (0, 2, b"acme", ev("m3", "comment", FRIDAY_1730, account="initech",
                                       needs_response=True))])
    rows = dict(compute(e, s)["social_overdue_responses"])
    assert rows[("acme", "all")] == 1  # 14:00 UTC = 15:00 Berlin: two working hours by Saturday
    assert rows[("initech", "all")] == 1  # no schedule: all hours count
    assert dict(compute(e, s)["social_pending_responses"])[("acme", "all")] == 2


def test_replies_measure_business_and_all_hours_per_agent_and_team(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    monday_10 = utc(2026, 11, 30, 9, 0)
    e = Engine(s, now_ms=lambda: monday_10 + 60_000)
    e.ingest_batch([
        (0, 0, b"acme", ev("m1", "comment", FRIDAY_1730, needs_response=True)),
        (0, 1, b"acme", ev("r1", "reply", monday_10, in_reply_to="m1", agent="agent-1",
                           team="desk", resolved=True)),
        # a reply before its message (an orphan) keeps its agent until the message comes
        (0, 2, b"acme", ev("r2", "reply", monday_10 + 30_000, in_reply_to="m2",
                           agent="agent-2", team="desk")),
        (0, 3, b"acme", ev("m2", "mention", monday_10 - 60_000, needs_response=True)),
    ])
    out = {name: dict(rows) for name, rows in compute(e, s).items()}
    w = ("acme", "all", "4d")
    # m1: Friday 17:30 -> Monday 10:00 is 64.5 hours, one of them working; m2: 90 s, all working
    assert out["social_response_time_seconds_sum"][w] == (monday_10 - FRIDAY_1730) / 1000 + 90
    assert out["social_response_time_business_seconds_sum"][w] == 3600 + 90
    assert out["social_agent_replies"][("acme", "agent-1", "4d")] == 1
    assert out["social_agent_resolution_ratio"][("acme", "agent-2", "4d")] == 0
    assert out["social_team_replies"][("acme", "desk", "4d")] == 2
    assert out["social_team_resolution_ratio"][("acme", "desk", "4d")] == 0.5
    assert out["social_agent_response_time_business_seconds"][
        ("acme", "agent-2", "4d", "0.5")] == pytest.approx(90, rel=0.02)
    # both replies at Monday 10:00: inside the 5m window too
    assert out["social_team_response_time_seconds_count"][("acme", "desk", "5m")] == 2


def test_agents_over_the_cap_count_under_other(tmp_path: Path) -> None:
    s = Settings(clock="event", windows=["5m"], max_agents_per_account=2,
                 max_teams_per_account=1)
    e = Engine(s, now_ms=lambda: FRIDAY_1730)
    out = e.ingest_batch([(0, i, b"acme", ev(f"r{i}", "reply", FRIDAY_1730, in_reply_to="x",
                                              agent=f"agent-{i}", team=f"team-{i % 2}"))
                          for i in range(4)])
    assert out.overflow_labels == {"agent": 2, "team": 2}
    rows = dict(compute(e, s)["social_agent_replies"])
    assert rows == {("acme", "agent-0", "5m"): 1, ("acme", "agent-1", "5m"): 1,
                    ("acme", "_other", "5m"): 2}
    assert dict(compute(e, s)["social_team_replies"]) == {
        ("acme", "team-0", "5m"): 2, ("acme", "_other", "5m"): 2}


def test_care_staff_and_business_times_survive_a_restore(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    monday_10 = utc(2026, 11, 30, 9, 0)
    e = Engine(s, now_ms=lambda: monday_10 + 60_000)
    e.ingest_batch([(0, 0, b"acme", ev("m1", "comment", FRIDAY_1730, needs_response=True,
                                       post_id="p1")),
                    (0, 1, b"acme", ev("r1", "reply", monday_10, in_reply_to="m1",
                                       agent="agent-1", team="desk")),
                    (0, 2, b"acme", ev("l1", "like", monday_10, post_id="p1"))])
    snap = e.snapshot()
    restored = Engine(s, now_ms=lambda: monday_10 + 60_000)
    restored.restore(0, [(k, v) for _p, k, v in (*snap.state, *snap.marks) if v is not None])
    assert compute(restored, s) == compute(e, s)
    from streams.core.series import top_posts
    assert top_posts(restored, "acme") == top_posts(e, "acme")
    assert top_posts(e, "acme")["4d"]["engagements"]["posts"][0]["item"] == "p1"
