"""Static checks of deploy/ (issue #3): Prometheus config and rules with their promtool tests,
the rules rendered by deploy/render.py, Alertmanager routing, Grafana dashboards, compose and
Kubernetes manifests. Needs promtool (Debian package ``prometheus``); amtool is optional."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from streams.build import build_info
from streams.core.catalogue import ALL_KPIS, part_names, sample_metrics
from streams.export.health import Health

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
PROM = DEPLOY / "prometheus"
RULES = PROM / "rules"
RULE_FILES = sorted(RULES.glob("*.yml"))
PROMTOOL_TESTS = sorted((PROM / "tests").glob("*.yml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
RUNBOOK = DEPLOY / "RUNBOOK.md"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose" / "compose.yaml"

SETUP_HINT = (
    "run the project's setup script, scripts/setup (it installs Debian's `prometheus` package, "
    "which provides promtool)"
)
SEVERITIES = {"page", "ticket"}
DASHBOARD_UIDS = {
    "socialpulse-overview.json": "socialpulse-overview",
    "socialpulse-pipeline.json": "socialpulse-pipeline",
}
# The pipeline's health metrics as exported (issue #3); streams.export.health declares them.
HEALTH_NAMES = {
    "socialpulse_events_total",
    "socialpulse_records_consumed_total",
    "socialpulse_events_rejected_total",
    "socialpulse_events_duplicate_total",
    "socialpulse_events_late_total",
    "socialpulse_events_overflow_total",
    "socialpulse_newest_event_timestamp_seconds",
    "socialpulse_processing_lag_seconds",
    "socialpulse_consumer_lag_records",
    "socialpulse_assigned_partitions",
    "socialpulse_exported_accounts",
    "socialpulse_build_info",
    "socialpulse_flushes_total",
}


# --------------------------------------------------------------------------------------- helpers


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: {SETUP_HINT}", pytrace=False)
    return path


def _run(*cmd: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def _assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"`{' '.join(proc.args)}` exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules(path: Path) -> Iterator[dict[str, Any]]:
    for group in _yaml(path)["groups"]:
        yield from group["rules"]


def _alerts() -> list[dict[str, Any]]:
    return list(_rules(RULES / "alerts.yml"))


def _recording_names() -> set[str]:
    return {r["record"] for r in _rules(RULES / "recording.yml")}


def _known_metric_names() -> set[str]:
    """Every name a query may use: KPIs, health metrics, recording rules, up and ALERTS."""
    names = {kpi.name for kpi in ALL_KPIS} | set(sample_metrics())
    registry = CollectorRegistry()
    Health(registry, build_info())
    for family in registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names.add(family.name + suffix)
    return names | _recording_names() | {"up", "ALERTS"}


_NOT_METRICS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a conservative lexical scan)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text
    )  # grouping label lists
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[m.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if m.group(0).lower() not in _NOT_METRICS:
            names.add(m.group(0))
    return names


@pytest.fixture(scope="module")
def render() -> ModuleType:
    """deploy/render.py, loaded by path (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location("socialpulse_deploy_render", DEPLOY / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_metric_names_scanner() -> None:
    expr = (
        'sum without (instance, pod) (rate(socialpulse_events_total{job="$job"}[$__rate_interval]))'
        " / on (job) group_left max by (job) (up offset 1d) > bool 1e3"
        ' and time() - foo:bar:baz{a="b"} unless ALERTS'
    )
    assert metric_names(expr) == {"socialpulse_events_total", "up", "foo:bar:baz", "ALERTS"}


def test_health_metrics_are_declared() -> None:
    assert _known_metric_names() >= HEALTH_NAMES


# ------------------------------------------------------------------------------------- promtool


def test_promtool_check_config() -> None:
    _assert_ok(_run(_tool("promtool"), "check", "config", PROM / "prometheus.yml"))


def test_promtool_check_rules() -> None:
    assert [p.name for p in RULE_FILES] == ["alerts.yml", "recording.yml"]
    _assert_ok(_run(_tool("promtool"), "check", "rules", *RULE_FILES))


def test_promtool_check_rules_fast_variant(render: ModuleType, tmp_path: Path) -> None:
    paths = render.write(render.Params.fast(window="1m"), rules_dir=tmp_path)
    _assert_ok(_run(_tool("promtool"), "check", "rules", *paths))


def test_promtool_tests_exist() -> None:
    assert len(PROMTOOL_TESTS) >= 3


@pytest.fixture(scope="module")
def promtool_runs() -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Every ``promtool test rules`` file started at once (each is one single-threaded process
    of seconds to tens of seconds): the tests below wait for their own."""
    promtool = _tool("promtool")
    runs = {p.name: subprocess.Popen([str(promtool), "test", "rules", p.name], cwd=p.parent,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for p in PROMTOOL_TESTS}
    yield runs
    for proc in runs.values():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.mark.parametrize("path", PROMTOOL_TESTS, ids=[p.name for p in PROMTOOL_TESTS])
def test_promtool_test_rules(
    path: Path, promtool_runs: dict[str, subprocess.Popen[str]]
) -> None:
    proc = promtool_runs[path.name]
    stdout, stderr = proc.communicate(timeout=300)
    _assert_ok(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))


def test_every_alert_fires_and_stays_silent_in_a_promtool_test() -> None:
    positive: set[str] = set()
    negative: set[str] = set()
    for path in PROMTOOL_TESTS:
        for group in _yaml(path)["tests"]:
            for case in group.get("alert_rule_test") or []:
                (positive if case.get("exp_alerts") else negative).add(case["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert not names - positive, f"alerts never firing in a test: {sorted(names - positive)}"
    assert not names - negative, f"alerts never silent in a test: {sorted(names - negative)}"
    assert not (positive | negative) - names, "tests name alerts that do not exist"


def test_alert_rules_are_complete() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    }
    alerts = _alerts()
    assert len(alerts) >= 11
    for alert in alerts:
        name = alert["alert"]
        assert alert.get("for"), f"{name}: no for:"
        assert alert["labels"]["severity"] in SEVERITIES, name
        assert alert["labels"]["component"] in {"kpi", "pipeline"}, name
        annotations = alert["annotations"]
        for key in ("summary", "description", "runbook", "runbook_url"):
            assert annotations.get(key), f"{name}: no {key} annotation"
        anchor = annotations["runbook_url"].rpartition("#")[2]
        assert anchor == name.lower() and anchor in anchors, f"{name}: no RUNBOOK.md section"


def test_rules_use_only_known_metrics() -> None:
    known = _known_metric_names()
    for path in RULE_FILES:
        for rule in _rules(path):
            used = metric_names(rule["expr"])
            assert used, f"{path.name}: no metric found in {rule['expr']!r}"
            assert used <= known, f"{path.name}: unknown metrics {sorted(used - known)}"


# ------------------------------------------------------------------------------------ render.py


def test_committed_rules_equal_render_output(render: ModuleType) -> None:
    stale = render.stale()
    assert not stale, f"stale generated files {stale}: run `python deploy/render.py`"
    assert render.main(["--check"]) == 0


def test_prometheusrule_has_the_rule_files_groups() -> None:
    resource = _yaml(K8S / "prometheusrule.yaml")
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["kind"] == "PrometheusRule"
    groups = [g for name in ("recording.yml", "alerts.yml") for g in _yaml(RULES / name)["groups"]]
    assert resource["spec"]["groups"] == groups


def test_fast_variant_swaps_window_durations_and_offsets(render: ModuleType) -> None:
    params = render.Params.fast(window="1m", interval="5s", min_impressions=50)
    rules = render.render_rules(params)
    alerts = [r for g in yaml.safe_load(rules["alerts.yml"])["groups"] for r in g["rules"]]
    windows = {w for a in alerts for w in re.findall(r'window="([^"]*)"', a["expr"])}
    assert windows == {"1m"}
    assert {a["for"] for a in alerts} == {"10s"}
    assert "offset 1d" not in rules["recording.yml"] and "offset 2m" in rules["recording.yml"]
    assert ">= 50" in rules["alerts.yml"]
    groups = [g for text in rules.values() for g in yaml.safe_load(text)["groups"]]
    assert {g["interval"] for g in groups} == {"5s"}
    assert "Parameters: window=1m" in rules["alerts.yml"]
    k8s = yaml.safe_load(render.render_prometheus_rule(params))
    assert k8s["spec"]["groups"] == groups


def test_fast_variant_fires_within_minutes(render: ModuleType, tmp_path: Path) -> None:
    """What the e2e test relies on: a 1m window, a 2m baseline and 10s for: durations."""
    render.write(render.Params.fast(window="1m", interval="5s"), rules_dir=tmp_path)
    labels = 'job="socialpulse",instance="w1:6066",account="acme",platform="all",window="1m"'
    case = {
        "rule_files": ["recording.yml", "alerts.yml"],
        "evaluation_interval": "5s",
        "tests": [
            {
                "interval": "5s",
                "input_series": [
                    {"series": f"social_impressions{{{labels}}}", "values": "2000x60"},
                    {
                        "series": f"social_engagement_rate_ratio{{{labels}}}",
                        "values": "0.05x35 0.02x24",
                    },
                    {"series": 'up{job="socialpulse",instance="w1:6066"}', "values": "1x60"},
                ],
                "alert_rule_test": [
                    {"alertname": "EngagementRateDrop", "eval_time": "2m50s", "exp_alerts": []},
                    {
                        "alertname": "EngagementRateDrop",
                        "eval_time": "4m",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "page",
                                    "component": "kpi",
                                    "job": "socialpulse",
                                    "account": "acme",
                                    "platform": "all",
                                    "window": "1m",
                                },
                                "exp_annotations": {
                                    "summary": "Engagement rate of acme dropped sharply",
                                    "description": (
                                        "Engagement rate of acme (platform all, window 1m) is "
                                        "2%, at most 0.5 x its value 2m earlier, with at least "
                                        "1000 impressions now and then."
                                    ),
                                    "runbook": (
                                        "Check the posts of the last hours and the platform's "
                                        "status; compare platforms on the overview dashboard."
                                    ),
                                    "runbook_url": "deploy/RUNBOOK.md#engagementratedrop",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "fast_test.yml").write_text(yaml.safe_dump(case, sort_keys=False))
    _assert_ok(_run(_tool("promtool"), "test", "rules", "fast_test.yml", cwd=tmp_path))


def test_fast_variant_response_time_sla_honours_business_hours(
    render: ModuleType, tmp_path: Path
) -> None:
    """The fast variant's ResponseTimeSLA (as the e2e test renders it: 1m window, 40 s SLA)
    judges an account with business-hours series on them (hours="business") and falls back to
    the all-hours p90 (hours="all") for an account without."""
    params = render.Params.fast(window="1m", interval="5s", response_sla_seconds=40)
    render.write(params, rules_dir=tmp_path)
    labels = 'job="socialpulse",instance="w1:6066",platform="all",window="1m",quantile="0.9"'

    def series(name: str, account: str, values: str) -> dict[str, str]:
        return {"series": f'{name}{{account="{account}",{labels}}}', "values": values}

    def expected(account: str, hours: str, value: str) -> dict[str, Any]:
        counted = {
            "business": "business hours only",
            "all": "all hours: no business-hours schedule",
        }
        return {
            "exp_labels": {
                "severity": "page",
                "component": "kpi",
                "job": "socialpulse",
                "account": account,
                "platform": "all",
                "window": "1m",
                "quantile": "0.9",
                "hours": hours,
            },
            "exp_annotations": {
                "summary": f"Replies of {account} are slower than the SLA",
                "description": (
                    f"p90 response time of {account} (window 1m, {counted[hours]}) is {value}, "
                    "above the SLA of 40 s."
                ),
                "runbook": "Tell the care desk lead; add staff to the queue or re-route messages.",
                "runbook_url": "deploy/RUNBOOK.md#responsetimesla",
            },
        }

    allhours, business = "social_response_time_seconds", "social_response_time_business_seconds"
    case = {
        "rule_files": ["recording.yml", "alerts.yml"],
        "evaluation_interval": "5s",
        "tests": [
            {
                "interval": "5s",
                "input_series": [
                    series(allhours, "slow", "90x24"),
                    series(business, "slow", "50x24"),
                    series(allhours, "night", "90x24"),
                    series(business, "night", "30x24"),
                    series(allhours, "allday", "45x24"),
                ],
                "alert_rule_test": [
                    {"alertname": "ResponseTimeSLA", "eval_time": "5s", "exp_alerts": []},
                    {
                        "alertname": "ResponseTimeSLA",
                        "eval_time": "1m",
                        "exp_alerts": [
                            expected("allday", "all", "45s"),
                            expected("slow", "business", "50s"),
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "fast_care_test.yml").write_text(yaml.safe_dump(case, sort_keys=False))
    _assert_ok(_run(_tool("promtool"), "test", "rules", "fast_care_test.yml", cwd=tmp_path))


def test_spike_alerts_need_an_old_enough_history(render: ModuleType) -> None:
    """Both spike alerts count the samples of the history they average (see alerts.yml.tmpl)."""
    assert render.seconds("1h30m") == 5400 and render.seconds("500ms") == 0.5
    assert render.Params().spike_min_samples() == 540  # 3/4 of 12h at one sample a minute
    assert render.Params.fast(window="1m", interval="5s").spike_min_samples() == 45
    assert render.Params.fast(window="1m", interval="2s").spike_min_samples() == 113
    assert render.Params(spike_min_history=1, interval="30s").spike_min_samples() == 1440
    spikes = {a["alert"]: a["expr"] for a in _alerts() if a["alert"].endswith("Spike")}
    assert set(spikes) == {"MentionSpike", "NegativeSentimentSpike"}
    for name, expr in spikes.items():
        averaged = re.search(r"avg_over_time\((\S+\[12h\] offset 1h)\)", expr)
        assert averaged, name
        assert f"count_over_time({averaged.group(1)}) >= 540" in expr, name
    alerts = render.render_rules(render.Params.fast(window="1m", interval="5s"))["alerts.yml"]
    assert alerts.count("[5m] offset 1m) >= 45\n") == 2


def test_fast_variant_spike_needs_history(render: ModuleType, tmp_path: Path) -> None:
    """The fast variant (5m history, 5s evaluation): steady mentions over a young history, whose
    1m window fills up from zero, stay silent; a spike once 3/4 of the history is there fires."""
    render.write(render.Params.fast(window="1m", interval="5s"), rules_dir=tmp_path)
    labels = 'job="socialpulse",instance="w1:6066",platform="all",window="1m"'
    new = labels.replace("platform=", 'account="new",platform=')
    early = labels.replace("platform=", 'account="early",platform=')
    late = labels.replace("platform=", 'account="late",platform=')
    case = {
        "rule_files": ["recording.yml", "alerts.yml"],
        "evaluation_interval": "5s",
        "tests": [
            {
                "interval": "5s",
                "input_series": [
                    # 0 -> 120 over the first minute (12 samples), then steady.
                    {"series": f"social_mentions{{{new}}}", "values": "0+10x12 120x120"},
                    # 10 a minute, 60 for a minute from 2m: 1m of history (13 samples).
                    {"series": f"social_mentions{{{early}}}", "values": "10x23 60x12 10x96"},
                    # 10 a minute, 60 from 4m50s: the history has 45 samples from 4m40s on.
                    {"series": f"social_mentions{{{late}}}", "values": "10x57 60x60"},
                ],
                "alert_rule_test": [
                    {"alertname": "MentionSpike", "eval_time": t, "exp_alerts": []}
                    for t in ("1m30s", "2m", "2m40s", "3m", "8m")
                ]
                + [
                    {
                        "alertname": "MentionSpike",
                        "eval_time": "5m50s",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "ticket",
                                    "component": "kpi",
                                    "job": "socialpulse",
                                    "account": "late",
                                    "platform": "all",
                                    "window": "1m",
                                },
                                "exp_annotations": {
                                    "summary": "Mentions of late are spiking",
                                    "description": (
                                        "late was mentioned 60 times in the last 1m, over 3 x "
                                        "its average over the 5m before."
                                    ),
                                    "runbook": (
                                        "Find what is being shared; check sentiment; join the "
                                        "conversation if it helps."
                                    ),
                                    "runbook_url": "deploy/RUNBOOK.md#mentionspike",
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "fast_spike_test.yml").write_text(yaml.safe_dump(case, sort_keys=False))
    _assert_ok(_run(_tool("promtool"), "test", "rules", "fast_spike_test.yml", cwd=tmp_path))


def test_render_cli_writes_a_variant(render: ModuleType, tmp_path: Path) -> None:
    code = render.main(
        [
            "--preset",
            "fast",
            "--set",
            "window=30s",
            "--set",
            "overdue_min=3",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts.yml", "recording.yml"]
    text = (tmp_path / "alerts.yml").read_text(encoding="utf-8")
    assert 'window="30s"' in text and "> 3\n" in text


@pytest.mark.parametrize(
    "override",
    [
        {"window": '1h"}'},
        {"for_drop": "30 minutes"},
        {"drop_factor": -1},
        {"min_clicks": True},
        {"runbook_base": 'x"y'},
        {"spike_min_history": 0},
        {"spike_min_history": 1.5},
        {"spike_lookback": "30s"},
    ],
)
def test_render_rejects_bad_parameters(render: ModuleType, override: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        render.Params(**override)


def test_render_rejects_unknown_placeholders(render: ModuleType) -> None:
    with pytest.raises(KeyError):
        render.render_text("expr: x > ${nope}\n", render.Params())
    assert render.render_text("## gone\na: $$x ${window}\n", render.Params()) == "a: $x 1h\n"


# --------------------------------------------------------------------------------- alertmanager


def test_alertmanager_routes_by_severity() -> None:
    config = _yaml(ALERTMANAGER)
    receivers = {r["name"] for r in config["receivers"]}
    routed = {}
    for route in config["route"]["routes"]:
        for matcher in route["matchers"]:
            m = re.fullmatch(r'severity="(\w+)"', matcher)
            if m:
                routed[m.group(1)] = route["receiver"]
    assert set(routed) == SEVERITIES
    assert routed["page"] != routed["ticket"]
    assert set(routed.values()) <= receivers and config["route"]["receiver"] in receivers
    used = {a["labels"]["severity"] for a in _alerts()}
    assert used <= set(routed)


def test_alertmanager_config_is_valid() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not installed (Debian package prometheus-alertmanager)")
    _assert_ok(_run(amtool, "check-config", ALERTMANAGER))
    for severity in sorted(SEVERITIES):
        _assert_ok(
            _run(
                amtool,
                "config",
                "routes",
                "test",
                f"--config.file={ALERTMANAGER}",
                f"--verify.receivers={severity}",
                f"severity={severity}",
                "alertname=X",
            )
        )


# -------------------------------------------------------------------------------------- grafana


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    return query["query"] if isinstance(query, dict) else str(query)


def test_dashboards_exist() -> None:
    assert sorted(p.name for p in DASHBOARDS) == sorted(DASHBOARD_UIDS)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert dashboard["uid"] == DASHBOARD_UIDS[path.name]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    known = _known_metric_names()
    for name, variable in variables.items():
        if variable["type"] != "query":
            continue
        assert variable["datasource"]["uid"] == "${datasource}", name
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", _variable_query(variable))
        assert m and m.group(2) == name, f"variable {name}: not a label_values query"
        assert metric_names(m.group(1)) <= known, f"variable {name}: unknown metric"

    ids = set()
    for panel in _panels(dashboard):
        assert panel["id"] not in ids, f"duplicate panel id {panel['id']}"
        ids.add(panel["id"])
        if panel["type"] == "row":
            continue
        title = panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", title
        assert panel["targets"], f"{title}: no targets"
        used: set[str] = set()
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", title
            names = metric_names(target["expr"])
            assert names, f"{title}: no metric in {target['expr']!r}"
            assert names <= known, f"{title}: unknown metrics {sorted(names - known)}"
            used |= names
        if any(n.endswith("_ratio") or "_ratio:" in n for n in used):
            config = panel["fieldConfig"]
            units = {config["defaults"].get("unit")} | {
                prop["value"]
                for override in config["overrides"]
                for prop in override["properties"]
                if prop["id"] == "unit"
            }
            assert "percentunit" in units, f"{title}: ratios not shown as percentunit"


def _dashboard_metrics(uid: str) -> set[str]:
    path = DEPLOY / "grafana" / "dashboards" / f"{uid}.json"
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    return {
        n for p in _panels(dashboard) for t in p.get("targets", []) for n in metric_names(t["expr"])
    }


def test_overview_dashboard_layout() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/socialpulse-overview.json").read_text())
    rows = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert rows >= {
        "Reach",
        "Engagement",
        "Conversion and money",
        "Care and satisfaction",
        "Share of voice",
    }
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables >= {"datasource", "account", "platform", "window"}
    used = _dashboard_metrics("socialpulse-overview")
    # Lifetime counters are read through the rules that join them across workers (SPEC §4),
    # never raw: a raw increase() double counts or resets where a series changed worker.
    totals = {name for kpi in ALL_KPIS if kpi.scope == "total" for name, _ in part_names(kpi)}
    assert not used & totals, f"raw lifetime counters on a panel: {sorted(used & totals)}"
    used |= {name for name in totals if f"account_platform:{name}:max" in used}
    missing = {part_names(kpi)[0][0] for kpi in ALL_KPIS} - used
    assert not missing, f"KPIs on no overview panel: {sorted(missing)}"


def test_every_lifetime_counter_has_its_joining_rule() -> None:
    rules = {r["record"]: r["expr"] for r in _rules(RULES / "recording.yml")}
    for kpi in ALL_KPIS:
        if kpi.scope != "total":
            continue
        for name, _labels in part_names(kpi):
            expr = rules.get(f"account_platform:{name}:max")
            assert expr == f"max without (instance, pod) (max_over_time({name}[2m]))", name


#: Issue 14: business-hours response time and the care staff's series (SPEC section 4).
CARE_STAFF_SERIES = {
    "social_response_time_business_seconds",
    *(
        f"social_{who}_{kpi}"
        for who in ("agent", "team")
        for kpi in (
            "replies",
            "resolution_ratio",
            "response_time_seconds",
            "response_time_business_seconds",
        )
    ),
}


def test_overview_dashboard_shows_business_hours_and_care_staff() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/socialpulse-overview.json").read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows.index("Care and satisfaction") < rows.index("Care agents and teams")
    used = _dashboard_metrics("socialpulse-overview")
    assert used >= CARE_STAFF_SERIES, sorted(CARE_STAFF_SERIES - used)
    # The business-hours p90 next to the all-hours one, in one panel.
    exprs = {
        p["title"]: {n for t in p["targets"] for n in metric_names(t["expr"])}
        for p in _panels(dashboard)
        if p["type"] != "row"
    }
    assert {"social_response_time_seconds", "social_response_time_business_seconds"} <= exprs[
        "Response time: business vs all hours"
    ]


def test_pipeline_dashboard_shows_health() -> None:
    needed = {
        "socialpulse_events_total",
        "socialpulse_records_consumed_total",
        "socialpulse_consumer_lag_records",
        "socialpulse_events_rejected_total",
        "socialpulse_events_late_total",
        "socialpulse_events_duplicate_total",
        "socialpulse_processing_lag_seconds",
    }
    assert needed <= _dashboard_metrics("socialpulse-pipeline")


def test_grafana_provisioning() -> None:
    datasources = _yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert [d["type"] for d in datasources] == ["prometheus"]
    providers = _yaml(DEPLOY / "grafana/provisioning/dashboards/provider.yml")["providers"]
    grafana = _yaml(COMPOSE)["services"]["grafana"]
    mounts = {v.split(":")[1] for v in grafana["volumes"]}
    assert providers[0]["options"]["path"] in mounts
    assert "/etc/grafana/provisioning" in mounts


# ----------------------------------------------------------------------------- compose and k8s


def test_compose_stack() -> None:
    compose = _yaml(COMPOSE)
    services = compose["services"]
    assert set(services) >= {
        "kafka",
        "worker",
        "simulator",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    worker = services["worker"]
    build = COMPOSE.parent / worker["build"]["context"]
    assert (build / worker["build"]["dockerfile"]).is_file()
    assert (build / "pyproject.toml").is_file()
    env = worker["environment"]
    assert env["SOCIALPULSE_WEB_PORT"] == "6066" and env["SOCIALPULSE_WEB_HOST"] == "0.0.0.0"
    assert all(k.startswith("SOCIALPULSE_") for k in env)
    assert services["simulator"]["command"] == ["simulate", "--rate", "200"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"missing mount source {source}"
    # The compose Prometheus scrapes the workers under the job name the rules select.
    scrape = _yaml(PROM / "prometheus.yml")["scrape_configs"]
    assert any(s["job_name"] == "socialpulse" for s in scrape)


def test_dockerfile() -> None:
    text = (DEPLOY / "compose" / "Dockerfile").read_text(encoding="utf-8")
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "pip install ." in text and '"worker"' in text and "EXPOSE 6066" in text


def test_k8s_manifests() -> None:
    kustomization = _yaml(K8S / "kustomization.yaml")
    docs = {}
    for name in kustomization["resources"]:
        if (K8S / name).is_dir():
            continue  # a kustomization of its own (../config: the business hours)
        doc = _yaml(K8S / name)
        docs[doc["kind"]] = doc
    assert set(docs) >= {"StatefulSet", "Service", "PodMonitor", "PrometheusRule"}
    spec = docs["StatefulSet"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 6066}
    # /status and /ready, not /metrics: a probe must not pay for rendering every KPI series;
    # readiness fails while the worker recovers or its progress watchdog says it is stalled.
    for probe, path in (("livenessProbe", "/status"), ("readinessProbe", "/ready")):
        get = container[probe]["httpGet"]
        assert get["path"] == path and ports.get(get["port"], get["port"]) == 6066
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/var/lib/socialpulse" in mounts
    assert docs["Service"]["spec"]["clusterIP"] == "None"
    monitor = docs["PodMonitor"]["spec"]
    labels = docs["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    assert labels[monitor["jobLabel"]] == "socialpulse"
    assert monitor["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["podMetricsEndpoints"][0]["port"] == "metrics"


BUSINESS_HOURS = DEPLOY / "config" / "business-hours.toml"
BUSINESS_HOURS_ENV = "SOCIALPULSE_BUSINESS_HOURS_FILE"


def test_business_hours_have_one_source() -> None:
    """compose and Kubernetes give the workers deploy/config/business-hours.toml itself: compose
    mounts it, kustomize generates the ConfigMap from it in its own directory (the default load
    restrictor refuses files outside a kustomization's directory), and the StatefulSet mounts
    that ConfigMap where SOCIALPULSE_BUSINESS_HOURS_FILE points."""
    assert BUSINESS_HOURS.is_file()
    # compose: the worker (and the simulator, which shares the environment) mount the file.
    compose = _yaml(COMPOSE)
    for name in ("worker", "simulator"):
        service = compose["services"][name]
        target = service["environment"][BUSINESS_HOURS_ENV]
        mounts = {
            v.split(":")[1]: (COMPOSE.parent / v.split(":")[0]).resolve()
            for v in service.get("volumes", [])
            if ":" in v
        }
        assert mounts.get(target) == BUSINESS_HOURS, f"{name}: {target} is not {BUSINESS_HOURS}"
    # Kubernetes: ../config is a resource; its generator reads the file from its own directory.
    kustomization = _yaml(K8S / "kustomization.yaml")
    bases = [K8S / r for r in kustomization["resources"] if (K8S / r).is_dir()]
    generators = {
        g["name"]: (base, g)
        for base in bases
        for g in _yaml(base / "kustomization.yaml").get("configMapGenerator", [])
    }
    base, generator = generators["socialpulse-business-hours"]
    ((key, _, source),) = [f.partition("=") if "=" in f else (f, "", f) for f in generator["files"]]
    assert (base / source).resolve() == BUSINESS_HOURS and ".." not in source
    spec = _yaml(K8S / "statefulset.yaml")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    volumes = {v["name"]: v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"] if m["name"] in volumes}
    path = Path(env[BUSINESS_HOURS_ENV])
    assert path.name == key, f"{BUSINESS_HOURS_ENV}={path}: the ConfigMap key is {key}"
    assert volumes[mounts[str(path.parent)]] == "socialpulse-business-hours"


def test_kustomize_builds() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    proc = _run(kubectl, "kustomize", K8S)  # the default load restrictor, as `kubectl apply -k`
    _assert_ok(proc)
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(proc.stdout) if d}
    (cm,) = [d for (kind, name), d in docs.items() if name.startswith("socialpulse-business-hours")]
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["namespace"] == "socialpulse"
    assert cm["data"] == {"business-hours.toml": BUSINESS_HOURS.read_text(encoding="utf-8")}
    worker = docs[("StatefulSet", "socialpulse-worker")]["spec"]["template"]["spec"]
    # The generated name (with its content hash) is what the StatefulSet mounts.
    mounted = {v["configMap"]["name"] for v in worker["volumes"] if "configMap" in v}
    assert cm["metadata"]["name"] in mounted, mounted
