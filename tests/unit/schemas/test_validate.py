"""``schemas.validate.parse``: the case table, size and clock parameters, details, and fuzzing."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schemas.events import EVENT_TYPES, Event, Reason, Rejected
from schemas.validate import MIN_TS_MS, parse, reject_reasons
from tests.unit.schemas.cases import (
    FIELD_NAMES,
    INVALID,
    NOW_MS,
    TOLERANCE_MS,
    TS,
    VALID,
    Case,
    doc,
)

SLUG = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def _parse(raw: bytes, **kwargs: Any) -> Event | Rejected:
    return parse(raw, now_ms=NOW_MS, **kwargs)


# --- the table ---


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_valid_case(case: Case) -> None:
    result = _parse(case.raw)
    assert result == case.expect, result


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_invalid_case(case: Case) -> None:
    result = _parse(case.raw)
    assert isinstance(result, Rejected), result
    assert result.reason is case.expect, result.detail
    assert result.detail and len(result.detail) <= 200, result.detail


def test_table_covers_every_reason() -> None:
    covered = {c.expect for c in INVALID}
    assert covered == set(Reason), f"no case for {sorted(set(Reason) - covered)}"


def test_table_covers_every_type() -> None:
    assert {c.expect.type for c in VALID if isinstance(c.expect, Event)} == EVENT_TYPES


def test_reject_reasons_lists_every_label() -> None:
    assert reject_reasons() == [r.value for r in Reason]
    assert all(isinstance(r, str) and r == r.lower() for r in reject_reasons())


def test_valid_parse_types_are_exact() -> None:
    # Downstream code relies on exact types: ints stay ints, numbers become floats, bools are bools.
    for case in VALID:
        ev = _parse(case.raw)
        assert isinstance(ev, Event)
        assert type(ev.ts) is int
        for name in ("count", "pages", "author_followers", "score", "rating"):
            assert getattr(ev, name) is None or type(getattr(ev, name)) is int, (case.id, name)
        for name in ("sentiment", "duration_seconds", "amount"):
            assert getattr(ev, name) is None or type(getattr(ev, name)) is float, (case.id, name)
        for name in ("paid", "needs_response", "resolved", "bounced"):
            assert type(getattr(ev, name)) is bool, (case.id, name)


# --- parameters: size limit and clock ---


def test_size_limit_is_inclusive() -> None:
    raw = orjson.dumps(doc("like"))
    assert isinstance(_parse(raw, max_bytes=len(raw)), Event)
    rejected = _parse(raw, max_bytes=len(raw) - 1)
    assert isinstance(rejected, Rejected) and rejected.reason is Reason.TOO_LARGE


def test_size_is_checked_before_decoding() -> None:
    rejected = _parse(b"\xff" * 70_000)
    assert isinstance(rejected, Rejected) and rejected.reason is Reason.TOO_LARGE


def test_default_limit_is_64_kib() -> None:
    pad = 65536 - len(orjson.dumps(doc("like", pad="")))
    exactly = orjson.dumps(doc("like", pad="x" * pad))
    assert len(exactly) == 65536
    assert isinstance(_parse(exactly), Event)
    over = _parse(orjson.dumps(doc("like", pad="x" * (pad + 1))))
    assert isinstance(over, Rejected) and over.reason is Reason.TOO_LARGE


@pytest.mark.parametrize(
    ("tolerance", "offset", "accepted"),
    [
        (0, 0, True),
        (0, 1, False),
        (1000, 1000, True),
        (1000, 1001, False),
        (TOLERANCE_MS, -(10**9), True),
    ],
)
def test_future_tolerance(tolerance: int, offset: int, accepted: bool) -> None:
    raw = orjson.dumps(doc("like", ts=NOW_MS + offset))
    result = _parse(raw, future_tolerance_ms=tolerance)
    if accepted:
        assert isinstance(result, Event) and result.ts == NOW_MS + offset
    else:
        assert isinstance(result, Rejected) and result.reason is Reason.FUTURE_TIMESTAMP


def test_now_is_the_callers_clock() -> None:
    raw = orjson.dumps(doc("like", ts="2030-01-01T00:00:00Z"))
    assert isinstance(parse(raw, now_ms=NOW_MS), Rejected)
    assert isinstance(parse(raw, now_ms=1_893_456_000_000), Event)  # 2030-01-01T00:00:00Z


# --- details: short, and never more than a few dozen characters of the input ---


@pytest.mark.parametrize(
    "record",
    [
        doc("like", account="Q" * 10_000),
        doc("Q" * 10_000),
        doc("like", ts="Q" * 10_000),
        doc("like", ts="2024-05-01T09:59:00Z" + "Q" * 10_000),
        doc("survey", survey="Q" * 10_000, score=1),
        doc("spend", amount=1, currency="Q" * 10_000),
        doc("like", event_id="Q" * 10_000),
        doc("like", user_id="Q" * 10_000),
        doc("like", account="\x00" * 1000),
        doc("like", account=["Q" * 10_000]),
    ],
    ids=[
        "slug",
        "type",
        "ts_text",
        "ts_suffix",
        "survey",
        "currency",
        "event_id",
        "user_id",
        "nul_slug",
        "list_slug",
    ],
)
def test_detail_quotes_little_input(record: dict[str, Any]) -> None:
    result = _parse(orjson.dumps(record))
    assert isinstance(result, Rejected)
    assert len(result.detail) <= 200, result.detail
    assert result.detail.count("Q") <= 80
    assert "\x00" not in result.detail


def test_detail_names_the_field() -> None:
    result = _parse(orjson.dumps(doc("visit", pages=0, bounced=True)))
    assert isinstance(result, Rejected)
    assert result.detail.startswith("field 'pages':"), result.detail


# --- fuzzing: parse() never raises, and what it accepts is well-formed ---

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
_INTERESTING: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    5,
    10,
    11,
    0.5,
    1.0,
    -1.0,
    1e300,
    -0.0,
    2**63,
    2**64 - 1,
    -(2**63),
    "",
    "acme",
    "Acme",
    "acme\n",
    "EUR",
    "eur",
    "csat",
    "nps",
    "ces",
    "e" * 129,
    TS,
    float(TS),
    str(TS),
    NOW_MS + TOLERANCE_MS,
    MIN_TS_MS - 1,
    "2024-05-01T09:59:00Z",
    "2024-05-01T09:59:00",
    "2024-05-01T23:59:60+23:59",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "2024-02-30T00:00:00Z",
    *sorted(EVENT_TYPES),
    [],
    {},
    [1, "a"],
    {"a": {"b": None}},
]
_LEAF = st.one_of(
    st.sampled_from(_INTERESTING),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    _TEXT,
)
_JSONISH = st.recursive(
    _LEAF,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=12,
)
_VALID_DOCS = [orjson.loads(c.raw) for c in VALID if c.id != "raw_whitespace"]


def _assert_well_formed(result: Event | Rejected) -> None:
    if isinstance(result, Rejected):
        assert isinstance(result.reason, Reason)
        assert isinstance(result.detail, str) and 0 < len(result.detail) <= 200
        return
    assert 0 < len(result.event_id) <= 128
    assert result.type in EVENT_TYPES
    assert type(result.ts) is int and MIN_TS_MS <= result.ts <= NOW_MS + TOLERANCE_MS
    for slug in (result.account, result.platform, result.campaign, result.goal):
        assert slug is None or SLUG.fullmatch(slug)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
@example(b"\x00")
@example(b'{"type": "like"' + b"\x80")
def test_never_raises_on_bytes(raw: bytes) -> None:
    _assert_well_formed(_parse(raw))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELD_NAMES) | _TEXT, _JSONISH, max_size=12))
def test_never_raises_on_jsonish_dicts(obj: dict[str, Any]) -> None:
    _assert_well_formed(_parse(orjson.dumps(obj)))


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_VALID_DOCS),
    st.dictionaries(st.sampled_from(FIELD_NAMES), _JSONISH, min_size=1, max_size=3),
    st.sets(st.sampled_from(FIELD_NAMES), max_size=2),
)
def test_never_raises_on_mutated_events(
    base: dict[str, Any], changes: dict[str, Any], removed: set[str]
) -> None:
    obj = {k: v for k, v in {**base, **changes}.items() if k not in removed}
    _assert_well_formed(_parse(orjson.dumps(obj)))


@given(st.binary(max_size=50), st.text(max_size=50))
def test_never_raises_on_json_junk(prefix: bytes, text: str) -> None:
    _assert_well_formed(_parse(prefix + text.encode("utf-8", "surrogatepass")))


def test_a_duplicate_key_takes_its_last_value() -> None:
    """JSON leaves duplicate names undefined; orjson (and Python's json) keep the last one. The
    README says so: a producer sending two ``type`` fields gets the second."""
    raw = (b'{"event_id":"d1","type":"like","type":"share","ts":' + str(TS).encode()
           + b',"account":"acme","platform":"x","platform":"instagram"}')
    ev = parse(raw, now_ms=NOW_MS)
    assert isinstance(ev, Event)
    assert (ev.type, ev.platform) == ("share", "instagram")


def test_an_ignored_field_nested_past_the_parser_depth_rejects_the_record() -> None:
    """Unknown fields are ignored, but the whole record is parsed first: orjson refuses nesting
    deeper than 1024, so such a record is not_json even when the deep part is an extra field
    (README, event contract)."""
    base = (b'{"event_id":"n1","type":"like","ts":' + str(TS).encode()
            + b',"account":"acme","platform":"x","extra":')
    shallow = parse(base + b"[" * 1000 + b"]" * 1000 + b"}", now_ms=NOW_MS)
    assert isinstance(shallow, Event)
    deep = parse(base + b"[" * 1100 + b"]" * 1100 + b"}", now_ms=NOW_MS)
    assert isinstance(deep, Rejected) and deep.reason is Reason.NOT_JSON
