"""End to end: a report over a span with a takeover in it, checked against the oracle.

Simulated traffic for four accounts of one market goes through real Kafka to a real worker; a
real Prometheus scrapes every second and evaluates the rendered recording rules every second.
Halfway through the traffic a second worker starts and takes half of the four partitions over.
Then ``socialpulse report`` (the real command, in its own process) reads the span back from
Prometheus and writes the HTML and the PDF. The headline figures must equal the oracle over every
event of the span, read back from the input topic (the span starts before the first event and
ends after Prometheus has recorded the last one, so "by arrival" is every event): exactly, in
the HTML's data attributes, and as the report prints them, in ``pdftotext``'s text of the PDF.
``pdftoppm`` renders the chart pages, which must hold the charts' colours.
"""

from __future__ import annotations

import asyncio
import math
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.report.charts import PALETTE
from streams.report.html import CHARTS_PER_PAGE, TABLE_PAGES, TILES_PER_PAGE, format_value
from streams.report.model import Unit
from streams.settings import Settings
from streams.tools.preflight import ensure_topics
from streams.tools.simulate import DEFAULT_MIX, SimulationConfig, Simulator
from tests.support import oracle
from tests.support.harness import _read_topic
from tests.support.processes import Broker, WorkerProc, new_worker
from tests.support.prometheus import (
    JOB,
    e2e_worker_env,
    load_render,
    render_rules,
    wait_for,
)
from tests.support.traffic import Traffic

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ACCOUNTS = ("acme", "globex", "initech", "umbrella")
SUBJECT = "acme"
RATE = 120.0  # events per second, all four accounts
TRAFFIC_S = 60.0
TAKEOVER_AFTER_S = 20.0
PARTITIONS = 4


def _settings(env: dict[str, str]) -> Settings:
    keys = {k.removeprefix("SOCIALPULSE_").lower(): v for k, v in env.items()
            if k.startswith("SOCIALPULSE_")}
    return Settings(**keys)  # type: ignore[arg-type]


def _health(w: WorkerProc) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in w.metrics().splitlines():
        if line.startswith("socialpulse_") and " " in line:
            name, _, value = line.rpartition(" ")
            out[name.split("{")[0]] = out.get(name.split("{")[0], 0.0) + float(value)
    return out


def _simulator() -> Simulator:
    # Every tile's events in a short span: more care, money and surveys than a real brand has,
    # replies within seconds, followers polled every few seconds, no viral bursts (they follow
    # the wall clock's week), no malformed records (their dead letters are tested elsewhere).
    mix = {**DEFAULT_MIX, "mention": 8.0, "comment": 2.0, "purchase": 0.5, "conversion": 0.5,
           "lead": 0.3, "review": 0.3, "survey": 0.6, "follow": 0.4, "unfollow": 0.1}
    return Simulator(SimulationConfig(
        seed=31, accounts=ACCOUNTS, market="coffee", mix=mix, daily_amplitude=0.0,
        reply_median_s=3.0, followers_interval_s=5.0, spend_interval_s=5.0,
        viral_posts_per_week=0.0, malformed_fraction=0.0))


def _histogram_quantile(q: float, cumulative: list[tuple[float, float]]) -> float | None:
    """Prometheus's interpolation (promql/quantile.go), written here from its source rather
    than taken from the report: what the report computes is under test."""
    total = cumulative[-1][1]
    if total == 0:
        return None
    rank = q * total
    for i, (upper, count) in enumerate(cumulative):
        if count >= rank:
            if math.isinf(upper):
                return cumulative[i - 1][0]
            lower, below = (0.0, 0.0) if i == 0 else cumulative[i - 1]
            return lower + (upper - lower) * (rank - below) / (count - below)
    return None


Expected = dict[str, tuple[float | None, Unit, str | None]]


def _expected_tiles(result: oracle.OracleResult) -> Expected:
    """tile key -> (value, unit, currency), from the oracle's lifetime totals of SUBJECT."""
    series = result.series

    def total(name: str, account: str = SUBJECT) -> float:
        return series.get(f"social_{name}_total", {}).get((account, "all", ""), 0.0)

    def ratio(n: float, d: float) -> float | None:
        return n / d if d > 0 else None

    engagements = sum(total(n) for n in ("likes", "comments", "shares", "saves"))
    market = sum(total("mentions", a) for a in ACCOUNTS)
    buckets = sorted(
        (float(labels[3]), v) for labels, v in series["social_response_seconds_bucket"].items()
        if labels[:3] == (SUBJECT, "all", ""))
    nps = ratio(total("nps_promoters") - total("nps_detractors"), total("nps_answers"))
    out: Expected = {
        "impressions": (total("impressions"), "count", None),
        "engagements": (engagements, "count", None),
        "engagement_rate": (ratio(engagements, total("impressions")), "ratio", None),
        "clicks": (total("clicks"), "count", None),
        "click_through": (ratio(total("clicks"), total("impressions")), "ratio", None),
        "conversions": (sum(v for labels, v in series["social_conversions_total"].items()
                            if labels[:3] == (SUBJECT, "all", "")), "count", None),
        "share_of_voice": (ratio(total("mentions"), market), "ratio", None),
        "followers": (series["social_followers"].get((SUBJECT, "all")), "count", None),
        "response_p50": (_histogram_quantile(0.5, buckets), "seconds", None),
        "response_p90": (_histogram_quantile(0.9, buckets), "seconds", None),
        "response_ratio": (ratio(total("messages_answered"),
                                 total("messages_needing_response")), "ratio", None),
        "sentiment": (ratio(total("sentiment_gain") - total("sentiment_loss"),
                            total("sentiment_messages")), "score", None),
        "csat": (ratio(total("csat_satisfied_answers"), total("csat_answers")), "ratio", None),
        "nps": (None if nps is None else nps * 100, "score", None),
    }
    for (acc, plat, _part, cur), revenue in series["social_revenue_total"].items():
        if (acc, plat) == (SUBJECT, "all"):
            spend = series["social_spend_total"].get((acc, plat, "", cur), 0.0)
            out[f"revenue:{cur}"] = (revenue, "money", cur)
            out[f"spend:{cur}"] = (spend, "money", cur)
            out[f"roi:{cur}"] = (ratio(revenue - spend, spend), "ratio", cur)
    return out


def _pdf_text(pdf: Path, page: int) -> str:
    return subprocess.run(["pdftotext", "-layout", "-f", str(page), "-l", str(page), str(pdf),
                           "-"], capture_output=True, text=True, check=True, timeout=60).stdout


def _pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True,
                          timeout=60).stdout
    found = re.search(r"^Pages:\s+(\d+)", info, re.M)
    assert found, info
    return int(found.group(1))


def _palette_share(pdf: Path, page: int, tmp: Path) -> float:
    """The share of a page's pixels (rendered at 40 dpi) that are near a chart colour."""
    out = tmp / f"page-{page}"
    subprocess.run(["pdftoppm", "-r", "40", "-f", str(page), "-l", str(page), str(pdf),
                    str(out)], check=True, timeout=60)
    ppm = next(tmp.glob(f"page-{page}*.ppm")).read_bytes()
    # binary PPM: "P6\n<w> <h>\n<max>\n" then RGB bytes
    header = re.match(rb"P6\s+(\d+)\s+(\d+)\s+(\d+)\s", ppm)
    assert header, ppm[:20]
    w, h = int(header.group(1)), int(header.group(2))
    pixels = ppm[header.end():header.end() + 3 * w * h]
    colours = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in PALETTE]
    near = 0
    for i in range(0, len(pixels), 3):
        r, g, b = pixels[i], pixels[i + 1], pixels[i + 2]
        if any(abs(r - cr) + abs(g - cg) + abs(b - cb) < 60 for cr, cg, cb in colours):
            near += 1
    return near / (w * h)


def test_report_over_a_takeover_equals_the_oracle(
    kafka: Broker, prometheus_server: Any, tmp_path: Path,
) -> None:
    markets = ",".join(f"{a}=coffee" for a in ACCOUNTS)
    env = e2e_worker_env(kafka, tmp_path / "w1", SOCIALPULSE_MARKETS=markets,
                         SOCIALPULSE_TOPIC_PARTITIONS=str(PARTITIONS))
    settings = _settings(env)
    asyncio.run(ensure_topics(settings))
    w1 = new_worker(env, tmp_path, "w1").start()
    from streams.tools.local_kafka import free_port

    env2 = {**env, "SOCIALPULSE_WEB_PORT": str(free_port()),
            "SOCIALPULSE_DATA_DIR": str(tmp_path / "w2")}
    w2 = new_worker(env2, tmp_path, "w2")
    traffic: Traffic | None = None
    try:
        w1.wait_ready()
        wait_for(lambda: _health(w1).get("socialpulse_assigned_partitions") == PARTITIONS,
                 timeout=60, what="w1's partitions", details=w1.tail)
        render = load_render()
        rules = render_rules(render.Params.fast(window="1m", interval="1s"), tmp_path / "rules")
        prom = prometheus_server([f"127.0.0.1:{w1.port}", f"127.0.0.1:{w2.port}"], rules,
                                 scrape_interval_s=1.0, evaluation_interval_s=1.0)
        wait_for(lambda: prom.value(f'up{{job="{JOB}", instance="127.0.0.1:{w1.port}"}}') == 1,
                 timeout=30, what="Prometheus to scrape w1", details=prom.tail)
        start = datetime.fromtimestamp(math.floor(time.time()) - 1, UTC)
        traffic = Traffic(settings, [("market", _simulator(), RATE)], backfill_s=0.0).start()
        time.sleep(TAKEOVER_AFTER_S)
        traffic.check()
        w2.start()
        w2.wait_ready()

        def split() -> bool:
            return (_health(w1).get("socialpulse_assigned_partitions") == PARTITIONS // 2
                    and _health(w2).get("socialpulse_assigned_partitions") == PARTITIONS // 2)

        wait_for(split, timeout=90, what="w2 to take half of the partitions",
                 details=lambda: w1.tail(15) + w2.tail(15))
        time.sleep(max(0.0, TRAFFIC_S - TAKEOVER_AFTER_S - (time.time() - start.timestamp())))
        traffic.stop()
        inputs = asyncio.run(_read_topic(kafka.bootstrap, settings.input_topic, PARTITIONS))
        assert len(inputs) == traffic.produced
        newest = max(orjson.loads(v)["ts"] for _p, _o, _k, v, _h in inputs
                     if isinstance(orjson.loads(v)["ts"], int))
        result = oracle.run(((p, o, v) for p, o, _k, v, _h in inputs), settings, newest)
        assert result.late == 0 and not result.rejected, (result.late, result.rejected)
        replies = result.series["social_replies_total"].get((SUBJECT, "all", ""), 0)
        matched = result.series.get("social_response_seconds_count", {})
        assert replies > 0 and (SUBJECT, "all", "") in matched, (replies, matched)
        expected_impressions = result.series["social_impressions_total"][(SUBJECT, "all", "")]
        # Prometheus holds the last count: the joined series equals the oracle's.
        rule = f'account_platform:social_impressions_total:max{{account="{SUBJECT}", ' \
               'platform="all"}'
        wait_for(lambda: prom.value(rule) == expected_impressions, timeout=90,
                 what=f"Prometheus's {rule} to reach the oracle's {expected_impressions}",
                 details=lambda: f"{prom.value(rule)}\n{w1.tail(10)}{w2.tail(10)}")
        time.sleep(3)  # a few more evaluations of every rule
        end = datetime.fromtimestamp(math.ceil(time.time()), UTC)
        out = tmp_path / "reports"
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "streams.tools.cli", "report", "--account", SUBJECT,
             "--market", "--from", start.isoformat(), "--to", end.isoformat(),
             "--prometheus", prom.url, "--worker", w1.url, "--out", str(out)],
            env=env, capture_output=True, text=True, timeout=300, check=False)
        took = time.monotonic() - started
        assert run.returncode == 0, run.stderr[-3000:]
        print(f"\nreport made in {took:.1f} s; stderr:\n{run.stderr[-600:]}")
        html_path, pdf_path = (Path(line) for line in run.stdout.split())
        _check_report(html_path, pdf_path, result, tmp_path)
        _check_refusals(env, prom.url, start, end, tmp_path)
    finally:
        if traffic is not None and traffic.stopped_at is None:
            traffic.stop()
        w2.kill()
        w1.kill()


def _check_refusals(env: dict[str, str], url: str, start: datetime, end: datetime,
                    tmp: Path) -> None:
    """What cannot be reported is one line on stderr and exit code 2."""
    from streams.tools.local_kafka import free_port

    span = ["--from", start.isoformat(), "--to", end.isoformat()]
    cases = [
        (["--account", "nobody", *span, "--prometheus", url],
         "has no data for account nobody"),
        # the suite's Prometheus keeps one day (tests.support.prometheus)
        (["--account", SUBJECT, "--days", "3", "--to", end.isoformat(), "--prometheus", url],
         "keeps 1 day of samples"),
        (["--account", SUBJECT, *span, "--prometheus", f"http://127.0.0.1:{free_port()}"],
         "cannot reach Prometheus"),
    ]
    for args, expected in cases:
        run = subprocess.run([sys.executable, "-m", "streams.tools.cli", "report", *args,
                              "--out", str(tmp / "refused")], env=env, capture_output=True,
                             text=True, timeout=120, check=False)
        last = [line for line in run.stderr.splitlines() if not line.startswith("report: ")]
        assert run.returncode == 2 and len(last) == 1 and expected in last[0], (
            args, run.returncode, run.stderr[-1000:])
        assert not (tmp / "refused").exists() or not any((tmp / "refused").iterdir())


def _check_report(
    html_path: Path, pdf_path: Path, result: oracle.OracleResult, tmp: Path
) -> None:
    html = html_path.read_text(encoding="utf-8")
    expected = _expected_tiles(result)
    tiles = dict(re.findall(r'data-key="([^"]+)" data-value="([^"]*)"', html))
    assert expected.keys() <= tiles.keys(), sorted(expected.keys() - tiles.keys())
    problems = []
    for key, (value, _unit, _cur) in expected.items():
        got = tiles[key]
        if value is None:
            if got not in ("", "None", "null"):
                problems.append(f"{key}: report {got}, oracle none")
        elif got in ("", "None", "null") or not math.isclose(float(got), value, rel_tol=1e-9,
                                                               abs_tol=1e-9):
            problems.append(f"{key}: report {got} != oracle {value}")
    assert not problems, "\n".join(problems)
    # The PDF: pages by the layout rule, the figures as printed, the charts drawn.
    charts = len(re.findall(r"<figure[^>]* data-chart=", html))
    tile_pages = math.ceil(len(tiles) / TILES_PER_PAGE)
    chart_pages = math.ceil(charts / CHARTS_PER_PAGE)
    assert charts >= 6, charts
    assert _pages(pdf_path) == tile_pages + chart_pages + TABLE_PAGES
    text = "\n".join(_pdf_text(pdf_path, p) for p in range(1, tile_pages + 1))
    missing = [f"{key}: {format_value(v, unit, cur)}" for key, (v, unit, cur) in expected.items()
               if format_value(v, unit, cur) not in text]
    assert not missing, f"figures not on the tiles' pages: {missing}\n{text}"
    for page in range(tile_pages + 1, tile_pages + chart_pages + 1):
        share = _palette_share(pdf_path, page, tmp)
        assert share > 0.002, f"page {page}: {share:.4f} of the pixels in chart colours"
    tables = "\n".join(_pdf_text(pdf_path, p) for p in
                       range(tile_pages + chart_pages + 1, _pages(pdf_path) + 1))
    for account in ACCOUNTS:
        assert account in tables
    assert "All platforms" in tables
