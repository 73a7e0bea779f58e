"""Issue #5 fault 6, hostile input: fuzzed records mixed with valid traffic into one worker.

Reduced: 20,000 fuzzed records; full (``scripts/reliability``): 1,000,000. The fuzz is a pool drawn
by hypothesis strategies, expanded by seeded mutations (``tests.support.fuzz``): wrong types,
missing fields, injection and look-alike Unicode in slugs, NaN, Infinity and huge number literals,
deep nesting, random bytes, records over the size limit, invalid UTF-8, JSON that is not an object.

Must hold: the worker never crashes (one pid throughout, alive, serving /metrics); every bad record
is in the dead-letter topic, byte for byte, with the reason ``schemas.validate.parse`` gives it in a
batch recomputation; the valid events' KPIs equal the oracle.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from schemas.events import Rejected
from schemas.validate import parse
from streams.tools.preflight import ensure_topics
from streams.tools.produce import EventInput, KeyedRecord, produce_events
from tests.support import eventset, oracle
from tests.support.fuzz import Env, hostile_records
from tests.support.harness import _read_topic, _scrape, _settings, _wait_caught_up
from tests.support.processes import Broker, Figure, WorkerProc, new_worker, scale

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

FUZZ = scale(20_000, 1_000_000)
VALID = scale(3_000, 50_000)
POOL = scale(2_000, 10_000)  # records drawn by hypothesis; the rest are seeded mutations
MAX_BYTES = 4096  # a lower limit than the default 64 KiB: oversized records stay cheap to send

def assert_no_crash_logged(w: WorkerProc) -> None:
    log = w.log.read_text(errors="replace")
    bad = [line for line in log.splitlines() if "Traceback" in line or "rashed" in line]
    assert not bad, "\n".join(bad[:5]) + "\n" + w.tail()


def _mix(
    valid: list[eventset.TestRecord], fuzz: list[bytes], seed: int, now_ms: int
) -> list[EventInput]:
    """Valid records (as dicts, keyed by account) and fuzz (raw bytes) interleaved at random,
    each keeping its own order. A fuzz record the validator accepts is keyed by its account, as
    its producer would have: unkeyed, it would be forwarded to its home partition, where whether
    it is late depends on when it arrives (tests/support/oracle.py refuses such data sets)."""
    rng = random.Random(seed)
    tags = [True] * len(valid) + [False] * len(fuzz)
    rng.shuffle(tags)
    vi = iter(valid)
    fi = iter(fuzz)
    out: list[EventInput] = []
    for is_valid in tags:
        if is_valid:
            r = next(vi)
            out.append(r.value if r.key is None else orjson.loads(r.value))
        else:
            raw = next(fi)
            ev = parse(raw, now_ms=now_ms, max_bytes=MAX_BYTES)
            out.append(raw if isinstance(ev, Rejected) else KeyedRecord(ev.account.encode(), raw))
    return out


def test_hostile_input_never_crashes_and_dead_letters_every_bad_record(
    kafka: Broker, worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path,
    figure: Figure,
) -> None:
    env = {**worker_env, "SOCIALPULSE_MAX_RECORD_BYTES": str(MAX_BYTES)}
    s = _settings(env)
    now = int(time.time() * 1000)
    # The valid traffic spans 35 minutes of event time whatever its size.
    valid = eventset.spread(VALID, span_s=35 * 60, end_ms=now - 5 * 60_000)
    gen = hostile_records(Env(("acme", "globex"), (now - 20 * 60_000, now - 6 * 60_000), now,
                              MAX_BYTES), FUZZ, pool=POOL)
    print(f"fuzz: {gen.pool_size} drawn by hypothesis in {gen.pool_seconds:.1f} s, "
          f"{FUZZ - gen.pool_size} seeded mutations in {gen.expand_seconds:.1f} s "
          f"({gen.redrawn} drawn again)")
    payload = _mix(valid, gen.records, seed=6, now_ms=now)
    del gen
    asyncio.run(ensure_topics(s))
    summary = asyncio.run(produce_events(s, payload))
    assert summary.sent == len(payload), summary
    produced = len(payload)
    del payload

    w = new_worker(env, tmp_path).start()
    workers.append(w)
    assert w.proc is not None
    pid = w.proc.pid
    started = time.monotonic()
    w.wait_ready(timeout=300)
    _wait_caught_up(w, produced, timeout=180)
    seconds = time.monotonic() - started
    # Zero crashes: the one process we started is alive, never replaced, and serving; and no
    # agent inside it crashed and was restarted by faust (that would log a traceback).
    assert w.proc.poll() is None, w.tail()
    assert w.history == [pid]
    assert_no_crash_logged(w)
    kpis, health = _scrape(w)
    assert health["socialpulse_records_consumed_total"] == produced

    inputs = asyncio.run(_read_topic(kafka.bootstrap, s.input_topic, s.topic_partitions, 1800))
    assert len(inputs) == produced
    wall = int(time.time() * 1000)
    expected = oracle.run(((p, o, v) for p, o, _k, v, _h in inputs), s, wall)
    problems = oracle.compare(expected.series, kpis)
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])
    assert health["socialpulse_events_late_total"] == expected.late
    assert health["socialpulse_events_duplicate_total"] == expected.duplicates

    # Every bad record is in the dead-letter topic once (one worker, no crash: no repeats),
    # byte for byte, under the reason a batch run of the validator gives it.
    reason_of: dict[bytes, str] = {}
    for _p, _o, _k, v, _h in inputs:
        verdict = parse(v, now_ms=wall, max_bytes=s.max_record_bytes,
                        future_tolerance_ms=int(s.future_tolerance_seconds * 1000))
        if isinstance(verdict, Rejected):
            reason_of[v] = verdict.reason.value
    bad = Counter(v for _p, _o, _k, v, _h in inputs if v in reason_of)
    del inputs
    dead = asyncio.run(_read_topic(kafka.bootstrap, s.dlq_topic, s.topic_partitions, 1800))
    assert Counter(v for _p, _o, _k, v, _h in dead) == bad
    wrong = [(reason_of[v], h.get("reason")) for _p, _o, _k, v, h in dead
             if h.get("reason", b"").decode() != reason_of[v]]
    assert not wrong, wrong[:10]
    by_reason = Counter(h["reason"].decode() for *_x, h in dead)
    assert by_reason == Counter(expected.rejected)
    for reason, n in expected.rejected.items():
        assert health[f"socialpulse_events_rejected_total{{reason={reason}}}"] == n
    assert len(by_reason) >= 12, by_reason  # the fuzz reaches (nearly) every reason

    fault = "6 hostile input"
    figure(fault, "records (fuzzed + valid traffic)", f"{FUZZ:,} + {len(valid):,}")
    figure(fault, "worker crashes", 0)
    for reason, n in sorted(by_reason.items()):
        figure(fault, f"dead-lettered: {reason}", n, "records")
    figure(fault, "valid events applied (oracle-exact)", expected.applied)
    figure(fault, "worker throughput on the fuzz mix", round(produced / seconds), "records/s")
