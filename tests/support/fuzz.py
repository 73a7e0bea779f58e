"""Hostile input for issue #5 fault 6: hypothesis draws a pool, seeded mutations expand it.

Drawing a million examples one at a time through hypothesis costs minutes of pure generation, so
``hostile_records`` draws a pool of ``pool`` examples from the strategies below (every kind of
fault the issue lists) and expands it to ``count`` records with seeded byte and structure
mutations (truncate, flip, splice two records, wrap, pad past the size limit, break the UTF-8,
put a value of one record into a field of a valid event). The output is deterministic for a seed
and a wall time (hypothesis runs derandomized; the valid events the faults are put in carry
timestamps relative to ``now_ms``).

Every record is kept only if its fate does not depend on when it is parsed (the worker and the
oracle read the wall clock at different moments): its verdict at ``now_ms`` and a day later must be
the same. A record that parses as a valid event must also be about an account in ``accounts`` with
``ts`` in ``ts_range``, so the fuzz cannot push the stream time around or trip the account cap; a
record that does not qualify is drawn again. Such valid records are sent without a key (as raw
bytes), so they are kept to types without cross-event state (see ``CROSS_EVENT_TYPES``), and only
a quarter of the valid mutants is kept: the point is the bad ones.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from schemas.events import EVENT_TYPES, Event, Rejected
from schemas.validate import parse

FIELDS = ["event_id", "type", "ts", "account", "platform", "campaign", "post_id", "user_id",
          "paid", "sentiment", "needs_response", "author_followers", "url", "in_reply_to",
          "resolved", "count", "pages", "bounced", "duration_seconds", "goal", "amount",
          "currency", "survey", "score", "rating"]

# Strings a hostile producer puts in slugs and ids: Prometheus label and exposition injection,
# SQL, shell and path injection, look-alike and invisible Unicode, control characters.
INJECTIONS = [
    'acme"} 1\nsocial_evil{account="x', "acme\n# TYPE evil counter", 'acme",platform="all',
    "acme\\", "acme\r\n", "'; DROP TABLE accounts; --", "$(rm -rf /)", "`id`", "../../etc/passwd",
    "<script>alert(1)</script>", "{{7*7}}", "${jndi:ldap://x/a}", "%00", "acme\x00", "\u0430cme",
    "acme\u200b", "\u202eemca", "ACME", "acme ", " acme", "ac me", "acmé", "🚀", "a" * 65,
    "-acme", "_other", ".", "", "\ud7ff", "\ufeffacme", "\u0000", "acme\t",
]
NUMBER_LITERALS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" * 40,
                   b"-" + b"9" * 30, b"0x10", b"+1", b".5", b"1.", b"01", b"1e", b"nan", b"inf"]
BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xf0\x28\x8c\xbc",
            b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"]

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), _TEXT, st.sampled_from(INJECTIONS),
    st.sampled_from(sorted(EVENT_TYPES)),
)
_JSONISH = st.recursive(
    _LEAF,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(_TEXT, c, max_size=4),
    max_leaves=10,
)


@dataclass(frozen=True)
class Env:
    """What a generated record must respect (see the module docstring)."""

    accounts: tuple[str, ...]
    ts_range: tuple[int, int]
    now_ms: int
    max_bytes: int


def _base(env: Env, r: random.Random) -> dict[str, Any]:
    """A valid event to break: each type with its own fields."""
    etype = r.choice(sorted(EVENT_TYPES))
    ev: dict[str, Any] = {
        "event_id": f"fz-{r.getrandbits(40):x}", "type": etype,
        "ts": r.randint(*env.ts_range), "account": r.choice(env.accounts),
        "platform": r.choice(["instagram", "x", "web"]), "user_id": f"u{r.randint(0, 999)}",
    }
    own: dict[str, dict[str, Any]] = {
        "followers": {"count": r.randint(0, 10_000)},
        "visit": {"pages": r.randint(1, 9), "bounced": r.random() < 0.5},
        "conversion": {"goal": "signup"},
        "purchase": {"amount": round(r.uniform(1, 200), 2), "currency": "EUR"},
        "spend": {"amount": round(r.uniform(0, 50), 2), "currency": "EUR"},
        "survey": {"survey": "nps", "score": r.randint(0, 10)},
        "review": {"rating": r.randint(1, 5)},
        "reply": {"in_reply_to": f"fz-{r.getrandbits(40):x}"},
        "comment": {"sentiment": round(r.uniform(-1, 1), 3), "needs_response": True},
    }
    ev.update(own.get(etype, {}))
    return ev


def _strategies(env: Env) -> st.SearchStrategy[bytes]:
    seeds = st.integers(min_value=0, max_value=2**32)

    def base(seed: int) -> dict[str, Any]:
        return _base(env, random.Random(seed))

    mutated = st.builds(
        lambda s, changes, removed: orjson.dumps(
            {k: v for k, v in {**base(s), **changes}.items() if k not in removed},
            option=orjson.OPT_NON_STR_KEYS),
        seeds, st.dictionaries(st.sampled_from(FIELDS), _JSONISH, min_size=1, max_size=3),
        st.sets(st.sampled_from(FIELDS), max_size=2),
    )
    slugs = st.builds(
        lambda s, field, text: orjson.dumps({**base(s), field: text}),
        seeds, st.sampled_from(["account", "platform", "campaign", "goal", "currency",
                                "event_id", "type", "survey", "in_reply_to"]),
        st.sampled_from(INJECTIONS) | _TEXT,
    )
    numbers = st.builds(
        lambda s, field, lit: orjson.dumps({**base(s), field: 0}).replace(
            f'"{field}":0'.encode(), f'"{field}":'.encode() + lit),
        seeds, st.sampled_from(["ts", "amount", "count", "pages", "score", "rating",
                                "sentiment", "author_followers", "duration_seconds"]),
        st.sampled_from(NUMBER_LITERALS) | st.integers(min_value=2**63, max_value=10**60).map(
            lambda n: str(n).encode()) | st.floats().map(lambda f: repr(f).encode()),
    )
    nesting = st.builds(
        lambda s, depth, as_field: (
            orjson.dumps({**base(s), "extra": 0}).replace(
                b'"extra":0', b'"extra":' + b"[" * depth + b"]" * depth)
            if as_field else b'{"a":' * depth + b"1" + b"}" * depth),
        seeds, st.integers(min_value=100, max_value=3000), st.booleans(),
    )
    junk = st.binary(max_size=400)
    not_object = st.one_of(_LEAF, st.lists(_JSONISH, max_size=5)).map(orjson.dumps)
    bad_utf8 = st.builds(
        lambda s, where, bad: _insert(orjson.dumps(base(s)), where, bad),
        seeds, st.floats(min_value=0, max_value=1), st.sampled_from(BAD_UTF8),
    )
    oversize = st.builds(
        lambda s, extra: orjson.dumps({**base(s), "pad": "x" * (env.max_bytes + extra)}),
        seeds, st.integers(min_value=0, max_value=256),
    )
    return st.one_of(mutated, slugs, numbers, nesting, junk, not_object, bad_utf8, oversize)


def _insert(raw: bytes, where: float, piece: bytes) -> bytes:
    i = int(where * len(raw))
    return raw[:i] + piece + raw[i:]


def draw_pool(env: Env, size: int) -> list[bytes]:
    """``size`` records drawn by hypothesis (derandomized, so the same pool every run)."""
    pool: list[bytes] = []

    @settings(max_examples=size, database=None, derandomize=True, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(_strategies(env))
    def collect(raw: bytes) -> None:
        pool.append(raw)

    collect()
    return pool


def _mutations(env: Env) -> list[Callable[[random.Random, bytes, bytes], bytes]]:
    def truncate(r: random.Random, a: bytes, _b: bytes) -> bytes:
        return a[: r.randrange(len(a) + 1)]

    def flip(r: random.Random, a: bytes, _b: bytes) -> bytes:
        if not a:
            return bytes([r.randrange(256)])
        i = r.randrange(len(a))
        return a[:i] + bytes([a[i] ^ (1 << r.randrange(8))]) + a[i + 1:]

    def splice(r: random.Random, a: bytes, b: bytes) -> bytes:
        return a[: r.randrange(len(a) + 1)] + b[r.randrange(len(b) + 1):]

    def wrap(r: random.Random, a: bytes, _b: bytes) -> bytes:
        return r.choice([b"[", b'{"event":', b'"']) + a + r.choice([b"]", b"}", b'"', b""])

    def break_utf8(r: random.Random, a: bytes, _b: bytes) -> bytes:
        return _insert(a, r.random(), r.choice(BAD_UTF8))

    def pad(r: random.Random, a: bytes, _b: bytes) -> bytes:
        return a + b" " * (env.max_bytes - len(a) + r.randint(1, 64))

    def reuse_field(r: random.Random, a: bytes, b: bytes) -> bytes:
        # a valid event whose field takes a value decoded from another pool record
        try:
            value = orjson.loads(b)
        except orjson.JSONDecodeError:
            value = b.decode("utf-8", "replace")
        try:
            return orjson.dumps({**_base(env, r), r.choice(FIELDS): value})
        except (TypeError, orjson.JSONEncodeError):
            return a

    # Weighted towards field-level faults: byte mutations of JSON mostly give ``not_json``.
    return [*[reuse_field] * 12, truncate, flip, splice, wrap, break_utf8, pad]


@dataclass
class Generated:
    records: list[bytes]
    pool_size: int
    pool_seconds: float
    expand_seconds: float
    redrawn: int


def hostile_records(env: Env, count: int, *, pool: int, seed: int = 6) -> Generated:
    """``count`` hostile records: the hypothesis pool as drawn, then seeded mutations of it."""
    started = time.monotonic()
    drawn = draw_pool(env, pool)
    pool_seconds = time.monotonic() - started
    r = random.Random(seed)
    mutate = _mutations(env)
    later = env.now_ms + 86_400_000
    out: list[bytes] = []
    redrawn = 0
    i = 0
    while len(out) < count:
        if i < len(drawn):
            raw = drawn[i]
        else:
            raw = r.choice(mutate)(r, r.choice(drawn), r.choice(drawn))
            if len(raw) > env.max_bytes and r.random() < 0.9:
                raw = raw[: r.randint(1, env.max_bytes)]  # keep oversized records a few %
        i += 1
        if _qualifies(env, raw, later) and (i <= len(drawn) or _is_rejected(env, raw)
                                            or r.random() < 0.25):
            out.append(raw)
        else:
            redrawn += 1
    return Generated(out, len(drawn), pool_seconds,
                     time.monotonic() - started - pool_seconds, redrawn)


def _is_rejected(env: Env, raw: bytes) -> bool:
    return isinstance(parse(raw, now_ms=env.now_ms, max_bytes=env.max_bytes), Rejected)


# Types whose effect spans events (reply to message, follower snapshots): unkeyed raw records land
# on any partition, and the worker keeps that state per partition, as it must for keyed input.
CROSS_EVENT_TYPES = frozenset({"comment", "mention", "reply", "followers", "follow", "unfollow"})


def _qualifies(env: Env, raw: bytes, later: int) -> bool:
    now = parse(raw, now_ms=env.now_ms, max_bytes=env.max_bytes)
    then = parse(raw, now_ms=later, max_bytes=env.max_bytes)
    if isinstance(now, Rejected):
        return isinstance(then, Rejected) and then.reason == now.reason
    assert isinstance(now, Event)
    lo, hi = env.ts_range
    return (isinstance(then, Event) and now.account in env.accounts and lo <= now.ts <= hi
            and now.type not in CROSS_EVENT_TYPES)
