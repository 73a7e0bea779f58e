"""Builds the one ``faust.App`` of socialpulse, with its settings, health metrics and registry.

Agents (``agents/``) and HTTP handlers (``streams.worker.web``) are wired in by faust's
autodiscover, so this module imports neither: importing the app must stay cheap and free of
cycles.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import faust
from faust.serializers import codecs
from faust.types import TopicT, TransportT
from faust.web import Web
from prometheus_client import CollectorRegistry

from streams.build import build_info
from streams.export.health import Health
from streams.settings import Settings, load
from streams.worker.httpd import ConnectionLimits, GuardedWeb
from streams.worker.intake import BatchHandler, BatchTransport

# Every topic and table of socialpulse is "raw" bytes (the engine parses JSON itself). faust still
# registers pickle codecs, and pickle.loads on a record is code execution for whoever can write to
# the topic: take them out of the registry, so that no configuration can ever select one.
for _name in [n for n in codecs.codecs if "pickle" in n]:
    del codecs.codecs[_name]


def _credentials(settings: Settings) -> Any:
    kwargs = settings.kafka_client_kwargs()
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kwargs["sasl_plain_username"],
            password=kwargs["sasl_plain_password"],
            mechanism=kwargs["sasl_mechanism"],
            ssl_context=kwargs.get("ssl_context"),
        )
    if protocol == "SSL":
        return faust.SSLCredentials(kwargs["ssl_context"])
    return None


class _StartTimer(NamedTuple):
    name: str
    interval: float
    fn: Callable[[], Awaitable[None]]


class App(faust.App):
    """faust.App with batch agents and hooks that run when the worker stops.

    Batch agents (:meth:`batch_agent`) get each partition's fetched records in one call, below
    faust's per-record stream (``streams.worker.intake`` says why). faust commits acked offsets as
    its consumer stops; a ``before_stop`` hook that flushes state gets the records it covers
    acked in time for that last commit (a graceful stop replays nothing). A timer registered with
    :meth:`timer_from_start` runs from the app's start, its first table recovery included.
    """

    def __init__(
        self, *args: Any, web_limits: ConnectionLimits, hold_changelogs: bool = False,
        **kwargs: Any,
    ) -> None:
        # Before faust's __init__: it may create the web server, which reads them.
        self.web_limits = web_limits
        # Tests only (``SOCIALPULSE_FAULT_INJECTION=stop_recovery``): see BatchConsumer.
        self.hold_changelogs = hold_changelogs
        super().__init__(*args, **kwargs)
        self.before_stop: list[Callable[[], Awaitable[None]]] = []
        self.batch_handlers: dict[str, BatchHandler] = {}
        self._timers_from_start: list[_StartTimer] = []

    def batch_agent(self, topic: TopicT) -> Callable[[BatchHandler], BatchHandler]:
        """Register ``fn(partition, records)`` as the one consumer of ``topic``'s records.

        The agent acks nothing itself: it (or what it hands the records to) calls
        ``app.consumer.ack_through`` once the records are covered by durable state.
        """

        if topic.acks:
            raise ValueError("a batch agent's topic is declared with acks=False")

        def register(fn: BatchHandler) -> BatchHandler:
            for topic_name in topic.topics:
                if topic_name in self.batch_handlers:
                    raise ValueError(f"{topic_name} already has a batch agent")
                self.batch_handlers[topic_name] = fn
            self.topics.add(topic)  # subscribed like any agent's topic
            return fn

        return register

    def timer_from_start(
        self, interval: float, name: str
    ) -> Callable[[Callable[[], Awaitable[None]]], Callable[[], Awaitable[None]]]:
        """Like ``app.timer``, but from the app's start: faust starts its timers (and web views,
        services) only once the first table recovery is complete, and a watchdog of that
        recovery must run while it lasts (faust.App.on_started)."""

        def register(fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
            self._timers_from_start.append(_StartTimer(name, interval, fn))
            return fn

        return register

    async def on_start(self) -> None:
        await super().on_start()
        for timer in self._timers_from_start:
            self.add_future(self._run_from_start(timer))

    async def _run_from_start(self, timer: _StartTimer) -> None:
        async for _ in self.itertimer(timer.interval, name=timer.name):
            try:
                await timer.fn()
            except Exception:  # the next tick tries again; a dead timer would watch nothing
                logging.getLogger(__name__).exception("timer %s failed", timer.name)

    def _new_transport(self) -> TransportT:
        return BatchTransport(self.conf.broker_consumer, self)

    def _new_web(self) -> Web:
        return GuardedWeb(self)

    async def on_stop(self) -> None:
        for hook in self.before_stop:
            try:
                await hook()
            except Exception:  # a failed last flush must not block the shutdown
                logging.getLogger(__name__).exception("stop hook failed")
        await super().on_stop()


def build_app(settings: Settings) -> App:
    servers = ";".join(f"kafka://{s.strip()}" for s in settings.kafka_bootstrap_servers.split(","))
    return App(
        settings.app_id,
        web_limits=ConnectionLimits(
            header_timeout_s=settings.web_header_timeout_seconds,
            idle_timeout_s=settings.web_idle_timeout_seconds,
            max_connections=settings.web_max_connections,
        ),
        hold_changelogs=settings.fault_injection == "stop_recovery",
        broker=servers,
        broker_credentials=_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        # faust binds 0.0.0.0 unless told otherwise; /metrics and /kpis stay on loopback by default.
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        # Acks come from our flush, not from the stream; waiting for them at a rebalance would
        # only stall it, since unflushed records are re-delivered to whoever owns them next.
        stream_wait_empty=False,
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=["agents", "streams.worker.web"],
        origin="streams",
        producer_max_request_size=8 * 1024 * 1024,
        # A flush ships its records in batches this big (streams.worker.outlet); below the broker's
        # default message.max.bytes (1 MiB), which bounds a batch on the DLQ and market topics.
        producer_max_batch_size=512 * 1024,
        consumer_max_fetch_size=8 * 1024 * 1024,
        # Bounded so that one poll never takes everything buffered (seconds of input at catch-up
        # speed) and makes the next fetch wait for all of it: the event -> /metrics latency of
        # the README's Performance table depends on it, the throughput does not.
        broker_max_poll_records=1000,
        broker_commit_interval=1.0,
        # A dead worker's partitions should move within seconds, not faust's default minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
    )


settings: Settings = load()
registry = CollectorRegistry(auto_describe=True)
health = Health(registry, build_info())
app: App = build_app(settings)
