"""``schemas/event.schema.json`` must agree with ``schemas.validate.parse``.

Producers validate against the published JSON Schema; the worker validates with ``parse()``. If the
two disagree, a producer's "valid" event lands in the dead-letter topic (or the schema rejects what
the worker would take). Every case of the shared table that the schema can express is run through
both, and a property test mutates valid events at random and requires the same verdict, apart from
the rules that are documented as beyond JSON Schema.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from schemas.events import EVENT_TYPES, Event, Reason, Rejected
from schemas.validate import parse
from tests.unit.schemas.cases import ALL, FIELD_NAMES, NOW_MS, TOLERANCE_MS, TS, VALID, Case


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(resources.files("schemas").joinpath("event.schema.json").read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    # The format checker is used when the optional rfc3339-validator is installed; the schema's
    # pattern carries the date-time rule either way.
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _schema_valid(obj: Any) -> bool:
    return bool(_validator().is_valid(obj))


def test_schema_is_valid_draft_2020_12() -> None:
    assert _validator().schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_lists_exactly_the_event_types() -> None:
    assert set(_validator().schema["properties"]["type"]["enum"]) == EVENT_TYPES


def test_every_reason_reaches_the_schema_or_says_why_not() -> None:
    # Each case that the schema cannot check must carry its reason, and most cases must be checked.
    unchecked = [c for c in ALL if not c.schema_checkable]
    assert all(c.why_not_schema for c in unchecked)
    assert len(unchecked) < len(ALL) / 4


@pytest.mark.parametrize("case", [c for c in ALL if c.schema_checkable], ids=lambda c: c.id)
def test_schema_agrees_with_parse(case: Case) -> None:
    parsed = parse(case.raw, now_ms=NOW_MS)
    assert isinstance(parsed, Event) == case.valid  # the table itself holds for parse()
    obj = orjson.loads(case.raw)
    errors = [e.message for e in _validator().iter_errors(obj)]
    if case.valid:
        assert not errors, errors
    else:
        assert errors, f"schema accepts what parse() rejects as {case.expect}"


@pytest.mark.parametrize("case", [c for c in ALL if not c.schema_checkable], ids=lambda c: c.id)
def test_uncheckable_case_is_really_beyond_the_schema(case: Case) -> None:
    # Keep the exemption list honest: an exempt invalid case that decodes must pass the schema
    # (otherwise it is checkable and should not be exempt).
    try:
        obj = orjson.loads(case.raw)
    except orjson.JSONDecodeError:
        return
    if len(case.raw) <= 65536 and not case.valid:
        assert _schema_valid(obj), f"{case.id} is caught by the schema: drop why_not_schema"


# --- property: random mutations of valid events get the same verdict from both ---

_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            False,
            0,
            1,
            -1,
            4,
            5,
            6,
            9,
            10,
            11,
            0.5,
            1.0,
            2.5,
            -0.0,
            -1.5,
            1e12,
            1e9,
            10**12 + 1,
            10**6 + 1,
            604800,
            604801,
            2**64 - 1,
            "",
            "acme",
            "Acme",
            "acme\n",
            "a" * 65,
            "EUR",
            "eur",
            "EUR\n",
            "csat",
            "nps",
            "ces",
            "e" * 128,
            "e" * 129,
            "u" * 257,
            [],
            {},
            TS,
            str(TS),
            TS // 1000,
            NOW_MS + TOLERANCE_MS,
            "2024-05-01T09:59:00Z",
            "2024-05-01T09:59:00+02:00",
            "2024-05-01 09:59:00z",
            "2024-05-01T09:59:00",
            "2024-05-01",
            "1999-12-31T23:59:59Z",
            "2024-13-01T00:00:00Z",
            "2024-05-01T09:59:00Z\n",
            "2016-12-31T23:59:60Z",
            *sorted(EVENT_TYPES),
            "retweet",
        ]
    ),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
_VALID_DOCS = [orjson.loads(c.raw) for c in VALID if c.id != "raw_whitespace"]


def _beyond_schema(obj: dict[str, Any], rejected: Rejected) -> bool:
    """True if the rejection is one the schema documents it cannot make."""
    ts = obj.get("ts")
    if rejected.reason is Reason.FUTURE_TIMESTAMP:
        return True
    if rejected.reason is Reason.WRONG_TYPE and type(ts) is float:
        return True  # an integral float ts: "integer" to JSON Schema
    if rejected.reason is not Reason.BAD_TIMESTAMP or type(ts) is not str:
        return False
    # The pattern cannot see a calendar-invalid date (Feb 30) or an offset that moves the instant
    # before 2000; anything else the schema accepts, parse() must accept too.
    try:
        moment = datetime.fromisoformat(ts.upper().replace(":60", ":59"))
    except ValueError:
        return True
    return moment < datetime(2000, 1, 1, tzinfo=UTC)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_VALID_DOCS),
    st.dictionaries(st.sampled_from(FIELD_NAMES), _VALUES, min_size=1, max_size=3),
    st.sets(st.sampled_from(FIELD_NAMES), max_size=2),
)
def test_schema_agrees_with_parse_on_mutations(
    base: dict[str, Any], changes: dict[str, Any], removed: set[str]
) -> None:
    obj = {k: v for k, v in {**base, **changes}.items() if k not in removed}
    raw = orjson.dumps(obj)
    obj = orjson.loads(raw)  # what the worker sees (e.g. -0.0 and big ints as decoded)
    parsed = parse(raw, now_ms=NOW_MS)
    schema_ok = _schema_valid(obj)
    if isinstance(parsed, Event):
        assert schema_ok, f"parse() accepts, schema rejects: {obj}"
    else:
        assert not schema_ok or _beyond_schema(obj, parsed), (
            f"schema accepts, parse() rejects with {parsed.reason}: {parsed.detail}: {obj}"
        )
