"""A broker's configuration and storage: the default ``server.properties`` of a single-node
KRaft broker on 127.0.0.1 and how it is written, the console-only logging configuration (log4j2
for Kafka 4.x, log4j 1.x for 3.x), the storage directories and cluster id, formatting the storage
with the storage tool (including SCRAM credentials, whose passwords are checked without being
echoed and redacted from its output), and :func:`sasl_ssl_config`, the overrides that turn the
client listener into SASL_SSL with SCRAM.
"""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path

_PROPS_FILE = "server.properties"


def _default_properties(data_dir: Path, port: int, controller_port: int) -> dict[str, str]:
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        # Static voters work on every KRaft version we may run (3.3+) and need no
        # --standalone / --initial-controllers dance at format time.
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        # Listing every protocol under its own name lets a caller add an SSL or SASL_SSL listener
        # by overriding `listeners` and `advertised.listeners` alone.
        "listener.security.protocol.map": (
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,"
            "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
        ),
        "log.dirs": str(data_dir / "logs"),
        "num.partitions": "4",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        # 50 partitions each (the defaults) make the first group join and the first transaction
        # wait for 50 partition leaders on a single node; a handful is plenty for one broker.
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # After a SIGKILL the restarted broker cannot register until the dead incarnation's
        # session expires (default 9 s, retried every heartbeat); tests crash brokers on purpose.
        "broker.session.timeout.ms": "4000",
        "broker.heartbeat.interval.ms": "500",
        "log.segment.bytes": str(16 * 1024 * 1024),
        # The cleaner's dedupe buffer defaults to 128 MiB of heap, a quarter of our default heap;
        # faust's changelog topics are compacted, so the cleaner does run.
        "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
        # Defaults (3 network, 8 I/O threads) are sized for a server, not a 2-core laptop or CI.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "background.threads": "4",
    }


def _write_properties(path: Path, props: dict[str, str]) -> None:
    lines = ["# Written by streams/tools/local_kafka/ on every start; edits are overwritten."]
    # Backslashes are escapes in the .properties format (Windows-free here, but be exact).
    lines += [f"{k}={v.replace(chr(92), chr(92) * 2)}" for k, v in props.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # It may hold the inter-broker SASL password: readable by its owner only.
    path.chmod(0o600)


def _write_logging_config(data_dir: Path) -> tuple[Path, Path]:
    # Console only: the launcher points stdout at kafka.log, so the log survives a SIGKILL intact
    # and there is a single file to tail. Per-request and per-partition state chatter is muted.
    log4j2 = data_dir / "log4j2.properties"
    log4j2.write_text(
        "\n".join(
            [
                "status = warn",
                "appender.out.type = Console",
                "appender.out.name = OUT",
                "appender.out.layout.type = PatternLayout",
                "appender.out.layout.pattern = [%d] %p %m (%c)%n",
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.out.ref = OUT",
                "logger.state.name = state.change.logger",
                "logger.state.level = WARN",
                "logger.request.name = kafka.request.logger",
                "logger.request.level = WARN",
                "",
            ]
        ),
        encoding="utf-8",
    )
    log4j1 = data_dir / "log4j.properties"
    log4j1.write_text(
        "\n".join(
            [
                "log4j.rootLogger=INFO, out",
                "log4j.appender.out=org.apache.log4j.ConsoleAppender",
                "log4j.appender.out.layout=org.apache.log4j.PatternLayout",
                "log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n",
                "log4j.logger.state.change.logger=WARN",
                "log4j.logger.kafka.request.logger=WARN",
                "",
            ]
        ),
        encoding="utf-8",
    )
    return log4j2, log4j1


def _storage_dirs(props: dict[str, str]) -> list[Path]:
    dirs = [Path(d) for d in props.get("log.dirs", props.get("log.dir", "")).split(",") if d]
    if props.get("metadata.log.dir"):
        dirs.append(Path(props["metadata.log.dir"]))
    return dirs


def _existing_cluster_id(dirs: list[Path]) -> str | None:
    for d in dirs:
        meta = d / "meta.properties"
        if meta.is_file():
            for line in meta.read_text(encoding="utf-8").splitlines():
                key, sep, value = line.partition("=")
                if sep and key.strip() == "cluster.id":
                    return value.strip()
    return None


def _new_cluster_id() -> str:
    # Kafka's Uuid text form (URL-safe base64, no padding). Kafka's own generator re-draws ids
    # that start with "-" because the storage tool's argument parser takes them for a flag.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text


def _listener_protocol(props: dict[str, str], port: int) -> str | None:
    """The security protocol of the listener bound to ``port``, if any."""
    mapping = dict(
        item.split(":", 1)
        for item in props.get("listener.security.protocol.map", "").split(",")
        if ":" in item
    )
    for listener in props.get("listeners", "").split(","):
        name, sep, address = listener.strip().partition("://")
        if sep and address.rpartition(":")[2] == str(port):
            return mapping.get(name, name)
    return None


# What the storage tool's `--add-scram NAME=[name=...,password=...]` syntax can carry unquoted.
_SCRAM_TEXT_RE = re.compile(r"^[A-Za-z0-9_.@+:/~!#$%^&*()-]{1,256}$")
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def _scram_args(users: Mapping[str, str], mechanism: str) -> list[str]:
    """``--add-scram`` arguments that create ``users`` (name -> password) at format time."""
    if mechanism not in SCRAM_MECHANISMS:
        raise ValueError(f"not a SCRAM mechanism: {mechanism!r} (one of {SCRAM_MECHANISMS})")
    args: list[str] = []
    for name, password in users.items():
        # Never quote a password in an error: this message may end up in a log.
        if not _SCRAM_TEXT_RE.match(name):
            raise ValueError(f"SCRAM user name {name!r} has characters the storage tool "
                             "cannot take (allowed: letters, digits and _.@+:/~!#$%^&*()-)")
        if not _SCRAM_TEXT_RE.match(password):
            raise ValueError(f"the SCRAM password of user {name!r} has characters the storage "
                             "tool cannot take (allowed: letters, digits and _.@+:/~!#$%^&*()-)")
        args += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return args


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _format_storage(
    java_cmd: list[str],
    props: dict[str, str],
    props_file: Path,
    log_file: Path,
    scram: list[str] | None = None,
    secrets: list[str] | None = None,
) -> None:
    dirs = _storage_dirs(props)
    if dirs and all((d / "meta.properties").is_file() for d in dirs):
        return  # formatted by an earlier start: formatting again would refuse, or wipe the id
    cluster_id = _existing_cluster_id(dirs) or _new_cluster_id()
    cmd = [*java_cmd, "kafka.tools.StorageTool", "format", "--ignore-formatted"]
    cmd += ["--cluster-id", cluster_id, "--config", str(props_file)]
    if "controller.quorum.voters" not in props and "controller.quorum.bootstrap.servers" in props:
        # A dynamic quorum (KIP-853) has to be seeded with its first voter at format time.
        cmd.append("--standalone")
    # SCRAM credentials go into the metadata log's bootstrap records: the broker can then
    # authenticate clients (and itself, between listeners) from its very first start.
    cmd += scram or []
    done = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False
    )
    output = _redact(done.stdout + done.stderr, secrets or [])
    with log_file.open("a", encoding="utf-8") as log:
        log.write(output)
    if done.returncode != 0:
        raise RuntimeError(
            f"formatting Kafka storage failed (exit {done.returncode}):\n{output[-4000:]}"
        )


def sasl_ssl_config(
    port: int,
    controller_port: int,
    *,
    keystore_pem: Path,
    truststore_pem: Path,
    inter_broker_user: str,
    inter_broker_password: str,
    mechanism: str = "SCRAM-SHA-512",
) -> dict[str, str]:
    """``extra_config`` for :func:`start` that makes the client listener SASL_SSL (SCRAM).

    ``keystore_pem`` holds the broker's PKCS#8 private key (unencrypted) followed by its
    certificate chain; ``truststore_pem`` the CA certificate(s) clients and the broker trust.
    There is no plaintext client listener left: the broker talks to itself over the same
    SASL_SSL listener as ``inter_broker_user``, who must be one of the ``scram_users`` given to
    :func:`start`. The KRaft controller listener stays PLAINTEXT on 127.0.0.1 (local only).
    """
    if mechanism not in SCRAM_MECHANISMS:
        raise ValueError(f"not a SCRAM mechanism: {mechanism!r}")
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{inter_broker_user}" password="{inter_broker_password}";'
    )
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.enabled.mechanisms": mechanism,
        "sasl.mechanism.inter.broker.protocol": mechanism,
        f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore_pem),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(truststore_pem),
        "ssl.client.auth": "none",
    }
