"""The report's rendering: number formats, the SVG charts, the self-contained HTML page, and the
PDF headless Chromium prints from it (page count, text of the tiles page, chart colours on the
chart pages), with poppler's pdfinfo, pdftotext and pdftoppm reading the PDF back."""

from __future__ import annotations

import math
import re
import shutil
import stat
import subprocess
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import pytest

from streams.report.charts import NO_DATA_TEXT, PALETTE, line_colour, render_chart
from streams.report.html import (
    CHARTS_PER_PAGE,
    DASH,
    NO_POSTS_TEXT,
    TABLE_PAGES,
    TILES_PER_PAGE,
    format_change,
    format_value,
    page_count,
    render_html,
)
from streams.report.model import (
    Chart,
    CompetitorRow,
    Line,
    Period,
    PlatformRow,
    Point,
    Report,
    ReportError,
    Tile,
    TopPost,
    Unit,
)
from streams.report.pdf import chromium_binary, html_to_pdf, last_meaningful_line

START = datetime(2026, 11, 24, tzinfo=UTC)
PERIOD = Period(START, START + timedelta(days=7))
DAYS = tuple(START + timedelta(days=i + 1) for i in range(7))  # a point covers the day before
SOURCE = "http://prometheus-operated.monitoring.svc:9090"
PLATFORMS = ("facebook", "instagram", "linkedin")
ACCOUNTS = ("acme", "Globex & Co", "initech")


# ------------------------------------------------------------------------------- the report


def _line(label: str, base: float, slope: float, wave: float = 0.0) -> Line:
    return Line(label, tuple(Point(at, base + slope * i + wave * math.sin(i))
                             for i, at in enumerate(DAYS)))


def _tiles() -> tuple[Tile, ...]:
    return (
        Tile("impressions", "Impressions", 152_340, 140_210, "count"),
        Tile("engagements", "Engagements", 6_412, 6_950, "count"),
        Tile("reach", "Reach", 48_213.5, 47_000, "count", note="average daily reach"),
        Tile("audience_growth", "Audience growth", -120, 85, "count"),
        Tile("engagement_rate", "Engagement rate", 0.0421, 0.0433, "ratio"),
        Tile("click_through", "Click-through", 0.0118, None, "ratio"),
        Tile("roi_ratio:EUR", "ROI (EUR)", 1.85, 1.6, "ratio"),
        Tile("response_time_p50", "Response time p50", 95, 110, "seconds"),
        Tile("response_time_p90", "Response time p90", 4_320, 5_100, "seconds",
             note="business hours"),
        Tile("resolution_time", "Resolution time", 12_600, 12_600, "seconds"),
        Tile("revenue:EUR", "Revenue (EUR)", 12_345.5, 10_000, "money", currency="EUR"),
        Tile("revenue:USD", "Revenue (USD)", 980.25, 0, "money", currency="USD"),
        Tile("spend:USD", "Spend (USD)", 1_234_567.89, 1_100_000, "money", currency="USD"),
        Tile("nps", "NPS", 42, 38, "score"),
        Tile("net_sentiment", "Net sentiment", 0.31, 0.35, "score"),
        Tile("csat", "CSAT", None, 4.2, "score", note="no survey answered"),
    )


def _charts() -> tuple[Chart, ...]:
    # The empty chart sits in the middle, so that every chart page also has one with lines.
    return (
        Chart("impressions_reach", "Impressions per platform", "count",
              tuple(_line(p, 15_000 + 4_000 * i, 600, 900) for i, p in enumerate(PLATFORMS))),
        Chart("engagement_rate", "Engagement rate per platform", "ratio",
              tuple(_line(p, 0.03 + 0.01 * i, 0.001, 0.004) for i, p in enumerate(PLATFORMS))),
        Chart("care", "Response time", "seconds", (Line("p50", ()), Line("p90", ()))),
        Chart("money:EUR", "Revenue and spend (EUR)", "money",
              (_line("revenue", 1_500, 80, 200), _line("spend", 400, 0, 50)),
              kind="bar", currency="EUR"),
        Chart("share_of_voice", "Share of voice in the market", "ratio",
              tuple(_line(a, 0.5 - 0.15 * i, 0.005 * (1 - i), 0.02)
                    for i, a in enumerate(ACCOUNTS))),
    )


def _platforms() -> tuple[PlatformRow, ...]:
    rows = [
        PlatformRow(p, 50_000 + 1_000 * i, 2_100 + 50 * i, 0.042 + 0.001 * i, 610 + i, 0.0122,
                    31 + i, 12 + i, 140 + i, 0.93 - 0.01 * i)
        for i, p in enumerate(PLATFORMS)
    ]
    total = PlatformRow("all", 152_340, 6_412, 0.0421, 1_833, 0.0120, 96, 39, 423, None)
    return (total, *rows)  # "all" first: the table must still end with it


def _report(**changes: Any) -> Report:
    report = Report(
        account="acme",
        market="coffee",
        period=PERIOD,
        previous=PERIOD.before(),
        generated_at=datetime(2026, 12, 1, 6, 0, 12, tzinfo=UTC),
        source=SOURCE,
        step=timedelta(days=1),
        tiles=_tiles(),
        charts=_charts(),
        platforms=_platforms(),
        competitors=tuple(
            CompetitorRow(a, 152_340 - 30_000 * i, 0.0421 - 0.004 * i, 820 - 200 * i,
                          0.45 - 0.12 * i, 25_300 + 7_000 * i if i != 2 else None)
            for i, a in enumerate(ACCOUNTS)
        ),
        top_posts=tuple(
            TopPost(ranking, f"post-{ranking[:3]}-{n}", 900 - 150 * n, 880 - 150 * n,
                    930 - 150 * n)
            for ranking in ("engagements", "impressions", "clicks")
            for n in range(3)
        ),
        notes=(
            "Engagement rate is engagements / impressions; a ratio < 1 % shows as such.",
            "ROI and money figures are per currency, never converted.",
        ),
    )
    return replace(report, **changes)


# ------------------------------------------------------------------------------------ numbers


@pytest.mark.parametrize(
    ("value", "unit", "currency", "expected"),
    [
        (None, "count", None, "n/a"),
        (float("nan"), "ratio", None, "n/a"),
        (12_345, "count", None, "12,345"),
        (12_345.0, "count", None, "12,345"),
        (1_234.5, "count", None, "1,234.50"),
        (-1_234, "count", None, "-1,234"),
        (0, "count", None, "0"),
        (0.0421, "ratio", None, "4.21 %"),
        (-0.0035, "ratio", None, "-0.35 %"),
        (1.85, "ratio", None, "185.00 %"),
        (95, "seconds", None, "95.0 s"),
        (119.9, "seconds", None, "119.9 s"),
        (432, "seconds", None, "7.2 min"),
        (4_320, "seconds", None, "72.0 min"),
        (12_600, "seconds", None, "3.5 h"),
        (1_234.5, "money", "EUR", "1,234.50 EUR"),
        (1_234_567.891, "money", "USD", "1,234,567.89 USD"),
        (-20, "money", "USD", "-20.00 USD"),
        (0.31, "score", None, "0.31"),
        (42, "score", None, "42.00"),
        (-0.001, "score", None, "0.00"),
    ],
)
def test_format_value(value: float | None, unit: Unit, currency: str | None,
                      expected: str) -> None:
    assert format_value(value, unit, currency) == expected


@pytest.mark.parametrize(
    ("value", "previous", "unit", "expected"),
    [
        (0.042, 0.030, "ratio", "+1.20 pts"),
        (0.0386, 0.0421, "ratio", "-0.35 pts"),
        (0.05, 0.05, "ratio", "0.00 pts"),
        (112.3, 100, "count", "+12.3 %"),
        (96, 100, "count", "-4.0 %"),
        (100, 100, "seconds", "0.0 %"),
        (-50, -100, "count", "+50.0 %"),
        (5, None, "count", "new"),
        (5, 0, "money", "new"),
        (0.01, None, "ratio", "new"),
        (None, 5, "count", "n/a"),
        (None, None, "score", "n/a"),
    ],
)
def test_format_change(value: float | None, previous: float | None, unit: Unit,
                       expected: str) -> None:
    assert format_change(Tile("k", "K", value, previous, unit)) == expected


# ------------------------------------------------------------------------------------- charts


def _svg_ids(svg: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', svg))


def test_render_chart_is_inline_svg_in_palette_colours() -> None:
    charts = [c for c in _charts() if any(line.points for line in c.lines)]
    svgs = {c.key: render_chart(c) for c in charts}
    for chart in charts:
        svg = svgs[chart.key]
        assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>"), chart.key
        assert 'width="100%"' in svg and re.search(r'viewBox="[\d. ]+"', svg), chart.key
        assert "<?xml" not in svg and "DOCTYPE" not in svg and "http" not in svg, chart.key
        assert "<text" in svg, f"{chart.key}: text drawn as paths"
        for index, line in enumerate(chart.lines):
            assert line_colour(index).lower() in svg.lower(), f"{chart.key}: {line.label}"
            assert escape(line.label) in svg, f"{chart.key}: no legend entry {line.label}"
        unused = set(PALETTE) - {line_colour(i) for i in range(len(chart.lines))}
        assert not any(c in svg.lower() for c in unused), f"{chart.key}: a colour of no line"
        assert render_chart(chart) == svg, f"{chart.key}: not deterministic"
    # Several charts in one page: no id defined twice.
    for a, b in ((a, b) for a in svgs for b in svgs if a < b):
        assert not _svg_ids(svgs[a]) & _svg_ids(svgs[b]), (a, b)
    assert "Wed 25 Nov" in svgs["impressions_reach"] and "Tue 1 Dec" in svgs["impressions_reach"]
    assert re.search(r">[\d.]+ %<", svgs["engagement_rate"]), "ratio ticks not in percent"
    assert re.search(r">[\d,]+ EUR<", svgs["money:EUR"]), "money ticks without the currency"
    assert re.search(r">\d{1,3},\d{3}<", svgs["impressions_reach"]), "no thousands separator"


def test_render_chart_time_of_day_and_duration_ticks() -> None:
    hours = tuple(START + timedelta(hours=h) for h in range(1, 13))
    chart = Chart("care", "Response time", "seconds",
                  (Line("p90", tuple(Point(at, 600 + 60 * i) for i, at in enumerate(hours))),))
    svg = render_chart(chart)
    assert ">02:00<" in svg or ">03:00<" in svg, "sub-day steps not labelled by time"
    assert re.search(r">[\d.]+ min<", svg) and not re.search(r">[\d.]+ s<", svg)


def test_render_chart_without_points_is_a_placeholder() -> None:
    (empty,) = [c for c in _charts() if not any(line.points for line in c.lines)]
    svg = render_chart(empty)
    assert svg.startswith("<svg") and NO_DATA_TEXT in svg
    assert not any(colour in svg.lower() for colour in PALETTE)


# --------------------------------------------------------------------------------------- HTML


def test_html_is_self_contained() -> None:
    report = _report()
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert "@page { size: A4 landscape; margin: 12mm; }" in page
    assert page.count(SOURCE) == 1
    rest = page.replace(escape(SOURCE), "", 1).lower()
    assert "http" not in rest, re.findall(r".{40}http.{40}", rest)
    assert "<script" not in rest and "src=" not in rest and "url(" not in rest.replace("url(#", "")
    assert "@import" not in rest and "<link" not in rest and "<img" not in rest


def test_html_has_every_figure_and_escapes_the_model() -> None:
    report = _report()
    page = render_html(report)
    assert f"<title>{escape(report.title)}</title>" in page
    assert f"24 Nov 2026 00:00 {DASH} 1 Dec 2026 00:00 UTC, compared with 17 Nov {DASH} 24 Nov" \
        in page
    tiles = re.findall(r'<div class="tile" data-key="([^"]*)" data-value="([^"]*)">', page)
    assert tiles == [(escape(t.key), "" if t.value is None else repr(float(t.value)))
                     for t in report.tiles]
    for tile in report.tiles:
        assert f">{escape(format_value(tile.value, tile.unit, tile.currency))}<" in page, tile.key
        assert f">{escape(format_change(tile))}<" in page, tile.key
        if tile.note:
            assert escape(tile.note) in page
    figures = re.findall(r'<figure class="chart[^"]*" data-chart="([^"]*)">\s*<h3>([^<]*)</h3>',
                         page)
    assert figures == [(escape(c.key), escape(c.title)) for c in report.charts]
    assert page.count("<svg") == len(report.charts)
    # Escaped: the competitor "Globex & Co" and the note's "<".
    assert "Globex &amp; Co" in page and "Globex & Co" not in page
    assert "a ratio &lt; 1 %" in page
    # The account's total closes the platform table, bold.
    platforms = page[page.index('<table class="platforms">'):]
    platforms = platforms[: platforms.index("</table>")]
    rows = re.findall(r"<tr(?: class=\"(\w+)\")?><td>([^<]*)</td>", platforms)
    assert rows == [("", p) for p in PLATFORMS] + [("total", "All platforms")]
    competitors = page[page.index('<table class="competitors">'):]
    assert '<tr class="own"><td>acme</td>' in competitors
    for post in report.top_posts or ():
        bounds = f"{format_value(post.lower_bound, 'count')}{DASH}" \
                 f"{format_value(post.upper_bound, 'count')}"
        assert f"<td>{post.item}</td><td>{format_value(post.estimate, 'count')}</td>" \
               f"<td>{bounds}</td>" in page
    assert re.findall(r"<h3>By (\w+)</h3>", page) == ["engagements", "impressions", "clicks"]


def test_html_top_posts_unavailable_or_empty() -> None:
    unavailable = render_html(_report(top_posts=None, top_posts_note="the worker was unreachable"))
    assert "the worker was unreachable" in unavailable
    assert '<table class="posts">' not in unavailable
    empty = render_html(_report(top_posts=()))
    assert NO_POSTS_TEXT in empty and '<table class="posts">' not in empty
    alone = render_html(_report(competitors=(), market=None))
    assert '<table class="competitors">' not in alone


# ---------------------------------------------------------------------------------------- PDF

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which(
    "google-chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on PATH: scripts/setup installs Debian's chromium")
# A pixel counts for a palette colour when every channel is this close to it (antialiased edges
# are not, the core of a line or bar is).
COLOUR_TOLERANCE = 40
MIN_PIXELS_PER_COLOUR = 100  # at 50 dpi a week's line across the page is ~400 pixels long
MAX_STRAY_PIXELS = 10  # on a page without a chart


def _poppler(tool: str, *args: str | Path) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not on PATH: scripts/setup installs Debian's poppler-utils",
                    pytrace=False)
    proc = subprocess.run([path, *map(str, args)], capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode(errors="replace")


def _pages(pdf: Path) -> int:
    match = re.search(r"^Pages:\s+(\d+)$", _poppler("pdfinfo", pdf), re.MULTILINE)
    assert match, "pdfinfo gave no page count"
    return int(match.group(1))


def _page_text(pdf: Path, page: int) -> str:
    return _poppler("pdftotext", "-layout", "-f", str(page), "-l", str(page), pdf, "-")


def _read_ppm(path: Path) -> tuple[int, int, bytes]:
    """Width, height and RGB bytes of a binary (P6) PPM file, 8 bits a channel."""
    data = path.read_bytes()
    fields: list[bytes] = []
    at = 0
    while len(fields) < 4:
        while data[at : at + 1].isspace():
            at += 1
        if data[at : at + 1] == b"#":  # a comment runs to the end of the line
            at = data.index(b"\n", at)
            continue
        end = at
        while not data[end : end + 1].isspace():
            end += 1
        fields.append(data[at:end])
        at = end
    magic, width, height, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    assert magic == b"P6" and maxval == 255, (magic, maxval)
    pixels = data[at + 1 : at + 1 + 3 * width * height]  # one whitespace byte after maxval
    assert len(pixels) == 3 * width * height
    return width, height, pixels


def _palette_pixels(pixels: bytes) -> Counter[str]:
    """How many pixels are (close to) each palette colour."""
    colours = Counter(pixels[i : i + 3] for i in range(0, len(pixels), 3))
    palette = {c: bytes.fromhex(c[1:]) for c in PALETTE}
    found: Counter[str] = Counter()
    for rgb, count in colours.items():
        for name, target in palette.items():
            if all(abs(a - b) <= COLOUR_TOLERANCE for a, b in zip(rgb, target, strict=True)):
                found[name] += count
                break
    return found


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, Path, list[Path]]:
    """The report printed once: its PDF and one 50 dpi PPM image per page."""
    if CHROMIUM is None:
        pytest.skip("no Chromium on PATH: scripts/setup installs Debian's chromium")
    report = _report()
    folder = tmp_path_factory.mktemp("report")
    html_path = folder / "report.html"
    html_path.write_text(render_html(report), encoding="utf-8")
    pdf = folder / "report.pdf"
    html_to_pdf(html_path, pdf)
    _poppler("pdftoppm", "-r", "50", pdf, folder / "page")  # PPM is pdftoppm's default format
    images = sorted(folder.glob("page-*.ppm"), key=lambda p: int(p.stem.rpartition("-")[2]))
    return report, pdf, images


def _expected_pages(report: Report) -> int:
    """The layout rule: tile pages, then the charts two (CHARTS_PER_PAGE) a page, then the two
    table pages (platforms and market; top posts and notes)."""
    return (max(1, math.ceil(len(report.tiles) / TILES_PER_PAGE))
            + math.ceil(len(report.charts) / CHARTS_PER_PAGE) + TABLE_PAGES)


@needs_chromium
def test_pdf_page_count_follows_the_layout(printed: tuple[Report, Path, list[Path]]) -> None:
    report, pdf, images = printed
    assert _pages(pdf) == _expected_pages(report) == page_count(report)
    assert len(images) == _pages(pdf)
    assert not list(pdf.parent.glob(".*.partial")), "partial PDF left behind"


@needs_chromium
def test_pdf_first_page_has_every_tile(printed: tuple[Report, Path, list[Path]]) -> None:
    report, pdf, _ = printed
    text = _page_text(pdf, 1)
    assert report.title in text and SOURCE in text
    for tile in report.tiles:
        assert format_value(tile.value, tile.unit, tile.currency) in text, tile.key
        assert format_change(tile) in text, tile.key


@needs_chromium
def test_pdf_chart_pages_are_in_order_and_in_colour(
    printed: tuple[Report, Path, list[Path]],
) -> None:
    report, pdf, images = printed
    tile_pages = max(1, math.ceil(len(report.tiles) / TILES_PER_PAGE))
    groups = [report.charts[i : i + CHARTS_PER_PAGE]
              for i in range(0, len(report.charts), CHARTS_PER_PAGE)]
    for number, group in enumerate(groups, start=tile_pages + 1):
        text = _page_text(pdf, number)
        for chart in report.charts:
            assert (chart.title in text) == (chart in group), f"page {number}: {chart.title}"
        width, height, pixels = _read_ppm(images[number - 1])
        found = _palette_pixels(pixels)
        expected = {line_colour(i) for c in group for i, line in enumerate(c.lines)
                    if line.points}
        assert expected, f"page {number} has no chart with data"
        for colour in expected:
            assert found[colour] >= MIN_PIXELS_PER_COLOUR, (number, colour, found)
        assert sum(found.values()) >= 0.002 * width * height, (number, found)
    # The table pages: no chart, so next to no palette colour.
    for number in range(tile_pages + len(groups) + 1, len(images) + 1):
        _, _, pixels = _read_ppm(images[number - 1])
        assert sum(_palette_pixels(pixels).values()) <= MAX_STRAY_PIXELS, number


@needs_chromium
def test_pdf_tables_pages(printed: tuple[Report, Path, list[Path]]) -> None:
    report, pdf, images = printed
    platforms_page = len(images) - 1
    text = _page_text(pdf, platforms_page)
    assert text.index("linkedin") < text.index("All platforms")
    assert "Globex & Co" in text
    posts = _page_text(pdf, len(images))
    for post in report.top_posts or ():
        assert post.item in posts
    for note in report.notes:
        assert note[:40] in posts


@needs_chromium
def test_pdf_page_count_with_more_tiles_and_fewer_charts(tmp_path: Path) -> None:
    """Another shape: two pages of tiles, one chart, no market, no top posts."""
    tiles = tuple(Tile(f"t{i}", f"Tile {i}", 1_000.0 * i, 900.0 * i, "count")
                  for i in range(TILES_PER_PAGE + 3))
    report = _report(tiles=tiles, charts=_charts()[:1], competitors=(), market=None,
                     top_posts=None, top_posts_note="no worker given", notes=())
    html_path = tmp_path / "small.html"
    html_path.write_text(render_html(report), encoding="utf-8")
    pdf = tmp_path / "small.pdf"
    html_to_pdf(html_path, pdf)
    assert _pages(pdf) == _expected_pages(report)
    assert format_value(tiles[-1].value, "count") in _page_text(pdf, 2)


# ------------------------------------------------------------------------- Chromium failures


def _fake_chromium(tmp_path: Path, script: str) -> str:
    path = tmp_path / "fake-chromium"
    path.write_text("#!/bin/sh\n" + script + "\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def html_file(tmp_path: Path) -> Path:
    path = tmp_path / "r.html"
    path.write_text("<!DOCTYPE html><p>x</p>", encoding="utf-8")
    return path


def test_chromium_missing(tmp_path: Path, html_file: Path) -> None:
    with pytest.raises(ReportError, match="scripts/setup installs Debian's chromium"):
        chromium_binary(str(tmp_path / "nowhere" / "chromium"))
    with pytest.raises(ReportError, match="scripts/setup"):
        html_to_pdf(html_file, tmp_path / "r.pdf", binary=str(tmp_path / "nope"))


def test_chromium_failure_says_why_in_one_line(tmp_path: Path, html_file: Path) -> None:
    binary = _fake_chromium(tmp_path, (
        "echo '/usr/bin/chromium: 9: [: 1: unexpected operator' >&2\n"
        "echo '[11:11:1201/060000.1:ERROR:ozone_platform.cc(10)] Missing X server' >&2\n"
        "echo '[11:11:1201/060000.2:WARNING:sandbox.cc(20)] noise' >&2\n"
        "exit 21"))
    with pytest.raises(ReportError) as caught:
        html_to_pdf(html_file, tmp_path / "r.pdf", binary=binary)
    message = str(caught.value)
    assert "\n" not in message and "code 21" in message and message.endswith("Missing X server")
    assert not (tmp_path / "r.pdf").exists()


def test_chromium_without_output_or_too_slow(tmp_path: Path, html_file: Path) -> None:
    silent = _fake_chromium(tmp_path, "echo 'all fine' >&2; exit 0")
    with pytest.raises(ReportError, match="wrote no PDF"):
        html_to_pdf(html_file, tmp_path / "r.pdf", binary=silent)
    slow = _fake_chromium(tmp_path, "sleep 30")
    with pytest.raises(ReportError, match=r"did not finish the PDF within 0\.5 s"):
        html_to_pdf(html_file, tmp_path / "r.pdf", binary=slow, timeout_s=0.5)


def test_chromium_command_line(tmp_path: Path, html_file: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """What Chromium is asked to do, with a stand-in that records its arguments and writes a
    PDF where --print-to-pdf says."""
    args_file = tmp_path / "args"
    binary = _fake_chromium(tmp_path, (
        f'printf "%s\\n" "$@" > {args_file}\n'
        'for a in "$@"; do case "$a" in --print-to-pdf=*) printf "%%PDF-1.4 x" > "${a#*=}";; '
        "esac; done\n"
        "echo '[1:1:x:ERROR:dbus/bus.cc:405] Failed to connect to the bus' >&2"))
    pdf = tmp_path / "out" / "r.pdf"
    pdf.parent.mkdir()
    for euid, sandbox, expect_no_sandbox in [(1000, None, False), (0, None, True),
                                             (1000, False, True), (0, True, False)]:
        monkeypatch.setattr("os.geteuid", lambda euid=euid: euid)
        html_to_pdf(html_file, pdf, binary=binary, sandbox=sandbox)
        args = args_file.read_text(encoding="utf-8").splitlines()
        assert ("--no-sandbox" in args) == expect_no_sandbox, (euid, sandbox, args)
        assert pdf.read_bytes().startswith(b"%PDF-")
        assert sorted(p.name for p in pdf.parent.iterdir()) == ["r.pdf"], "partial file left"
    assert {"--headless", "--disable-gpu", "--no-pdf-header-footer", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-extensions"} <= set(args)
    assert args[-1] == html_file.resolve().as_uri()
    (profile,) = [a.partition("=")[2] for a in args if a.startswith("--user-data-dir=")]
    assert not Path(profile).exists(), "the throwaway profile was not removed"
    with pytest.raises(ReportError, match="no directory"):
        html_to_pdf(html_file, tmp_path / "missing" / "r.pdf", binary=binary)


def test_last_meaningful_line() -> None:
    assert last_meaningful_line("") == ""
    assert last_meaningful_line("a\n\n[1:1:x:INFO:y.cc(1)] info\n") == "a"
    assert last_meaningful_line("[1:1:x:FATAL:y.cc(1)] dead\nplain\n") == "dead"
    dbus = "[4:5:1202/014634.8:ERROR:dbus/bus.cc:405] Failed to connect to the bus: ..."
    sandbox = "[4:4:1202/014634.9:FATAL:zygote_host_impl_linux.cc(128)] No usable sandbox!"
    assert last_meaningful_line(f"{sandbox}\n{dbus}\n") == "No usable sandbox!"
    assert last_meaningful_line(f"[1:1:x:ERROR:pdf.cc(3)] cannot print\n{dbus}\n") == (
        "cannot print")
    assert len(last_meaningful_line("x" * 1000)) <= 300

