"""The HTML report, end to end: a generated warehouse built by the project's own commands, the report written from
it, checked as a file (self-contained, the right figures and charts) and in a real headless browser (Chromium:
the screenshot is not blank and shows the segment colours; the rendered DOM holds the figures).

Chromium missing: the browser test skips, or fails when ``INSIDERS_REQUIRE_BROWSER=1`` (CI sets it).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from insiders import report
from insiders.report import ReportResult, segment_colour, write_report
from insiders.warehouse import connect

pytestmark = pytest.mark.slow

CHART_IDS = {"chart-sizes", "chart-revenue-share", "chart-space", "chart-monthly", "chart-runs"}
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
WINDOW = (1280, 4000)


@dataclass
class Built:
    folder: Path
    report: Path
    result: ReportResult


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """A small real warehouse (400 customers, 8 months), loaded, scored and built by `insiders run`, and its report.

    The environment points the warehouse, the pin and the artifact store into a temporary folder for the whole
    module (the CLI runs in a subprocess that inherits it).
    """
    folder = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INSIDERS_TARGET", "local")
        mp.setenv("INSIDERS_DUCKDB_PATH", str(folder / "warehouse.duckdb"))
        mp.setenv("INSIDERS_PIN_FILE", str(folder / "pinned_model.yml"))
        mp.setenv("INSIDERS_ARTIFACT_URI", str(folder / "artifacts"))
        for name in ("INSIDERS_MODEL_VERSION", "INSIDERS_MODEL_SHA256", "INSIDERS_DUCKDB_SCHEMA"):
            mp.delenv(name, raising=False)
        sample = folder / "sample.csv.gz"
        run_cli("generate", "--out", str(sample), "--customers", "400", "--months", "8", "--seed", "5", "-q")
        run_cli("run", "--source", str(sample), "--train-if-unpinned")
        out = folder / "report.html"
        with connect("local") as wh:
            result = write_report(wh, out)
        yield Built(folder=folder, report=out, result=result)


def _warehouse_facts(target: str = "local") -> dict:
    """The figures the report must state, read here from the marts on their own."""
    with connect(target) as wh:
        schema = f"{wh.target.schema}_marts"
        cols = [
            "insiders",
            "customers",
            "insiders_share",
            "insiders_revenue_share",
            "insiders_revenue",
            "revenue",
            "mean_gross_revenue",
            "model_version",
            "run_id",
            "scored_at",
            "entered_since_previous_run",
        ]
        row = wh.query(f"select {', '.join(cols)} from {schema}.insiders_summary")[0]
        facts = dict(zip(cols, row, strict=True))
        facts["segments"] = wh.query(f"select segment_rank, segment_name from {schema}.dim_segments order by 1")
        facts["first_ids"] = [r[0] for r in wh.query(f"select customer_id from {schema}.insiders order by 1 limit 50")]
        facts["months"] = wh.query(
            f"select count(distinct revenue_month), min(revenue_month), max(revenue_month) "
            f"from {schema}.segment_monthly_revenue"
        )[0]
        facts["scored"] = wh.query(f"select count(*) from {wh.target.schema}.customer_segments")[0][0]
    return facts


def _figures(facts: dict) -> list[str]:
    """The key figures as the report writes them: counts with thousands separators, shares with one decimal, money
    with two."""
    return [
        f"{int(facts['insiders']):,}",
        f"{int(facts['customers']):,}",
        f"{float(facts['insiders_share']):.1%}",
        f"{float(facts['insiders_revenue_share']):.1%}",
        f"{float(facts['insiders_revenue']):,.2f}",
        f"{float(facts['revenue']):,.2f}",
        f"{float(facts['mean_gross_revenue']):,.2f}",
        str(facts["model_version"]),
        str(facts["run_id"]),
        facts["scored_at"].strftime("%Y-%m-%d %H:%M:%S") + " UTC",
    ]


def _svgs(page: str) -> dict[str, ET.Element]:
    """Every inline SVG of the page, parsed as XML (they must be well-formed), by id."""
    found = {}
    for text in re.findall(r"<svg\b.*?</svg>", page, flags=re.DOTALL):
        element = ET.fromstring(text)
        found[element.get("id")] = element
    return found


# ------------------------------------------------------------------------------------------------------ the file


def test_report_is_self_contained_and_answers_the_questions(built: Built) -> None:
    page = built.report.read_text(encoding="utf-8")
    facts = _warehouse_facts()

    # Self-contained: nothing to fetch, nothing to run.
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, flags=re.IGNORECASE)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower() and "@import" not in page and "url(" not in page
    assert '<meta charset="utf-8">' in page and '<html lang="en">' in page

    # The answers, with the figures read independently from the marts.
    text = html.unescape(page)
    for figure in _figures(facts):
        assert figure in text, figure
    words = " ".join(re.sub(r"<[^>]+>", " ", text).split())  # the visible text, tags and line breaks removed
    assert facts["insiders"] > 0
    assert f"How many? {int(facts['insiders']):,} of the {int(facts['customers']):,} segmented customers" in words
    assert f"Insiders bring {float(facts['insiders_revenue_share']):.1%} of revenue" in words
    assert "main_marts.insiders" in words  # where the whole list is
    assert ", ".join(str(i) for i in facts["first_ids"]) in words
    assert f"{int(facts['entered_since_previous_run']):,} customers entered" in words
    # The header names the target (never a password: the DuckDB target has none to show).
    assert "Warehouse target 'local' (DuckDB file" in words

    r = built.result
    assert (r.insiders, r.customers, r.run_id, r.model_version) == (
        int(facts["insiders"]),
        int(facts["customers"]),
        str(facts["run_id"]),
        str(facts["model_version"]),
    )
    assert r.charts == len(CHART_IDS) and r.notes == () and r.size_bytes == len(page.encode("utf-8"))


def test_report_has_the_charts(built: Built) -> None:
    page = built.report.read_text(encoding="utf-8")
    facts = _warehouse_facts()
    svgs = _svgs(page)
    assert set(svgs) == CHART_IDS
    for chart_id, svg in svgs.items():
        # Accessible images: a role, a title and a description that label them.
        assert svg.get("role") == "img"
        assert svg.get("aria-labelledby") == f"{chart_id}-title {chart_id}-desc"
        assert svg.find("title").text and svg.find("desc").text

    ranks = [int(r) for r, _ in facts["segments"]]
    names = [str(n) for _, n in facts["segments"]]
    colours = [segment_colour(r) for r in ranks]
    # Bar charts: one bar per segment, in rank order, in the segment's colour.
    for chart_id in ("chart-sizes", "chart-revenue-share"):
        bars = svgs[chart_id].findall(".//rect[@class='bar']")
        assert [b.get("fill") for b in bars] == colours
        assert [t.text for t in svgs[chart_id].findall(".//text[@class='label']")] == names

    # The 2-D picture: every scored customer is a dot (400 < 5,000: no sampling), legend = the segments.
    space = svgs["chart-space"]
    circles = space.findall(".//circle")
    assert len(circles) > 100
    assert len(circles) == built.result.scatter_points == min(facts["scored"], 5000)
    assert [t.text for t in space.findall(".//text[@class='legend-name']")] == names
    groups = space.findall(".//g[@class='points']")
    assert {g.get("fill") for g in groups} <= set(colours)
    assert groups[-1].get("data-segment-rank") == "1"  # Insiders drawn on top

    # Monthly revenue: a labelled bar stack for every month from the first to the last of the mart.
    _, first, last = facts["months"]
    span = (last.year - first.year) * 12 + last.month - first.month + 1
    month_names = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
    ticks = [t.text for t in svgs["chart-monthly"].findall("text[@class='tick']") if t.text in month_names]
    assert len(ticks) == span
    stacked = svgs["chart-monthly"].findall("rect")
    assert len(stacked) >= span
    assert segment_colour(1) in {r.get("fill") for r in stacked}

    # Entered / left per run: one run so far, every Insider entered.
    runs = svgs["chart-runs"]
    assert [t.text for t in runs.findall("text[@class='tick']") if t.text.startswith("#")] == ["#1"]


def test_report_is_deterministic(built: Built, tmp_path: Path) -> None:
    again = tmp_path / "again.html"
    with connect("local") as wh:
        write_report(wh, again)
    assert again.read_bytes() == built.report.read_bytes()


def test_report_without_a_model_says_why(built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDERS_PIN_FILE", str(tmp_path / "nothing_pinned.yml"))
    out = tmp_path / "no_model.html"
    with connect("local") as wh:
        result = write_report(wh, out)
    page = out.read_text(encoding="utf-8")
    assert set(_svgs(page)) == CHART_IDS - {"chart-space"}
    assert result.charts == len(CHART_IDS) - 1 and result.scatter_points == 0
    assert "is not shown: no model could be loaded" in page and "no model is pinned" in page
    assert result.notes and "no model is pinned" in result.notes[0]
    # The rest of the report is intact.
    facts = _warehouse_facts()
    assert f"{float(facts['insiders_revenue_share']):.1%}" in page


def test_report_truncates_lists_and_samples_the_picture(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long lists are cut with a count of the rest; the picture draws a fixed sample when there are many customers."""
    monkeypatch.setattr(report.writer, "FIRST_INSIDERS", 3)
    monkeypatch.setattr(report.sections, "CHANGES_LISTED", 2)
    monkeypatch.setattr(report.writer, "MAX_SCATTER_POINTS", 150)
    facts = _warehouse_facts()
    insiders, entered = int(facts["insiders"]), int(facts["entered_since_previous_run"])
    assert insiders > 3 and entered > 2

    pages = []
    for name in ("a.html", "b.html"):
        with connect("local") as wh:
            result = write_report(wh, tmp_path / name)
        pages.append((tmp_path / name).read_text(encoding="utf-8"))
    assert pages[0] == pages[1]  # the sample is the same every time
    words = " ".join(re.sub(r"<[^>]+>", " ", html.unescape(pages[0])).split())
    first = ", ".join(str(i) for i in facts["first_ids"][:3])
    assert f"The first 3 by customer id: {first} … and {insiders - 3:,} more" in words
    assert f"Entered the Insiders in run #1: {entered:,} customers (the first 2 by customer id)" in words
    assert f"… and {entered - 2:,} more." in words
    circles = _svgs(pages[0])["chart-space"].findall(".//circle")
    assert len(circles) == result.scatter_points == 150
    assert f"a sample of 150 of the {int(facts['scored']):,} customers" in words


@pytest.mark.postgres
def test_report_on_postgres(built: Built, pg_database: str, tmp_path: Path) -> None:
    """The same report from PostgreSQL (production): the pinned model of the DuckDB run scores the same file."""
    run_cli("run", "--target", "postgres", "--source", str(built.folder / "sample.csv.gz"))
    out = tmp_path / "postgres.html"
    with connect("postgres") as wh:
        result = write_report(wh, out)
    page = out.read_text(encoding="utf-8")
    facts = _warehouse_facts("postgres")
    text = html.unescape(page)
    for figure in _figures(facts):
        assert figure in text, figure
    assert f"{wh.target.schema}_marts.insiders" in text
    assert set(_svgs(page)) == CHART_IDS and result.notes == ()
    assert result.scatter_points == int(facts["scored"]) == built.result.scatter_points
    # Same data, same model: the same answers, to the figure, as on DuckDB.
    duck = _warehouse_facts("local")
    assert facts["model_version"] == duck["model_version"]
    assert _figures(facts)[:7] == _figures(duck)[:7]


def test_report_and_answers_show_a_feature_they_do_not_know(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A feature added to customer_features reaches the marts as a column the report has no name for: the report
    and the answers show it under its column name (Insiders against everyone), and do not break."""
    from insiders.answers import business_answers

    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(built.folder / "warehouse.duckdb", copy)
    monkeypatch.setenv("INSIDERS_DUCKDB_PATH", str(copy))
    with connect("local") as wh:
        for sql in (
            "alter table main_marts.dim_customers add column loyalty_points double precision",
            "update main_marts.dim_customers set loyalty_points = case when is_insider then 40 else 4 end",
            "alter table main_marts.segment_profiles add column mean_loyalty_points double precision",
            "update main_marts.segment_profiles set mean_loyalty_points = case when is_insider then 40 else 4 end",
        ):
            wh.execute(sql)
        customers, insiders = wh.query(
            "select count(*), sum(case when is_insider then 1 else 0 end) "
            "from main_marts.dim_customers where segment_rank is not null"
        )[0]
        write_report(wh, tmp_path / "added.html")
        answers = business_answers(wh)
    everyone = (40 * insiders + 4 * (customers - insiders)) / customers
    page = html.unescape((tmp_path / "added.html").read_text(encoding="utf-8"))
    assert '<th scope="col" class="num">loyalty_points</th>' in page
    words = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert f"loyalty_points 40.00 {everyone:.2f}" in words, "the trait table compares the Insiders with everyone"
    assert f"other features: loyalty_points 40.00 vs {everyone:.2f}." in answers


def test_insiders_buy_more_often_than_everyone_on_generated_data(built: Built) -> None:
    """Invoices per month and days between purchases, not the study's per-day frequency, characterise the Insiders."""
    from insiders.answers import business_answers

    with connect("local") as wh:
        ((insiders, insiders_gap),) = wh.query(
            "select mean_invoices_per_month, mean_days_between_purchases from main_marts.insiders_summary"
        )
        ((everyone, everyone_gap),) = wh.query(
            "select avg(invoices_per_month), avg(days_between_purchases) from main_marts.dim_customers "
            "where segment_rank is not null"
        )
        answers = business_answers(wh)
    assert insiders > everyone > 0 and 0 < insiders_gap < everyone_gap
    phrase = f"buy {insiders:.2f} times a month (everyone: {everyone:.2f})"
    page = html.unescape(built.report.read_text(encoding="utf-8"))
    words = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert phrase in words and phrase in answers
    assert f"come back every {insiders_gap:.1f} days (everyone: {everyone_gap:.1f})" in answers
    for text in (words, answers):
        assert "invoices per day" not in text.lower() and "invoices/day" not in text


def test_a_trait_characterises_only_when_it_distinguishes() -> None:
    """A mean within 25 % of everyone's (either way) is listed as not distinctive, not as a characteristic."""
    everyone = {"mean_gross_revenue": 100.0, "mean_invoices_per_month": 1.0, "mean_avg_basket_size": 10.0}
    group = {"mean_gross_revenue": 125.0, "mean_invoices_per_month": 0.8, "mean_avg_basket_size": 11.0}
    shown, not_shown = report.characterise(group, everyone)
    assert shown == [
        f"spend {report.fmt_money(125.0)} (everyone: {report.fmt_money(100.0)})",
        "buy 0.80 times a month (everyone: 1.00)",
    ]
    assert not_shown == ["basket size (units per invoice)"]
    assert not report.distinctive(124.9, 100.0) and not report.distinctive(80.1, 100.0)
    assert not report.distinctive(None, 100.0) and not report.distinctive(5.0, 0.0)


def test_money_is_shown_with_its_currency(built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GBP (the data set's) by default, in the report, the answers and the segment descriptions of the marts;
    --currency or INSIDERS_CURRENCY choose another; a value that is not an ISO 4217 code is refused."""
    monkeypatch.delenv("INSIDERS_CURRENCY", raising=False)
    facts = _warehouse_facts()
    revenue, insiders_revenue = float(facts["revenue"]), float(facts["insiders_revenue"])
    page = html.unescape(built.report.read_text(encoding="utf-8"))
    assert f"£{insiders_revenue:,.2f} of £{revenue:,.2f}" in page
    assert f"£{float(facts['mean_gross_revenue']):,.2f}" in page and "in GBP" in page
    assert "On average £" in page, "the segment descriptions (dim_segments) carry the currency too"
    answers = run_cli("answers").stdout
    assert f"(£{insiders_revenue:,.2f} of £{revenue:,.2f})" in answers

    euros = run_cli("answers", "--currency", "eur").stdout
    assert f"(€{insiders_revenue:,.2f} of €{revenue:,.2f})" in euros and "£" not in euros
    monkeypatch.setenv("INSIDERS_CURRENCY", "CHF")
    out = tmp_path / "chf.html"
    run_cli("report", "--out", str(out))
    assert f"CHF {insiders_revenue:,.2f} of CHF {revenue:,.2f}" in html.unescape(out.read_text(encoding="utf-8"))

    refused = run_cli("report", "--out", str(tmp_path / "never.html"), "--currency", "pounds", check=False)
    assert refused.returncode == 4 and "ISO 4217" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "never.html").exists()
    assert report.fmt_money(-12.5, "USD") == "-$12.50" and report.fmt_money(None) == "–"


def test_report_escapes_text(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "escaped.html"
    title = 'Insiders <b>& "friends"</b>'
    with connect("local") as wh:
        write_report(wh, out, title=title)
    page = out.read_text(encoding="utf-8")
    assert "<b>" not in page
    # The title is text wherever it appears: in the head and as the heading (escaped, read back as written).
    head, body = page.split("</head>")
    assert html.unescape(re.search(r"<title>([^<]*)</title>", head).group(1)) == title
    assert html.unescape(re.search(r"<h1>([^<]*)</h1>", body).group(1)) == title


# --------------------------------------------------------------------------------------------------- the browser


def _required(flag: str) -> bool:
    return os.environ.get(flag, "").strip().lower() in {"1", "true", "yes"}


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Chromium is not installed (apt-get install chromium)"
        if _required("INSIDERS_REQUIRE_BROWSER"):
            pytest.fail(f"{message}; INSIDERS_REQUIRE_BROWSER=1 makes this a failure")
        pytest.skip(message)
    return path


def _browser(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [chromium, *BROWSER_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, f"chromium exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def read_png(data: bytes) -> np.ndarray:
    """Decode an 8-bit, non-interlaced RGB or RGBA PNG into a (height, width, channels) array.

    The five PNG row filters predict a byte from its left, upper and upper-left neighbours; decoding walks the
    image by anti-diagonals (x + y constant), whose pixels depend only on earlier diagonals, so each step is one
    vectorised operation however the encoder chose its filters.
    """
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert header is not None, "PNG without IHDR"
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, f"unsupported PNG {header}"
    channels = 3 if colour_type == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(height, 1 + width * channels)
    kinds = raw[:, 0].astype(np.int16)
    filtered = raw[:, 1:].reshape(height, width, channels).astype(np.int16)
    out = np.zeros((height + 1, width + 1, channels), dtype=np.int16)  # a zero row above and column to the left
    for d in range(height + width - 1):
        ys = np.arange(max(0, d - width + 1), min(height, d + 1))
        xs = d - ys
        a, b, c = out[ys + 1, xs], out[ys, xs + 1], out[ys, xs]
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        k = kinds[ys][:, None]
        predicted = np.select([k == 0, k == 1, k == 2, k == 3], [0, a, b, (a + b) // 2], paeth)
        out[ys + 1, xs + 1] = (filtered[ys, xs] + predicted) % 256
    return out[1:, 1:].astype(np.uint8)


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def test_report_in_a_headless_browser(built: Built, tmp_path: Path) -> None:
    chromium = _chromium()
    url = built.report.resolve().as_uri()
    shot = tmp_path / "report.png"
    _browser(chromium, tmp_path / "profile", f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", url)
    assert shot.is_file()

    image = read_png(shot.read_bytes())
    assert image.shape[:2] == (WINDOW[1], WINDOW[0])
    pixels = image[:, :, :3].reshape(-1, 3)
    packed = (pixels[:, 0].astype(np.int64) << 16) | (pixels[:, 1].astype(np.int64) << 8) | pixels[:, 2]
    values, counts = np.unique(packed, return_counts=True)
    assert len(values) > 50, "the screenshot has almost no colours: blank page?"
    white = counts[values == 0xFFFFFF].sum()
    assert white < 0.95 * len(packed), "the screenshot is (almost) all white"
    # Every segment's colour is painted (bars, legend swatches, dots): the charts were drawn.
    seen = dict(zip(values.tolist(), counts.tolist(), strict=True))
    facts = _warehouse_facts()
    for rank, name in facts["segments"]:
        r, g, b = _rgb(segment_colour(rank))
        assert seen.get((r << 16) | (g << 8) | b, 0) >= 200, f"colour of segment {name} not on the screenshot"

    dom = _browser(chromium, tmp_path / "profile-dom", "--dump-dom", url).stdout
    text = html.unescape(dom)
    for figure in _figures(facts):
        assert figure in text, figure
    for chart_id in CHART_IDS:
        assert f'id="{chart_id}"' in dom
