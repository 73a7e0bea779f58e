"""The demo's probe: KPIs out of a worker's /kpis answer, alerts out of Prometheus's."""

from __future__ import annotations

from streams.tools.demo.probe import account_row, alert_rows

BODY = {
    "windows": {
        "5m": {"all": {"impressions": 1960.0, "engagement_rate_ratio": 0.03,
                       "click_through_ratio": 0.007, "share_of_voice_ratio": 0.47,
                       "response_time_seconds{quantile=0.9}": 252.0},
               "x": {"impressions": 5.0}},
        "1m": {"all": {"engagement_rate_ratio": 0.002}},
    },
    "current": {"all": {"pending_responses": 9.0}},
}


def test_an_account_row_reads_the_all_platforms_kpis() -> None:
    row = account_row("acme", BODY, "5m", "1m")
    assert (row.impressions, row.engagement_rate, row.alert_engagement_rate) == (1960, 0.03, 0.002)
    assert (row.click_through, row.share_of_voice) == (0.007, 0.47)
    assert (row.response_p90_s, row.pending_replies) == (252.0, 9.0)
    assert account_row("acme", None, "5m", "1m").impressions is None
    assert account_row("acme", BODY, "1h", None).impressions is None


def test_alerts_firing_first_then_by_start() -> None:
    alerts = [
        {"labels": {"alertname": "MentionSpike", "account": "globex"}, "state": "pending",
         "activeAt": "2026-12-02T08:00:00Z", "annotations": {"summary": "s1"}},
        {"labels": {"alertname": "EngagementRateDrop", "account": "acme"}, "state": "firing",
         "activeAt": "2026-12-02T08:05:00.5Z", "annotations": {"summary": "s2"}},
        {"labels": {"alertname": "SocialpulseNoEvents"}, "state": "firing", "activeAt": "bad"},
    ]
    rows = alert_rows(alerts)
    assert [r.name for r in rows] == ["SocialpulseNoEvents", "EngagementRateDrop", "MentionSpike"]
    assert rows[0].since is None and rows[0].account is None
    assert rows[1].since == 1_796_198_700.5 and rows[1].summary == "s2"
