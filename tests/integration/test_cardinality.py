"""Issue #5 fault 8, cardinality attack: distinct users, posts, URLs, accounts and label values.

Full (``scripts/reliability``): 1,000,000 events, each with its own user id, post id and URL, over
100,000 accounts under the default account cap (1,000). Reduced: 50,000 events over 5,000
accounts, account cap 200. Both lower the per-account caps on campaigns, platforms, goals and
currencies (a few percent of the events each bring a new one) so that every overflow path runs and
the scrape stays a size the test can parse.

Half the events belong to 300 (reduced: 50) busy "brand" accounts, which all show up in the first
events, the rest to the attack accounts at random; so the admitted accounts carry half the traffic.

Must hold: every exported label stays within its cap (and the series count within the bound the
caps give); the overflow is in ``socialpulse_events_overflow_total{kind}`` and equals the oracle's;
no user id, post id or URL is ever a label value; every series equals the oracle, which is told
which accounts the worker admitted (with three partitions "first come" is the worker's
interleaving) and models every other cap itself.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.core.catalogue import ALL_KPIS
from streams.core.labels import OVERFLOW_KINDS
from streams.core.totals import RESPONSE_BUCKETS
from streams.settings import Settings
from streams.tools.preflight import ensure_topics
from streams.tools.produce import produce_events
from tests.integration.test_hostile_input import assert_no_crash_logged
from tests.support import oracle
from tests.support.harness import LABELS, _read_topic, _settings
from tests.support.processes import Broker, Figure, WorkerProc, new_worker, scale

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

EVENTS = scale(50_000, 1_000_000)
ACCOUNTS = scale(5_000, 100_000)
BRANDS = scale(50, 300)
CAPS = {
    "SOCIALPULSE_MAX_ACCOUNTS": str(scale(200, 1000)),  # the full size keeps the default
    "SOCIALPULSE_MAX_CAMPAIGNS_PER_ACCOUNT": "5",
    "SOCIALPULSE_MAX_PLATFORMS_PER_ACCOUNT": "4",
    "SOCIALPULSE_MAX_GOALS_PER_ACCOUNT": "3",
    "SOCIALPULSE_MAX_CURRENCIES_PER_ACCOUNT": "2",
    "SOCIALPULSE_MAX_AGENTS_PER_ACCOUNT": "3",
    "SOCIALPULSE_MAX_TEAMS_PER_ACCOUNT": "2",
}
SLUG = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def events_at(now_ms: int) -> Iterator[dict[str, Any]]:
    """The test's input: 14 minutes of event time from 15 minutes before ``now_ms``."""
    return _events(now_ms - 15 * 60_000, 14 * 60_000)


def _events(start_ms: int, span_ms: int, seed: int = 8) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    platforms = ["instagram", "x", "web"]
    for i in range(EVENTS):
        brand = i < BRANDS * 2 or rng.random() < 0.5
        account = f"brand-{i % BRANDS if i < BRANDS * 2 else rng.randrange(BRANDS)}" if brand \
            else f"acct-{rng.randrange(ACCOUNTS)}"
        flood = rng.random() < 0.03  # a new platform, goal, currency or campaign
        ev: dict[str, Any] = {
            "event_id": f"e{i}", "ts": start_ms + span_ms * i // EVENTS, "account": account,
            "platform": f"p-{i}" if flood and rng.random() < 0.25 else rng.choice(platforms),
            # every event has its own user, post and URL: none may ever become a label
            "user_id": f"user-{i:07d}-{rng.getrandbits(32):08x}",
            "post_id": f"post-{i:07d}",
        }
        kind = rng.random()
        if kind < 0.45:
            ev.update(type="impression", paid=rng.random() < 0.2)
        elif kind < 0.65:
            ev.update(type="click", url=f"https://shop.example/{i}?utm={rng.getrandbits(24)}")
        elif kind < 0.8:
            ev.update(type="like")
        elif kind < 0.88:
            ev.update(type="conversion", goal=f"goal-{i}" if flood else "signup")
        elif kind < 0.92:
            ev.update(type="purchase", amount=round(rng.uniform(1, 99), 2),
                      currency="".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ", k=3))
                      if flood else "EUR")
        elif kind < 0.95:
            # replies to unknown messages, by agents and teams of their own (a new one each
            # time in a flood)
            ev.update(type="reply", in_reply_to=f"m{rng.randrange(EVENTS)}",
                      agent=f"agent-{i}" if flood else f"agent-{rng.randrange(2)}",
                      team=f"team-{i}" if flood else "desk")
        else:
            ev.update(type="visit", pages=rng.randint(1, 5), bounced=rng.random() < 0.4)
        if ev["type"] in ("impression", "click", "purchase") and rng.random() < 0.3:
            ev["campaign"] = f"camp-{i}" if flood else f"spring-{rng.randrange(3)}"
        yield ev


def _status(w: WorkerProc) -> dict[str, Any]:
    return dict(orjson.loads(w.get("/status", timeout=30)))


def _wait_idle(w: WorkerProc, partitions: int, timeout: float) -> dict[str, Any]:
    """Caught up through /status (no KPI computed): a full scrape here is large."""
    deadline = time.monotonic() + timeout
    settled = 0
    while time.monotonic() < deadline:
        try:
            st = _status(w)
        except OSError:
            time.sleep(1)
            continue
        done = (len(st["partitions"]) == partitions and st["consumer_lag_records"] == 0
                and st["unflushed_records"] == 0 and st["records_consumed"] > 0)
        settled = settled + 1 if done else 0
        if settled >= 2:
            return st
        time.sleep(1)
    raise AssertionError(f"worker did not catch up:\n{w.tail()}")


def _bound(s: Settings, partitions: int) -> int:
    """The most series the caps allow: accounts (+ "_other"), platforms (+ "_other", "all"),
    goals (+ "_other", "all"), currencies (+ "_other"), campaigns, agents and teams (each +
    "_other"). "_other" gathers accounts of every partition, each with its own per-account caps:
    counted per partition."""
    accounts = s.max_accounts + partitions
    platforms = s.max_platforms_per_account + 2
    extra = {"goal": s.max_goals_per_account + 2, "currency": s.max_currencies_per_account + 1,
             "quantile": 3}
    windows = len(s.window_specs)
    total = 0
    for m in ALL_KPIS:
        per = 1
        for label in m.extra:
            per *= extra[label]
        if m.kind == "summary":
            per += 2  # _count and _sum
        if m.kind == "histogram":
            per = len(RESPONSE_BUCKETS) + 1 + 2  # the buckets, +Inf, _count and _sum
        if m.scope == "window":
            total += accounts * platforms * windows * per
        elif m.scope in ("current", "total"):
            total += accounts * platforms * per
        else:
            named = {"campaign": s.max_campaigns_per_account, "agent": s.max_agents_per_account,
                     "team": s.max_teams_per_account}[m.scope]
            total += accounts * (named + 1) * windows * per
    return total


def test_cardinality_attack_stays_under_the_caps(
    kafka: Broker, worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path,
    figure: Figure,
) -> None:
    env = {**worker_env, **CAPS}
    s = _settings(env)
    now = int(time.time() * 1000)
    asyncio.run(ensure_topics(s))
    summary = asyncio.run(produce_events(s, events_at(now)))
    assert summary.sent == EVENTS, summary

    w = new_worker(env, tmp_path).start()
    workers.append(w)
    assert w.proc is not None
    w.wait_ready(timeout=300)
    started = time.monotonic()
    _wait_idle(w, s.topic_partitions, timeout=scale(600, 3600))
    seconds = time.monotonic() - started
    assert w.proc.poll() is None and len(w.history) == 1
    assert_no_crash_logged(w)
    proc = psutil.Process(w.proc.pid)
    rss = proc.memory_info().rss
    peak_kib = next((int(line.split()[1]) for line in
                     Path(f"/proc/{w.proc.pid}/status").read_text().splitlines()
                     if line.startswith("VmHWM:")), 0)

    scrape_started = time.monotonic()
    text = w.metrics(timeout=600)
    scrape_seconds = time.monotonic() - scrape_started
    kpis: dict[str, dict[tuple[str, ...], float]] = {}
    health: dict[str, float] = defaultdict(float)
    label_values: dict[str, set[str]] = defaultdict(set)
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            for k, v in sample.labels.items():
                label_values[k].add(v)
            if sample.name.startswith("social_"):
                order = LABELS[sample.name]
                kpis.setdefault(sample.name, {})[tuple(sample.labels[k] for k in order)] = \
                    sample.value
            else:
                key = sample.name + "".join(f"{{{k}={v}}}" for k, v in sample.labels.items())
                health[key] += sample.value
    series = sum(len(rows) for rows in kpis.values())

    # No user id, post id or URL is ever a label value: every label value is a slug, a currency
    # code or one of our own words, and none is an identifier of the input.
    idents: set[str] = set()
    sent_accounts: set[str] = set()
    for ev in events_at(now):
        sent_accounts.add(ev["account"])
        idents.update(v for v in (ev["user_id"], ev["post_id"], ev.get("url")) if v is not None)
    for name, values in label_values.items():
        leaked = values & idents
        assert not leaked, (name, sorted(leaked)[:5])
    for name in ("account", "platform", "campaign", "goal", "agent", "team"):
        odd = {v for v in label_values[name] if not SLUG.fullmatch(v)} - {"_other", "all"}
        assert not odd, (name, sorted(odd)[:5])
    assert all(re.fullmatch(r"[A-Z]{3}|_other", v) for v in label_values["currency"])

    # Within the caps.
    accounts = {labels[0] for rows in kpis.values() for labels in rows}
    assert len(accounts - {"_other"}) == s.max_accounts and "_other" in accounts
    per_account: dict[tuple[str, str], set[str]] = defaultdict(set)
    for name, rows in kpis.items():
        names = LABELS[name]
        for labels in rows:
            acc = labels[0]
            for label, value in zip(names[1:], labels[1:], strict=True):
                if label in ("platform", "campaign", "goal", "currency", "agent", "team"):
                    per_account[(acc, label)].add(value)
    caps = {"platform": s.max_platforms_per_account + 2, "campaign":
            s.max_campaigns_per_account + 1, "goal": s.max_goals_per_account + 2,
            "currency": s.max_currencies_per_account + 1,
            "agent": s.max_agents_per_account + 1, "team": s.max_teams_per_account + 1}
    for (acc, label), values in per_account.items():
        limit = caps[label] * (s.topic_partitions if acc == "_other" else 1)
        assert len(values) <= limit, (acc, label, sorted(values))
    bound = _bound(s, s.topic_partitions)
    assert series <= bound

    # Exact, overflow included.
    inputs = asyncio.run(_read_topic(kafka.bootstrap, s.input_topic, s.topic_partitions, 1800))
    assert len(inputs) == EVENTS
    expected = oracle.run(((p, o, v) for p, o, _k, v, _h in inputs), s, int(time.time() * 1000),
                          admitted=accounts - {"_other"})
    del inputs
    assert expected.applied == EVENTS and not expected.rejected
    problems = oracle.compare(expected.series, kpis)
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])
    overflow = {kind: health[f"socialpulse_events_overflow_total{{kind={kind}}}"]
                for kind in OVERFLOW_KINDS}
    assert overflow == {kind: expected.overflow.get(kind, 0) for kind in OVERFLOW_KINDS}
    assert all(overflow.values()), overflow  # every cap was reached

    fault = "8 cardinality attack"
    figure(fault, "events (distinct user ids = post ids = URLs)", f"{EVENTS:,}")
    figure(fault, "accounts sent / exported (cap)",
           f"{len(sent_accounts):,} / "
           f"{len(accounts) - 1:,} + _other ({s.max_accounts:,})")
    figure(fault, "exported KPI series (bound from the caps)", f"{series:,} ({bound:,})")
    for kind, n in overflow.items():
        figure(fault, f"overflow events: {kind}", int(n))
    figure(fault, "identifiers found in label values", 0)
    figure(fault, "worker RSS after the run (peak)",
           f"{rss / 2**20:.0f} MiB ({peak_kib / 1024:.0f} MiB)")
    figure(fault, "worker time to consume and flush", round(seconds, 1), "s")
    figure(fault, "/metrics scrape size and time", f"{len(text) / 2**20:.1f} MiB, "
           f"{scrape_seconds:.1f} s")
