"""Settings from the environment: durations, windows, markets, secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.core.windows import Window, parse_duration
from streams.settings import Settings


def test_durations_and_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_duration("90s") == 90 and parse_duration("2h") == 7200
    with pytest.raises(ValueError):
        parse_duration("5 minutes")
    monkeypatch.setenv("SOCIALPULSE_WINDOWS", "1h,5m")
    s = Settings()
    assert [w.label for w in s.window_specs] == ["5m", "1h"]
    assert Window.parse("5m").bucket_ms == 10_000
    assert s.retention_ms == 3_600_000 + 300_000


def test_markets_parse_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCIALPULSE_MARKETS", "acme=coffee, globex=coffee")
    s = Settings()
    assert s.market_of("acme") == "coffee" and s.market_of("other") == "default"
    monkeypatch.setenv("SOCIALPULSE_MARKETS", "acme")
    with pytest.raises(ValidationError):
        Settings()


def test_password_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCIALPULSE_KAFKA_SASL_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("SOCIALPULSE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SOCIALPULSE_KAFKA_SASL_USERNAME", "svc")
    s = Settings()
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    assert s.kafka_client_kwargs()["sasl_plain_password"] == "hunter2-secret"


@pytest.mark.parametrize("windows", ["1h,1h", "5m,300s,1h", "60m,1h"])
def test_a_window_length_is_given_once(windows: str) -> None:
    with pytest.raises(ValidationError, match="same length"):
        Settings(windows=windows)  # type: ignore[arg-type]
