"""Preflight: before a command talks to Kafka, the broker answers and the topics exist.

A missing broker, a wrong address or bad credentials are one clear line and exit code 2
(``CliError``), rather than a client retrying forever; a silent loopback address may get the
embedded broker (``streams.tools.local_kafka``) started; the input, dead-letter and market topics
are created when missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Any

from streams.settings import EXIT_BAD_SETTINGS, Settings

EXIT_UNAVAILABLE = EXIT_BAD_SETTINGS


class CliError(RuntimeError):
    """An error the user can act on; printed as one line, exit code 2."""


def _first_bootstrap(settings: Settings) -> tuple[str, int]:
    host, _, port = settings.kafka_bootstrap_servers.split(",")[0].strip().rpartition(":")
    return host or "127.0.0.1", int(port or 9092)


def _is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def require_broker(settings: Settings, timeout: float = 10.0) -> None:
    """Fail fast, with one line, unless Kafka answers the way every client will talk to it.

    First a TCP connect (retried for ``timeout`` s: a broker may still be starting), then one
    connection as the clients make it: TLS handshake, SASL authentication, a request. Clients
    themselves would report a bad certificate or a wrong password as "unable to bootstrap" (or,
    inside faust, retry forever), so the cause is found out here, once, before any of them starts.
    """
    from streams.tools.local_kafka import is_reachable

    deadline = time.monotonic() + timeout
    while not is_reachable(settings.kafka_bootstrap_servers.split(",")[0].strip(), 2.0):
        if time.monotonic() >= deadline:
            raise CliError(
                f"cannot reach Kafka at {settings.kafka_bootstrap_servers} (start one with "
                "`socialpulse kafka start`, or set SOCIALPULSE_KAFKA_BOOTSTRAP_SERVERS)"
            )
        time.sleep(0.5)
    check_kafka(settings, timeout)


def _client_kwargs(settings: Settings) -> dict[str, Any]:
    """The one set of client arguments (``Settings.kafka_client_kwargs``), with its
    configuration errors turned into a line the user can act on."""
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL") and (
        not settings.kafka_sasl_username or not settings.kafka_sasl_password
    ):
        raise CliError(f"SOCIALPULSE_KAFKA_SECURITY_PROTOCOL={protocol} needs "
                       "SOCIALPULSE_KAFKA_SASL_USERNAME and SOCIALPULSE_KAFKA_SASL_PASSWORD")
    if protocol in ("SSL", "SASL_SSL"):
        for name in ("cafile", "certfile", "keyfile"):
            path = getattr(settings, f"kafka_ssl_{name}")
            if path is not None and not path.is_file():
                raise CliError(f"SOCIALPULSE_KAFKA_SSL_{name.upper()}={path}: no such file")
    try:
        return settings.kafka_client_kwargs()
    except (OSError, ssl.SSLError) as exc:
        # Names the file (never a secret: the password is not part of the TLS files' errors).
        raise CliError(
            "cannot load the TLS files (SOCIALPULSE_KAFKA_SSL_CAFILE/CERTFILE/KEYFILE): "
            f"{_describe(exc)}"
        ) from None


def _describe(exc: BaseException) -> str:
    name, text = type(exc).__name__, str(exc)
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"


def check_kafka(settings: Settings, timeout: float = 10.0) -> None:
    """One connection to the first bootstrap server with the configured security: raises
    ``CliError`` saying what is wrong (unreachable, TLS not trusted, authentication failed)."""
    kwargs = _client_kwargs(settings)
    asyncio.run(_probe(settings, kwargs, timeout))


async def _probe(settings: Settings, kwargs: dict[str, Any], timeout: float) -> None:
    from aiokafka.conn import create_conn
    from aiokafka.errors import (
        IllegalSaslStateError,
        KafkaError,
        SaslAuthenticationFailed,
        UnsupportedSaslMechanismError,
    )

    host, port = _first_bootstrap(settings)
    where = f"Kafka at {host}:{port}"
    protocol = settings.kafka_security_protocol
    kwargs = {k: v for k, v in kwargs.items() if k != "bootstrap_servers"}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = max(1.0, deadline - loop.time())
        try:
            conn = await asyncio.wait_for(
                create_conn(host, port, client_id="socialpulse-preflight",
                            request_timeout_ms=int(left * 1000), **kwargs),
                timeout=left,
            )
        except SaslAuthenticationFailed:
            # The broker's message says no more than this; the password is never part of it.
            raise CliError(
                f"authentication failed for user {settings.kafka_sasl_username!r} "
                f"({settings.kafka_sasl_mechanism} over {protocol}, {where}): check "
                "SOCIALPULSE_KAFKA_SASL_USERNAME and SOCIALPULSE_KAFKA_SASL_PASSWORD"
            ) from None
        except (UnsupportedSaslMechanismError, IllegalSaslStateError) as exc:
            raise CliError(f"{where} refused SASL {settings.kafka_sasl_mechanism}: "
                           f"{_describe(exc)} (check SOCIALPULSE_KAFKA_SASL_MECHANISM)") from None
        except ssl.SSLCertVerificationError as exc:
            raise CliError(f"the TLS certificate of {where} is not trusted: "
                           f"{exc.verify_message} (check SOCIALPULSE_KAFKA_SSL_CAFILE)") from None
        except ssl.SSLError as exc:
            raise CliError(f"TLS handshake with {where} failed: {exc.reason or _describe(exc)} "
                           "(check SOCIALPULSE_KAFKA_SECURITY_PROTOCOL)") from None
        except TimeoutError:
            raise CliError(f"{where} did not answer within {timeout:g} s over {protocol} "
                           "(check SOCIALPULSE_KAFKA_SECURITY_PROTOCOL)") from None
        except (KafkaError, OSError) as exc:
            # A broker that is still starting may drop a connection: those are retried (a
            # listener of another protocol drops it every time, and ends up here at the deadline).
            if loop.time() + 0.5 < deadline:
                await asyncio.sleep(0.5)
                continue
            raise CliError(f"cannot talk to {where} over {protocol}: {_describe(exc)} "
                           "(check SOCIALPULSE_KAFKA_SECURITY_PROTOCOL)") from None
        conn.close()
        return


async def ensure_topics(settings: Settings) -> None:
    """Create the input, dead-letter and market topics if missing (partitions as configured)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(**_client_kwargs(settings), request_timeout_ms=15000)
    try:
        await admin.start()
    except Exception as exc:
        raise CliError(f"cannot connect to Kafka at {settings.kafka_bootstrap_servers}: "
                       f"{_describe(exc)}") from None
    try:
        existing = set(await admin.list_topics())
        if settings.input_topic in existing:
            described = await admin.describe_topics([settings.input_topic])
            n = len(described[0].get("partitions", [])) if described else 0
            if n and n != settings.topic_partitions:
                # The state table is co-partitioned with the input: a mismatch would misroute it.
                raise CliError(
                    f"topic {settings.input_topic} has {n} partitions but "
                    f"SOCIALPULSE_TOPIC_PARTITIONS={settings.topic_partitions}; make them equal"
                )
        wanted = [
            NewTopic(name, settings.topic_partitions, settings.topic_replication)
            for name in (settings.input_topic, settings.dlq_topic)
            if name not in existing
        ]
        if settings.repartition_topic not in existing:
            # Kept until applied, however long a worker is away: the workers delete what their
            # commits cover (streams.worker.purger), as Kafka Streams does for its own.
            wanted.append(NewTopic(settings.repartition_topic, settings.topic_partitions,
                                   settings.topic_replication,
                                   topic_configs={"retention.ms": "-1"}))
        if settings.market_topic not in existing:
            wanted.append(NewTopic(settings.market_topic, settings.topic_partitions,
                                   settings.topic_replication,
                                   topic_configs={"cleanup.policy": "compact"}))
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
        await _check_copartitioned(admin, settings, existing)
    finally:
        await admin.close()


async def _check_copartitioned(admin: Any, settings: Settings, existing: set[str]) -> None:
    """The state changelog, the market topic and the repartition topic hold one partition's
    records per input partition, and the first two must be compacted: a topic that exists with
    another count or policy (created by hand, or left from another deployment) would misroute or
    lose state."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    names = [n for n in (settings.changelog_topic, settings.market_topic) if n in existing]
    counted = [*names, *(n for n in (settings.repartition_topic,) if n in existing)]
    if not counted:
        return
    for meta in await admin.describe_topics(counted):
        n = len(meta.get("partitions", []))
        if n != settings.topic_partitions:
            raise CliError(
                f"topic {meta['topic']} has {n} partitions but the input has "
                f"{settings.topic_partitions} (SOCIALPULSE_TOPIC_PARTITIONS): they are "
                "co-partitioned; delete it (it is rebuilt only from its own records) or use a "
                "new SOCIALPULSE_APP_ID")
    answers = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None})
         for name in names])
    for answer in answers:
        for _err, _msg, _rtype, name, entries in answer.resources:
            policy = next((e[1] for e in entries if e[0] == "cleanup.policy"), None)
            if policy is not None and "compact" not in policy.split(","):
                raise CliError(f"topic {name} has cleanup.policy={policy}; it must be compact "
                               "(kafka-configs --alter --add-config cleanup.policy=compact)")


def start_local_kafka(settings: Settings) -> bool:
    """Start the embedded broker if the bootstrap address is loopback and silent.

    Returns True when this call started it (so the caller owns stopping it).
    """
    from streams.tools import local_kafka as kafka_local

    host, port = _first_bootstrap(settings)
    if kafka_local.is_reachable(f"{host}:{port}", 1.0):
        return False
    if not (settings.kafka_embedded and _is_loopback(host)):
        raise CliError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers} and it is "
                       "not a local address socialpulse may start a broker on")
    if settings.kafka_security_protocol != "PLAINTEXT":
        # A plaintext broker would only fail the secured clients' handshake a moment later.
        raise CliError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}; the embedded "
                       "broker socialpulse starts is PLAINTEXT only, not "
                       f"{settings.kafka_security_protocol}: start a secured broker yourself")
    print(f"starting local Kafka {settings.kafka_version} on 127.0.0.1:{port} "
          f"(jars cached in {settings.kafka_cache_dir}) ...", flush=True)
    broker = kafka_local.start(
        data_dir=settings.kafka_data_dir,
        port=port,
        controller_port=settings.kafka_controller_port,
        version=settings.kafka_version,
        cache_dir=settings.kafka_cache_dir,
        heap=settings.kafka_heap,
        extra_config={"num.partitions": str(settings.topic_partitions)},
    )
    print(f"Kafka is up at {broker.bootstrap} (pid {broker.pid}, log {broker.log_file})")
    return True
