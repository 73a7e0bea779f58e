"""The report's arithmetic on counter readings (``streams.report.collect``) and its command line's
period (``streams.report.command``), without Prometheus: the e2e test runs them against one."""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime, timedelta

import pytest

from streams.report.collect import (
    Timeline,
    choose_step,
    histogram_quantile,
    rule_of,
    step_counts,
)
from streams.report.command import parse_instant, period_of
from streams.report.model import Period, ReportError
from streams.report.prometheus import RangeSeries, parse_duration

T0 = datetime(2026, 11, 16, tzinfo=UTC)


@pytest.mark.parametrize(("readings", "counts"), [
    # a steady counter: the differences
    ([10, 15, 15, 30], [0, 5, 0, 15]),
    # absent at the first boundary: it started at 0 inside the first step it shows in
    ([None, None, 4, 9], [0, 0, 4, 5]),
    # a gap keeps the last reading: what it counted meanwhile lands where it shows again
    ([10, None, None, 25], [0, 0, 0, 15]),
    # a lower reading is a counter that started again from 0 (an account whose slot lapsed)
    ([100, 120, 7, 10], [0, 20, 7, 3]),
    ([None], [0]),
])
def test_step_counts(readings: list[float | None], counts: list[float]) -> None:
    assert step_counts(readings) == counts


def test_histogram_quantile_interpolates_as_prometheus_does() -> None:
    inf = math.inf
    # 10 observations: 4 in (0, 60], 4 in (60, 300], 2 above 3600
    buckets = [(60.0, 4.0), (300.0, 8.0), (3600.0, 8.0), (inf, 10.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(60 + 240 * (1 / 4))
    assert histogram_quantile(0.2, buckets) == pytest.approx(60 * 0.5)
    assert histogram_quantile(0.9, buckets) == 3600.0  # in +Inf: the highest finite bound
    assert histogram_quantile(0.5, [(60.0, 0.0), (inf, 0.0)]) is None
    assert histogram_quantile(0.5, [(60.0, 1.0)]) is None  # no +Inf bucket


def test_timeline_places_points_on_their_boundary_and_merges_copies() -> None:
    tl = Timeline(T0, timedelta(days=1), 7)
    assert len(tl.instants) == 15 and tl.instants[7] == T0 + timedelta(days=7)
    base = T0.timestamp()
    series = [
        RangeSeries({"account": "acme", "platform": "x", "job": "a"},
                    [(base, 1.0), (base + 86_400, 3.0)]),
        RangeSeries({"account": "acme", "platform": "x", "job": "b"}, [(base + 86_400, 4.0)]),
        RangeSeries({"account": "acme", "platform": "x", "currency": "EUR"},
                    [(base + 2 * 86_400 + 0.4, 2.5)]),
    ]
    plain = tl.readings(series[:2], None)
    assert plain[("acme", "x", "")][:3] == [1.0, 4.0, None]
    keyed = tl.readings(series[2:], "currency")
    assert keyed[("acme", "x", "EUR")][2] == 2.5


def test_steps_are_days_for_long_periods_else_twelve() -> None:
    assert choose_step(Period(T0, T0 + timedelta(days=7))) == timedelta(days=1)
    assert choose_step(Period(T0, T0 + timedelta(days=2, hours=12))) == timedelta(hours=20)
    assert choose_step(Period(T0, T0 + timedelta(hours=6))) == timedelta(minutes=30)
    assert rule_of("social_clicks_total") == "account_platform:social_clicks_total:max"


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"start": None, "end": None, "days": 7.0}
    return argparse.Namespace(**{**base, **kw})


def test_the_default_period_is_the_last_whole_days() -> None:
    now = datetime(2026, 12, 2, 6, 30, tzinfo=UTC)
    p = period_of(_args(), now)
    assert (p.start, p.end) == (datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 12, 2,
                                                                              tzinfo=UTC))
    assert p.before() == Period(datetime(2026, 11, 18, tzinfo=UTC), p.start)
    q = period_of(_args(start="2026-11-01", end="2026-11-30T12:00:00+01:00"), now)
    assert q.end == datetime(2026, 11, 30, 11, tzinfo=UTC)


@pytest.mark.parametrize(("kw", "says"), [
    ({"start": "yesterday"}, "not an ISO 8601"),
    ({"start": "2026-12-01", "end": "2026-11-01"}, "must end after it starts"),
    ({"end": "2027-01-01"}, "ends in the future"),
    ({"days": 0.0}, "--days must be positive"),
])
def test_a_bad_period_is_one_line(kw: dict[str, object], says: str) -> None:
    with pytest.raises(ReportError, match=says) as err:
        period_of(_args(**kw), datetime(2026, 12, 2, 6, 30, tzinfo=UTC))
    assert "\n" not in str(err.value)


def test_durations_and_instants() -> None:
    assert parse_duration("15d") == timedelta(days=15)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("10GiB") is None
    assert parse_instant("2026-11-30").tzinfo is UTC


def test_an_unreachable_prometheus_is_one_line() -> None:
    from streams.report.prometheus import PrometheusApi
    from streams.tools.local_kafka import free_port

    api = PrometheusApi(f"http://127.0.0.1:{free_port()}", timeout_s=5)
    reach = r"cannot reach Prometheus at http://127\.0\.0\.1:"
    with pytest.raises(ReportError, match=reach) as err:
        api.retention()
    assert "\n" not in str(err.value)
