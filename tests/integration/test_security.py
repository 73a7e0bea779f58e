"""Issue #5, Security: Kafka with SASL_SSL and SCRAM-SHA-512, on a broker of this module's own.

The test makes a CA and a broker certificate (openssl, in tmp), formats a broker whose only client
listener is SASL_SSL with two SCRAM-SHA-512 users (the broker itself and socialpulse), and then
runs the real commands, configured only through ``SOCIALPULSE_`` variables:

- ``socialpulse produce`` and ``socialpulse simulate`` write over SASL_SSL, a ``socialpulse worker``
  (log level DEBUG) reads it, and its KPIs equal the oracle's for what reached the topic;
- with a wrong password each of the three exits with code 2 and one line that says so;
- the password shows up in no output, log, HTTP answer or repr;
- the worker's HTTP server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.settings import Settings
from streams.tools import local_kafka as kafka_local
from tests.support import eventset, oracle
from tests.support.harness import _scrape, _settings, _wait_caught_up
from tests.support.processes import ROOT, Figure, WorkerProc, new_worker

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

FAULT = "SASL_SSL + SCRAM-SHA-512"
COUNT = 3_000
USER = "socialpulse"


@dataclass(frozen=True)
class SecureBroker:
    bootstrap: str
    cafile: Path
    password: str
    data_dir: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def make_certificates(d: Path) -> tuple[Path, Path]:
    """A CA and a broker certificate for 127.0.0.1/localhost signed by it.

    Returns (the broker's PEM keystore: PKCS#8 key then certificate, the CA certificate)."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=socialpulse test CA", cwd=d)
    _openssl("req", *ec, "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=localhost",
             cwd=d)
    (d / "broker.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n")
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "broker.pem", "-days", "2", "-extfile", "broker.ext",
             cwd=d)
    keystore = d / "broker-keystore.pem"
    keystore.write_bytes((d / "broker.key").read_bytes() + (d / "broker.pem").read_bytes())
    keystore.chmod(0o600)
    return keystore, d / "ca.pem"


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    base = tmp_path_factory.mktemp("secure-kafka")
    keystore, ca = make_certificates(base / "tls")
    password, broker_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    port, controller = kafka_local.free_port(), kafka_local.free_port()
    client = Settings(kafka_bootstrap_servers=f"127.0.0.1:{port}",
                      kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                      kafka_sasl_username=USER, kafka_sasl_password=password,  # type: ignore[arg-type]
                      kafka_ssl_cafile=ca)
    defaults = Settings()
    data_dir = base / "kafka"
    broker = kafka_local.start(
        data_dir=data_dir, port=port, controller_port=controller,
        version=defaults.kafka_version, cache_dir=defaults.kafka_cache_dir, heap="512m",
        extra_config={
            **kafka_local.sasl_ssl_config(port, controller, keystore_pem=keystore,
                                          truststore_pem=ca, inter_broker_user="broker",
                                          inter_broker_password=broker_password),
            "num.partitions": "3",
        },
        scram_users={"broker": broker_password, USER: password},
        # Ready means: a metadata request over SASL_SSL, authenticated as a client will be.
        client_config=client.kafka_client_kwargs(),
    )
    try:
        yield SecureBroker(broker.bootstrap, ca, password, data_dir)
    finally:
        kafka_local.stop(data_dir)


@pytest.fixture
def secure_env(secure_kafka: SecureBroker, tmp_path: Path) -> dict[str, str]:
    """A worker's (and produce's, simulate's) whole configuration: SOCIALPULSE_ variables only."""
    run = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALPULSE_")}
    env.update({
        "SOCIALPULSE_KAFKA_BOOTSTRAP_SERVERS": secure_kafka.bootstrap,
        "SOCIALPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "SOCIALPULSE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "SOCIALPULSE_KAFKA_SASL_USERNAME": USER,
        "SOCIALPULSE_KAFKA_SASL_PASSWORD": secure_kafka.password,
        "SOCIALPULSE_KAFKA_SSL_CAFILE": str(secure_kafka.cafile),
        "SOCIALPULSE_APP_ID": f"sp-sec-{run}",
        "SOCIALPULSE_INPUT_TOPIC": f"in-{run}",
        "SOCIALPULSE_DLQ_TOPIC": f"dlq-{run}",
        "SOCIALPULSE_TOPIC_PARTITIONS": "3",
        "SOCIALPULSE_DATA_DIR": str(tmp_path / "worker"),
        "SOCIALPULSE_WEB_PORT": str(kafka_local.free_port()),
        "SOCIALPULSE_CLOCK": "event",
        "SOCIALPULSE_WINDOWS": "1m,5m,20m",
        "SOCIALPULSE_GRACE_SECONDS": "60",
        "SOCIALPULSE_MARKETS": "acme=coffee,globex=coffee",
        # The most talkative level: a password must not show even there.
        "SOCIALPULSE_LOG_LEVEL": "DEBUG",
        "SOCIALPULSE_FLUSH_INTERVAL_SECONDS": "1",
        "PYTHONPATH": str(ROOT),
    })
    return env


def _cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.tools.cli", *args], env=env, cwd=ROOT,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _sent(done: subprocess.CompletedProcess[str]) -> int:
    assert done.returncode == 0, done.stdout + done.stderr
    m = re.search(r"^sent (\d+) records", done.stdout, re.M)
    assert m, done.stdout + done.stderr
    return int(m.group(1))


async def _read_inputs(s: Settings) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) of every record of the input topic, read over SASL_SSL."""
    consumer = AIOKafkaConsumer(**s.kafka_client_kwargs(), enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = [TopicPartition(s.input_topic, p) for p in range(s.topic_partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        want = sum(ends[tp] - starts[tp] for tp in parts)
        out: list[tuple[int, int, bytes]] = []
        deadline = time.monotonic() + 60
        while len(out) < want and time.monotonic() < deadline:
            for tp, msgs in (await consumer.getmany(timeout_ms=1000)).items():
                out.extend((tp.partition, m.offset, m.value or b"") for m in msgs)
        return out
    finally:
        await consumer.stop()


def _assert_matches_oracle(w: WorkerProc, env: dict[str, str], produced: int) -> None:
    s = _settings(env)
    health = _wait_caught_up(w, produced)
    assert health["socialpulse_records_consumed_total"] == produced
    inputs = asyncio.run(_read_inputs(s))
    assert len(inputs) == produced
    expected = oracle.run(iter(inputs), s, int(time.time() * 1000))
    problems = oracle.compare(expected.series, _scrape(w)[0])
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])


def _first_kpi_seconds(w: WorkerProc, started: float, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert w.proc is not None and w.proc.poll() is None, w.tail()
        try:
            if "\nsocial_" in w.metrics(timeout=2):
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"no KPI after {timeout}s:\n{w.tail()}")


def _jsonl(records: list[eventset.TestRecord], path: Path) -> int:
    # One record a line: the few malformed records that hold a line break (or nothing) cannot be
    # told apart from two records in JSON Lines, so they stay out. The oracle reads the topic.
    lines = [r.value for r in records if r.value.strip() and b"\n" not in r.value
             and b"\r" not in r.value]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)


def test_worker_produce_and_simulate_over_sasl_ssl(
    secure_kafka: SecureBroker, secure_env: dict[str, str], tmp_path: Path, figure: Figure
) -> None:
    env = secure_env
    records = eventset.at_rate(int(time.time() * 1000), COUNT)
    lines = _jsonl(records, tmp_path / "events.jsonl")
    produce = _cli(env, "produce", str(tmp_path / "events.jsonl"))
    produced = _sent(produce)
    assert produced == lines

    w = new_worker(env, tmp_path, name="secure")
    started = time.monotonic()
    w.start()
    try:
        figure(FAULT, "time to first KPI (worker start to first social_ series)",
               round(_first_kpi_seconds(w, started), 1), "s")
        _assert_matches_oracle(w, env, produced)

        simulate = _cli(env, "simulate", "--duration", "3", "--rate", "100", "--seed", "5")
        simulated = _sent(simulate)
        assert simulated > 0
        _assert_matches_oracle(w, env, produced + simulated)
        figure(FAULT, "events produced + simulated, counted exactly", produced + simulated)

        # The worker's HTTP server (/metrics, /kpis, /status) listens on loopback only.
        listening = {c.laddr for c in psutil.Process(w.proc.pid).net_connections("tcp")  # type: ignore[union-attr]
                     if c.status == psutil.CONN_LISTEN}
        assert listening and {a.ip for a in listening} == {"127.0.0.1"}, listening
        assert w.port in {a.port for a in listening}

        answers = {path: w.get(path).decode() for path in
                   ("/metrics", "/status", "/kpis?account=acme", "/kpis?account=acme&window=5m")}
    finally:
        w.kill()
    password = secure_kafka.password
    assert '"windows"' in answers["/kpis?account=acme"]
    for path, body in answers.items():
        assert password not in body, path
    log = w.log.read_text(errors="replace")
    assert "DEBUG" in log and f"Authenticated as {USER} via SCRAM-SHA-512" in log
    assert password not in log
    for done in (produce, simulate):
        assert password not in done.stdout + done.stderr
    assert password not in repr(_settings(env)) and password not in str(_settings(env))


@pytest.mark.parametrize("command", ["worker", "produce", "simulate"])
def test_wrong_password_is_one_line_and_exit_2(
    secure_kafka: SecureBroker, secure_env: dict[str, str], tmp_path: Path, figure: Figure,
    command: str,
) -> None:
    wrong = secrets.token_urlsafe(12)
    env = {**secure_env, "SOCIALPULSE_KAFKA_SASL_PASSWORD": wrong}
    args = {"worker": ["worker"], "produce": ["produce", "-"],
            "simulate": ["simulate", "--duration", "5"]}[command]
    started = time.monotonic()
    done = _cli(env, *args, timeout=90)  # a hang would time out here instead of passing
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    assert done.returncode == 2, output
    assert len(lines) == 1, output
    assert lines[0].startswith("socialpulse: authentication failed for user 'socialpulse'"), output
    assert "Traceback" not in output
    assert wrong not in output and secure_kafka.password not in output
    figure(FAULT, f"wrong password: `socialpulse {command}` exit code", done.returncode)
    figure(FAULT, f"wrong password: `socialpulse {command}` time to fail", round(seconds, 1), "s")
    if command == "worker":
        assert not (tmp_path / "worker").exists() or not any((tmp_path / "worker").iterdir())


def test_untrusted_broker_certificate_is_refused(
    secure_kafka: SecureBroker, secure_env: dict[str, str], tmp_path: Path
) -> None:
    """TLS is verified: with another CA as SOCIALPULSE_KAFKA_SSL_CAFILE nothing connects (and
    the password is never sent to a broker the client does not trust)."""
    _, other_ca = make_certificates(tmp_path / "other-ca")
    env = {**secure_env, "SOCIALPULSE_KAFKA_SSL_CAFILE": str(other_ca)}
    done = _cli(env, "produce", "-", timeout=90)
    output = done.stdout + done.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    assert done.returncode == 2, output
    assert len(lines) == 1 and "TLS certificate of Kafka at" in lines[0], output
    assert "not trusted" in lines[0] and secure_kafka.password not in output
