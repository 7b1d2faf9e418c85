"""``insiders load``: every layout, idempotency, atomicity and clear errors, on DuckDB and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from pathlib import Path

import pytest
from conftest import query, run_cli, run_dbt

from insiders.errors import InputFileError
from insiders.loader import load_file
from insiders.warehouse import Target, connect, load_target

KAGGLE_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
KAGGLE_LINES = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    '536365,71053,"METAL LANTERN, WHITE",6,12/1/2010 8:26,3.39,17850,United Kingdom',
    "C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom",
    "536414,22139,,56,12/1/2010 11:52,0,,United Kingdom",
    "539492,gift_0001_40,Dotcomgiftshop Gift Voucher £40.00,1,12/20/2010 10:14,34.04,,United Kingdom",
    "581587,22138,BAKING SET 9 PIECE RETROSPOT ,3,12/9/2011 12:50,4.95,12680,France",
]


def write_csv(path: Path, lines: list[str], header: str = KAGGLE_HEADER, encoding: str = "latin-1") -> Path:
    """Write a file the way the Kaggle file is written: CRLF line ends, the given encoding."""
    data = ("\r\n".join([header, *lines]) + "\r\n").encode(encoding)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return path


def counts(target: Target) -> tuple[int, int, int]:
    """Rows in transactions, load_log and rejected_lines (0 when the tables do not exist yet)."""
    with connect(target) as wh:
        if not wh.relation_exists("raw", "load_log"):
            return (0, 0, 0)
        return tuple(  # type: ignore[return-value]
            wh.query(f"select count(*) from raw.{t}")[0][0] for t in ("transactions", "load_log", "rejected_lines")
        )


def load(target: Target, path: Path, **kwargs):
    with connect(target) as wh:
        return load_file(wh, path, **kwargs)


def test_kaggle_csv_values_are_typed_exactly(target: Target, tmp_path: Path) -> None:
    result = load(target, write_csv(tmp_path / "data.csv", KAGGLE_LINES))
    assert (result.layout, result.lines_read, result.lines_loaded, result.lines_rejected) == ("online_retail", 6, 6, 0)
    rows = query(
        target,
        "select line_number, invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id,"
        " country from raw.transactions order by line_number",
    )
    first = rows[0]
    assert first[:5] == (2, "536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6)
    assert str(first[5]) == "2010-12-01 08:26:00"
    assert str(first[6]) == "2.5500" and first[7] == 17850 and first[8] == "United Kingdom"
    assert rows[1][3] == "METAL LANTERN, WHITE"  # quoted field with a comma
    assert rows[2][1] == "C536379" and rows[2][4] == -1
    assert rows[3][3] is None and rows[3][7] is None  # empty description and anonymous customer are NULL
    assert rows[4][3] == "Dotcomgiftshop Gift Voucher £40.00"  # latin-1 decoded
    assert rows[5][3] == "BAKING SET 9 PIECE RETROSPOT"  # surrounding blanks trimmed
    log = query(target, "select file_name, layout, lines_read, lines_loaded, lines_rejected from raw.load_log")
    assert log == [("data.csv", "online_retail", 6, 6, 0)]


def test_gzip_and_plain_copies_are_the_same_content(target: Target, tmp_path: Path) -> None:
    gz = load(target, write_csv(tmp_path / "data.csv.gz", KAGGLE_LINES))
    assert gz.lines_loaded == 6 and not gz.already_loaded
    plain = load(target, write_csv(tmp_path / "data.csv", KAGGLE_LINES))
    assert plain.already_loaded and plain.load_id == gz.load_id
    assert counts(target) == (6, 1, 0)


def test_loading_twice_adds_nothing_and_next_month_appends(target: Target, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "dec.csv", KAGGLE_LINES)
    run_cli("load", str(path), "--target", target.name)
    second = run_cli("load", str(path), "--target", target.name)
    assert "already loaded" in second.stdout
    assert counts(target) == (6, 1, 0)
    nxt = write_csv(tmp_path / "jan.csv", ["540001,22138,BAKING SET,2,1/14/2011 10:00,4.95,12680,France"])
    run_cli("load", str(nxt), "--target", target.name)
    assert counts(target) == (7, 2, 0)


def test_online_retail_ii_layout(target: Target, tmp_path: Path) -> None:
    header = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country"
    lines = [
        "489434,85048,15CM CHRISTMAS GLASS BALL 20 LIGHTS,12,2009-12-01 07:45:00,6.95,13085.0,United Kingdom",
        "C489449,22087,PAPER BUNTING WHITE LACE,-12,2009-12-01 10:33:00,2.95,16321.0,Australia",
        "489464,21733,85123a mixed,-96,2009-12-01 10:52:00,0.0,,United Kingdom",
    ]
    result = load(target, write_csv(tmp_path / "online_retail_II.csv", lines, header=header, encoding="utf-8"))
    assert (result.layout, result.lines_loaded) == ("online_retail_ii", 3)
    rows = query(target, "select invoice_date, customer_id, quantity from raw.transactions order by line_number")
    assert [(str(r[0]), r[1], r[2]) for r in rows] == [
        ("2009-12-01 07:45:00", 13085, 12),
        ("2009-12-01 10:33:00", 16321, -12),
        ("2009-12-01 10:52:00", None, -96),
    ]


def test_redated_layout_with_trailing_empty_column(target: Target, tmp_path: Path) -> None:
    lines = [
        "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,29-Nov-16,2.55,17850,United Kingdom,",
        "536366,22633,HAND WARMER UNION JACK,6,1-Dec-16,1.85,17850,United Kingdom,",
    ]
    result = load(target, write_csv(tmp_path / "redated.csv", lines, header=KAGGLE_HEADER + ","))
    assert (result.layout, result.lines_loaded, result.lines_rejected) == ("online_retail_redated", 2, 0)
    dates = [str(r[0]) for r in query(target, "select invoice_date from raw.transactions order by line_number")]
    assert dates == ["2016-11-29 00:00:00", "2016-12-01 00:00:00"]


def test_excel_workbook(target: Target, tmp_path: Path) -> None:
    import datetime as dt

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(KAGGLE_HEADER.split(","))
    sheet.append(
        [
            "536365",
            "85123A",
            "WHITE HANGING HEART T-LIGHT HOLDER",
            6,
            dt.datetime(2010, 12, 1, 8, 26),
            2.55,
            17850.0,
            "United Kingdom",
        ]
    )
    sheet.append(
        [536366, "22633", "HAND WARMER UNION JACK", 6, dt.datetime(2010, 12, 1, 8, 28), 1.85, None, "United Kingdom"]
    )
    path = tmp_path / "Online Retail.xlsx"
    book.save(path)
    result = load(target, path)
    assert (result.layout, result.lines_loaded, result.lines_rejected) == ("online_retail_xlsx", 2, 0)
    rows = query(target, "select invoice_no, invoice_date, unit_price, customer_id from raw.transactions order by 1")
    assert [(r[0], str(r[1]), str(r[2]), r[3]) for r in rows] == [
        ("536365", "2010-12-01 08:26:00", "2.5500", 17850),
        ("536366", "2010-12-01 08:28:00", "1.8500", None),
    ]


def test_bad_lines_are_rejected_with_line_number_and_reason(target: Target, tmp_path: Path) -> None:
    lines = [
        *KAGGLE_LINES,
        "536367,84879,ASSORTED BIRD ORNAMENT,six,12/1/2010 8:34,1.69,13047,United Kingdom",
        "536367,22745,POPPY'S PLAYHOUSE,6,2010-13-45,2.1,13047,United Kingdom",
        "536367,22748,POPPY'S PLAYHOUSE KITCHEN,6,12/1/2010 8:34,2.1,13047",
        "536367,22749,FELTCRAFT,8,12/1/2010 8:34,£3.75,13047,United Kingdom",
    ]
    proc = run_cli(
        "load", str(write_csv(tmp_path / "dirty.csv", lines)), "--target", target.name, "--max-rejected-share", "0.5"
    )
    assert "6 loaded, 4 rejected" in proc.stdout
    rejected = query(target, "select line_number, reason from raw.rejected_lines order by line_number")
    assert [r[0] for r in rejected] == [8, 9, 10, 11]
    assert "Quantity 'six'" in rejected[0][1]
    assert "InvoiceDate '2010-13-45'" in rejected[1][1]
    assert rejected[2][1] == "expected 8 fields, found 7"
    assert "UnitPrice '£3.75'" in rejected[3][1]
    assert query(target, "select lines_read, lines_loaded, lines_rejected from raw.load_log") == [(10, 6, 4)]


def test_too_many_bad_lines_refuse_the_whole_file(target: Target, tmp_path: Path) -> None:
    lines = KAGGLE_LINES + ["536367,84879,X,six,12/1/2010 8:34,1.69,13047,United Kingdom"] * 3
    proc = run_cli("load", str(write_csv(tmp_path / "dirty.csv", lines)), "--target", target.name, check=False)
    assert proc.returncode != 0
    assert "3 of 9 lines cannot be read" in proc.stderr and "Quantity 'six'" in proc.stderr
    assert counts(target) == (0, 0, 0)


def _load_good_then(target: Target, tmp_path: Path) -> None:
    load(target, write_csv(tmp_path / "good.csv", KAGGLE_LINES))
    assert counts(target) == (6, 1, 0)


def test_truncated_gzip_is_refused_and_changes_nothing(target: Target, tmp_path: Path) -> None:
    _load_good_then(target, tmp_path)
    full = write_csv(tmp_path / "next.csv.gz", [line.replace("536", "546") for line in KAGGLE_LINES] * 200)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    proc = run_cli("load", str(cut), "--target", target.name, check=False)
    assert proc.returncode == 4
    assert "corrupt or truncated" in proc.stderr and "Traceback" not in proc.stderr
    assert counts(target) == (6, 1, 0)


def test_truncated_plain_file_is_refused_and_changes_nothing(target: Target, tmp_path: Path) -> None:
    _load_good_then(target, tmp_path)
    data = write_csv(tmp_path / "next.csv", [line.replace("536", "546") for line in KAGGLE_LINES]).read_bytes()
    cut = tmp_path / "cut.csv"
    cut.write_bytes(data[: data.rindex(b"12/9/2011")])
    with pytest.raises(InputFileError, match="ends in the middle of line 7"):
        load(target, cut)
    assert counts(target) == (6, 1, 0)


def test_wrong_header_names_what_was_expected(target: Target, tmp_path: Path) -> None:
    _load_good_then(target, tmp_path)
    path = write_csv(tmp_path / "orders.csv", ["1,2,3"], header="order_id,sku,amount")
    proc = run_cli("load", str(path), "--target", target.name, check=False)
    assert proc.returncode == 4
    assert "unrecognised header 'order_id,sku,amount'" in proc.stderr
    assert "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country" in proc.stderr
    assert counts(target) == (6, 1, 0)


def test_wrong_encoding_is_refused_and_changes_nothing(target: Target, tmp_path: Path) -> None:
    _load_good_then(target, tmp_path)
    utf16 = write_csv(tmp_path / "utf16.csv", KAGGLE_LINES, encoding="utf-16")
    proc = run_cli("load", str(utf16), "--target", target.name, check=False)
    assert proc.returncode == 4 and "UTF-16" in proc.stderr
    latin = write_csv(tmp_path / "latin.csv", [line.replace("536", "556") for line in KAGGLE_LINES])
    proc = run_cli("load", str(latin), "--target", target.name, "--encoding", "utf-8", check=False)
    assert proc.returncode == 4 and "not valid UTF-8" in proc.stderr
    assert counts(target) == (6, 1, 0)


def test_failure_while_writing_rolls_everything_back(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after raw lines were written (here: while writing the load log) leaves nothing behind."""
    _load_good_then(target, tmp_path)
    from insiders.warehouse import Warehouse

    original = Warehouse.append_arrow

    def failing(self, table, data, casts=None):
        if table.endswith("load_log"):
            raise RuntimeError("injected failure")
        return original(self, table, data, casts)

    monkeypatch.setattr(Warehouse, "append_arrow", failing)
    with pytest.raises(RuntimeError, match="injected"):
        load(target, write_csv(tmp_path / "next.csv", [line.replace("536", "566") for line in KAGGLE_LINES]))
    assert counts(target) == (6, 1, 0)


def test_missing_file_and_unreachable_warehouse_are_clear_errors(tmp_path: Path, monkeypatch) -> None:
    proc = run_cli("load", str(tmp_path / "nope.csv"), check=False)
    assert proc.returncode == 4 and "no such file" in proc.stderr
    monkeypatch.setenv("INSIDERS_PG_PORT", "1")
    proc = run_cli("load", str(write_csv(tmp_path / "a.csv", KAGGLE_LINES)), "--target", "postgres", check=False)
    assert proc.returncode == 5
    assert "cannot connect to target 'postgres'" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("load", str(tmp_path / "a.csv"), "--target", "snowflake", check=False)
    assert proc.returncode == 4 and "unknown target 'snowflake'" in proc.stderr


def test_large_file_is_read_in_batches_with_exact_line_numbers(target: Target, tmp_path: Path) -> None:
    """Bad lines spread over many reader blocks still get their exact line numbers."""
    good = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/13/2010 8:26,2.55,17850,United Kingdom"
    lines = [good] * 250_000
    for n in (10, 99_999, 180_001, 249_999):
        lines[n - 2] = "536365,85123A,BROKEN"  # line n of the file (header is line 1)
    result = load(target, write_csv(tmp_path / "big.csv", lines), max_rejected_share=0.01)
    assert (result.lines_read, result.lines_loaded, result.lines_rejected) == (250_000, 249_996, 4)
    assert [r[0] for r in query(target, "select line_number from raw.rejected_lines order by 1")] == [
        10,
        99_999,
        180_001,
        249_999,
    ]
    assert query(target, "select max(line_number), count(distinct line_number) from raw.transactions") == [
        (250_001, 249_996)
    ]


def test_implausible_dates_are_quarantined_with_the_reason(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line dated 2101 (or 1900) would move the reference day of every customer: it is rejected, not stored."""
    lines = [
        *KAGGLE_LINES,
        "536370,22728,ALARM CLOCK BAKELIKE PINK,24,12/10/2101 8:45,3.75,12583,France",
        "536371,22727,ALARM CLOCK BAKELIKE RED,24,1/5/1900 8:45,3.75,12583,France",
    ]
    proc = run_cli(
        "load", str(write_csv(tmp_path / "dates.csv", lines)), "--target", target.name, "--max-rejected-share", "0.5"
    )
    assert "6 loaded, 2 rejected" in proc.stdout
    rejected = query(target, "select line_number, reason from raw.rejected_lines order by line_number")
    assert [r[0] for r in rejected] == [8, 9]
    assert "InvoiceDate '12/10/2101 8:45' is outside the plausible window 2000-01-01 .. " in rejected[0][1]
    assert "InvoiceDate '1/5/1900 8:45' is outside the plausible window" in rejected[1][1]
    assert query(target, "select max(invoice_date) < current_timestamp from raw.transactions") == [(True,)]
    assert query(target, "select lines_read, lines_loaded, lines_rejected from raw.load_log") == [(8, 6, 2)]


def test_the_plausible_date_window_is_configurable(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSIDERS_EARLIEST_INVOICE_DATE", "2010-12-02")
    monkeypatch.setenv("INSIDERS_LATEST_INVOICE_DATE", "2011-12-09")
    result = load(target, write_csv(tmp_path / "data.csv", KAGGLE_LINES), max_rejected_share=0.9)
    # Lines of 2010-12-01 are before the window, the one of 2011-12-09 12:50 after it.
    assert (result.lines_loaded, result.lines_rejected) == (1, 5)
    assert query(target, "select invoice_date from raw.transactions") == [(dt.datetime(2010, 12, 20, 10, 14),)]
    monkeypatch.setenv("INSIDERS_EARLIEST_INVOICE_DATE", "2000-13-01")
    with pytest.raises(InputFileError, match="INSIDERS_EARLIEST_INVOICE_DATE='2000-13-01' is not an ISO date"):
        load(target, write_csv(tmp_path / "other.csv", KAGGLE_LINES[:1]))


@pytest.mark.slow  # 15-25 s: make test runs it, make test-fast leaves it out
def test_dbt_build_fails_on_an_implausible_reference_day(target: Target, tmp_path: Path) -> None:
    """Rows that bypass the loader (written by hand into the raw tables) still cannot poison the features."""
    load(target, write_csv(tmp_path / "data.csv", KAGGLE_LINES))
    with connect(target) as wh, wh.transaction():
        wh.execute(
            "insert into raw.transactions select load_id, 99, invoice_no, stock_code, description, quantity,"
            " timestamp '2101-12-10 08:45:00', unit_price, customer_id, country, loaded_at"
            " from raw.transactions where line_number = 2"
        )
        wh.execute("update raw.load_log set lines_read = lines_read + 1, lines_loaded = lines_loaded + 1")
    proc = run_dbt("build", "--selector", "features", target=target.name, check=False)
    assert proc.returncode != 0
    # The reference day and the line itself, and nothing else fails.
    assert "Failure in test assert_reference_day_is_plausible" in proc.stdout and "Got 2 results" in proc.stdout
    assert "ERROR=1 " in proc.stdout


def test_plain_file_cut_inside_its_last_field_is_refused(target: Target, tmp_path: Path) -> None:
    """A copy interrupted inside the last field still has every field ('Fra'): the missing line end shows it."""
    _load_good_then(target, tmp_path)
    data = write_csv(tmp_path / "next.csv", [line.replace("536", "546") for line in KAGGLE_LINES]).read_bytes()
    cut = tmp_path / "cut.csv"
    cut.write_bytes(data[: data.rindex(b"France") + len(b"Fra")])
    proc = run_cli("load", str(cut), "--target", target.name, check=False)
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert "ends in the middle of line 7 (no line ending after it: truncated?)" in proc.stderr
    assert counts(target) == (6, 1, 0)
    assert query(target, "select count(*) from raw.transactions where country = 'Fra'") == [(0,)]


UK_LINES = [  # a day-first export of 1-9 December 2010: every date also reads month first (as January ...)
    f"5363{day:02d},85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,{day:02d}/12/2010 08:26,2.55,17850,United Kingdom"
    for day in range(1, 10)
]


def test_dates_that_read_day_first_and_month_first_refuse_the_file(target: Target, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "uk.csv", UK_LINES * 400)
    proc = run_cli("load", str(path), "--target", target.name, check=False)
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert "every InvoiceDate reads both as %m/%d/%Y %H:%M and as %d/%m/%Y %H:%M" in proc.stderr
    assert "'01/12/2010 08:26' is 2010-01-12 or 2010-12-01" in proc.stderr
    assert "--date-format '%d/%m/%Y %H:%M'" in proc.stderr
    assert counts(target) == (0, 0, 0)
    proc = run_cli("load", str(path), "--target", target.name, "--date-format", "%d/%m/%Y %H:%M")
    assert "3,600 loaded, 0 rejected" in proc.stdout
    assert query(target, "select min(invoice_date), max(invoice_date) from raw.transactions") == [
        (dt.datetime(2010, 12, 1, 8, 26), dt.datetime(2010, 12, 9, 8, 26))
    ]


def test_a_day_first_date_late_in_the_file_shows_the_wrong_choice(target: Target, tmp_path: Path) -> None:
    """Every line counts, not only the first ones: a 13th day far down the file shows the day comes first.

    Without the check, that line alone would be rejected and 3,600 lines stored in January.
    """
    late = "581587,22138,BAKING SET 9 PIECE RETROSPOT,3,13/12/2010 12:50,4.95,12680,France"
    path = write_csv(tmp_path / "uk.csv", UK_LINES * 400 + [late])
    with pytest.raises(InputFileError, match="1 InvoiceDate values do not read as %m/%d/%Y %H:%M, but every one"):
        load(target, path)
    assert counts(target) == (0, 0, 0)
    result = load(target, path, date_format="%d/%m/%Y %H:%M")
    assert (result.lines_loaded, result.lines_rejected) == (3_601, 0)
    assert query(target, "select max(invoice_date) from raw.transactions") == [(dt.datetime(2010, 12, 13, 12, 50),)]


def test_a_date_format_that_matches_nothing_is_refused(target: Target, tmp_path: Path) -> None:
    proc = run_cli(
        "load",
        str(write_csv(tmp_path / "a.csv", KAGGLE_LINES)),
        "--target",
        target.name,
        "--date-format",
        "%Y.%m.%d",
        check=False,
    )
    assert proc.returncode == 4
    assert "InvoiceDate values like '12/1/2010 8:26' do not match --date-format '%Y.%m.%d'" in proc.stderr
    assert counts(target) == (0, 0, 0)


def _lines(first: int, count: int) -> list[str]:
    """``count`` distinct invoice lines (one invoice each), numbered from ``first``."""
    return [
        f"{540000 + n},22138,BAKING SET 9 PIECE RETROSPOT,{1 + n % 7},1/{13 + n % 15}/2011 10:{n % 60:02d},4.95,"
        f"{12680 + n % 50},France"
        for n in range(first, first + count)
    ]


@pytest.mark.slow  # 15-25 s: make test runs it, make test-fast leaves it out
def test_a_superset_delivery_stores_only_the_new_lines(target: Target, tmp_path: Path) -> None:
    first = _lines(0, 1_000)
    run_cli("load", str(write_csv(tmp_path / "jan-part.csv", first)), "--target", target.name)
    proc = run_cli(
        "load", str(write_csv(tmp_path / "jan-full.csv", first + _lines(1_000, 1_000))), "--target", target.name
    )
    assert "2,000 lines read, 1,000 loaded, 0 rejected, 1,000 skipped (already loaded from other files)" in proc.stdout
    assert counts(target) == (2_000, 2, 0)
    assert query(target, "select count(distinct invoice_no) from raw.transactions") == [(2_000,)]
    assert query(target, "select file_name, lines_read, lines_loaded, lines_skipped from raw.load_log order by 1") == [
        ("jan-full.csv", 2_000, 1_000, 1_000),
        ("jan-part.csv", 1_000, 1_000, 0),
    ]
    # The quality model counts them too, and the load log still adds up.
    run_dbt("build", "--selector", "features", target=target.name)
    with connect(target) as wh:
        rows = wh.query(
            f"select file_name, lines_skipped, stored_lines from {wh.target.schema}.quality_loads order by 1"
        )
    assert rows == [("jan-full.csv", 1_000, 1_000), ("jan-part.csv", 0, 1_000)]


def test_duplicates_inside_one_file_are_kept_and_counted_per_copy(target: Target, tmp_path: Path) -> None:
    line = _lines(0, 1)[0]
    load(target, write_csv(tmp_path / "a.csv", [line, line, *_lines(1, 3)]))
    assert counts(target) == (5, 1, 0)  # the same line twice in one file: both stored, as the file has them
    result = load(target, write_csv(tmp_path / "b.csv", [line, line, line, *_lines(4, 2)]))
    # Two copies were delivered before, the third is new; the two other lines are new too.
    assert (result.lines_read, result.lines_loaded, result.lines_skipped) == (5, 3, 2)
    assert query(target, "select count(*) from raw.transactions where invoice_no = '540000'") == [(3,)]


def _line(invoice: int, when: str) -> str:
    return f"{invoice},22138,BAKING SET 9 PIECE RETROSPOT,3,{when},4.95,12680,France"


#: Lines delivered before: three invoices of January.
EARLIER = [_line(540001, "1/13/2011 10:00"), _line(540002, "1/20/2011 10:00"), _line(540003, "1/25/2011 10:00")]
#: A later file: its first and its last line (by invoice time) were delivered before; one line is new; one has
#: an earlier invoice's number and everything else but its time, which is inside this file's window: it is new.
LATER = [
    _line(540001, "1/13/2011 10:00"),
    _line(540004, "1/15/2011 10:00"),
    _line(540003, "1/19/2011 10:00"),
    _line(540002, "1/20/2011 10:00"),
]


def test_lines_delivered_before_are_found_at_the_edges_of_the_new_file_s_time_window(
    target: Target, tmp_path: Path
) -> None:
    """Earlier lines are read from the new file's first to its last invoice time only (the time is in the key):
    a repeated line at either edge is still skipped, and a line differing only by its time is still new."""
    load(target, write_csv(tmp_path / "earlier.csv", EARLIER))
    result = load(target, write_csv(tmp_path / "later.csv", LATER))
    assert (result.lines_read, result.lines_loaded, result.lines_skipped) == (4, 2, 2)
    assert query(
        target,
        "select invoice_no, cast(invoice_date as date), count(*) from raw.transactions group by 1, 2 order by 1, 2",
    ) == [
        ("540001", dt.date(2011, 1, 13), 1),
        ("540002", dt.date(2011, 1, 20), 1),
        ("540003", dt.date(2011, 1, 19), 1),
        ("540003", dt.date(2011, 1, 25), 1),
        ("540004", dt.date(2011, 1, 15), 1),
    ]


def test_a_csv_and_an_excel_copy_of_the_same_data_load_once(target: Target, tmp_path: Path) -> None:
    import openpyxl

    lines = KAGGLE_LINES[:2] + KAGGLE_LINES[3:]  # every value an Excel copy keeps as it is
    first = load(target, write_csv(tmp_path / "dec.csv", lines))
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(KAGGLE_HEADER.split(","))
    for row in csv.reader(lines):
        sheet.append(row)
    path = tmp_path / "dec.xlsx"
    book.save(path)
    second = load(target, path)
    assert (first.lines_loaded, second.lines_read, second.lines_loaded, second.lines_skipped) == (5, 5, 0, 5)
    assert counts(target) == (5, 2, 0)


def test_a_load_log_created_before_skipped_lines_were_counted_gains_the_column(target: Target, tmp_path: Path) -> None:
    from dataclasses import replace

    from insiders import tables

    first_release = replace(tables.LOAD_LOG, columns=tables.LOAD_LOG.columns[:-1])
    assert tables.LOAD_LOG.columns[-1].name == "lines_skipped"
    with connect(target) as wh, wh.transaction():
        for statement in tables.raw_ddl("raw"):
            wh.execute(statement)
        wh.execute("drop table raw.load_log")
        wh.execute(first_release.ddl("raw"))
        wh.execute(
            "insert into raw.load_log values ('old', 'old.csv', 'x', 'online_retail', 1, 1, 0, timestamp '2011-01-01')"
        )
        columns = "select count(*) from information_schema.columns where table_name = 'load_log'"
        assert wh.query(columns) == [(8,)]  # the table as an older version created it
    load(target, write_csv(tmp_path / "data.csv", KAGGLE_LINES))
    assert query(target, "select load_id, lines_skipped from raw.load_log order by loaded_at") == [
        ("old", 0),
        (query(target, "select max(load_id) from raw.transactions")[0][0], 0),
    ]


def test_a_file_mixing_utf8_and_latin1_lines_is_refused_not_garbled(target: Target, tmp_path: Path) -> None:
    """Appending a UTF-8 export to a latin-1 one would store 'CafÃ©' silently."""
    latin = ("\r\n".join([KAGGLE_HEADER, *KAGGLE_LINES]) + "\r\n").encode("latin-1")
    utf8 = "".join(f"5401{n:02d},22139,CAFÉ SET £{n},1,12/13/2010 9:00,2.5,12680,France\r\n" for n in range(3)).encode(
        "utf-8"
    )
    path = tmp_path / "mixed.csv"
    path.write_bytes(latin + utf8)
    proc = run_cli("load", str(path), "--target", target.name, check=False)
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert "mixes encodings: 3 lines are UTF-8 (first: line 8) and 1 are not (first: line 6)" in proc.stderr
    assert "'540100,22139,CAFÃ\u0089 SET Â£0" in proc.stderr
    assert counts(target) == (0, 0, 0)
    # Forcing one encoding is the operator's decision, and loads.
    proc = run_cli("load", str(path), "--target", target.name, "--encoding", "latin-1")
    assert "9 loaded, 0 rejected" in proc.stdout


def test_unreadable_file_is_one_error_line(
    tmp_path: Path, duckdb_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Permissions cannot be taken away from root, so the refusal to open is injected."""
    from insiders import cli
    from insiders.loader import inspection

    path = write_csv(tmp_path / "locked.csv", KAGGLE_LINES)
    real_open = open

    def refusing_open(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(inspection, "open", refusing_open, raising=False)
    assert cli.main(["load", str(path), "--target", "local"]) == 4
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: {path}: cannot read the file (Permission denied)"]


def test_connection_lost_during_the_load_is_one_error_line(
    pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server ends the session mid-load: the rollback fails too, and the user gets one clear line."""
    from insiders import cli
    from insiders.warehouse import Warehouse

    _load_good_then(load_target("postgres"), tmp_path)
    original = Warehouse.append_arrow

    def dropped(self, table, data, casts=None):
        if table.endswith("transactions"):
            with self.conn.cursor() as cur:
                cur.execute("select pg_terminate_backend(pg_backend_pid())")
        return original(self, table, data, casts)

    monkeypatch.setattr(Warehouse, "append_arrow", dropped)
    path = write_csv(tmp_path / "next.csv", [line.replace("536", "576") for line in KAGGLE_LINES])
    assert cli.main(["load", str(path), "--target", "postgres"]) == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: next.csv: the warehouse failed during the load (")
    assert "nothing of the file was committed" in err[0]
    monkeypatch.setattr(Warehouse, "append_arrow", original)
    assert counts(load_target("postgres")) == (6, 1, 0)


@pytest.mark.parametrize("share", ["-1", "1.5", "nan", "lots"])
def test_a_rejected_share_outside_0_and_1_is_refused(tmp_path: Path, duckdb_file: Path, share: str) -> None:
    path = write_csv(tmp_path / "a.csv", KAGGLE_LINES)
    proc = run_cli("load", str(path), "--max-rejected-share", share, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"argument --max-rejected-share: must be a number between 0 and 1, got '{share}'" in proc.stderr
    with pytest.raises(InputFileError, match="must be between 0 and 1"), connect("local") as wh:
        load_file(wh, path, max_rejected_share=-1)


def test_cr_only_line_endings_get_their_own_message(target: Target, tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(("\r".join([KAGGLE_HEADER, *KAGGLE_LINES]) + "\r").encode("latin-1"))
    proc = run_cli("load", str(path), "--target", target.name, check=False)
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert "the lines end with a bare carriage return (CR, classic Mac line endings)" in proc.stderr
    assert "quoted field" not in proc.stderr and "truncated" not in proc.stderr
    assert counts(target) == (0, 0, 0)


@pytest.mark.parametrize("megabytes", [9, 20])
def test_a_field_over_8_mb_gets_a_clear_message(target: Target, tmp_path: Path, megabytes: int) -> None:
    huge = "536999,22139," + "X" * (megabytes << 20) + ",1,12/13/2010 9:00,2.5,12680,France"
    path = write_csv(tmp_path / "huge.csv", [*KAGGLE_LINES[:3], huge, *KAGGLE_LINES[3:] * 1000])
    proc = run_cli("load", str(path), "--target", target.name, check=False)
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert "huge.csv: line 5 is longer than 8 MB; an invoice line is a few hundred bytes" in proc.stderr
    assert "straddl" not in proc.stderr and "block size" not in proc.stderr
    assert counts(target) == (0, 0, 0)


def test_a_quoted_field_with_line_breaks_loads_with_exact_line_numbers(target: Target, tmp_path: Path) -> None:
    """RFC 4180 allows line breaks inside a quoted field; later lines keep their physical line numbers."""
    lines = [
        KAGGLE_LINES[0],
        '536365,71053,"METAL LANTERN,\r\nWHITE ""LARGE""\r\nEDITION",6,12/1/2010 8:26,3.39,17850,United Kingdom',
        "536365,84406B,BROKEN",
        *KAGGLE_LINES[2:],
    ]
    result = load(target, write_csv(tmp_path / "multiline.csv", lines), max_rejected_share=0.5)
    assert (result.lines_read, result.lines_loaded, result.lines_rejected) == (7, 6, 1)
    rows = query(target, "select line_number, description from raw.transactions order by line_number")
    assert [r[0] for r in rows] == [2, 3, 7, 8, 9, 10]  # the quoted field takes lines 3 to 5
    assert rows[1][1] == 'METAL LANTERN,\r\nWHITE "LARGE"\r\nEDITION'
    assert query(target, "select line_number, reason from raw.rejected_lines") == [(6, "expected 8 fields, found 3")]


def test_a_quoted_field_never_closed_is_refused(target: Target, tmp_path: Path) -> None:
    lines = [
        *KAGGLE_LINES[:2],
        '536366,22633,"HAND WARMER,6,12/1/2010 8:28,1.85,17850,United Kingdom',
        *KAGGLE_LINES[2:],
    ]
    proc = run_cli("load", str(write_csv(tmp_path / "open.csv", lines)), "--target", target.name, check=False)
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert "the quoted field opened on line 4 is never closed" in proc.stderr
    assert counts(target) == (0, 0, 0)


def test_todays_sales_east_of_greenwich_are_not_quarantined(target: Target, tmp_path: Path) -> None:
    """Invoice times are the shop's local time: two hours after the UTC load time is today somewhere east."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    soon, later = now + dt.timedelta(hours=2), now + dt.timedelta(days=2)
    lines = [
        f"600001,22138,BAKING SET,3,{soon:%Y-%m-%d %H:%M:%S},4.95,12680,France",
        f"600002,22138,BAKING SET,3,{soon:%Y-%m-%d %H:%M:%S},4.95,12681,France",
        f"600003,22138,BAKING SET,3,{later:%Y-%m-%d %H:%M:%S},4.95,12682,France",
    ]
    result = load(target, write_csv(tmp_path / "today.csv", lines), max_rejected_share=0.5)
    assert (result.lines_loaded, result.lines_rejected) == (2, 1)
    assert "is outside the plausible window" in query(target, "select reason from raw.rejected_lines")[0][0]


def test_a_file_of_many_batches_with_rejects_and_duplicates_loads_exactly(target: Target, tmp_path: Path) -> None:
    """Rejected lines of both kinds and lines delivered before, spread over several reader batches.

    The loader writes rejected lines batch by batch and numbers only the overlapping invoices copy by copy; the
    stored table must be exactly what the rules say, line by line.
    """
    earlier = _lines(0, 3_000)
    load(target, write_csv(tmp_path / "earlier.csv", earlier))
    lines = _lines(10_000, 240_000)  # about 21 MB: three reader batches and more
    # Lines delivered by the earlier file, once or twice, in different batches; and one twice in this file only.
    lines[5] = lines[150_000] = earlier[7]
    lines[90_000] = earlier[8]
    lines[200_000] = lines[200_001] = lines[10]
    typed_rejects = {20: "Quantity 'six' is not a whole number", 120_000: "UnitPrice 'abc' is not a number"}
    lines[20 - 2] = "540099,22138,BAKING SET,six,1/13/2011 10:00,4.95,12680,France"
    lines[120_000 - 2] = "540099,22138,BAKING SET,2,1/13/2011 10:00,abc,12680,France"
    short = {110_000, 230_001}  # lines the reader cannot split
    for n in short:
        lines[n - 2] = "540099,22138,BROKEN"
    result = load(target, write_csv(tmp_path / "big.csv", lines), max_rejected_share=0.01)

    # The expectation, computed line by line: a line is stored unless rejected or one of the copies of an
    # earlier delivery (the first copies in file order are the ones taken out).
    earlier_copies: dict[str, int] = {}
    for line in earlier:
        earlier_copies[line] = earlier_copies.get(line, 0) + 1
    expected = []
    for number, line in enumerate(lines, start=2):
        if number in typed_rejects or number in short:
            continue
        if earlier_copies.get(line, 0) > 0:
            earlier_copies[line] -= 1
            continue
        expected.append((number, line.split(",")[0]))
    assert (result.lines_read, result.lines_rejected, result.lines_skipped) == (240_000, 4, 2)
    assert result.lines_loaded == len(expected) == 240_000 - 4 - 2
    stored = query(
        target,
        f"select line_number, invoice_no from raw.transactions where load_id = '{result.load_id}' order by line_number",
    )
    assert stored == expected
    rejected = query(target, "select line_number, reason from raw.rejected_lines order by line_number")
    assert rejected == [
        (20, typed_rejects[20]),
        (110_000, "expected 8 fields, found 3"),
        (120_000, typed_rejects[120_000]),
        (230_001, "expected 8 fields, found 3"),
    ]
    assert query(
        target,
        "select lines_read, lines_loaded, lines_rejected, lines_skipped from raw.load_log where file_name = 'big.csv'",
    ) == [(240_000, 240_000 - 6, 4, 2)]

    # Too many rejects: refused as soon as the share is certain to be exceeded, naming the first problem in file
    # order whichever batch reported it.
    for n in (15, 150_000, 150_010, 150_020):
        lines[n - 2] = "540099,22138,BROKEN"
    lines[160_000 - 2] = "540099,22138,BAKING SET,2,1/13/2011 10:00,abc,12680,France"
    refused = r"of 240,000 lines cannot be read .* First problem: line 15: expected 8 fields"
    with pytest.raises(InputFileError, match=refused):
        load(target, write_csv(tmp_path / "worse.csv", lines), max_rejected_share=0.00001)
    assert counts(target)[1:] == (2, 4)  # nothing of the refused file was written
