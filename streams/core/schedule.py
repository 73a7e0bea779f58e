"""Business hours (SPEC §3, care): when a care team is at work, and how much of its working time
lies between two instants.

Sprout Social's team report splits reply times into business hours and all hours; care SLAs
count business hours and skip holidays. A ``BusinessHours`` is one team's week in its own IANA
time zone (``zoneinfo``): working days, one or more shifts a day, and holidays. Local times are
wall-clock times, so a 09:00-17:00 shift is eight hours on the days daylight saving time starts
and ends too, and an overnight ``00:00-24:00`` shift is 23 or 25 hours on those days.

``BusinessSchedules`` says which schedule an account follows: its own, its market's, or the
default one (SPEC §3 lists the file format that ``streams.settings`` reads). An account without
one has no business-hours series, and its SLA counts all hours.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SHIFT = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]|24):([0-5][0-9])")
_ONE_DAY = timedelta(days=1)
# How far back an overdue cut-off is searched: a schedule open a few hours a year still answers.
_MAX_DAYS_BACK = 800


@dataclass(frozen=True, slots=True)
class Shift:
    """Working time of one day, in minutes after local midnight (``end`` at most 24 h)."""

    start_minute: int
    end_minute: int


@dataclass(frozen=True)
class BusinessHours:
    """One team's working week; see the module docstring."""

    name: str
    timezone: str
    days: frozenset[int]  # 0 = Monday
    shifts: tuple[Shift, ...]
    holidays: frozenset[date] = frozenset()
    _days: dict[date, tuple[tuple[int, int], ...]] = field(
        default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def intervals_on(self, day: date) -> tuple[tuple[int, int], ...]:
        """The working intervals of local date ``day`` as [start, end) epoch milliseconds."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        out: list[tuple[int, int]] = []
        if day.weekday() in self.days and day not in self.holidays:
            zone = self.zone
            for s in self.shifts:
                start = _instant(day, s.start_minute, zone)
                end = _instant(day, s.end_minute, zone)
                if end > start:
                    out.append((start, end))
        result = tuple(out)
        if len(self._days) > 4096:  # a long-running worker walks forward through the days
            self._days.clear()
        self._days[day] = result
        return result

    def local_date(self, ms: int) -> date:
        return datetime.fromtimestamp(ms / 1000, self.zone).date()

    def seconds_between(self, start_ms: int, end_ms: int) -> float:
        """Working seconds in [start, end) (0 when end is not after start)."""
        if end_ms <= start_ms:
            return 0.0
        total = 0
        day = self.local_date(start_ms)
        last = self.local_date(end_ms)
        while day <= last:
            for s, e in self.intervals_on(day):
                lo, hi = max(s, start_ms), min(e, end_ms)
                if hi > lo:
                    total += hi - lo
            day += _ONE_DAY
        return total / 1000.0

    def overdue_before(self, now_ms: int, sla_ms: float) -> float:
        """The instant before which a message still waiting at ``now_ms`` has waited more than
        ``sla_ms`` of working time: message ts < result <=> ``seconds_between(ts, now) * 1000 >
        sla_ms``. Working time only grows towards the past, so one walk back serves every
        pending message of the account."""
        remaining = sla_ms
        day = self.local_date(now_ms)
        for _ in range(_MAX_DAYS_BACK):
            for s, e in reversed(self.intervals_on(day)):
                if s >= now_ms:
                    continue
                e = min(e, now_ms)
                if e - s > remaining:
                    return e - remaining
                remaining -= e - s
            day -= _ONE_DAY
        return float("-inf")

    def is_open(self, ms: int) -> bool:
        return any(s <= ms < e for s, e in self.intervals_on(self.local_date(ms)))

    def next_open(self, ms: int) -> int:
        """``ms`` if the team is at work then, else the start of its next working interval."""
        day = self.local_date(ms)
        for _ in range(_MAX_DAYS_BACK):
            for s, e in self.intervals_on(day):
                if ms < e:
                    return max(s, ms)
            day += _ONE_DAY
        return ms


def _instant(day: date, minute: int, zone: ZoneInfo) -> int:
    if minute >= 24 * 60:
        day, minute = day + _ONE_DAY, minute - 24 * 60
    local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
    return round(local.timestamp() * 1000)


@dataclass(frozen=True)
class BusinessSchedules:
    """Which schedule each account follows: its own, else its market's, else the default."""

    schedules: Mapping[str, BusinessHours] = field(default_factory=dict)
    accounts: Mapping[str, str] = field(default_factory=dict)
    markets: Mapping[str, str] = field(default_factory=dict)
    default: str | None = None

    def of(self, account: str, market: str) -> BusinessHours | None:
        name = self.accounts.get(account) or self.markets.get(market) or self.default
        return self.schedules[name] if name is not None else None

    def __bool__(self) -> bool:
        return bool(self.schedules)


NO_SCHEDULES = BusinessSchedules()


def parse_schedules(doc: Mapping[str, Any]) -> BusinessSchedules:
    """The schedules of a business-hours document (the TOML file's tables, SPEC §3).

    Raises ``ValueError`` with one line that names the schedule and the field at fault."""
    unknown = set(doc) - {"schedule"}
    if unknown:
        raise ValueError(f"unknown top-level keys {sorted(unknown)}: expected [schedule.<name>]")
    tables = doc.get("schedule", {})
    if not isinstance(tables, Mapping) or not tables:
        raise ValueError("no [schedule.<name>] table")
    schedules: dict[str, BusinessHours] = {}
    accounts: dict[str, str] = {}
    markets: dict[str, str] = {}
    default: str | None = None
    for name, t in tables.items():
        if not isinstance(t, Mapping):
            raise ValueError(f"schedule {name!r}: must be a table")
        where = f"schedule {name!r}"
        extra = set(t) - {"timezone", "days", "hours", "holidays", "accounts", "markets",
                          "default"}
        if extra:
            raise ValueError(f"{where}: unknown keys {sorted(extra)}")
        schedules[name] = _one(name, t, where)
        for key, owners in (("accounts", accounts), ("markets", markets)):
            for member in _strings(t.get(key, []), f"{where}: {key}"):
                if member in owners:
                    raise ValueError(f"{where}: {key[:-1]} {member!r} is already in schedule "
                                     f"{owners[member]!r}")
                owners[member] = name
        is_default = t.get("default", False)
        if not isinstance(is_default, bool):
            raise ValueError(f"{where}: default must be true or false")
        if is_default:
            if default is not None:
                raise ValueError(f"{where}: schedule {default!r} is the default already")
            default = name
    return BusinessSchedules(schedules, accounts, markets, default)


def _one(name: str, t: Mapping[str, Any], where: str) -> BusinessHours:
    tz = t.get("timezone")
    if not isinstance(tz, str):
        raise ValueError(f"{where}: timezone is required, an IANA name like 'Europe/Berlin'")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{where}: unknown time zone {tz!r}") from None
    day_names = _strings(t.get("days", list(WEEKDAYS[:5])), f"{where}: days")
    bad = [d for d in day_names if d not in WEEKDAYS]
    if bad or not day_names:
        raise ValueError(f"{where}: days must be some of {list(WEEKDAYS)}, got {day_names}")
    shifts: list[Shift] = []
    for text in _strings(t.get("hours", ["09:00-17:00"]), f"{where}: hours"):
        m = _SHIFT.fullmatch(text)
        if m is None:
            raise ValueError(f"{where}: hours {text!r} is not HH:MM-HH:MM")
        start = int(m[1]) * 60 + int(m[2])
        end = int(m[3]) * 60 + int(m[4])
        if end > 24 * 60 or end <= start:
            raise ValueError(f"{where}: hours {text!r} must end after it starts, by 24:00")
        shifts.append(Shift(start, end))
    if not shifts:
        raise ValueError(f"{where}: hours must list at least one shift")
    shifts.sort(key=lambda s: s.start_minute)
    for a, b in pairwise(shifts):
        if b.start_minute < a.end_minute:
            raise ValueError(f"{where}: hours overlap")
    holidays: set[date] = set()
    raw_holidays = t.get("holidays", [])
    if not isinstance(raw_holidays, list):
        raise ValueError(f"{where}: holidays must be a list of dates")
    for value in raw_holidays:  # TOML dates, or strings YYYY-MM-DD
        if isinstance(value, date) and not isinstance(value, datetime):
            holidays.add(value)
            continue
        try:
            holidays.add(date.fromisoformat(value))
        except (TypeError, ValueError):
            raise ValueError(f"{where}: holiday {value!r} is not a date YYYY-MM-DD") from None
    return BusinessHours(name, tz, frozenset(WEEKDAYS.index(d) for d in day_names),
                         tuple(shifts), frozenset(holidays))


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a list of strings")
    return list(value)
