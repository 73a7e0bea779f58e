"""``socialpulse report``: the command line around ``collect``, ``html`` and ``pdf``.

The period is given by ``--from``/``--to`` (ISO 8601; a bare date is midnight UTC) or ``--days``
ending at ``--to`` (default: the last whole days up to today's midnight UTC), and is always
compared with the period of the same length before it. While it queries, one progress line is
rewritten on a terminal (a line per step otherwise); a report that cannot be made is one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from streams.report.model import Period, ReportError
from streams.settings import Settings

EXIT_REPORT_FAILED = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--account", required=True, help="the account the report is about")
    p.add_argument("--market", action="store_true",
                   help="also compare it with the other accounts of its market")
    p.add_argument("--from", dest="start", default=None, help="period start (ISO 8601, UTC)")
    p.add_argument("--to", dest="end", default=None,
                   help="period end, exclusive (default: today 00:00 UTC)")
    p.add_argument("--days", type=float, default=7.0, help="period length without --from")
    p.add_argument("--prometheus", default=None,
                   help="Prometheus base URL (default SOCIALPULSE_REPORT_PROMETHEUS_URL)")
    p.add_argument("--worker", default=None,
                   help="a worker's URL, for the top posts (default SOCIALPULSE_REPORT_WORKER_URL)")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default SOCIALPULSE_REPORT_DIR)")
    p.add_argument("--no-pdf", action="store_true", help="write the HTML only")


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"not an ISO 8601 date or time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def period_of(args: argparse.Namespace, now: datetime) -> Period:
    if args.end is not None:
        end = parse_instant(args.end)
    else:
        end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if args.start is not None:
        start = parse_instant(args.start)
    else:
        if args.days <= 0:
            raise ReportError(f"--days must be positive, not {args.days:g}")
        start = end - timedelta(days=args.days)
    if start >= end:
        raise ReportError(f"the period must end after it starts ({start:%Y-%m-%d %H:%M} >= "
                          f"{end:%Y-%m-%d %H:%M} UTC)")
    if end > now + timedelta(minutes=1):
        raise ReportError(f"the period ends in the future ({end:%Y-%m-%d %H:%M} UTC)")
    return Period(start, end)


class ProgressLine:
    """One line rewritten in place on a terminal; plain lines elsewhere (logs, CI)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.width = 0

    def __call__(self, text: str) -> None:
        if self.tty:
            pad = max(0, self.width - len(text))
            self.stream.write(f"\r{text}{' ' * pad}")
            self.width = len(text)
        else:
            self.stream.write(f"report: {text}\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def run(settings: Settings, args: argparse.Namespace) -> int:
    from streams.report.collect import collect
    from streams.report.html import render_html
    from streams.report.pdf import html_to_pdf
    from streams.report.prometheus import PrometheusApi

    progress = ProgressLine(sys.stderr)
    try:
        now = datetime.now(UTC)
        period = period_of(args, now)
        api = PrometheusApi(args.prometheus or settings.report_prometheus_url,
                            timeout_s=settings.report_timeout_seconds)
        report = collect(settings, api, args.account, period, market=args.market,
                         worker_url=args.worker or settings.report_worker_url, now=now,
                         progress=progress)
        out = args.out or settings.report_dir
        out.mkdir(parents=True, exist_ok=True)
        stem = (f"socialpulse-{args.account}-{period.start:%Y%m%dT%H%M%S}-"
                f"{period.end:%Y%m%dT%H%M%S}")
        html_path = out / f"{stem}.html"
        progress(f"writing {html_path}")
        html_path.write_text(render_html(report), encoding="utf-8")
        written = [html_path]
        if not args.no_pdf:
            pdf_path = out / f"{stem}.pdf"
            progress(f"printing {pdf_path} with headless Chromium")
            html_to_pdf(html_path, pdf_path, binary=settings.report_chromium,
                        sandbox=settings.report_chromium_sandbox)
            written.append(pdf_path)
    except ReportError as exc:
        progress.done()
        print(f"socialpulse: report: {exc}", file=sys.stderr)
        return EXIT_REPORT_FAILED
    progress.done()
    for path in written:
        print(path)
    return 0
