"""The printed report: one section per measurement, the same figures as the JSON."""

from __future__ import annotations

import math
from typing import Any

SECTIONS = ("THROUGHPUT", "LATENCY", "SCRAPE COST", "MEMORY")


def _num(x: Any, fmt: str = ",.0f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, fmt)


def ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """socialpulse (at_least_once) against each other pipeline: rate, CPU and RSS ratios."""
    by = {r["key"]: r for r in rows if r["status"] == "ok" and r["eps"] > 0}
    sp = by.get("socialpulse_alo")
    out: dict[str, dict[str, float | None]] = {}
    if sp is None:
        return out
    for key in ("raw", "naive_faust", "quix", "socialpulse_eos"):
        other = by.get(key)
        if other is None:
            continue
        out[key] = {
            "events_per_s": round(sp["eps"] / other["eps"], 3),
            "cpu_us_per_event": round(sp["cpu_us"] / other["cpu_us"], 3)
            if other["cpu_us"] else None,
            "peak_rss": round(sp["rss_mib"] / other["rss_mib"], 3) if other["rss_mib"] else None,
        }
    return out


def _latency_line(add: Any, title: str, lat: dict[str, Any]) -> None:
    add(f"{title} p50 {_num(lat['p50_ms'], '.1f')}  p90 {_num(lat['p90_ms'], '.1f')}  "
        f"p99 {_num(lat['p99_ms'], '.1f')}  max {_num(lat['max_ms'], '.1f')}  "
        f"min {_num(lat['min_ms'], '.1f')}; plain Kafka consumer of the same probes: p50 "
        f"{_num(lat['kafka_floor_p50_ms'], '.1f')}  p99 {_num(lat['kafka_floor_p99_ms'], '.1f')}")


def render(res: dict[str, Any]) -> str:
    out: list[str] = []
    add = out.append
    meta = res["meta"]
    add(f"socialpulse benchmark ({meta['size']}) - {meta['started']}, {meta['cpus']} CPUs, "
        f"load average at start {meta['load_start']}")
    add(f"broker: Kafka {meta['kafka_version'] or '(external)'} at {meta['bootstrap']}; "
        f"code: {meta.get('git', '?')}; command: {meta['command']}")
    pre = res.get("preload")
    if pre:
        add(f"topic {pre['topic']}: {pre['records_in_topic']:,} records, {pre['partitions']} "
            f"partitions, {pre['accounts']:,} accounts x {len(pre['platforms'])} platforms, "
            f"{pre['distinct_users']:,} distinct users (of {meta['users']:,}), ts over the last "
            f"{pre['event_time_span_s'] / 60:.0f} min; produced at {pre['produce_rate']:,}/s")
        types = ", ".join(f"{t} {n:,}" for t, n in pre["types"].items())
        add(f"  mix: {types}")
    add("")
    add("== THROUGHPUT (each pipeline its own process, whole topic, fresh group) ==")
    head = (f"{'pipeline':<44} {'events':>10} {'seconds':>9} {'events/s':>10} "
            f"{'CPU-us/event':>13} {'peak RSS MiB':>13}  status")
    add(head)
    add("-" * len(head))
    for r in res.get("throughput", []):
        add(f"{r['label']:<44} {_num(r['events']):>10} {_num(r['seconds'], ',.1f'):>9} "
            f"{_num(r['eps']):>10} {_num(r['cpu_us'], ',.1f'):>13} "
            f"{_num(r['rss_mib'], ',.0f'):>13}  {r['status']}"
            + (f" - {r['note']}" if r["note"] else ""))
    codes = {r["detail"]["code"] for r in res.get("throughput", []) if r["detail"].get("code")}
    if len(codes) > 1:
        add(f"NOTE: the worker's code changed between the socialpulse runs ({sorted(codes)})")
    rat = res.get("ratios", {})
    if rat:
        add("socialpulse (at_least_once) relative to:")
        names = {"raw": "(1) raw ceiling", "naive_faust": "(2) naive faust",
                 "quix": "(4) Quix Streams", "socialpulse_eos": "(3) exactly_once"}
        for key, v in rat.items():
            add(f"  {names[key]:<20} events/s x{_num(v['events_per_s'], '.3f')}, "
                f"CPU/event x{_num(v['cpu_us_per_event'], '.2f')}, "
                f"peak RSS x{_num(v['peak_rss'], '.2f')}")
    for r in res.get("throughput", []):
        d = r.get("detail", {})
        sc = d.get("scrape")
        if sc and r["key"].startswith("socialpulse"):
            add(f"{r['label']}: rate over {r['events']:,} of {d['topic_records']:,} records "
                f"(committed offsets); RSS before its confirming scrape "
                f"{_num(d['rss_before_scrape_mib'])} MiB; that scrape: {sc['series']:,} series "
                f"({sc['bytes'] / 2**20:.1f} MiB) in {sc['seconds']:.2f} s")
    add("")
    lat = res.get("latency")
    add("== LATENCY (production -> visible in the worker's KPIs, probe events) ==")
    if lat and lat.get("probes_seen"):
        add(f"background {_num(lat['background_rate_achieved'])} events/s (target "
            f"{_num(lat['background_rate_target'])} = half the sustained rate, capped), "
            f"{lat['accounts']} accounts, worker CPU {lat['worker_cpu_utilization']:.0%} of a "
            f"core; {lat['probes_seen']}/{lat['probes_sent']} probes seen; "
            f"poll every {lat['poll_period_s'] * 1000:.0f} ms ({lat['polls']} polls, mean "
            f"{_num(lat['poll_mean_ms'], '.1f')} ms each)")
        _latency_line(add, "latency ms:", lat)
        low = lat.get("low_rate")
        if low and low.get("probes_seen"):
            _latency_line(add, f"reference at {_num(low['background_rate_achieved'])} events/s "
                          f"(worker CPU {low['worker_cpu_utilization']:.0%}):", low)
    else:
        add(f"not measured: {lat}")
    add("")
    sc = res.get("scrape")
    add("== SCRAPE COST (/metrics render time and the event-loop stall it causes) ==")
    if sc and sc.get("scrapes"):
        add(f"{sc['series']:,} series ({sc['kpi_series']:,} KPI series, "
            f"{_num(sc['accounts'])} accounts, {sc['bytes'] / 1024:,.0f} KiB), "
            f"{sc['scrapes']} scrapes under {_num(sc['background_rate'])} events/s")
        add(f"render ms: min {_num(sc['render_ms_min'], '.1f')}  median "
            f"{_num(sc['render_ms_median'], '.1f')}  max {_num(sc['render_ms_max'], '.1f')}; "
            f"worker CPU per scrape {_num(sc['worker_cpu_ms_per_scrape'], '.1f')} ms")
        add(f"stall: longest event-loop ping during scrapes "
            f"{_num(sc['stall_ms_max_during_scrape'], '.1f')} ms; pings outside scrapes p50 "
            f"{_num(sc['ping_ms_p50_outside'], '.2f')} / p99 "
            f"{_num(sc['ping_ms_p99_outside'], '.2f')} / max "
            f"{_num(sc['ping_ms_max_outside'], '.2f')} ms ({sc['pings']:,} pings every "
            f"{sc['ping_period_ms']:.0f} ms)")
    else:
        add(f"not measured: {sc}")
    add("")
    mem = res.get("memory")
    add("== MEMORY (worker after 24 h of event time) ==")
    if mem and mem.get("events"):
        st = mem["stream"]
        add(f"{mem['events']:,} events over {st['event_time_span_s'] / 3600:.1f} h of event time, "
            f"{st['accounts']:,} accounts x {len(st['platforms'])} platforms, "
            f"{st['distinct_users']:,} distinct users; consumed in {mem['consume_seconds']:.0f} s")
        add(f"RSS MiB: idle {_num(mem['rss_idle_mib'], ',.0f')}, holding it "
            f"{_num(mem['rss_mib'], ',.0f')} (~{_num(mem['bytes_per_event'])} bytes/event), "
            f"after one scrape {_num(mem['rss_after_scrape_mib'], ',.0f')}, peak "
            f"{_num(mem['peak_rss_mib'], ',.0f')}; that scrape: {_num(mem['series'])} series "
            f"in {_num(mem['scrape_seconds'], '.2f')} s")
    else:
        add(f"not measured: {mem}")
    day = res.get("scale")
    if day:
        add("")
        add("== DAY AT SCALE (one worker, cold start, 24 h of event time) ==")
        if day.get("points"):
            st = day["stream"]
            add(f"{st['records']:,} events over {st['event_time_span_s'] / 3600:.1f} h, "
                f"{st['accounts']:,} accounts x {len(st['platforms'])} platforms, "
                f"{st['distinct_users']:,} distinct users, {st['duplicates']:,} duplicates")
            add("  events      RSS MiB  peak MiB  store disk MiB  changelog MiB  seconds")
            for pt in day["points"]:
                add(f"  {pt['events']:>9,}  {pt['rss_mib']:>8,.0f}  {pt['peak_rss_mib']:>8,.0f}  "
                    f"{pt['store_disk_mib']:>14,.1f}  {_num(pt['changelog_mib'], '>13,.1f')}  "
                    f"{pt['seconds']:>7,.0f}")
            add(f"peak RSS growth per event between the first and last point: "
                f"{_num(day.get('bytes_per_event_slope'))} B; peak RSS "
                f"{_num(day.get('peak_rss_mib'), ',.0f')} MiB")
            add(f"throughput {_num(day.get('events_per_second'), ',.0f')} events/s, "
                f"{_num(day.get('cpu_us_per_event'), '.1f')} CPU-us/event; per million: " +
                ", ".join(f"{m['events_per_second']:,.0f}" for m in day["throughput_per_million"]))
            sc = day["scrape"]
            add(f"/metrics at the end: {sc['series']:,} series, {sc['bytes'] / 2**20:.1f} MiB in "
                f"{sc['seconds']:.2f} s; largest state record "
                f"{day['largest_state_record_bytes']['bytes'] / 2**20:.2f} MiB "
                f"{day['largest_state_record_bytes']['by_kind']}")
            ex = day["exactness"]
            add(f"exactness: {ex['distinct_events']:,} distinct events, applied {ex['applied']:,},"
                f" lost {ex['lost']}, doubled {ex['doubled']}, duplicates "
                f"{ex['duplicates_counted']:,} of {ex['duplicates_expected']:,}, late "
                f"{ex['late']}")
            rec = day.get("recovery", {})
            add(f"recovery with the data directory deleted: serving after "
                f"{_num(rec.get('serving_s'), '.1f')} s, KPIs equal the old worker's "
                f"({_num(rec.get('kpi_series_compared'))} series) after "
                f"{_num(rec.get('equal_kpis_s'), '.1f')} s, consuming new records after "
                f"{_num(rec.get('consuming_s'), '.1f')} s; differences "
                f"{rec.get('kpi_differences')}")
        else:
            add(f"not measured: {day}")
    prof = res.get("profile")
    if prof:
        add("")
        add("== PROFILE (py-spy, socialpulse at_least_once under load) ==")
        if prof.get("status") == "ok":
            add(f"{prof['samples']:,} samples over {prof['seconds']:.0f} s, "
                f"{prof['records_during_profile']:,} records; stacks in {prof['collapsed_stacks']}")
            per = prof.get("python_cpu_us_per_event")
            add(f"Python CPU (GIL held) per event while profiled: {_num(per, '.1f')} us; "
                f"by stage (share, us/event):")
            for f in prof["stages"]:
                us = f" {f['pct'] / 100 * per:6.1f} us" if per else ""
                add(f"  {f['pct']:6.2f}%{us}  {f['function']}")
            add(f"  (in logging calls, across stages: {prof['logging_pct']:.2f}%)")
            add("self time (top 20):")
            for f in prof["self"][:20]:
                add(f"  {f['pct']:6.2f}%  {f['function']}")
            add("inclusive time (top 25):")
            for f in prof["inclusive"][:25]:
                add(f"  {f['pct']:6.2f}%  {f['function']}")
        else:
            add(f"{prof.get('status')}: {prof.get('note')}")
    quix = res.get("quix_install")
    if quix:
        add("")
        if quix.get("status") == "ok":
            hits = quix["agents_or_schemas_files"]
            add(f"quixstreams {quix['version']} runs from its own venv ({quix['python']}); "
                f"files of packages named agents/schemas there: {hits or 'none'}")
            for c in quix["conflicts_with_project_venv"]:
                add(f"  not in the project's .venv: {c}")
        else:
            add(f"quixstreams: {quix}")
    add("")
    add(f"total {res['meta'].get('total_seconds', 0):.0f} s")
    return "\n".join(out)
