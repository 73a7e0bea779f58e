"""The KPI families in Prometheus text format, written directly and in slices.

``render_text`` gives the same text ``generate_latest`` gives for ``KpiCollector`` (a unit test
holds them equal), but formats each label set once per (account, platform, window) instead of once
per sample, and ``render_steps`` yields every ``ROWS_PER_SLICE`` samples so that a large scrape
lets the stream in between (``streams.core.steps``).
"""

from __future__ import annotations

from collections.abc import Generator

from streams.core.catalogue import ALL_KPIS, part_names
from streams.core.series import SeriesMap
from streams.core.steps import run


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


ROWS_PER_SLICE = 2_000


def render_text(series: SeriesMap) -> bytes:
    """The KPI families in Prometheus text format, the same text ``generate_latest`` gives for
    ``KpiCollector`` (a test holds them equal), but label sets are formatted once per
    (account, platform, window) rather than once per sample. For large scrapes."""
    return run(render_steps(series))


def render_steps(series: SeriesMap) -> Generator[None, None, bytes]:
    """``render_text`` as steps of ``ROWS_PER_SLICE`` samples (``streams.core.steps``)."""
    out: list[str] = []
    rows_done = 0
    prefixes: dict[tuple[tuple[str, ...], tuple[str, ...]], str] = {}

    def labelset(names: tuple[str, ...], values: tuple[str, ...]) -> str:
        key = (names, values)
        text = prefixes.get(key)
        if text is None:
            text = prefixes[key] = ",".join(
                f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
        return text

    for m in ALL_KPIS:
        parts = part_names(m)
        if not series.get(parts[0][0]):
            continue
        help_text = m.help.replace("\\", "\\\\").replace("\n", "\\n")
        out.append(f"# HELP {m.name} {help_text}\n# TYPE {m.name} {m.kind}\n")
        for name, names in parts:
            n_base = min(3, len(names))
            head, tail = names[:n_base], names[n_base:]
            for labels, value in series.get(name, ()):
                text = labelset(head, labels[:n_base])
                if tail:
                    text += "," + labelset(tail, labels[n_base:])
                out.append(f"{name}{{{text}}} {_fmt(value)}\n")
                rows_done += 1
                if rows_done % ROWS_PER_SLICE == 0:
                    yield
    return "".join(out).encode()
