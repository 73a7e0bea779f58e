"""The measurements: preload, throughput per pipeline, latency, scrape cost, memory, profile.

How each figure is taken (the report repeats this in short):

- **Throughput** of a pipeline = records / time from its first to its last record, each pipeline
  in its own process consuming the whole topic from the beginning with a fresh consumer group.
  The peer pipelines time themselves (``time.time``/``time.process_time`` at their first and last
  record). The socialpulse worker is observed from outside, at no cost to it: the bench polls its
  consumer group's committed offsets (which the worker commits only after the state holding those
  records is in the changelog) every 0.2 s, and takes rate and CPU (psutil, all threads) between
  the first poll that shows progress and the one that shows every record; then it confirms on
  ``/metrics`` that ``socialpulse_records_consumed_total`` is the topic's size with no consumer lag
  and nothing unflushed. Polling ``/metrics`` itself during the run would distort it: a scrape of
  1,000 accounts renders hundreds of thousands of series and blocks the worker for seconds.
- **Peak RSS** = ``ru_maxrss`` of the child from ``wait4`` (for socialpulse this includes the
  confirming scrape).
- **Latency**: a fresh topic and worker; simulated traffic (brand + 3 competitors, ``ts`` = now) at
  half the sustained rate of socialpulse, with probe impressions of a dedicated account
  interleaved at a fixed rate, each stamped with the time it is handed to the producer. A thread
  polls ``GET /kpis?account=bench-probe&window=24h`` (the same ``views.compute`` over the same
  engine state as ``/metrics``, without rendering every account) and probe k counts as visible at
  the end of the first poll whose impression count is >= k: latency = that time - its stamp (an
  upper bound; the poll period bounds the error). For reference, a plain aiokafka consumer in the
  bench reads the same probes (the floor Kafka sets), and a second run at a low rate (another
  probe account) shows how latency depends on load.
- **Scrape cost**: the same worker, with traffic of more accounts (about 10,000 series), is scraped
  a few times; meanwhile a thread pings ``GET /`` (a constant answer from the same event loop)
  every 10 ms. A scrape renders synchronously on the event loop that also runs the stream, so
  while it renders no record is processed and pings queue: the longest ping delay during the
  scrapes is the longest stall the scrape causes in the stream (to within the ping period), and
  the ping delays outside scrapes are the baseline.
- **Memory**: a topic of ``memory_events`` records whose ``ts`` spread over the last 24 h (1,000
  accounts, 3 platforms, 1 million users); a fresh worker consumes all of it; RSS is read once
  everything is flushed (before any scrape), again after one scrape, and the peak from ``wait4``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import statistics
import sys
import threading
import time
import urllib.error
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from bench import kafka, world
from bench.procs import ROOT, ChildRun, run_child, tail
from bench.sizes import Sizes
from bench.worker import Scrape, Worker
from streams.settings import Settings
from streams.tools.produce import produce_events

QUIX_VERSION = "3.28.1"


@dataclass
class Row:
    """One pipeline's line of the throughput table."""

    key: str
    label: str
    status: str = "ok"  # ok | failed | skipped
    events: int = 0
    seconds: float = 0.0
    eps: float = 0.0
    cpu_us: float = 0.0
    rss_mib: float = 0.0
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q * (len(s) - 1))))
    return s[k]


def _load() -> float:
    return round(os.getloadavg()[0], 2)


class Bench:
    """One benchmark run on one broker; every phase adds to ``self.results``."""

    def __init__(self, sizes: Sizes, workdir: Path, broker: kafka.Broker, *,
                 quix_python: Path | None, log: Callable[[str], None]) -> None:
        self.sizes = sizes
        self.workdir = workdir
        self.broker = broker
        self.bootstrap = broker.bootstrap
        self.run_id = uuid.uuid4().hex[:6]
        self.quix_python = quix_python
        self.log = log
        self.settings = Settings(kafka_bootstrap_servers=self.bootstrap,
                                 topic_partitions=sizes.partitions)
        self.results: dict[str, Any] = {}

    # --- preload ------------------------------------------------------------------------------
    async def preload(self, topic: str, extra_accounts: int, count: int, span_s: float
                      ) -> tuple[int, dict[str, Any]]:
        """Create ``topic`` and fill it; returns (records in the topic, description)."""
        await kafka.create_topic(self.bootstrap, topic, self.sizes.partitions)
        cfg = world.sim_config(self.sizes, extra_accounts)
        census = world.Census(cfg.users)
        records = world.preload_records(cfg, count, span_s, int(time.time() * 1000), census)
        summary = await produce_events(self.settings, records, topic=topic)
        ends = await kafka.end_offsets(self.bootstrap, topic)
        total = sum(ends.values())
        desc = {
            "topic": topic,
            "partitions": self.sizes.partitions,
            "records_in_topic": total,
            "produce_seconds": round(summary.seconds, 2),
            "produce_rate": round(summary.rate),
            "produce_errors": summary.errors,
            "value_bytes": summary.bytes_sent,
            **census.as_dict(),
        }
        self.log(f"preloaded {topic}: {total:,} records in {summary.seconds:.1f} s "
                 f"({summary.rate:,.0f}/s), {desc['accounts']} accounts, "
                 f"{desc['distinct_users']:,} distinct users over "
                 f"{desc['event_time_span_s']:.0f} s")
        return total, desc

    # --- throughput: peer pipelines -----------------------------------------------------------
    def _row_from_child(self, row: Row, run: ChildRun) -> Row:
        rep = run.report
        if run.usage is not None:
            row.rss_mib = round(run.usage.maxrss_mib, 1)
        row.detail["wall_s"] = round(run.wall_s, 2)
        row.detail["log"] = str(run.log)
        if rep is None or rep.records <= 1 or rep.t_last <= rep.t_first:
            row.status = "failed"
            row.note = (f"exit code {run.returncode}; no result "
                        f"(last log lines in the JSON report)")
            row.detail["log_tail"] = tail(run.log, 15)
            return row
        row.events = rep.records
        row.seconds = round(rep.t_last - rep.t_first, 3)
        row.eps = round((rep.records - 1) / (rep.t_last - rep.t_first), 1)
        row.cpu_us = round((rep.cpu_last - rep.cpu_first) / (rep.records - 1) * 1e6, 2)
        row.detail.update(rep.extra)
        return row

    async def raw(self, topic: str, n: int) -> Row:
        row = Row("raw", "(1) raw aiokafka + orjson decode")
        row.detail["load_before"] = _load()
        run = await run_child(
            [sys.executable, "-m", "bench.raw_consumer", "--bootstrap", self.bootstrap,
             "--topic", topic, "--expect", str(n), "--group", f"bench-raw-{self.run_id}"],
            log=self.workdir / "raw.log", timeout=self.sizes.pipeline_timeout_s)
        return self._row_from_child(row, run)

    async def naive_faust(self, topic: str, n: int) -> Row:
        row = Row("naive_faust", "(2) naive faust hopping-window count")
        row.detail["load_before"] = _load()
        datadir = self.workdir / "naive-faust"
        datadir.mkdir(exist_ok=True)
        run = await run_child(
            [sys.executable, "-m", "bench.naive_faust", "--bootstrap", self.bootstrap,
             "--topic", topic, "--partitions", str(self.sizes.partitions), "--expect", str(n),
             "--app-id", f"bench-naive-{self.run_id}", "--datadir", str(datadir)],
            log=datadir / "naive.log", timeout=self.sizes.pipeline_timeout_s)
        return self._row_from_child(row, run)

    async def quix(self, topic: str, n: int) -> Row:
        row = Row("quix", f"(4) Quix Streams {QUIX_VERSION} same core counts")
        if self.quix_python is None:
            row.status = "skipped"
            row.note = "quixstreams venv not available (see the quix section of the report)"
            return row
        row.detail["load_before"] = _load()
        state = self.workdir / "quix-state"
        run = await run_child(
            [str(self.quix_python), "-m", "bench.quix_pipeline", "--bootstrap", self.bootstrap,
             "--topic", topic, "--expect", str(n), "--group", f"bench-quix-{self.run_id}",
             "--state-dir", str(state)],
            log=self.workdir / "quix.log", timeout=self.sizes.pipeline_timeout_s,
            env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
        return self._row_from_child(row, run)

    # --- throughput: socialpulse --------------------------------------------------------------
    def _worker(self, topic: str, name: str, guarantee: str = "at_least_once") -> Worker:
        return Worker(bootstrap=self.bootstrap, topic=topic, partitions=self.sizes.partitions,
                      workdir=self.workdir, name=name, guarantee=guarantee)

    async def _follow(self, w: Worker, topic: str, n: int, timeout: float
                      ) -> list[tuple[float, int, float]]:
        """Poll the worker's committed offsets until they cover ``n`` records."""
        samples: list[tuple[float, int, float]] = []
        deadline = time.monotonic() + timeout
        async with kafka.GroupWatch(self.bootstrap, w.group, topic) as gw:
            while True:
                if not w.alive():
                    raise RuntimeError(f"worker exited:\n{tail(w.log)}")
                try:
                    done = await gw.committed()
                except Exception:  # coordinator not ready yet
                    done = 0
                samples.append((time.time(), done, w.cpu()))
                if done >= n:
                    return samples
                if time.monotonic() > deadline:
                    raise TimeoutError(f"worker committed {done:,} of {n:,} records in "
                                       f"{timeout:.0f} s")
                await asyncio.sleep(0.2)

    @staticmethod
    def _confirm(w: Worker, n: int, timeout: float = 600.0) -> Scrape:
        """Scrape ``/metrics`` until every record is consumed and flushed; the last scrape."""
        deadline = time.monotonic() + timeout
        while True:
            s = w.scrape(timeout=timeout)
            h = s.health
            if (h.get("socialpulse_records_consumed_total", 0) >= n
                    and h.get("socialpulse_consumer_lag_records", 1) == 0
                    and h.get("socialpulse_unflushed_records", 1) == 0):
                return s
            if time.monotonic() > deadline:
                raise TimeoutError(f"/metrics never confirmed {n:,} records: {h}")
            time.sleep(0.5)

    async def socialpulse(self, topic: str, n: int, guarantee: str) -> Row:
        short = "alo" if guarantee == "at_least_once" else "eos"
        row = Row(f"socialpulse_{short}", f"(3) socialpulse worker, {guarantee}")
        row.detail["load_before"] = _load()
        w = self._worker(topic, f"sp-{short}", guarantee).start()
        row.detail["code"] = w.code
        try:
            row.detail["ready_s"] = round(await asyncio.to_thread(w.wait_ready), 2)
            samples = await self._follow(w, topic, n, self.sizes.pipeline_timeout_s)
            steady_rss = w.rss_mib()
            t0 = time.monotonic()
            scrape = await asyncio.to_thread(self._confirm, w, n)
            row.detail["confirm_s"] = round(time.monotonic() - t0, 2)
            row.detail["rss_before_scrape_mib"] = round(steady_rss, 1)
            row.detail["rss_after_scrape_mib"] = round(w.rss_mib(), 1)
            row.detail["scrape"] = {"seconds": round(scrape.seconds, 3), "bytes": scrape.size,
                                    "series": scrape.series, "kpi_series": scrape.kpi_series,
                                    "health": scrape.health}
        except Exception as exc:
            row.status = "failed"
            row.note = f"{type(exc).__name__}: {str(exc)[:300]}"
            row.detail["log_tail"] = tail(w.log, 20)
            samples = []
        finally:
            usage = await asyncio.to_thread(w.stop)
            row.detail["log"] = str(w.log)
        if usage is not None:
            row.rss_mib = round(usage.maxrss_mib, 1)
        if row.status != "ok":
            return row
        first = next(i for i, s in enumerate(samples) if s[1] > 0)
        if samples[first][1] > n / 2:
            # Most of the topic arrived in the first commits (tiny runs): measure from the first
            # poll after the worker was ready instead (this includes its start-up).
            first = 0
        t1, n1, c1 = samples[first]
        t2, n2, c2 = samples[-1]
        row.events = n2 - n1  # the records the rate is measured over (whole topic: n)
        row.detail["topic_records"] = n
        row.seconds = round(t2 - t1, 3)
        row.eps = round((n2 - n1) / (t2 - t1), 1) if t2 > t1 else 0.0
        row.cpu_us = round((c2 - c1) / max(1, n2 - n1) * 1e6, 2)
        row.detail["measured_records"] = n2 - n1
        row.detail["polls"] = len(samples)
        return row

    # --- latency and scrape cost ----------------------------------------------------------------
    async def live(self, rate: float) -> tuple[dict[str, Any], dict[str, Any]]:
        sizes = self.sizes
        topic = f"bench-live-{self.run_id}"
        await kafka.create_topic(self.bootstrap, topic, sizes.partitions)
        w = self._worker(topic, "sp-live").start()
        try:
            await asyncio.to_thread(w.wait_ready)
            latency = await self._latency(w, topic, rate, sizes.latency_seconds)
            low = min(sizes.latency_low_rate, rate / 4)
            latency["low_rate"] = await self._latency(w, topic, low, sizes.latency_seconds / 2)
            scrape = await self._scrape_cost(w, topic, rate)
        finally:
            usage = await asyncio.to_thread(w.stop)
        scrape["worker_peak_rss_mib"] = round(usage.maxrss_mib, 1) if usage else None
        return latency, scrape

    async def _latency(self, w: Worker, topic: str, rate: float, seconds: float
                       ) -> dict[str, Any]:
        sizes = self.sizes
        # Background traffic alone first, so the worker is in its steady state for the probes.
        warmup = 5.0 if sizes.name == "full" else 1.0
        # Each latency run has its own probe account, so its counts start from zero.
        account = f"{world.PROBE_ACCOUNT}-{rate:.0f}"
        probes = world.ProbeLog(f"{self.run_id}-{rate:.0f}", 1.0 / sizes.probes_per_second,
                                start_at=time.time() + warmup, account=account)
        observer = _Observer(w, sizes.latency_poll_s, account)
        observer.start()
        floor: list[float] = []
        reader = asyncio.create_task(_kafka_floor(self.bootstrap, topic, probes.run, floor))
        deadline = time.monotonic() + warmup + seconds
        census = world.Census(sizes.users)
        records = world.live_records(world.sim_config(sizes, 0, seed=7),
                                     stop=lambda: time.monotonic() > deadline, probes=probes,
                                     census=census)
        cpu0, wall0 = w.cpu(), time.monotonic()
        try:
            summary = await produce_events(self.settings, records, topic=topic, rate=rate)
            worker_cpu = (w.cpu() - cpu0) / (time.monotonic() - wall0)
            sent = len(probes.sent)
            await asyncio.to_thread(observer.wait_for, sent, 30.0)
        finally:
            observer.stop()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        lat: list[float] = []
        obs = observer.observations
        j = 0
        for k, t_sent in enumerate(probes.sent, start=1):
            while j < len(obs) and obs[j][1] < k:
                j += 1
            if j == len(obs):
                break
            lat.append(obs[j][0] - t_sent)
        ms = [x * 1000 for x in lat]
        return {
            "background_rate_target": round(rate, 1),
            "background_rate_achieved": round(summary.rate, 1),
            "records_produced": summary.sent,
            "worker_cpu_utilization": round(worker_cpu, 3),
            "accounts": len(census.accounts) + 1,
            "probes_sent": sent,
            "probes_seen": len(lat),
            "poll_period_s": sizes.latency_poll_s,
            "polls": len(obs),
            "poll_errors": observer.errors,
            "poll_mean_ms": round(statistics.fmean(observer.durations) * 1000, 2)
            if observer.durations else None,
            "p50_ms": round(_percentile(ms, 0.50), 1),
            "p90_ms": round(_percentile(ms, 0.90), 1),
            "p99_ms": round(_percentile(ms, 0.99), 1),
            "max_ms": round(max(ms), 1) if ms else None,
            "min_ms": round(min(ms), 1) if ms else None,
            "kafka_floor_probes": len(floor),
            "kafka_floor_p50_ms": round(_percentile(floor, 0.50), 1),
            "kafka_floor_p99_ms": round(_percentile(floor, 0.99), 1),
            "latencies_ms": [round(x, 1) for x in ms],
        }

    async def _scrape_cost(self, w: Worker, topic: str, rate: float) -> dict[str, Any]:
        sizes = self.sizes
        stop = threading.Event()
        records = world.live_records(world.sim_config(sizes, sizes.scrape_extra_accounts, seed=8),
                                     stop=stop.is_set)
        producer = asyncio.create_task(
            produce_events(self.settings, records, topic=topic, rate=rate))
        pinger = _Pinger(w, sizes.ping_period_s)
        scrapes: list[Scrape] = []
        try:
            await asyncio.sleep(3.0 if sizes.name == "full" else 1.0)  # every account seen
            pinger.start()
            await asyncio.sleep(1.0)
            for _ in range(sizes.scrapes):
                cpu0 = w.cpu()
                s = await asyncio.to_thread(w.scrape)
                scrapes.append(s)
                pinger.mark(s.started, s.started + s.seconds, w.cpu() - cpu0)
                await asyncio.sleep(sizes.scrape_gap_s)
        finally:
            pinger.stop()
            stop.set()
            await producer
        inside, outside = pinger.split()
        secs = [s.seconds for s in scrapes]
        return {
            "background_rate": round(rate, 1),
            "scrapes": len(scrapes),
            "series": scrapes[-1].series if scrapes else 0,
            "kpi_series": scrapes[-1].kpi_series if scrapes else 0,
            "accounts": scrapes[-1].health.get("socialpulse_exported_accounts") if scrapes
            else None,
            "bytes": scrapes[-1].size if scrapes else 0,
            "render_ms_min": round(min(secs) * 1000, 1) if secs else None,
            "render_ms_median": round(statistics.median(secs) * 1000, 1) if secs else None,
            "render_ms_max": round(max(secs) * 1000, 1) if secs else None,
            "worker_cpu_ms_per_scrape": round(statistics.median(pinger.cpu) * 1000, 1)
            if pinger.cpu else None,
            "ping_period_ms": sizes.ping_period_s * 1000,
            "pings": len(inside) + len(outside),
            "stall_ms_max_during_scrape": round(max(inside) * 1000, 1) if inside else None,
            "ping_ms_p50_outside": round(_percentile(outside, 0.5) * 1000, 2),
            "ping_ms_p99_outside": round(_percentile(outside, 0.99) * 1000, 2),
            "ping_ms_max_outside": round(max(outside) * 1000, 2) if outside else None,
        }

    # --- memory -------------------------------------------------------------------------------
    async def memory(self) -> dict[str, Any]:
        sizes = self.sizes
        topic = f"bench-24h-{self.run_id}"
        n, desc = await self.preload(topic, sizes.extra_accounts, sizes.memory_events,
                                     sizes.memory_span_s)
        w = self._worker(topic, "sp-24h").start()
        out: dict[str, Any] = {"stream": desc}
        try:
            await asyncio.to_thread(w.wait_ready)
            rss_idle = w.rss_mib()
            samples = await self._follow(w, topic, n, sizes.pipeline_timeout_s)
            await asyncio.sleep(2.0)  # let the last flush and eviction settle
            rss = w.rss_mib()
            scrape = await asyncio.to_thread(self._confirm, w, n)
            out.update({
                "events": n,
                "rss_idle_mib": round(rss_idle, 1),
                "rss_mib": round(rss, 1),
                "rss_after_scrape_mib": round(w.rss_mib(), 1),
                "bytes_per_event": round((rss - rss_idle) * 2**20 / n) if n else None,
                "consume_seconds": round(samples[-1][0] - samples[0][0], 1),
                "scrape_seconds": round(scrape.seconds, 2),
                "series": scrape.series,
                "accounts_exported": scrape.health.get("socialpulse_exported_accounts"),
                "late": scrape.health.get("socialpulse_events_late_total"),
            })
        finally:
            usage = await asyncio.to_thread(w.stop)
        out["peak_rss_mib"] = round(usage.maxrss_mib, 1) if usage else None
        return out

    # --- day at scale ----------------------------------------------------------------------
    async def scale(self) -> dict[str, Any]:
        """The full mix over 24 h of event time, as one worker reads it from a cold start:
        RSS, store and changelog sizes and throughput at each of ``scale_points``; the scrape
        at the end; the exactness of every count; the recovery with the data directory lost."""
        sizes = self.sizes
        topic = f"bench-day-{self.run_id}"
        await kafka.create_topic(self.bootstrap, topic, sizes.partitions)
        cfg = world.sim_config(sizes, sizes.extra_accounts, users=sizes.scale_users,
                               duplicate_fraction=sizes.scale_duplicate_fraction)
        census = world.Census(cfg.users, distinct=True)
        records = world.preload_records(cfg, sizes.scale_events, 24 * 3600.0,
                                        int(time.time() * 1000), census)
        summary = await produce_events(self.settings, records, topic=topic)
        n = sum((await kafka.end_offsets(self.bootstrap, topic)).values())
        self.log(f"day at scale: {n:,} records in {summary.seconds:.0f} s, "
                 f"{census.distinct_users:,} users, {census.duplicates:,} duplicates")
        out: dict[str, Any] = {"stream": {**census.as_dict(), "topic": topic,
                                          "duplicates": census.duplicates,
                                          "produce_seconds": round(summary.seconds, 1)}}
        w = self._worker(topic, "sp-day")
        points: list[dict[str, Any]] = []
        try:
            w.start()
            await asyncio.to_thread(w.wait_ready)
            rss_idle = w.rss_mib()
            targets = sorted({min(p, n) for p in sizes.scale_points})
            samples: list[tuple[float, int, float]] = []
            peak = rss_idle
            async with kafka.GroupWatch(self.bootstrap, w.group, topic) as gw:
                deadline = time.monotonic() + 4 * sizes.pipeline_timeout_s
                while targets:
                    if not w.alive():
                        raise RuntimeError(f"worker exited:\n{tail(w.log)}")
                    try:
                        done = await gw.committed()
                    except Exception:  # coordinator not ready yet
                        done = 0
                    rss = w.rss_mib()
                    peak = max(peak, rss)
                    samples.append((time.time(), done, w.cpu()))
                    while targets and done >= targets[0]:
                        target = targets.pop(0)
                        points.append({
                            "events": done, "target": target, "rss_mib": round(rss, 1),
                            "peak_rss_mib": round(peak, 1),
                            "store_disk_mib": round(_du(w.workdir / "data") / 2**20, 1),
                            "changelog_mib": self._changelog_mib(w),
                            "seconds": round(samples[-1][0] - samples[0][0], 1),
                        })
                        self.log(f"  {done:,} events: RSS {rss:,.0f} MiB (peak {peak:,.0f}), "
                                 f"store {points[-1]['store_disk_mib']} MiB on disk")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"committed {done:,} of {n:,} records")
                    await asyncio.sleep(0.5)
            out["throughput_per_million"] = _per_million(samples)
            first = next(i for i, smp in enumerate(samples) if smp[1] > 0)
            t1, n1, c1 = samples[first]
            t2, n2, c2 = samples[-1]
            out["events_per_second"] = round((n2 - n1) / (t2 - t1), 1) if t2 > t1 else None
            out["cpu_us_per_event"] = round((c2 - c1) / max(1, n2 - n1) * 1e6, 2)
            scrape = await asyncio.to_thread(self._confirm, w, n)
            out["scrape"] = {"seconds": round(scrape.seconds, 3), "bytes": scrape.size,
                             "series": scrape.series}
            out["exactness"] = _exactness(census, scrape, n)
            before = _kpi_values(scrape.text)
            out["points"] = points
            a, b = points[0], points[-1]
            if b["events"] > a["events"]:
                out["bytes_per_event_slope"] = round(
                    (b["peak_rss_mib"] - a["peak_rss_mib"]) * 2**20 / (b["events"] - a["events"]))
            out["largest_state_record_bytes"] = await self._largest_state_record(w)
            usage = await asyncio.to_thread(w.stop)
            out["peak_rss_mib"] = round(usage.maxrss_mib, 1) if usage else round(peak, 1)
            out["recovery"] = await self._recover(w, topic, n, before)
        finally:
            await asyncio.to_thread(w.stop)
        return out

    def _changelog_mib(self, w: Worker) -> float | None:
        """The state changelog's partitions on the broker's disk (a broker the bench owns)."""
        if self.broker.data_dir is None:
            return None
        logs = self.broker.data_dir / "logs"
        name = Settings(app_id=w.app_id).changelog_topic
        # the segments themselves (the broker preallocates index files of 10 MiB)
        return round(sum(f.stat().st_size for d in logs.glob(f"{name}-*")
                         for f in d.glob("*.log")) / 2**20, 1)

    async def _largest_state_record(self, w: Worker) -> dict[str, Any]:
        """The largest record of the state changelog, by kind of state key."""
        consumer = AIOKafkaConsumer(
            Settings(app_id=w.app_id).changelog_topic, bootstrap_servers=self.bootstrap,
            group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
            max_partition_fetch_bytes=16 << 20, fetch_max_bytes=64 << 20)
        await consumer.start()
        largest: dict[str, int] = {}
        try:
            ends = await consumer.end_offsets(list(consumer.assignment()))
            while True:
                batch = await consumer.getmany(timeout_ms=2000, max_records=20_000)
                for records in batch.values():
                    for r in records:
                        kind = (r.key or b"?:?").split(b":")[1].decode()
                        largest[kind] = max(largest.get(kind, 0), len(r.value or b""))
                behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
                if not behind:
                    break
        finally:
            await consumer.stop()
        return {"bytes": max(largest.values(), default=0), "by_kind": largest}

    async def _recover(self, old: Worker, topic: str, n: int, before: dict[str, float]
                       ) -> dict[str, Any]:
        """Delete the stopped worker's data directory, start one with its app id, and time
        until its KPIs equal the old worker's last ones and it consumes new records."""
        shutil.rmtree(old.workdir / "data", ignore_errors=True)
        w = Worker(bootstrap=self.bootstrap, topic=topic, partitions=self.sizes.partitions,
                   workdir=self.workdir, name=old.name, app_id=old.app_id, port=old.port)
        t0 = time.monotonic()
        w.start()
        try:
            await asyncio.to_thread(w.wait_ready, 600.0)
            served = time.monotonic() - t0
            equal_at = None
            diff: list[str] = []
            while time.monotonic() - t0 < 600:
                after = _kpi_values((await asyncio.to_thread(w.scrape)).text)
                diff = sorted(k for k in before.keys() | after.keys()
                              if not _same(before.get(k), after.get(k)))
                if not diff:
                    equal_at = time.monotonic() - t0
                    break
                if len(diff) and int(time.monotonic() - t0) % 10 == 0:
                    self.log(f"  recovering: {len(diff)} KPI series differ, e.g. " + "; ".join(
                        f"{k} {before.get(k)} -> {after.get(k)}" for k in diff[:3]))
                await asyncio.sleep(0.5)
            extra = [{"event_id": f"after-recovery-{i}", "type": "like", "account": "acme",
                      "platform": "x", "ts": int(time.time() * 1000)} for i in range(100)]
            await produce_events(self.settings, iter(extra), topic=topic)
            consumed_at = None
            while time.monotonic() - t0 < 600:
                status = orjson.loads((await asyncio.to_thread(w.get, "/status"))[0])
                if status["records_consumed"] >= len(extra):
                    consumed_at = time.monotonic() - t0
                    break
                await asyncio.sleep(0.2)
        finally:
            usage = await asyncio.to_thread(w.stop)
        return {
            "serving_s": round(served, 2),
            "equal_kpis_s": round(equal_at, 2) if equal_at is not None else None,
            "kpi_series_compared": len(before),
            "kpi_differences": diff[:10],
            "consuming_s": round(consumed_at, 2) if consumed_at is not None else None,
            "peak_rss_mib": round(usage.maxrss_mib, 1) if usage else None,
        }

    # --- profile ------------------------------------------------------------------------------
    async def profile(self, topic: str, n: int, out_dir: Path) -> dict[str, Any]:
        """py-spy on a fresh at_least_once worker while it consumes ``topic``.

        100 samples/s of the thread holding the GIL (``--gil``): the shares are of the worker's
        Python CPU time, idle waits excluded.
        """
        pyspy = Path(sys.executable).parent / "py-spy"
        if not pyspy.exists():
            return {"status": "skipped", "note": f"py-spy not installed at {pyspy}"}
        w = self._worker(topic, "sp-profile").start()
        raw = out_dir / "profile.collapsed.txt"
        try:
            await asyncio.to_thread(w.wait_ready)
            async with kafka.GroupWatch(self.bootstrap, w.group, topic) as gw:
                while await gw.committed() == 0:
                    await asyncio.sleep(0.2)
                start = await gw.committed()
                proc = await asyncio.create_subprocess_exec(
                    str(pyspy), "record", "--pid", str(w.pid), "--rate", "100", "--gil",
                    "--duration", str(int(self.sizes.profile_seconds)), "--format", "raw",
                    "--output", str(raw), stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT)
                pyspy_out, _ = await proc.communicate()
                end = await gw.committed()
        finally:
            await asyncio.to_thread(w.stop)
        if proc.returncode != 0 or not raw.exists():
            return {"status": "failed", "note": pyspy_out.decode(errors="replace")[-500:]}
        summary = summarize_profile(raw.read_text().splitlines())
        records = end - start
        # GIL samples at 100/s: Python CPU seconds = samples / 100.
        summary.update({"status": "ok", "collapsed_stacks": str(raw), "code": w.code,
                        "records_during_profile": records,
                        "python_cpu_us_per_event": round(summary["samples"] / 100 / records * 1e6,
                                                         1) if records else None,
                        "seconds": self.sizes.profile_seconds,
                        "pyspy": pyspy_out.decode(errors="replace").strip().splitlines()[-2:]})
        return summary


# Stages of the worker's work, by frames on the sampled stack (all must be present; the first
# stage that matches takes the sample).
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("flush: engine snapshot (evict + encode)", ("Flusher.flush", "Engine.snapshot")),
    ("flush: changelog producer.send", ("Flusher.flush", "AIOKafkaProducer.send")),
    ("flush: other (acks, gather, event acks)", ("Flusher.flush",)),
    ("agent: parse + validate", ("aggregate_interactions", "schemas/validate.py")),
    ("agent: Engine._apply", ("aggregate_interactions", "Engine._apply")),
    ("agent: other socialpulse code", ("aggregate_interactions", "(streams/")),
    ("agent: faust stream iteration", ("aggregate_interactions",)),
    ("consumer: faust per-message wait_first", ("Consumer._drain_messages", "wait_first")),
    ("consumer: fetch and dispatch", ("Consumer._drain_messages",)),
    # Tasks that wait_first spawns per message run as their own tasks, off the consumer's stack.
    ("consumer: faust on_message task (decode, event, queue)",
     ("Conductor._compile_message_handler",)),
    ("consumer: wait_first's Event.wait tasks", ("Event.wait (asyncio/locks.py)",)),
    ("consumer: thread hand-off (mode MethodQueue)", ("MethodQueue._process_enqueued",)),
    ("aiokafka producer sender", ("aiokafka/producer/sender.py",)),
    ("web (/metrics, /kpis)", ("(streams/worker/web.py",)),
    ("other", ()),
)


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _per_million(samples: list[tuple[float, int, float]]) -> list[dict[str, Any]]:
    """Events/s and CPU-us/event over each million committed records."""
    out: list[dict[str, Any]] = []
    start = next((smp for smp in samples if smp[1] > 0), None)
    if start is None:
        return out
    for smp in samples:
        if smp[1] - start[1] >= 1_000_000 or (smp is samples[-1] and smp[1] > start[1]):
            t, done, cpu = smp
            out.append({"from": start[1], "to": done,
                        "events_per_second": round((done - start[1]) / (t - start[0]), 1),
                        "cpu_us_per_event": round((cpu - start[2]) / (done - start[1]) * 1e6,
                                                  2)})
            start = smp
    return out


def _same(a: float | None, b: float | None) -> bool:
    """Equal, but for the last bits of a float: a restored worker sums a window's buckets in
    another order (counts are integers and compare exactly)."""
    if a is None or b is None:
        return a is b
    return a == b or math.isclose(a, b, rel_tol=1e-12)


def _kpi_values(text: str) -> dict[str, float]:
    """Every KPI series of a scrape, by its name and labels."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("social_"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def _exactness(census: world.Census, scrape: Scrape, records: int) -> dict[str, Any]:
    """The worker's applied count of each type against the distinct ids the bench produced."""
    applied: dict[str, float] = {}
    for line in scrape.text.splitlines():
        if line.startswith("socialpulse_events_total{"):
            name, _, value = line.rpartition(" ")
            etype = name.split('type="', 1)[1].split('"', 1)[0]
            applied[etype] = float(value)
    h = scrape.health
    lost = {t: n - applied.get(t, 0) for t, n in census.distinct_types.items()
            if n > applied.get(t, 0)}
    doubled = {t: applied[t] - census.distinct_types.get(t, 0) for t in applied
               if applied[t] > census.distinct_types.get(t, 0)}
    return {
        "records": records,
        "distinct_events": sum(census.distinct_types.values()),
        "applied": int(sum(applied.values())),
        "duplicates_expected": census.duplicates,
        "duplicates_counted": int(h.get("socialpulse_events_duplicate_total", 0)),
        "late": int(h.get("socialpulse_events_late_total", 0)),
        "rejected_expected": records - census.records,
        "lost": int(sum(lost.values())), "lost_by_type": lost,
        "doubled": int(sum(doubled.values())), "doubled_by_type": doubled,
    }


def summarize_profile(lines: Iterable[str], top: int = 30) -> dict[str, Any]:
    """Self and inclusive sample shares per function, and shares per stage, from py-spy's
    collapsed stacks."""
    self_n: dict[str, int] = defaultdict(int)
    incl_n: dict[str, int] = defaultdict(int)
    by_file: dict[str, int] = defaultdict(int)
    stages: dict[str, int] = defaultdict(int)
    logging_n = 0
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        self_n[frames[-1]] += n
        by_file[_file_of(frames[-1])] += n
        for f in set(frames):
            incl_n[f] += n
        joined = ";".join(frames)
        stage = next(name for name, needles in STAGES if all(x in joined for x in needles))
        stages[stage] += n
        if "(logging/__init__.py)" in joined:
            logging_n += n

    def table(d: dict[str, int]) -> list[dict[str, Any]]:
        items = sorted(d.items(), key=lambda kv: -kv[1])[:top]
        return [{"function": k, "samples": v, "pct": round(100.0 * v / total, 2)}
                for k, v in items]

    return {"samples": total, "self": table(self_n), "inclusive": table(incl_n),
            "self_by_file": table(by_file), "stages": table(stages),
            "logging_pct": round(100.0 * logging_n / total, 2) if total else 0.0}


def _frame(f: str) -> str:
    """``func (path/file.py:123)`` -> ``func (path/file.py)``; line numbers merge."""
    name, sep, loc = f.partition(" (")
    if not sep:
        return f
    return f"{name} ({loc.rstrip(')').rsplit(':', 1)[0]})"


def _file_of(frame: str) -> str:
    _, _, loc = frame.partition(" (")
    return loc.rstrip(")") or frame


async def _kafka_floor(bootstrap: str, topic: str, run: str, out: list[float]) -> None:
    """A plain aiokafka consumer of the live topic: probe arrival - stamp, in ms (the floor
    that Kafka and the client library set, measured in the bench process)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest",
                                group_id=f"bench-floor-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    marker = f'"{run}-probe-'.encode()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            now_ms = time.time() * 1000
            for msgs in batches.values():
                for m in msgs:
                    if m.value and marker in m.value:
                        out.append(now_ms - orjson.loads(m.value)["ts"])
    finally:
        await consumer.stop()


class _Observer:
    """Polls the probe account's 24h impressions in a thread: (time seen, count) observations."""

    def __init__(self, w: Worker, period: float, account: str) -> None:
        self.w = w
        self.period = period
        self.observations: list[tuple[float, int]] = []
        self.durations: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-observer", daemon=True)
        self.path = f"/kpis?account={account}&window=24h"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.observations and self.observations[-1][1] >= count:
                return
            time.sleep(0.05)

    def _count(self) -> int:
        try:
            body, _, seconds = self.w.get(self.path, timeout=30)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # the probe account has not been seen yet
                return 0
            raise
        self.durations.append(seconds)
        doc = json.loads(body)
        return int(doc["windows"].get("24h", {}).get("all", {}).get("impressions", 0))

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                count = self._count()
                self.observations.append((time.time(), count))
            except Exception:
                self.errors += 1
            self._stop.wait(max(0.0, self.period - (time.monotonic() - t0)))


class _Pinger:
    """``GET /`` every ``period`` seconds in a thread: how long the event loop takes to answer."""

    def __init__(self, w: Worker, period: float) -> None:
        self.w = w
        self.period = period
        self.pings: list[tuple[float, float]] = []  # (sent at, seconds to answer)
        self.windows: list[tuple[float, float]] = []  # scrapes: (start, end)
        self.cpu: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-pinger", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def mark(self, start: float, end: float, cpu: float) -> None:
        self.windows.append((start, end))
        self.cpu.append(cpu)

    def split(self) -> tuple[list[float], list[float]]:
        """Ping delays of pings that overlapped a scrape, and of those that did not."""
        inside: list[float] = []
        outside: list[float] = []
        for sent, took in self.pings:
            hit = any(sent < end and sent + took > start for start, end in self.windows)
            (inside if hit else outside).append(took)
        return inside, outside

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                _, started, seconds = self.w.get("/", timeout=60)
                self.pings.append((started, seconds))
            except Exception:
                pass
            self._stop.wait(max(0.0, self.period - (time.monotonic() - t0)))


def quix_probe(quix_python: Path) -> dict[str, Any]:
    """What the Quix venv holds: version, files of packages named agents/schemas, and which of
    quixstreams' requirements the project's own venv does not satisfy (why it has its own venv)."""
    import subprocess

    from packaging.requirements import Requirement
    from packaging.version import Version

    code = (
        "import importlib.metadata as m, json\n"
        "names = ('agents', 'schemas')\n"
        "hits = []\n"
        "for d in m.distributions():\n"
        "    for f in d.files or []:\n"
        "        top = str(f).split('/')[0].removesuffix('.py')\n"
        "        if top in names: hits.append(d.metadata['Name'] + ': ' + str(f))\n"
        "print(json.dumps({'version': m.version('quixstreams'),\n"
        "                  'requires': m.requires('quixstreams') or [], 'hits': hits}))\n"
    )
    res = subprocess.run([str(quix_python), "-c", code], capture_output=True, text=True,
                         timeout=120, cwd="/")
    if res.returncode != 0:
        return {"status": "broken", "error": res.stderr[-500:]}
    info = json.loads(res.stdout)
    from importlib import metadata

    conflicts = []
    for text in info["requires"]:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            continue
        if not req.specifier.contains(Version(have), prereleases=True):
            conflicts.append(f"{req.name} {have} in .venv, quixstreams needs {req.specifier}")
    return {"status": "ok", "python": str(quix_python), "version": info["version"],
            "agents_or_schemas_files": info["hits"], "conflicts_with_project_venv": conflicts}


def ensure_quix_venv(venv: Path, log: Callable[[str], None]) -> Path | None:
    """The Quix virtualenv's python, creating the venv (pip from PyPI) when missing."""
    import subprocess

    py = venv / "bin" / "python"
    if py.exists():
        return py
    log(f"creating the Quix Streams venv in {venv} (quixstreams=={QUIX_VERSION}) ...")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(sys.base_prefix) / "bin" / f"python{version}"
    try:
        subprocess.run([str(base), "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q",
                        f"quixstreams=={QUIX_VERSION}"], check=True, timeout=900, cwd=ROOT)
    except (subprocess.SubprocessError, OSError) as exc:
        log(f"could not create the Quix venv: {exc}")
        return None
    return py
