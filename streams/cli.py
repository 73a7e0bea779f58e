"""The ``socialpulse`` command: worker, local Kafka, produce, simulate, and the ``up`` demo.

Commands that talk to Kafka check the broker first and fail with one clear line and exit code 2
when it is not there, rather than a client retrying forever.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from streams.settings import Settings, load

EXIT_UNAVAILABLE = 2


class CliError(RuntimeError):
    """An error the user can act on; printed as one line, exit code 2."""


# --- Kafka helpers ------------------------------------------------------------------------------
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
    from streams.kafka_local import is_reachable

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
        if settings.market_topic not in existing:
            wanted.append(NewTopic(settings.market_topic, settings.topic_partitions,
                                   settings.topic_replication,
                                   topic_configs={"cleanup.policy": "compact"}))
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()


def start_local_kafka(settings: Settings) -> bool:
    """Start the embedded broker if the bootstrap address is loopback and silent.

    Returns True when this call started it (so the caller owns stopping it).
    """
    from streams import kafka_local

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


# --- commands -----------------------------------------------------------------------------------
def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    require_broker(settings)
    asyncio.run(ensure_topics(settings))
    logging.basicConfig(level=settings.log_level)
    # aiokafka builds a debug record for every produced message when DEBUG leaks in from a
    # handler setup; the changelog writes would pay for it on every flush.
    logging.getLogger("aiokafka").setLevel(max(logging.INFO, logging.getLogger().level))
    from faust.worker import Worker

    from streams.app import app

    app.discover()
    # The worker holds millions of long-lived containers (buckets, the dedup index) and makes
    # short-lived ones per event; CPython's default thresholds (700, 10, 10) rescan the old ones
    # so often that collection took about as much CPU as the KPI arithmetic. What exists now
    # (modules, the app) is frozen out of collection; the young generation is collected less often.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    worker = Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0


def cmd_kafka(settings: Settings, args: argparse.Namespace) -> int:
    from streams import kafka_local

    if args.action == "start":
        if not start_local_kafka(settings):
            print(f"Kafka already answers at {settings.kafka_bootstrap_servers}; nothing started")
        return 0
    if args.action == "stop":
        stopped = kafka_local.stop(settings.kafka_data_dir)
        print("stopped" if stopped else "not running")
        return 0
    running = kafka_local.status(settings.kafka_data_dir)
    if running is None:
        print("not running")
        return 1
    print(f"running at {running.bootstrap} (pid {running.pid}, log {running.log_file})")
    return 0


def _progress_printer(total: int | None) -> Any:
    last = [0.0]

    def show(n: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 and sys.stderr.isatty():
            last[0] = now
            suffix = f"/{total}" if total else ""
            sys.stderr.write(f"\r  produced {n:,}{suffix}")
            sys.stderr.flush()

    return show


def cmd_produce(settings: Settings, args: argparse.Namespace) -> int:
    from streams.produce import produce_events, read_jsonl

    require_broker(settings)
    summary = asyncio.run(produce_events(
        settings, read_jsonl(args.file), topic=args.topic, rate=args.rate,
        progress=_progress_printer(None),
    ))
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    print(summary)
    return 0 if summary.errors == 0 else 1


def _simulator(args: argparse.Namespace) -> Any:
    from streams.simulate import SimulationConfig, Simulator

    return Simulator(SimulationConfig(seed=args.seed, scenario=args.scenario,
                                      extra_accounts=args.extra_accounts))


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from streams.produce import simulate_live

    require_broker(settings)
    asyncio.run(ensure_topics(settings))
    try:
        summary = asyncio.run(simulate_live(
            settings, _simulator(args), rate=args.rate, duration_s=args.duration,
            topic=args.topic,
        ))
    except KeyboardInterrupt:
        return 130
    print(summary)
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """The demo: local Kafka (if needed), one worker, the simulator; Ctrl-C stops all of it."""
    from streams import kafka_local

    started_kafka = start_local_kafka(settings)
    worker = _Worker(settings)
    try:
        require_broker(settings)
        asyncio.run(ensure_topics(settings))
        first = worker.start()
        base = f"http://{settings.web_host}:{settings.web_port}"
        print(f"worker pid {first.pid}\n  metrics: {base}/metrics\n"
              f"  kpis:    {base}/kpis?account=acme&window=5m\n"
              f"simulating {args.rate:g} events/s ({args.scenario}); Ctrl-C stops everything",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_simulate_while_alive(settings, args, worker))
        code = worker.proc.poll() if worker.proc is not None else None
        if code not in (None, 0):
            raise CliError(f"the worker exited with code {code}; see its log above")
    finally:
        proc = worker.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if started_kafka:
            kafka_local.stop(settings.kafka_data_dir)
            print("stopped local Kafka")
    return 0


class _Worker:
    """The demo's worker process, restarted when it stops itself as stalled (``EXIT_STALLED``),
    as Kubernetes or systemd would."""

    def __init__(self, settings: Settings) -> None:
        self.env = {**os.environ, "SOCIALPULSE_CLOCK": settings.clock}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"],
                                     env=self.env)
        return self.proc

    def alive(self) -> bool:
        """True while a worker runs; restarts one that exited as stalled."""
        from streams.watchdog import EXIT_STALLED

        if self.proc is None or self.proc.poll() is None:
            return self.proc is not None
        if self.proc.returncode == EXIT_STALLED:
            old = self.proc.pid
            new = self.start().pid
            print(f"worker {old} stopped itself as stalled; restarted as pid {new}", flush=True)
            return True
        return False


async def _simulate_while_alive(
    settings: Settings, args: argparse.Namespace, worker: _Worker
) -> None:
    """Run the simulator until its duration ends, Ctrl-C, or the worker dies (then stop too)."""
    from streams.produce import simulate_live

    stop = asyncio.Event()

    async def watch() -> None:
        while worker.alive():
            await asyncio.sleep(0.5)
        stop.set()

    watcher = asyncio.create_task(watch())
    try:
        await simulate_live(settings, _simulator(args), rate=args.rate,
                            duration_s=args.duration, stop=stop)
    finally:
        watcher.cancel()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="socialpulse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a stream worker (faust)")
    kafka = sub.add_parser("kafka", help="the embedded single-node Kafka (KRaft)")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    produce = sub.add_parser("produce", help="produce JSONL events from a file or - (stdin)")
    produce.add_argument("file")
    produce.add_argument("--topic", default=None)
    produce.add_argument("--rate", type=float, default=None, help="records per second")
    for name, helptext in (("simulate", "produce realistic live traffic"),
                           ("up", "demo: local Kafka + worker + simulator")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--rate", type=float, default=200.0, help="events per second")
        p.add_argument("--scenario", default="normal",
                       choices=["normal", "engagement-drop", "slow-replies", "bad-input"])
        p.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
        p.add_argument("--seed", type=int, default=42)
        p.add_argument("--extra-accounts", type=int, default=0)
        if name == "simulate":
            p.add_argument("--topic", default=None)
    return parser


COMMANDS = {"worker": cmd_worker, "kafka": cmd_kafka, "produce": cmd_produce,
            "simulate": cmd_simulate, "up": cmd_up}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    try:
        settings = load()
    except ValidationError as exc:
        # One line per bad variable, without the value given: it may be a secret.
        for err in exc.errors(include_input=False, include_url=False):
            field = str(err["loc"][0]) if err["loc"] else "?"
            print(f"socialpulse: SOCIALPULSE_{field.upper()}: {err['msg']}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        return COMMANDS[args.command](settings, args)
    except CliError as exc:
        print(f"socialpulse: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from streams.produce import KafkaUnavailable

        if isinstance(exc, KafkaUnavailable):
            print(f"socialpulse: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        raise


if __name__ == "__main__":
    sys.exit(main())
