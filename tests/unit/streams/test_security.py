"""Issue #5, Security, the parts that need no broker: secrets in reprs and errors, loopback web
binding, no pickle codec, label values from validated slugs only. (SASL_SSL against a real broker:
tests/integration/test_security.py.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from faust.serializers import codecs

from streams.core.engine import Engine
from streams.core.labels import OTHER_ACCOUNT
from streams.core.series import compute
from streams.core.totals import RESPONSE_BUCKETS
from streams.settings import Settings
from streams.tools import cli, preflight
from streams.tools import local_kafka as kafka_local
from streams.worker.app import _credentials, build_app

ROOT = Path(__file__).resolve().parents[3]
PRODUCT = ("streams", "agents", "schemas")
PICKLE_CODECS = {"pickle", "pickle_restricted", "pickle_fickling"}
SECRET = "s3cr3t-Pa55word"
T0 = 1_800_000_000_000


def _sasl_settings(**kw: Any) -> Settings:
    return Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="svc",
                    kafka_sasl_password=SECRET, **kw)  # type: ignore[arg-type]


# --- secrets ----------------------------------------------------------------------------------
def test_password_is_in_no_repr() -> None:
    s = _sasl_settings()
    for text in (repr(s), str(s), s.model_dump_json(), str(s.model_dump())):
        assert SECRET not in text
    creds = _credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.password == SECRET and creds.mechanism.value == "SCRAM-SHA-512"
    assert SECRET not in repr(creds) and SECRET not in str(creds)


def test_bad_settings_are_reported_without_their_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOCIALPULSE_KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("SOCIALPULSE_KAFKA_SECURITY_PROTOCOL", f"SASL_{SECRET}")
    assert cli.main(["produce", "-"]) == cli.EXIT_UNAVAILABLE
    err = capsys.readouterr().err
    assert err.startswith("socialpulse: SOCIALPULSE_KAFKA_SECURITY_PROTOCOL: ")
    assert len(err.splitlines()) == 1 and SECRET not in err


def test_sasl_without_password_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOCIALPULSE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SOCIALPULSE_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("SOCIALPULSE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    with pytest.raises(cli.CliError, match="needs SOCIALPULSE_KAFKA_SASL_USERNAME and"):
        preflight._client_kwargs(Settings())
    monkeypatch.setenv("SOCIALPULSE_KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("SOCIALPULSE_KAFKA_SSL_CAFILE", "/nonexistent/ca.pem")
    with pytest.raises(cli.CliError, match=r"SOCIALPULSE_KAFKA_SSL_CAFILE=/nonexistent/ca\.pem"):
        preflight._client_kwargs(Settings())


def test_scram_users_are_checked_without_echoing_the_password() -> None:
    args = kafka_local._scram_args({"svc": "a-b_c.d"}, "SCRAM-SHA-512")
    assert args == ["--add-scram", "SCRAM-SHA-512=[name=svc,password=a-b_c.d]"]
    for bad in ("has,comma", "has]bracket", 'has"quote', "has space", ""):
        with pytest.raises(ValueError) as info:
            kafka_local._scram_args({"svc": bad}, "SCRAM-SHA-512")
        assert not bad or bad not in str(info.value)
    with pytest.raises(ValueError, match="not a SCRAM mechanism"):
        kafka_local._scram_args({"svc": "x"}, "PLAIN")
    assert kafka_local._redact("boom a-b_c.d boom", ["a-b_c.d"]) == "boom *** boom"


def test_sasl_ssl_broker_config_has_no_plaintext_client_listener(tmp_path: Path) -> None:
    conf = kafka_local.sasl_ssl_config(
        9000, 9001, keystore_pem=tmp_path / "k.pem", truststore_pem=tmp_path / "ca.pem",
        inter_broker_user="broker", inter_broker_password=SECRET)
    assert conf["listeners"] == "SASL_SSL://127.0.0.1:9000,CONTROLLER://127.0.0.1:9001"
    assert conf["advertised.listeners"] == "SASL_SSL://127.0.0.1:9000"
    assert conf["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    props = tmp_path / "server.properties"
    kafka_local._write_properties(props, conf)
    assert props.stat().st_mode & 0o077 == 0  # holds the inter-broker password: owner only


# --- web binding ------------------------------------------------------------------------------
def test_web_binds_loopback_unless_configured() -> None:
    assert Settings.model_fields["web_host"].default == "127.0.0.1"
    assert build_app(Settings(web_host="127.0.0.1")).conf.web_bind == "127.0.0.1"
    assert build_app(Settings(web_host="0.0.0.0")).conf.web_bind == "0.0.0.0"


# --- no pickle --------------------------------------------------------------------------------
def _product_sources() -> list[Path]:
    return sorted(p for pkg in PRODUCT for p in (ROOT / pkg).rglob("*.py"))


def test_no_pickle_import_in_the_product() -> None:
    unsafe = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "shelve", "marshal"}
    found = []
    sources = _product_sources()
    assert len(sources) > 10
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path}: {n}" for n in names if n.split(".")[0] in unsafe]
            # a codec chosen by name: value_serializer="pickle", serializer="json|pickle", ...
            if isinstance(node, ast.keyword) and "serializer" in (node.arg or "") \
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str) \
                    and PICKLE_CODECS & set(node.value.value.split("|")):
                found.append(f"{path}:{node.lineno}: {node.arg}={node.value.value!r}")
    assert not found, found


def test_every_topic_and_table_is_raw_and_pickle_is_unregistered() -> None:
    from streams.worker.app import app
    from streams.worker.components import state
    from streams.worker.topics import dead_letters, interactions

    assert (app.conf.key_serializer, app.conf.value_serializer) == ("raw", "raw")
    for channel in (interactions, dead_letters, state.changelog_topic):
        assert isinstance(channel, faust.Topic)
        assert (channel.key_serializer, channel.value_serializer) == ("raw", "raw"), channel
    for table in app.tables.values():
        assert (table.key_serializer, table.value_serializer) == ("raw", "raw"), table.name
    for agent in app.agents.values():
        assert (agent.channel.key_serializer, agent.channel.value_serializer) == ("raw", "raw")
    assert not [name for name in codecs.codecs if "pickle" in name]
    with pytest.raises(KeyError):
        codecs.get_codec("pickle")


# --- label values -----------------------------------------------------------------------------
HOSTILE = ['acme",x="1', "Acme", "acme\n", "acmé", "../../etc/passwd", "{{7*7}}", "a" * 65, "",
           " ", "user@example.com", "https://evil.example/?q=1", "acme} 1\nsocial_x{a=\"b",
           "\u202eemca", "acme\x00", "-acme", "_other"]
SLUG = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def _records() -> list[tuple[int, int, bytes | None, bytes]]:
    def ev(i: int, **fields: Any) -> dict[str, Any]:
        return {"event_id": f"e{i}", "ts": T0, "account": "acme", "platform": "x", **fields}

    docs: list[dict[str, Any]] = []
    n = 0
    for bad in HOSTILE:
        for field in ("account", "platform", "campaign"):
            docs.append(ev(n := n + 1, type="like", **{field: bad}))
        docs.append(ev(n := n + 1, type="conversion", goal=bad))
        docs.append(ev(n := n + 1, type="purchase", amount=5, currency=bad))
        # free text where it belongs: never a label
        docs.append(ev(n := n + 1, type="click", user_id=bad, post_id=bad, url=bad,
                       campaign="spring"))
        docs.append(ev(n := n + 1, type="impression", user_id=bad, post_id=bad))
    docs.append(ev(n := n + 1, type="purchase", amount=5, currency="EUR", user_id="u1"))
    docs.append(ev(n := n + 1, type="conversion", goal="signup"))
    docs.append(ev(n := n + 1, type="comment", needs_response=True, event_id="c1"))
    docs.append(ev(n := n + 1, type="reply", in_reply_to="c1", ts=T0 + 1000))
    return [(0, i, b"acme", orjson.dumps(d)) for i, d in enumerate(docs)]


def test_exported_label_values_are_validated_slugs_only() -> None:
    s = Settings(clock="event", windows=["5m", "1h"])
    e = Engine(s, now_ms=lambda: T0)
    outcome = e.ingest_batch(_records())
    # every hostile account, platform, campaign, goal and currency went to the dead letters
    assert len(outcome.rejected) >= 5 * len(HOSTILE)
    series = compute(e, s)
    assert series, "nothing exported"
    # "" is the lifetime counters' empty partition (no label); le values are the histogram's
    fixed = {"all", OTHER_ACCOUNT, *s.windows, "", "+Inf",
             *(repr(float(b)) for b in RESPONSE_BUCKETS)}
    seen: set[str] = set()
    for rows in series.values():
        for labels, _value in rows:
            seen.update(labels)
    bad = {v for v in seen if v not in fixed and not SLUG.fullmatch(v)
           and not re.fullmatch(r"[A-Z]{3}", v) and not re.fullmatch(r"0\.\d+", v)}
    assert not bad, bad
    for text in HOSTILE:
        if text and text not in fixed and not SLUG.fullmatch(text):
            assert text not in seen
    assert {"acme", "x", "spring", "signup", "EUR"} <= seen


# --- one source of client security settings ----------------------------------------------------
def test_every_kafka_client_gets_the_settings_helper_kwargs() -> None:
    """Each aiokafka client of the product is built with ``**settings.kafka_client_kwargs()``
    (or the CLI's checked wrapper of it), so none can miss the TLS/SASL settings. kafka_local's
    readiness probe is the exception: its caller hands it those same kwargs."""
    clients = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient", "AIOKafkaClient"}
    helpers = {"kafka_client_kwargs", "_client_kwargs"}
    calls = []
    for path in _product_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in clients):
                continue
            spread = [k.value for k in node.keywords if k.arg is None]
            ok = any(isinstance(v, ast.Call) and (
                getattr(v.func, "attr", None) in helpers or getattr(v.func, "id", None) in helpers)
                for v in spread)
            if path.parent.name == "local_kafka":
                ok = [getattr(v, "id", None) for v in spread] == ["auth"]
            calls.append((f"{path.name}:{node.lineno}", ok))
    assert len(calls) >= 4, calls
    assert all(ok for _, ok in calls), calls


def test_embedded_broker_is_not_started_for_a_secured_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_local, "is_reachable", lambda *_a: False)
    s = _sasl_settings(kafka_bootstrap_servers="127.0.0.1:1")
    with pytest.raises(cli.CliError, match="PLAINTEXT only, not SASL_SSL"):
        preflight.start_local_kafka(s)
