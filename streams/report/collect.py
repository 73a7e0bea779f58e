"""The report's figures, read from Prometheus: the lifetime counters' recording rules
(``account_platform:<counter>:max``, one series per counter however many workers exported it) at
each step boundary of the period and of the one before, turned into exact differences.

Why not ``increase()``: it extrapolates to the edges of its range, so a week's impressions come
out as 12,345.6 rather than the 12,345 the events were; and a series born inside the range loses
its first value. Here each counter is read at every boundary (``last_over_time`` over one step,
so a scrape gap shorter than a step costs nothing), and a step's count is the difference of two
readings; a reading below the previous one is a counter that started again (an account whose
state lapsed), counted as Prometheus does: from 0. A series absent at a boundary keeps its last
reading, so what it counted meanwhile lands in the step where it shows again; one absent at the
first boundary started at 0.

Counters count by arrival (when a worker applied the event, ``streams.core.totals``): a backfill
of last month's events today counts today. Response times come from the lifetime histogram
(``histogram_quantile``'s interpolation within a bucket, done here over the exact bucket counts);
reach is not additive, so the report shows the mean of the largest window's reach sampled at the
period's step boundaries.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from streams.core.labels import ALL_PLATFORMS, OTHER_ACCOUNT
from streams.report.model import (
    Chart,
    CompetitorRow,
    Line,
    Period,
    PlatformRow,
    Point,
    Report,
    ReportError,
    Tile,
    TopPost,
)
from streams.report.prometheus import PrometheusApi, RangeSeries, promql_duration
from streams.settings import Settings

Progress = Callable[[str], None]

# The counters the report reads (``streams.core.totals``), by their sample names.
_COUNTERS = (
    "impressions", "likes", "comments", "shares", "saves", "clicks", "mentions", "replies",
    "follows", "unfollows", "messages_needing_response", "messages_answered",
    "sentiment_messages", "sentiment_gain", "sentiment_loss", "csat_answers",
    "csat_satisfied_answers", "nps_answers", "nps_promoters", "nps_detractors",
)
_KEYED = (("conversions", "goal"), ("orders", "currency"), ("revenue", "currency"),
          ("spend", "currency"))
_HISTOGRAM = "social_response_seconds_bucket"
ENGAGEMENT_COUNTERS = ("likes", "comments", "shares", "saves")


def rule_of(sample: str) -> str:
    """The recording rule that joins a lifetime counter across workers (deploy/prometheus)."""
    return f"account_platform:{sample}:max"


def _regex(values: Iterable[str]) -> str:
    """A PromQL regex matching exactly ``values`` (slugs: only ``.`` needs escaping), as it
    goes between double quotes."""
    return "|".join(v.replace(".", "\\\\.") for v in sorted(values))


def choose_step(period: Period) -> timedelta:
    """Daily points for periods of two days or more (a whole number of them per period),
    else twelve points."""
    length = period.length
    if length >= timedelta(days=2):
        days = math.ceil(length / timedelta(days=1))
        return length / days
    return length / 12


# (account, platform, extra label value or "") -> readings at each boundary
Readings = dict[tuple[str, str, str], list[float | None]]


@dataclass
class Timeline:
    """The boundaries of the previous period and of the period: ``2 * steps + 1`` instants,
    the period's start at index ``steps``."""

    start: datetime  # the previous period's start
    step: timedelta
    steps: int  # per period

    @property
    def instants(self) -> list[datetime]:
        return [self.start + i * self.step for i in range(2 * self.steps + 1)]

    def index(self, t: float) -> int:
        return round((t - self.start.timestamp()) / self.step.total_seconds())

    def readings(self, series: Sequence[RangeSeries], extra: str | None) -> Readings:
        out: Readings = {}
        n = 2 * self.steps + 1
        for s in series:
            key = (s.labels.get("account", ""), s.labels.get("platform", ""),
                   s.labels.get(extra, "") if extra else "")
            values = out.setdefault(key, [None] * n)
            for t, v in s.points:
                i = self.index(t)
                if 0 <= i < n:
                    # several series of one key (another job's copy): the largest reading
                    values[i] = v if values[i] is None else max(values[i] or 0.0, v)
        return out


def step_counts(readings: Sequence[float | None]) -> list[float]:
    """What a counter counted in each step (index i: from boundary i-1 to i; index 0 is 0),
    by the rules of the module docstring."""
    out = [0.0] * len(readings)
    last: float | None = readings[0] if readings else None
    for i in range(1, len(readings)):
        v = readings[i]
        if v is None:
            continue
        if last is None:
            out[i] = v  # born in this step: it started at 0
        elif v >= last:
            out[i] = v - last
        else:
            out[i] = v  # started again from 0
        last = v
    return out


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus's ``histogram_quantile`` over cumulative (upper bound, count) pairs sorted by
    bound, ``+Inf`` last: linear interpolation inside the bucket the rank falls in; the highest
    finite bound when it falls in ``+Inf``. None without observations."""
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return None
    observations = buckets[-1][1]
    if observations <= 0:
        return None
    rank = q * observations
    b = next((i for i in range(len(buckets) - 1) if buckets[i][1] >= rank), len(buckets) - 1)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], buckets[b][1]
    if b > 0:
        start = buckets[b - 1][0]
        count -= buckets[b - 1][1]
        rank -= buckets[b - 1][1]
    return start + (end - start) * (rank / count) if count > 0 else end


def _ratio(n: float, d: float) -> float | None:
    return n / d if d > 0 else None


class _Figures:
    """Step counts of every counter read, summed over steps and labels on demand."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        # counter -> (account, platform, extra) -> counts per step
        self.steps: dict[str, dict[tuple[str, str, str], list[float]]] = {}

    def add(self, name: str, readings: Readings) -> None:
        self.steps[name] = {k: step_counts(v) for k, v in readings.items()}

    def per_step(self, name: str, account: str, platform: str = ALL_PLATFORMS,
                 extra: str | None = None) -> list[float]:
        out = [0.0] * (2 * self.timeline.steps + 1)
        for (acc, plat, ex), counts in self.steps.get(name, {}).items():
            if acc == account and plat == platform and extra in (None, ex):
                out = [a + b for a, b in zip(out, counts, strict=True)]
        return out

    def total(self, name: str, account: str, current: bool, platform: str = ALL_PLATFORMS,
              extra: str | None = None) -> float:
        counts = self.per_step(name, account, platform, extra)
        k = self.timeline.steps
        return sum(counts[k + 1:] if current else counts[1:k + 1])

    def extras(self, name: str, account: str) -> list[str]:
        return sorted({ex for (acc, _p, ex) in self.steps.get(name, {}) if acc == account})

    def currencies(self, account: str) -> list[str]:
        """The currencies the account had revenue or spend in."""
        return sorted({*self.extras("social_revenue_total", account),
                       *self.extras("social_spend_total", account)})

    def platforms(self, account: str) -> list[str]:
        return sorted({p for per in self.steps.values() for (acc, p, _e) in per
                       if acc == account and p != ALL_PLATFORMS})

    def response_quantile(self, q: float, account: str, steps: Iterable[int]) -> float | None:
        per_le: dict[float, float] = defaultdict(float)
        wanted = set(steps)
        for (acc, plat, le), counts in self.steps.get(_HISTOGRAM, {}).items():
            if acc == account and plat == ALL_PLATFORMS:
                per_le[float(le)] += sum(c for i, c in enumerate(counts) if i in wanted)
        return histogram_quantile(q, sorted(per_le.items()))


def collect(
    settings: Settings, api: PrometheusApi, account: str, period: Period, *,
    market: bool = False, worker_url: str | None = None, now: datetime | None = None,
    progress: Progress = lambda line: None,
) -> Report:
    """The report of ``account`` (and, with ``market``, its competitors) over ``period``."""
    now = now or datetime.now(UTC)
    previous = period.before()
    notes: list[str] = []
    progress(f"asking {api.base_url} how long it keeps samples")
    retention = api.retention()
    previous_held = True
    if retention is not None:
        oldest = now - retention
        if period.start < oldest:
            raise ReportError(
                f"Prometheus at {api.base_url} keeps {_days(retention)} of samples; the period "
                f"from {period.start:%Y-%m-%d %H:%M} UTC is older than that")
        if previous.start < oldest:
            previous_held = False
            notes.append(f"The previous period starts before the {_days(retention)} of "
                         "history Prometheus keeps: it is not compared.")
    step = choose_step(period)
    steps = round(period.length / step)
    timeline = Timeline(previous.start, step, steps)
    lookback = promql_duration(step)
    members = _market_members(settings, api, account, period)
    accounts = sorted({account, *members})
    figures = _Figures(timeline)
    names = [f"social_{c}_total" for c in _COUNTERS]
    keyed = [(f"social_{c}_total", label) for c, label in _KEYED]
    everything: list[tuple[str, str | None]] = [
        *((n, None) for n in names), *keyed, (_HISTOGRAM, "le")]
    selector = f'{{account=~"{_regex(accounts)}"}}'
    for i, (name, extra) in enumerate(everything, 1):
        progress(f"querying {i}/{len(everything) + 2}: {name}")
        series = api.query_range(f"last_over_time({rule_of(name)}{selector}[{lookback}])",
                                 timeline.start, period.end + step / 2, step)
        figures.add(name, timeline.readings(series, extra))
    if not any(acc == account for per in figures.steps.values() for (acc, _p, _e) in per):
        raise ReportError(_no_data(api, account, period))
    progress(f"querying {len(everything) + 1}/{len(everything) + 2}: social_followers")
    followers = _gauge(api, f"social_followers{{account=~\"{_regex(accounts)}\", "
                       f"platform=\"{ALL_PLATFORMS}\"}}", timeline, lookback)
    # the largest window no longer than a step (the smallest if every window is longer)
    fitting = [w for w in settings.window_specs if w.length_ms <= step.total_seconds() * 1000]
    window = max(fitting or [min(settings.window_specs, key=lambda w: w.length_ms)],
                 key=lambda w: w.length_ms)
    progress(f"querying {len(everything) + 2}/{len(everything) + 2}: social_reach")
    reach = _gauge(api, f"social_reach{{account=\"{account}\", platform=\"{ALL_PLATFORMS}\", "
                   f"window=\"{window.label}\"}}", timeline, lookback)
    notes += [
        f"Reach is the mean of the {window.label} reach (distinct users who saw an impression) "
        f"sampled at the end of each of the period's {steps} steps of {_human(step)}: distinct "
        "users over a whole period cannot be added up from windows.",
        "Totals count events when a worker applied them (arrival), not at their event time: a "
        "backfill of old events counts in the period it arrived in.",
        "Response times are quantiles of a histogram with fixed buckets (30 s to 2 days), "
        "interpolated inside a bucket as Prometheus's histogram_quantile does.",
        "The response ratio is the answers given in the period over the messages that arrived "
        "needing one in it: answers to the previous period's messages count too, so a short "
        "period can pass 100 %. A message is kept for its answer as long as the workers' "
        "largest window (and grace): later answers are not matched.",
    ]
    top, top_note = _top_posts(worker_url, account, settings, progress)
    tiles = _tiles(figures, account, followers, reach, timeline, accounts, previous_held)
    charts = _charts(figures, account, reach, timeline, accounts if market else [account],
                     accounts)
    return Report(
        account=account, market=settings.market_of(account) if market else None, period=period,
        previous=previous, generated_at=now, source=api.base_url, step=step, tiles=tuple(tiles),
        charts=tuple(charts), platforms=tuple(_platform_rows(figures, account)),
        competitors=tuple(_competitors(figures, followers, timeline, accounts)) if market
        else (),
        top_posts=top, top_posts_note=top_note, notes=tuple(notes))


def _days(d: timedelta) -> str:
    if d.days >= 1 and d.seconds == 0:
        return "1 day" if d.days == 1 else f"{d.days} days"
    return _human(d)


def _human(d: timedelta) -> str:
    s = d.total_seconds()
    if s >= 86400 and s % 86400 == 0:
        return f"{int(s // 86400)} d"
    if s >= 3600:
        return f"{s / 3600:g} h"
    if s >= 60:
        return f"{s / 60:g} min"
    return f"{s:g} s"


def _market_members(
    settings: Settings, api: PrometheusApi, account: str, period: Period
) -> list[str]:
    """The accounts of ``account``'s market (SOCIALPULSE_MARKETS) that have mentions in
    Prometheus over the period and the one before."""
    span = promql_duration(period.end - period.before().start)
    found = api.query(f"group by (account) (last_over_time("
                      f"{rule_of('social_mentions_total')}[{span}]))", period.end)
    market = settings.market_of(account)
    return sorted(a for a in (s.labels.get("account", "") for s in found)
                  if a and a != OTHER_ACCOUNT and settings.market_of(a) == market)


def _gauge(
    api: PrometheusApi, selector: str, timeline: Timeline, lookback: str
) -> dict[str, list[float | None]]:
    """A gauge per account at each boundary (the largest of the workers' copies)."""
    series = api.query_range(
        f"max by (account) (last_over_time({selector}[{lookback}]))", timeline.start,
        timeline.instants[-1] + timeline.step / 2, timeline.step)
    return {acc: values for (acc, _p, _e), values in timeline.readings(series, None).items()}


def _no_data(api: PrometheusApi, account: str, period: Period) -> str:
    span = promql_duration(period.length)
    raw = api.query(f'count(last_over_time(social_impressions_total{{account="{account}"}}'
                    f"[{span}]))", period.end)
    where = (f"between {period.start:%Y-%m-%d %H:%M} and {period.end:%Y-%m-%d %H:%M} UTC")
    if raw:
        return (f"Prometheus at {api.base_url} has socialpulse's counters for {account} but not "
                f"the recording rules that join them ({rule_of('social_impressions_total')}): "
                "load deploy/prometheus/rules/recording.yml")
    return f"Prometheus at {api.base_url} has no data for account {account} {where}"


def _tiles(
    f: _Figures, account: str, followers: dict[str, list[float | None]],
    reach: dict[str, list[float | None]], timeline: Timeline, accounts: list[str],
    previous_held: bool,
) -> list[Tile]:
    k = timeline.steps

    def both(fn: Callable[[bool], float | None]) -> tuple[float | None, float | None]:
        return fn(True), (fn(False) if previous_held else None)

    def t(name: str, cur: bool) -> float:
        return f.total(f"social_{name}_total", account, cur)

    def engagements(cur: bool) -> float:
        return sum(t(n, cur) for n in ENGAGEMENT_COUNTERS)

    def mean_reach(cur: bool) -> float | None:
        values = reach.get(account, [])
        picked = [v for v in (values[k + 1:] if cur else values[1:k + 1]) if v is not None]
        # a count of people: the mean of estimates, to the person
        return float(round(sum(picked) / len(picked))) if picked else None

    def followers_at(i: int) -> float | None:
        values = followers.get(account)
        return values[i] if values else None

    def growth(cur: bool) -> float | None:
        base = followers_at(k if cur else 0)
        net = t("follows", cur) - t("unfollows", cur)
        return _ratio(net, base) if base is not None else None

    def sov(cur: bool) -> float | None:
        total = sum(f.total("social_mentions_total", a, cur) for a in accounts)
        return _ratio(t("mentions", cur), total)

    def quantile(q: float) -> Callable[[bool], float | None]:
        return lambda cur: f.response_quantile(
            q, account, range(k + 1, 2 * k + 1) if cur else range(1, k + 1))

    def sentiment(cur: bool) -> float | None:
        return _ratio(t("sentiment_gain", cur) - t("sentiment_loss", cur),
                      t("sentiment_messages", cur))

    def nps(cur: bool) -> float | None:
        r = _ratio(t("nps_promoters", cur) - t("nps_detractors", cur), t("nps_answers", cur))
        return None if r is None else r * 100

    specs: list[tuple[str, str, Callable[[bool], float | None], str, str]] = [
        ("impressions", "Impressions", lambda c: t("impressions", c), "count", ""),
        ("reach", "Reach", mean_reach, "count", "mean of the window's reach"),
        ("engagements", "Engagements", engagements, "count", "likes, comments, shares, saves"),
        ("engagement_rate", "Engagement rate", lambda c: _ratio(engagements(c),
                                                                 t("impressions", c)),
         "ratio", "engagements / impressions"),
        ("clicks", "Clicks", lambda c: t("clicks", c), "count", ""),
        ("click_through", "Click-through rate", lambda c: _ratio(t("clicks", c),
                                                                  t("impressions", c)),
         "ratio", "clicks / impressions"),
        ("conversions", "Conversions", lambda c: t("conversions", c), "count", "every goal"),
        ("share_of_voice", "Share of voice", sov, "ratio", "mentions / the market's mentions"),
        ("followers", "Followers", lambda c: followers_at(2 * k if c else k), "count",
         "at the period's end"),
        ("audience_growth", "Audience growth", growth, "ratio",
         "(follows - unfollows) / followers at the start"),
        ("response_p50", "Response time p50", quantile(0.5), "seconds", ""),
        ("response_p90", "Response time p90", quantile(0.9), "seconds", ""),
        ("response_ratio", "Response ratio", lambda c: _ratio(
            t("messages_answered", c), t("messages_needing_response", c)), "ratio",
         "answered / needing a response"),
        ("sentiment", "Sentiment", sentiment, "score", "mean, -1 to 1"),
        ("csat", "CSAT", lambda c: _ratio(t("csat_satisfied_answers", c), t("csat_answers", c)),
         "ratio", "answers scoring 4 or 5"),
        ("nps", "NPS", nps, "score", "promoters - detractors, -100 to 100"),
    ]
    tiles = [Tile(key, label, *both(fn), unit, note=note)  # type: ignore[arg-type]
             for key, label, fn, unit, note in specs]
    currencies = f.currencies(account)
    for cur in currencies:
        def revenue(c: bool, cur: str = cur) -> float:
            return f.total("social_revenue_total", account, c, extra=cur)

        def spend(c: bool, cur: str = cur) -> float:
            return f.total("social_spend_total", account, c, extra=cur)

        def roi(c: bool, cur: str = cur) -> float | None:
            s = spend(c, cur)
            return _ratio(revenue(c, cur) - s, s)

        tiles += [
            Tile(f"revenue:{cur}", f"Revenue ({cur})", *both(revenue), "money", cur),
            Tile(f"spend:{cur}", f"Spend ({cur})", *both(spend), "money", cur),
            Tile(f"roi:{cur}", f"ROI ({cur})", *both(roi), "ratio", cur,
                 "(revenue - spend) / spend"),
        ]
    return tiles


def _series(timeline: Timeline, values: Sequence[float | None]) -> tuple[Point, ...]:
    """The period's points (its steps only), skipping steps without a value."""
    k = timeline.steps
    instants = timeline.instants
    return tuple(Point(instants[i], v) for i in range(k + 1, 2 * k + 1)
                 if (v := values[i]) is not None)


def _charts(
    f: _Figures, account: str, reach: dict[str, list[float | None]], timeline: Timeline,
    shown: list[str], market: list[str],
) -> list[Chart]:
    def counts(name: str, acc: str = account, platform: str = ALL_PLATFORMS,
               extra: str | None = None) -> list[float]:
        return f.per_step(f"social_{name}_total", acc, platform, extra)

    def engagements(platform: str) -> list[float]:
        parts = [counts(n, platform=platform) for n in ENGAGEMENT_COUNTERS]
        return [sum(x) for x in zip(*parts, strict=True)]

    def rate(platform: str) -> list[float | None]:
        return [_ratio(e, i) for e, i in zip(engagements(platform),
                                             counts("impressions", platform=platform),
                                             strict=True)]

    charts = [Chart("impressions_reach", "Impressions and reach", "count", (
        Line("impressions", _series(timeline, counts("impressions"))),
        Line("reach", _series(timeline, reach.get(account, [None] * len(timeline.instants)))),
    ))]
    charts.append(Chart("engagement_rate", "Engagement rate per platform", "ratio", tuple(
        Line(p, _series(timeline, rate(p))) for p in [*f.platforms(account), ALL_PLATFORMS])))
    market_steps = [counts("mentions", acc=a) for a in market]
    market_total = [sum(x) for x in zip(*market_steps, strict=True)]
    charts.append(Chart("share_of_voice", "Share of voice in the market", "ratio", tuple(
        Line(a, _series(timeline, [_ratio(m, t) for m, t in zip(
            counts("mentions", acc=a), market_total, strict=True)])) for a in shown)))
    currencies = f.currencies(account)
    for cur in currencies:
        charts.append(Chart(f"money:{cur}", f"Revenue and spend ({cur})", "money", (
            Line("revenue", _series(timeline, counts("revenue", extra=cur))),
            Line("spend", _series(timeline, counts("spend", extra=cur))),
        ), kind="bar", currency=cur))
    k = timeline.steps
    own_steps = range(k + 1, 2 * k + 1)
    p50 = [None] * (k + 1) + [f.response_quantile(0.5, account, [i]) for i in own_steps]
    p90 = [None] * (k + 1) + [f.response_quantile(0.9, account, [i]) for i in own_steps]
    charts.append(Chart("care", "Response time (replies of each step)", "seconds", (
        Line("p50", _series(timeline, p50)), Line("p90", _series(timeline, p90)))))
    charts.append(Chart("care_volume", "Messages needing a response and answered", "count", (
        Line("needing a response", _series(timeline, counts("messages_needing_response"))),
        Line("answered", _series(timeline, counts("messages_answered"))),
    ), kind="bar"))
    return charts


def _platform_rows(f: _Figures, account: str) -> list[PlatformRow]:
    rows = []
    for platform in [*f.platforms(account), ALL_PLATFORMS]:
        def t(name: str, platform: str = platform) -> float:
            return f.total(f"social_{name}_total", account, True, platform)

        impressions = t("impressions")
        engagements = sum(t(n) for n in ENGAGEMENT_COUNTERS)
        rows.append(PlatformRow(
            platform=platform, impressions=impressions, engagements=engagements,
            engagement_rate=_ratio(engagements, impressions), clicks=t("clicks"),
            click_through=_ratio(t("clicks"), impressions), conversions=t("conversions"),
            orders=t("orders"), replies=t("replies"),
            response_ratio=_ratio(t("messages_answered"), t("messages_needing_response"))))
    return rows


def _competitors(
    f: _Figures, followers: dict[str, list[float | None]], timeline: Timeline,
    accounts: list[str],
) -> list[CompetitorRow]:
    market_mentions = sum(f.total("social_mentions_total", a, True) for a in accounts)
    rows = []
    for acc in accounts:
        def t(name: str, acc: str = acc) -> float:
            return f.total(f"social_{name}_total", acc, True)

        impressions = t("impressions")
        values = followers.get(acc)
        rows.append(CompetitorRow(
            account=acc, impressions=impressions,
            engagement_rate=_ratio(sum(t(n) for n in ENGAGEMENT_COUNTERS), impressions),
            mentions=t("mentions"), share_of_voice=_ratio(t("mentions"), market_mentions),
            followers=values[-1] if values else None))
    return rows


def _top_posts(
    worker_url: str | None, account: str, settings: Settings, progress: Progress
) -> tuple[tuple[TopPost, ...] | None, str]:
    window = settings.window_specs[-1].label
    if worker_url is None:
        return None, ("Top posts come from a worker's GET /kpis (post ids are never Prometheus "
                      "labels): give --worker URL.")
    url = (f"{worker_url.rstrip('/')}/kpis?"
           f"{urllib.parse.urlencode({'account': account, 'window': window})}")
    progress(f"asking {worker_url} for the top posts")
    try:
        with urllib.request.urlopen(url, timeout=settings.report_timeout_seconds) as response:
            answer = orjson.loads(response.read())
    except (urllib.error.URLError, OSError, orjson.JSONDecodeError) as exc:
        return None, f"Top posts: the worker at {worker_url} did not answer ({exc})."
    per = answer.get("top_posts", {}).get(window, {})
    posts = tuple(TopPost(ranking, p["item"], int(p["estimate"]), int(p["lower_bound"]),
                          int(p["upper_bound"]))
                  for ranking, top in per.items() for p in top.get("posts", []))
    return posts, (f"Top posts of the worker's last {window} window at the time of the report "
                   "(a sketch: each count lies between its bounds).")
