"""The demo's terminal view: a :class:`~streams.tools.demo.probe.Snapshot` as a rich screen, or as
plain lines when stdout is not a terminal (a log file, a pipe, CI).

Pure formatting: no I/O here. :func:`screen` builds the rich renderable that ``command`` hands to
``rich.live.Live``; :func:`plain_lines` the lines it prints instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from streams.tools.demo.probe import AccountRow, AlertRow, Snapshot

DASH = "-"


@dataclass(frozen=True)
class DemoInfo:
    """What does not change while ``up`` runs."""

    rate: float
    scenario: str
    target: str  # the account a scenario degrades
    scenario_at: float | None  # unix seconds; None: no scenario
    started_at: float
    worker_url: str
    worker_log: str
    window: str
    alert_window: str | None = None
    prometheus_url: str | None = None
    alertmanager_url: str | None = None


# --- numbers ------------------------------------------------------------------------------------
def count(value: float | None) -> str:
    return DASH if value is None else f"{value:,.0f}"


def percent(value: float | None) -> str:
    return DASH if value is None else f"{100 * value:.2f} %"


def duration(seconds: float | None) -> str:
    """``38 s``, ``4m12s``, ``1h05m``, ``2d03h``."""
    if seconds is None:
        return DASH
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86_400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86_400}d{s % 86_400 // 3600:02d}h"


def rate(value: float | None) -> str:
    return DASH if value is None else f"{value:,.0f}/s"


def clock(ts: float | None) -> str:
    return DASH if ts is None else time.strftime("%H:%M:%S", time.localtime(ts))


def dead_letters(reasons: dict[str, int]) -> str:
    total = sum(reasons.values())
    if not total:
        return "0"
    parts = ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    return f"{total:,} ({parts})"


def scenario_line(info: DemoInfo, now: float) -> str:
    if info.scenario == "normal" or info.scenario_at is None:
        return f"scenario {info.scenario}"
    when = (f"from {clock(info.scenario_at)} (in {duration(info.scenario_at - now)})"
            if now < info.scenario_at else f"since {clock(info.scenario_at)}")
    return f"scenario {info.scenario} on {info.target} {when}"


def alert_text(a: AlertRow, now: float) -> str:
    who = f" {a.account}" if a.account else ""
    since = f" for {duration(now - a.since)}" if a.since is not None else ""
    return f"{a.state.upper():8} {a.name}{who}{since}: {a.summary}"


# --- the rich screen ----------------------------------------------------------------------------
def _kpi_table(info: DemoInfo, rows: Sequence[AccountRow]) -> Table:
    table = Table(title=f"KPIs of the last {info.window}, all platforms", title_justify="left",
                  expand=False, pad_edge=False)
    table.add_column("account", style="bold")
    table.add_column("impressions", justify="right")
    table.add_column(f"eng. rate {info.window}", justify="right")
    if info.alert_window:
        table.add_column(f"{info.alert_window}", justify="right")
    table.add_column("CTR", justify="right")
    table.add_column("share of voice", justify="right")
    table.add_column("reply p90", justify="right")
    table.add_column("pending", justify="right")
    for r in rows:
        cells = [r.account, count(r.impressions), percent(r.engagement_rate)]
        if info.alert_window:
            cells.append(percent(r.alert_engagement_rate))
        cells += [percent(r.click_through), percent(r.share_of_voice), duration(r.response_p90_s),
                  count(r.pending_replies)]
        table.add_row(*cells)
    return table


def screen(info: DemoInfo, snap: Snapshot | None, now: float | None = None) -> RenderableType:
    """The whole view for one refresh (``snap`` None: nothing polled yet)."""
    now = time.time() if now is None else now
    head = Text.assemble(
        ("socialpulse up", "bold"), f"  {info.rate:g} events/s, {scenario_line(info, now)}, "
        f"running {duration(now - info.started_at)}")
    links = [f"worker {info.worker_url}/metrics  log {info.worker_log}"]
    if info.prometheus_url:
        links.append(f"Prometheus {info.prometheus_url}/alerts  "
                     f"Alertmanager {info.alertmanager_url}")
    parts: list[RenderableType] = [head, Text("\n".join(links), style="dim")]
    if snap is None:
        parts.append(Text("waiting for the worker ..."))
        return Group(*parts)
    parts.append(Text.assemble(
        ("pipeline ", "bold"),
        f"produced {rate(snap.produced_per_s)} ({count(snap.produced)})   "
        f"consumed {rate(snap.consumed_per_s)} ({count(snap.consumed)})   "
        f"lag {count(snap.lag)}   dead letters {dead_letters(snap.dead_letters)}"))
    parts.append(_kpi_table(info, snap.accounts))
    if snap.alerts is not None:
        if snap.alerts:
            lines = Text()
            for a in snap.alerts:
                style = "bold red" if a.state == "firing" else "yellow"
                lines.append(alert_text(a, now) + "\n", style=style)
            parts.append(Group(Text("alerts", style="bold"), lines))
        else:
            parts.append(Text.assemble(("alerts ", "bold"), "none pending or firing"))
    if snap.problems:
        parts.append(Text("; ".join(snap.problems), style="yellow"))
    if snap.worker_warning:
        parts.append(Text(f"worker's last warning: {snap.worker_warning}", style="yellow"))
    parts.append(Text("Ctrl-C stops everything", style="dim"))
    return Group(*parts)


# --- plain lines --------------------------------------------------------------------------------
def plain_lines(info: DemoInfo, snap: Snapshot) -> list[str]:
    """The same figures as lines with a time stamp, for a log."""
    at = clock(snap.at)
    out = [f"{at} produced {rate(snap.produced_per_s)} consumed {rate(snap.consumed_per_s)} "
           f"lag {count(snap.lag)} dead letters {dead_letters(snap.dead_letters)}"]
    for r in snap.accounts:
        short = (f" ({info.alert_window} {percent(r.alert_engagement_rate)})"
                 if info.alert_window else "")
        out.append(f"{at}   {r.account}: {info.window} impressions {count(r.impressions)} "
                   f"engagement rate {percent(r.engagement_rate)}{short} "
                   f"CTR {percent(r.click_through)} share of voice {percent(r.share_of_voice)} "
                   f"reply p90 {duration(r.response_p90_s)} pending {count(r.pending_replies)}")
    if snap.alerts is not None:
        if not snap.alerts:
            out.append(f"{at} alerts: none pending or firing")
        out += [f"{at} alert {alert_text(a, snap.at)}" for a in snap.alerts]
    out += [f"{at} {p}" for p in snap.problems]
    if snap.worker_warning:
        out.append(f"{at} worker's last warning: {snap.worker_warning}")
    return out
