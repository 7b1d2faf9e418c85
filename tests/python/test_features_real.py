"""Acceptance on the real Online Retail file: load it, ``dbt build``, and compare with the spec's figures.

Runs on DuckDB and on PostgreSQL. The figures are the spec's (domain.md §3 and §4), not computed here.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from conftest import query, run_cli, run_dbt

from insiders.warehouse import Target

FEATURES = (
    "gross_revenue, recency_days, qty_invoices, qty_items, qty_products, avg_ticket, avg_recency_days, "
    "frequency, qty_returns, avg_basket_size, avg_unique_basket_size"
)
# Spec §4 worked examples, in the order of FEATURES.
WORKED_EXAMPLES = {
    17850: ("5391.21", 372, 34, 1733, 297, 18.152222, 35.5, 17.0, 40, 50.970588, 0.617647),
    13047: ("3232.59", 56, 9, 1390, 171, 18.904035, 27.25, 0.028302, 35, 154.444444, 11.666667),
    12346: ("77183.60", 325, 1, 74215, 1, 77183.60, None, 1.0, 74215, 74215.0, 1.0),
}
# return_rate = units returned / (units bought + units returned): 12346 sent back all 74,215 units.
RETURN_RATES = {17850: 40 / 1773, 13047: 35 / 1425, 12346: 0.5}

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def test_real_file_gives_the_spec_figures(
    target: Target, real_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    loaded = run_cli("load", str(real_data), "--target", target.name, "--quiet")
    assert "541,909 lines read, 541,909 loaded, 0 rejected" in loaded.stdout
    again = run_cli("load", str(real_data), "--target", target.name, "--quiet")
    assert "already loaded" in again.stdout
    assert query(target, "select count(*) from raw.transactions") == [(541_909,)]

    run_dbt("build", "--selector", "features", target=target.name)
    schema = target.schema

    # Cleaning (spec §3): valid lines, purchases, returns, and the part that belongs to customers.
    valid = query(
        target,
        f"select count(*), sum(case when is_return then 1 else 0 end), "
        f"sum(case when is_anonymous then 0 else 1 end), count(distinct customer_id) "
        f"from {schema}.int_sales__cleaned",
    )
    assert [tuple(int(v) for v in valid[0])] == [(536_139, 8_728, 404_714, 4_356)]

    # Features (spec §4): row count, revenue total, and the worked examples to the digits shown.
    totals = query(target, f"select count(*), sum(gross_revenue) from {schema}.customer_features")
    assert totals[0][0] == 4_329
    assert Decimal(str(totals[0][1])).quantize(Decimal("0.01")) == Decimal("8595618.83")
    assert query(target, f"select count(*) from {schema}.customer_features where as_of_date <> date '2011-12-09'") == [
        (0,)
    ]
    for customer, expected in WORKED_EXAMPLES.items():
        rows = query(target, f"select {FEATURES} from {schema}.customer_features where customer_id = {customer}")
        assert len(rows) == 1, customer
        got = rows[0]
        assert Decimal(str(got[0])).quantize(Decimal("0.01")) == Decimal(expected[0]), customer
        assert tuple(int(v) for v in got[1:5]) == expected[1:5], customer
        for name, value, want in zip(FEATURES.split(", ")[5:], got[5:], expected[5:], strict=True):
            if want is None:
                assert value is None, (customer, name)
            elif name == "qty_returns":
                assert int(value) == want, (customer, name)
            else:
                assert round(float(value), 6) == pytest.approx(want, abs=1e-9), (customer, name, value)

    for customer, want in RETURN_RATES.items():
        (rate,) = query(target, f"select return_rate from {schema}.customer_features where customer_id = {customer}")
        assert float(rate[0]) == pytest.approx(want, rel=1e-9), customer

    # The model on top (issue: train --promote, then score): DuckDB keeps the artifact in a local folder,
    # PostgreSQL in S3 (a moto server on loopback, versioned bucket).
    monkeypatch.setenv("INSIDERS_PIN_FILE", str(tmp_path / "pinned_model.yml"))
    if target.type == "postgres":
        bucket = request.getfixturevalue("s3_bucket")
        monkeypatch.setenv("INSIDERS_ARTIFACT_URI", f"s3://{bucket}/models")
    else:
        monkeypatch.setenv("INSIDERS_ARTIFACT_URI", str(tmp_path / "artifacts"))
    trained = run_cli("train", "--target", target.name, "--promote")
    assert "Promoted" in trained.stdout
    # Issue 7: the default model's Insiders pass every business check, with the same figures on both targets
    # (the features are identical, so the model is too).
    assert trained.stdout.count("[pass]") == 6 and "[FAIL]" not in trained.stdout, trained.stdout
    assert "k = 8 (chosen): 500 Insiders (11.6%), 57.0% of revenue" in trained.stdout, trained.stdout
    again = run_cli("train", "--target", target.name)
    assert "reused it, nothing new was written" in again.stdout, again.stdout
    listing = run_cli("models").stdout
    assert listing.count("k=8  Insiders=500 (11.6%)") == 1, listing
    assert "features=gross_revenue,recency_days,frequency,return_rate" in listing, listing
    scored = run_cli("score", "--target", target.name, "--quiet")
    assert "Scored 4,329 customers" in scored.stdout
    summary = query(
        target,
        f"select count(*), sum(case when s.is_insider then 1 else 0 end), "
        f"sum(case when s.is_insider then f.gross_revenue else 0 end) / sum(f.gross_revenue) "
        f"from {schema}.customer_segments s join {schema}.customer_features f using (customer_id)",
    )
    customers, insiders, revenue_share = summary[0]
    assert customers == 4_329
    assert insiders == 500, insiders
    assert float(revenue_share) >= 0.50, revenue_share

    # The marts on the real file: built and tested by dbt (their invariants are dbt tests).
    run_dbt("build", "--selector", "segments", target=target.name)
    marts = f"{schema}_marts"
    (summary,) = query(target, f"select insiders, customers, insiders_revenue_share from {marts}.insiders_summary")
    assert (summary[0], summary[1]) == (insiders, customers)
    assert float(summary[2]) == pytest.approx(float(revenue_share))
    assert query(target, f"select count(*) from {marts}.fct_sales") == [(536_139,)]
