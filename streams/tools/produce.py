"""Send events to the input topic: from a simulator, a JSON Lines file or any iterable.

- ``produce_events()`` sends dicts (serialised with orjson, keyed by ``account`` so that one
  account's events share a partition, SPEC §1) and raw ``bytes`` records (sent as they are, with no
  key: they are the malformed input the worker's dead-letter path must see), optionally paced to a
  rate, and returns a ``ProduceSummary``.
- ``simulate_live()`` drives a ``Simulator`` from the wall clock, so events carry ``ts`` = now, and
  produces them continuously until a duration ends, a stop event is set or the task is cancelled.
- ``read_jsonl()`` reads a file or stdin, one record per line.

The producer is idempotent with ``acks="all"``: a retry after a lost acknowledgement does not
write a record twice. Delivery futures are awaited a chunk at a time, a few chunks in flight, never
one by one: awaiting each record's acknowledgement would cap throughput at one broker round trip
per record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, NamedTuple

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)

from streams.settings import Settings
from streams.tools.simulate import Simulator

__all__ = [
    "EventInput",
    "KafkaUnavailable",
    "KeyedRecord",
    "ProduceSummary",
    "produce_events",
    "read_jsonl",
    "simulate_live",
]

log = logging.getLogger(__name__)

class KeyedRecord(NamedTuple):
    """The raw bytes of a record, sent as they are with this key (None: unkeyed)."""

    key: bytes | None
    value: bytes


# An event to produce: a JSON object (serialized here, keyed by its account), the raw bytes of a
# record (sent as they are, unkeyed: tests use it for malformed input), or raw bytes with a key.
EventInput = dict[str, Any] | bytes | KeyedRecord

# Records between two waits for acknowledgements (and progress reports) when not rate limited.
DEFAULT_CHUNK = 5000
# Acknowledgement waits lag this many chunks behind the sends, so the pipe never runs dry.
MAX_CHUNKS_IN_FLIGHT = 4
# A partial chunk is still settled (errors counted, progress reported) after this long, so that a
# slow source such as the live simulator reports progress without waiting for a full chunk.
CHUNK_MAX_AGE_S = 0.5
# With a rate, a chunk is what the rate allows in this long: pacing granularity, not per event.
PACE_STEP_S = 0.05
# At most this much unused send credit is kept after a stall, so that a slow source or a broker
# hiccup is not followed by an unbounded burst.
PACE_MAX_CREDIT_S = 1.0

# Failures that mean the broker is gone rather than a record being wrong.
_CONNECTION_ERRORS = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError,
                      RequestTimedOutError)


class KafkaUnavailable(RuntimeError):
    """The broker cannot be reached (or stopped answering) at the configured address."""


@dataclass(frozen=True, slots=True)
class ProduceSummary:
    """What a produce run achieved."""

    sent: int  # records acknowledged by the broker
    bytes_sent: int  # value bytes of the acknowledged records
    seconds: float  # from the broker connection to the last acknowledgement
    rate: float  # sent / seconds
    errors: int  # records that could not be serialised or were not acknowledged
    error_samples: tuple[str, ...] = ()  # the first few error messages

    def __str__(self) -> str:
        return (f"sent {self.sent} records ({self.bytes_sent} bytes) in {self.seconds:.2f} s "
                f"= {self.rate:,.0f}/s, {self.errors} errors")


async def produce_events(
    settings: Settings,
    records: Iterable[EventInput] | AsyncIterable[EventInput],
    *,
    topic: str | None = None,
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
    connect_timeout_s: float = 10.0,
    ack_timeout_s: float = 30.0,
    chunk_size: int | None = None,
) -> ProduceSummary:
    """Send ``records`` to ``topic`` (default: the input topic) and wait for every acknowledgement.

    ``rate`` limits the sending to that many records per second (paced a chunk at a time);
    ``progress`` is called with the number of acknowledged records after each chunk. Raises
    ``KafkaUnavailable`` when the broker cannot be reached within ``connect_timeout_s``, or
    acknowledges nothing for ``ack_timeout_s`` mid-run. On cancellation the records already handed
    to the producer are flushed (for at most ``ack_timeout_s``) before ``CancelledError``
    propagates.
    """
    if rate is not None and not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive number: {rate}")
    topic = topic or settings.input_topic
    if chunk_size is None:
        chunk_size = DEFAULT_CHUNK if rate is None else max(1, min(DEFAULT_CHUNK,
                                                                   int(rate * PACE_STEP_S)))
    producer = await _start_producer(settings, topic, connect_timeout_s)
    run = _Run(producer, topic, settings.kafka_bootstrap_servers, rate, progress, chunk_size,
               ack_timeout_s)
    failed = False
    try:
        if isinstance(records, AsyncIterable):
            async for rec in records:
                await run.send(rec)
        else:
            for rec in records:
                await run.send(rec)
        await run.finish()
    except asyncio.CancelledError:
        raise  # a clean stop: the records already sent are flushed below
    except BaseException:
        failed = True
        raise
    finally:
        await _stop_producer(producer, 5.0 if failed else ack_timeout_s)
        run.forget_unsettled()
    summary = run.summary()
    log.info("%s", summary)
    return summary


async def _start_producer(
    settings: Settings, topic: str, connect_timeout_s: float
) -> AIOKafkaProducer:
    bootstrap = settings.kafka_bootstrap_servers
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(),
        client_id="socialpulse-producer",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        compression_type=None,
        # Larger than the default 16 KiB: fewer, fuller produce requests at high rates, and a
        # bad-input oversized record (70 KB) still travels in one batch.
        max_batch_size=256 * 1024,
        # Bounds the wait for buffer space in send() when the broker stalls. (Delivery itself
        # is retried forever by an idempotent aiokafka producer: our own ack timeout ends that.)
        request_timeout_ms=15_000,
    )
    try:
        # aiokafka retries a silent (firewalled) address until its request timeout, 40 s by
        # default: bound the whole connection, and the topic lookup, ourselves.
        await asyncio.wait_for(producer.start(), timeout=connect_timeout_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        await _quiet_stop(producer)
        raise KafkaUnavailable(
            f"cannot reach Kafka at {bootstrap}: {_why(exc, connect_timeout_s)}"
        ) from exc
    try:
        await asyncio.wait_for(producer.partitions_for(topic), timeout=connect_timeout_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        await _quiet_stop(producer)
        raise KafkaUnavailable(
            f"topic {topic!r} is not available on Kafka at {bootstrap} (create it, or enable "
            f"topic auto-creation): {_why(exc, connect_timeout_s)}"
        ) from exc
    return producer


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _why(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    return _describe(exc)


def _describe(exc: BaseException | None) -> str:
    # Many aiokafka errors have an empty message: the class name is then all there is to say.
    if exc is None:
        return "unknown error"
    name, text = type(exc).__name__, str(exc)
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"


async def _stop_producer(producer: AIOKafkaProducer, flush_timeout_s: float) -> None:
    """Flush and close, but never hang on a broker that is gone."""
    try:
        # wait_for cancels only the waiting, not the batches: they stay queued if it times out.
        await asyncio.wait_for(producer.flush(), timeout=flush_timeout_s)
    except TimeoutError:
        log.warning("Kafka did not acknowledge the last records within %g s; giving them up",
                    flush_timeout_s)
        await _abandon(producer)
        return
    try:
        await asyncio.wait_for(producer.stop(), timeout=5.0)  # nothing is left to flush
    except (TimeoutError, KafkaError) as exc:
        log.warning("producer did not close cleanly: %s", _describe(exc))


async def _abandon(producer: AIOKafkaProducer) -> None:
    """Close a producer whose batches cannot be delivered, without waiting for them.

    An idempotent aiokafka producer retries a batch forever and its stop() waits for every batch,
    so stop() would hang. There is no public call for giving up: stop the sender task and close
    the connections, as stop() does after its flush. The undelivered records' futures then stay
    pending (and are garbage-collected silently); their records count as not sent.
    """
    producer._closed = True  # as stop() would set; also keeps __del__ from warning "unclosed"
    sender_task = producer._sender.sender_task
    if sender_task is not None and not sender_task.done():
        sender_task.cancel()
        await asyncio.wait({sender_task}, timeout=5.0)
    try:
        await asyncio.wait_for(producer.client.close(), timeout=5.0)
    except (TimeoutError, KafkaError, OSError) as exc:
        log.debug("closing the abandoned producer's connections: %s", exc)


async def _quiet_stop(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout=5)
    except Exception as exc:  # already failing: the original error is the one to report
        log.debug("producer stop after failed start: %s", exc)


class _Run:
    """The sending state of one ``produce_events`` call: chunks in flight, counters, pacing."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        bootstrap: str,
        rate: float | None,
        progress: Callable[[int], None] | None,
        chunk_size: int,
        ack_timeout_s: float,
    ) -> None:
        self.producer = producer
        self.ack_timeout_s = ack_timeout_s
        self.topic = topic
        self.bootstrap = bootstrap
        self.rate = rate
        self.progress = progress
        self.chunk_size = chunk_size
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.finished = self.started
        self.submitted = 0
        self.sent = 0
        self.bytes_sent = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.sizes: list[int] = []
        self.chunk_started = self.started
        self.in_flight: deque[tuple[list[asyncio.Future[Any]], list[int]]] = deque()
        self.pace_origin = self.started

    async def send(self, rec: EventInput) -> None:
        if type(rec) is bytes:
            value, key = rec, None
        elif type(rec) is KeyedRecord:
            key, value = rec
        else:
            try:
                value = orjson.dumps(rec)
            except TypeError as exc:  # e.g. a value orjson cannot encode
                self._error(f"cannot serialise record: {exc}")
                return
            account = rec.get("account") if isinstance(rec, dict) else None
            key = account.encode() if type(account) is str else None
        try:
            fut = await self.producer.send(self.topic, value, key=key)
        except _CONNECTION_ERRORS as exc:
            raise KafkaUnavailable(
                f"Kafka at {self.bootstrap} stopped accepting records after {self.sent} "
                f"acknowledged: {_describe(exc)}"
            ) from exc
        except KafkaError as exc:  # this record only, e.g. larger than max_request_size
            self._error(_describe(exc))
            return
        self.futures.append(fut)
        self.sizes.append(len(value))
        self.submitted += 1
        if (len(self.futures) >= self.chunk_size
                or self.loop.time() - self.chunk_started > CHUNK_MAX_AGE_S):
            await self._close_chunk()

    async def _close_chunk(self) -> None:
        if self.futures:
            self.in_flight.append((self.futures, self.sizes))
            self.futures, self.sizes = [], []
        while len(self.in_flight) > MAX_CHUNKS_IN_FLIGHT:
            await self._settle(*self.in_flight.popleft())
        self.chunk_started = self.loop.time()
        if self.rate is not None:
            await self._pace()

    async def _pace(self) -> None:
        # Token bucket at chunk granularity: the records submitted so far are allowed
        # submitted / rate seconds after the origin; sleep off any excess.
        assert self.rate is not None
        now = self.loop.time()
        delay = self.pace_origin + self.submitted / self.rate - now
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -PACE_MAX_CREDIT_S:
            self.pace_origin += -delay - PACE_MAX_CREDIT_S

    async def _settle(self, futures: list[asyncio.Future[Any]], sizes: list[int]) -> None:
        # asyncio.wait, not wait_for(gather): a timeout must not cancel the records' futures.
        _, pending = await asyncio.wait(futures, timeout=self.ack_timeout_s)
        if pending:
            self.in_flight.appendleft((futures, sizes))  # still ours to clean up
            raise KafkaUnavailable(
                f"Kafka at {self.bootstrap} acknowledged nothing for {self.ack_timeout_s:g} s "
                f"(after {self.sent} records)"
            )
        failed = 0
        first: BaseException | None = None
        for fut, size in zip(futures, sizes, strict=True):
            result = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
            if result is not None:
                failed += 1
                if first is None:
                    first = result
                self._error(_describe(result))
            else:
                self.sent += 1
                self.bytes_sent += size
        self.finished = self.loop.time()
        if failed == len(futures) and isinstance(first, _CONNECTION_ERRORS):
            # A whole chunk lost to timeouts: the broker is gone, not a record bad.
            raise KafkaUnavailable(
                f"Kafka at {self.bootstrap} stopped acknowledging records after {self.sent}: "
                f"{_describe(first)}"
            ) from first
        if self.progress is not None:
            self.progress(self.sent)

    async def finish(self) -> None:
        if self.futures:
            self.in_flight.append((self.futures, self.sizes))
            self.futures, self.sizes = [], []
        while self.in_flight:
            await self._settle(*self.in_flight.popleft())

    def forget_unsettled(self) -> None:
        """After a failure or cancellation: mark the records' outcomes as seen, so that asyncio
        does not log "exception was never retrieved" for each of them."""
        chunks = [*self.in_flight, (self.futures, self.sizes)]
        self.in_flight.clear()
        self.futures, self.sizes = [], []
        for futures, _ in chunks:
            for fut in futures:
                fut.add_done_callback(_retrieve)

    def _error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(message[:300])

    def summary(self) -> ProduceSummary:
        seconds = max(self.finished - self.started, 1e-9)
        return ProduceSummary(
            sent=self.sent,
            bytes_sent=self.bytes_sent,
            seconds=seconds,
            rate=self.sent / seconds,
            errors=self.errors,
            error_samples=tuple(self.error_samples),
        )


async def simulate_live(
    settings: Settings,
    sim: Simulator,
    *,
    rate: float,
    duration_s: float | None,
    topic: str | None = None,
    progress: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
    tick_s: float = 0.1,
    clock: Callable[[], float] = time.time,
    connect_timeout_s: float = 10.0,
) -> ProduceSummary:
    """Produce simulated events whose ``ts`` is the wall clock, ``rate`` per second on average.

    Every ``tick_s`` the simulator generates the events that fall between the previous tick and
    now, so event time tracks the wall clock (the daily traffic curve of the simulator applies:
    ``rate`` is the daily mean; use ``daily_amplitude=0`` for a flat rate). Runs until
    ``duration_s`` has passed (None: forever), ``stop`` is set (then returns the summary), or the
    task is cancelled (then flushes the producer and re-raises ``CancelledError``).
    """
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive number: {rate}")
    if duration_s is not None and not duration_s >= 0:
        raise ValueError(f"duration_s must be >= 0: {duration_s}")
    records = _live_records(sim, rate, duration_s, stop, tick_s, clock)
    return await produce_events(settings, records, topic=topic, progress=progress,
                                connect_timeout_s=connect_timeout_s)


async def _live_records(
    sim: Simulator,
    rate: float,
    duration_s: float | None,
    stop: asyncio.Event | None,
    tick_s: float,
    clock: Callable[[], float],
) -> AsyncIterator[EventInput]:
    cursor = int(clock() * 1000)
    end = math.inf if duration_s is None else cursor + duration_s * 1000
    while cursor < end and not (stop is not None and stop.is_set()):
        if stop is None:
            await asyncio.sleep(tick_s)
        else:
            # Wake early when told to stop; otherwise this is just the tick.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick_s)
            if stop.is_set():
                break
        now = int(min(clock() * 1000, end))
        if now <= cursor:  # the wall clock stepped back: wait for it to catch up
            continue
        for rec in sim.events(cursor, duration_s=(now - cursor) / 1000, rate=rate):
            yield rec
        cursor = now


def read_jsonl(path_or_dash: str) -> Iterator[EventInput]:
    """Records from a JSON Lines file, or from stdin for ``"-"``.

    A line holding a JSON object becomes a dict (keyed by its ``account`` when produced); any other
    line (invalid JSON, an array, a number ...) is passed on as its raw bytes, so that the worker's
    dead-letter path sees and counts it: judging users' input is the worker's job, not this tool's.
    Blank lines are skipped. A missing file raises here, not at the first iteration.
    """
    if path_or_dash == "-":
        return _jsonl_lines(sys.stdin.buffer, close=False)
    stream = open(path_or_dash, "rb")  # noqa: SIM115 - closed by the generator when it ends
    return _jsonl_lines(stream, close=True)


def _jsonl_lines(stream: IO[bytes], *, close: bool) -> Iterator[EventInput]:
    try:
        for line in stream:
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield line
                continue
            yield obj if type(obj) is dict else line
    finally:
        if close:
            stream.close()
