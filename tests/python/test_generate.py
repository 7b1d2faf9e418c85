"""Tests of the sample-data generator: format of the file, determinism, planted segments, quirks, arguments."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import os
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import PROJECT

from insiders.errors import InputFileError
from insiders.sample import (
    HEADER,
    GenerateArgumentError,
    GenerateResult,
    estimate_customers,
    estimate_lines,
    generate_sample,
    truth_path_for,
)
from insiders.sample.non_products import NON_PRODUCTS

NON_PRODUCT = {"POST", "D", "DOT", "M", "S", "AMAZONFEE", "m", "DCGSSBOY", "DCGSSGIRL", "PADS", "B", "CRUK"}
INVALID_COUNTRIES = {"European Community", "Unspecified"}
SEGMENTS = {"insiders", "loyal", "returners", "occasional", "lapsed", "one_time"}
DATE = re.compile(r"^(1[0-2]|[1-9])/(3[01]|[12][0-9]|[1-9])/20[0-9]{2} (1[0-9]|2[0-3]|[0-9]):[0-5][0-9]$")
PRICE = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$")


def _raw(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(_raw(path).decode("latin-1"), newline="")))


def _frame(path: Path) -> pd.DataFrame:
    df = pd.read_csv(
        io.BytesIO(_raw(path)),
        encoding="latin-1",
        dtype={"InvoiceNo": str, "StockCode": str, "Description": str, "CustomerID": str, "Country": str},
        keep_default_na=False,
    )
    df["CustomerID"] = pd.to_numeric(df["CustomerID"].replace("", None)).astype("Int64")
    df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"], format="%m/%d/%Y %H:%M")
    return df


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerateResult, pd.DataFrame, pd.DataFrame]:
    """A full 13-month window with 800 customers (about 100,000 lines), compressed."""
    out = tmp_path_factory.mktemp("sample") / "sample.csv.gz"
    result = generate_sample(out, customers=800, months=13, seed=42)
    return result, _frame(out), pd.read_csv(result.truth_path)


@pytest.fixture(scope="module")
def features(sample: tuple[GenerateResult, pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    """Per-customer clustering features after the spec's cleaning rules, with the planted segment."""
    _, df, truth = sample
    valid = df[(df.UnitPrice >= 0.04) & ~df.StockCode.isin(NON_PRODUCT) & ~df.Country.isin(INVALID_COUNTRIES)]
    d_ref = valid.InvoiceDate.dt.normalize().max()
    lines = valid[valid.CustomerID.notna()].assign(day=lambda x: x.InvoiceDate.dt.normalize())
    purchases = lines[lines.Quantity >= 0].assign(revenue=lambda x: x.Quantity * x.UnitPrice)
    returns = lines[lines.Quantity < 0]
    g = purchases.groupby("CustomerID")
    f = pd.DataFrame(
        {
            "gross_revenue": g.revenue.sum(),
            "recency_days": (d_ref - g.day.max()).dt.days,
            "qty_products": g.size(),
            "frequency": g.InvoiceNo.nunique() / ((g.day.max() - g.day.min()).dt.days + 1),
        }
    )
    f["qty_returns"] = (-returns.groupby("CustomerID").Quantity.sum()).reindex(f.index).fillna(0)
    return f.join(truth.set_index("customer_id"))


# --------------------------------------------------------------------------------------------------------------
# Determinism


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = generate_sample(tmp_path / "a" / "x.csv.gz", customers=300, months=4, seed=5)
    b = generate_sample(tmp_path / "b" / "x.csv.gz", customers=300, months=4, seed=5)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.truth_path.read_bytes() == b.truth_path.read_bytes()
    assert a.lines == b.lines > 1000


def test_gzip_header_has_no_timestamp_or_name(tmp_path: Path) -> None:
    result = generate_sample(tmp_path / "x.csv.gz", customers=50, months=2)
    head = result.path.read_bytes()[:10]
    assert head[:2] == b"\x1f\x8b"
    assert head[3] & 0x08 == 0, "FNAME flag set: the file name is in the header"
    assert head[4:8] == b"\0\0\0\0", "the header carries a modification time"


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    a = generate_sample(tmp_path / "a.csv", customers=300, months=4, seed=1)
    b = generate_sample(tmp_path / "b.csv", customers=300, months=4, seed=2)
    assert a.path.read_bytes() != b.path.read_bytes()
    assert a.truth_path.read_bytes() != b.truth_path.read_bytes()


def test_compressed_and_plain_files_hold_the_same_text(tmp_path: Path) -> None:
    plain = generate_sample(tmp_path / "x.csv", customers=200, months=3, seed=9)
    packed = generate_sample(tmp_path / "x.csv.gz", customers=200, months=3, seed=9)
    assert gzip.decompress(packed.path.read_bytes()) == plain.path.read_bytes()
    assert packed.truth_path == tmp_path / "x.csv.gz.truth.csv"
    assert plain.truth_path == tmp_path / "x.csv.truth.csv" == truth_path_for(tmp_path / "x.csv")


# --------------------------------------------------------------------------------------------------------------
# File format


def test_header_crlf_and_latin1(sample: tuple[GenerateResult, pd.DataFrame, pd.DataFrame]) -> None:
    result, _, _ = sample
    raw = _raw(result.path)
    assert raw.startswith(HEADER.encode() + b"\r\n")
    assert HEADER == "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    assert raw.endswith(b"\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n") == result.lines + 1
    text = raw.decode("latin-1")
    assert "£" in text, "no gift voucher line"
    assert re.search(r"\r\n[0-9]{6},gift_0001_[0-9]+,GIFT VOUCHER £[0-9]+\.00,", text)
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


def test_field_formats(sample: tuple[GenerateResult, pd.DataFrame, pd.DataFrame]) -> None:
    result, _, _ = sample
    rows = _rows(result.path)
    assert rows[0] == HEADER.split(",")
    body = rows[1:]
    assert len(body) == result.lines
    assert all(len(r) == 8 for r in body)
    bad_dates = [r[4] for r in body if not DATE.match(r[4])]
    assert not bad_dates, bad_dates[:5]
    bad_prices = [r[5] for r in body if not PRICE.match(r[5])]
    assert not bad_prices, bad_prices[:5]
    assert all(re.fullmatch(r"-?[1-9][0-9]*", r[3]) for r in body)
    assert all(re.fullmatch(r"([1-9][0-9]{4,5})?", r[6]) for r in body)
    assert all(re.fullmatch(r"[CA]?[0-9]{6}", r[0]) for r in body)
    prices = {r[5] for r in body}
    assert {"0", "0.001"} <= prices
    assert any(p.endswith(".1") or re.fullmatch(r"\d+\.\d", p) for p in prices)  # one decimal, no trailing 0
    assert any("." not in p and p != "0" for p in prices)  # whole pounds without ".0"


def test_minimal_quoting(sample: tuple[GenerateResult, pd.DataFrame, pd.DataFrame]) -> None:
    """Rewriting the parsed rows with minimal quoting and CRLF gives back the exact text."""
    result, _, _ = sample
    text = _raw(result.path).decode("latin-1")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n").writerows(rows)
    assert out.getvalue() == text
    with_comma = [r[2] for r in rows[1:] if "," in r[2]]
    assert with_comma, "no description with a comma"
    assert f',"{with_comma[0]}",' in text


def test_invoices_are_contiguous_and_numbered_in_time_order(
    sample: tuple[GenerateResult, pd.DataFrame, pd.DataFrame],
) -> None:
    result, df, _ = sample
    number = df.InvoiceNo.str.lstrip("CA").astype(int)
    assert number.is_monotonic_increasing
    assert df.InvoiceDate.is_monotonic_increasing
    per_invoice = df.groupby("InvoiceNo").agg(
        dates=("InvoiceDate", "nunique"), customers=("CustomerID", "nunique"), countries=("Country", "nunique")
    )
    assert len(per_invoice) == result.invoices
    assert (per_invoice.dates == 1).all() and (per_invoice.countries == 1).all()
    assert (per_invoice.customers <= 1).all()
    assert (df.groupby("InvoiceNo").size() > 1).mean() > 0.5, "invoices should usually have several lines"
    assert df.groupby("CustomerID").Country.nunique().max() == 1


def test_window_calendar_and_seasonality(sample: tuple[GenerateResult, pd.DataFrame, pd.DataFrame]) -> None:
    result, df, _ = sample
    assert (result.first_day, result.last_day) == (dt.date(2010, 12, 1), dt.date(2011, 12, 9))
    days = df.InvoiceDate.dt.date
    assert days.min() >= result.first_day and days.max() <= result.last_day
    assert days.max() >= dt.date(2011, 12, 5)
    assert df.InvoiceDate.dt.hour.between(7, 20).all()
    assert (df.InvoiceDate.dt.day_of_week != 5).all(), "the shop is closed on Saturdays"
    per_month = df[df.InvoiceDate.dt.year == 2011].groupby(df.InvoiceDate.dt.month).size()
    assert per_month.idxmax() == 11
    assert per_month[[9, 10, 11]].mean() > 1.3 * per_month[[2, 3, 4, 5, 6]].mean()


def test_start_and_months_set_the_window(tmp_path: Path) -> None:
    result = generate_sample(tmp_path / "x.csv", customers=100, months=2, start=dt.date(2012, 3, 1))
    assert (result.first_day, result.last_day) == (dt.date(2012, 3, 1), dt.date(2012, 4, 9))
    days = _frame(result.path).InvoiceDate.dt.date
    assert days.min() >= dt.date(2012, 3, 1) and days.max() <= dt.date(2012, 4, 9)


# --------------------------------------------------------------------------------------------------------------
# Planted segments


def test_truth_covers_exactly_the_customers(sample: tuple[GenerateResult, pd.DataFrame, pd.DataFrame]) -> None:
    result, df, truth = sample
    assert list(truth.columns) == ["customer_id", "segment"]
    assert truth.customer_id.is_unique and truth.customer_id.is_monotonic_increasing
    assert set(truth.customer_id) == set(df.CustomerID.dropna())
    assert len(truth) == result.customers == 800
    assert set(truth.segment) == SEGMENTS
    assert truth.segment.value_counts().to_dict() == result.segments


def test_insiders_are_a_small_group_with_a_large_revenue_share(
    sample: tuple[GenerateResult, pd.DataFrame, pd.DataFrame],
) -> None:
    _, df, truth = sample
    purchases = df[(df.Quantity > 0) & (df.UnitPrice > 0) & df.CustomerID.notna()]
    revenue = (purchases.Quantity * purchases.UnitPrice).groupby(purchases.CustomerID).sum()
    segment = truth.set_index("customer_id").segment
    per_segment = revenue.groupby(segment.reindex(revenue.index)).sum()
    customer_share = (truth.segment == "insiders").mean()
    revenue_share = per_segment["insiders"] / per_segment.sum()
    assert 0.01 <= customer_share <= 0.06
    assert revenue_share >= 0.25
    mean_revenue = revenue.groupby(segment.reindex(revenue.index)).mean()
    assert mean_revenue.idxmax() == "insiders"
    assert mean_revenue["insiders"] > 3 * mean_revenue.drop("insiders").max()


def test_segments_are_separated_on_the_clustering_features(features: pd.DataFrame) -> None:
    f = features
    med = f.groupby("segment").median()
    q = f.groupby("segment").quantile
    # Insiders: the highest revenue and the most lines, all recent.
    assert q(0.1).loc["insiders", "gross_revenue"] > q(0.9).drop("insiders").gross_revenue.max()
    assert q(0.1).loc["insiders", "qty_products"] > q(0.9).drop("insiders").qty_products.max()
    assert q(0.9).loc["insiders", "recency_days"] <= 14
    # Returners send back far more units than anybody.
    assert q(0.1).loc["returners", "qty_returns"] > 5 * q(0.9).drop("returners").qty_returns.max()
    # One purchase day: frequency at least 1; everybody else well below.
    assert (f[f.segment == "one_time"].frequency >= 1).all()
    assert q(0.95).drop("one_time").frequency.max() < 0.5
    # Lapsed: long gone; occasional: more recent; loyal: recent and bigger than occasional.
    assert q(0.1).loc["lapsed", "recency_days"] > q(0.9).loc["occasional", "recency_days"]
    assert q(0.9).loc["loyal", "recency_days"] < q(0.1).loc["lapsed", "recency_days"]
    assert med.loc["loyal", "qty_products"] > 3 * med.loc["occasional", "qty_products"]
    assert med.loc["loyal", "gross_revenue"] > 3 * med.loc["occasional", "gross_revenue"]


def test_features_recover_the_planted_segments(features: pd.DataFrame) -> None:
    """A plain clustering of the five default features finds the planted groups (and the insiders)."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.preprocessing import StandardScaler

    cols = ["gross_revenue", "recency_days", "qty_products", "frequency", "qty_returns"]
    x = StandardScaler().fit_transform(np.log1p(features[cols].to_numpy()))
    labels = KMeans(n_clusters=len(SEGMENTS), n_init=10, random_state=0).fit_predict(x)
    assert adjusted_rand_score(features.segment, labels) >= 0.8
    top = pd.Series(features.gross_revenue.to_numpy()).groupby(labels).mean().idxmax()
    found = set(features.index[labels == top])
    planted = set(features.index[features.segment == "insiders"])
    assert len(found & planted) / len(found | planted) >= 0.8


# --------------------------------------------------------------------------------------------------------------
# Quirks of the real file


def test_quirks_at_about_the_real_rates(sample: tuple[GenerateResult, pd.DataFrame, pd.DataFrame]) -> None:
    _, df, _ = sample
    n = len(df)
    cancelled = df.InvoiceNo.str.startswith("C")
    assert 0.20 <= df.CustomerID.isna().mean() <= 0.30
    assert 0.010 <= cancelled.mean() <= 0.025
    assert (df.Quantity[cancelled] < 0).all()
    assert 0.002 <= (df.UnitPrice == 0).mean() <= 0.008
    # Negative quantities outside C invoices are stock adjustments at price 0, as in the real file.
    adjustments = df[(df.Quantity < 0) & ~cancelled]
    assert len(adjustments) > 0 and (adjustments.UnitPrice == 0).all()
    bad_debt = df[df.UnitPrice < 0]
    assert len(bad_debt) == 2 and bad_debt.InvoiceNo.str.startswith("A").all()
    assert (bad_debt.StockCode == "B").all()
    assert ((df.UnitPrice > 0) & (df.UnitPrice < 0.04)).sum() >= 1
    assert set(df.Country) >= INVALID_COUNTRIES
    assert {"POST", "DOT", "M", "D", "AMAZONFEE", "CRUK", "PADS", "B"} <= set(df.StockCode)
    assert df.StockCode.isin(NON_PRODUCT).mean() < 0.01
    assert "BANK CHARGES" in set(df.StockCode)
    assert (df.StockCode.str.fullmatch(r"[0-9]{5}[A-Z]?")).mean() > 0.98
    countries = df.Country.value_counts(normalize=True)
    assert 0.85 <= countries["United Kingdom"] <= 0.95
    assert {"Germany", "France", "EIRE"} <= set(countries.index[1:8])
    assert (df.Description.str.upper() == df.Description)[~df.StockCode.isin(NON_PRODUCT)].mean() > 0.99
    assert n == sample[0].lines


def test_non_product_table_matches_the_file_and_the_cleaning_seed(
    sample: tuple[GenerateResult, pd.DataFrame, pd.DataFrame],
) -> None:
    """Every code of the generator's table is in the file with its description; the codes it marks as cleaned
    are exactly those of the dbt seed (BANK CHARGES passes for a product, as in the real file)."""
    _, df, _ = sample
    for item in NON_PRODUCTS:
        assert set(df.Description[df.StockCode == item.code]) == {item.description}, item.code
    seed = pd.read_csv(PROJECT / "seeds" / "non_product_stock_codes.csv", dtype=str, keep_default_na=False)
    cleaned = {item.code for item in NON_PRODUCTS if item.cleaned}
    assert cleaned == set(seed.stock_code) == NON_PRODUCT
    assert {item.code for item in NON_PRODUCTS if not item.cleaned} == {"BANK CHARGES"}


def test_lines_scale_with_customers_and_months(tmp_path: Path) -> None:
    small = generate_sample(tmp_path / "a.csv", customers=200, months=13).lines
    more_customers = generate_sample(tmp_path / "b.csv", customers=400, months=13).lines
    fewer_months = generate_sample(tmp_path / "c.csv", customers=200, months=7).lines
    assert 1.7 < more_customers / small < 2.3
    assert 0.4 < fewer_months / small < 0.7
    for lines, months in ((50_000, 13), (20_000, 4), (30_000, 25)):
        made = generate_sample(tmp_path / "d.csv", customers=estimate_customers(lines, months), months=months).lines
        assert made == pytest.approx(lines, rel=0.12)
    assert estimate_lines(4000, 13) == pytest.approx(generate_sample(tmp_path / "e.csv").lines, rel=0.05)


# --------------------------------------------------------------------------------------------------------------
# API: progress, arguments, atomic writes


def test_progress_reports_lines_written(tmp_path: Path) -> None:
    seen: list[int] = []
    result = generate_sample(tmp_path / "x.csv", customers=2500, months=13, progress=seen.append)
    assert len(seen) >= 2, "a file this size is written in several chunks"
    assert seen == sorted(seen) and seen[-1] == result.lines
    assert result.path.read_bytes().count(b"\r\n") == result.lines + 1
    assert result.size_bytes == result.path.stat().st_size
    assert sum(result.segments.values()) == result.customers == 2500


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"customers": 0}, "customers"),
        ({"customers": -5}, "customers"),
        ({"months": 0}, "months"),
        ({"seed": -1}, "seed"),
        ({"customers": 2.5}, "customers"),
    ],
)
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(GenerateArgumentError, match=message) as info:
        generate_sample(tmp_path / "x.csv", **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, InputFileError) and isinstance(info.value, ValueError)
    assert list(tmp_path.iterdir()) == []


def test_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        generate_sample(tmp_path / "missing" / "x.csv", customers=10)
    (tmp_path / "file").write_text("")
    with pytest.raises(InputFileError, match="does not exist"):
        generate_sample(tmp_path / "file" / "x.csv", customers=10)


def test_directory_as_output_raises(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(ValueError, match="directory"):
        generate_sample(tmp_path / "dir.csv", customers=10)
    (tmp_path / "x.csv.truth.csv").mkdir()
    with pytest.raises(InputFileError, match="directory"):
        generate_sample(tmp_path / "x.csv", customers=10)
    assert not (tmp_path / "x.csv").exists()


def test_read_only_directory_raises(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user can write into read-only directories (root)")
        with pytest.raises(InputFileError, match="not writable"):
            generate_sample(locked / "x.csv", customers=10)
    finally:
        locked.chmod(0o700)


def test_failure_leaves_no_partial_file(tmp_path: Path) -> None:
    def boom(lines: int) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        generate_sample(tmp_path / "x.csv.gz", customers=100, months=3, progress=boom)
    assert list(tmp_path.iterdir()) == []
