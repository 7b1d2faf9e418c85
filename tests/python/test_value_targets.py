"""The customer-value inputs, fit and predictions are identical on DuckDB and PostgreSQL (same file, same dbt
models, same MAP fit), and customer_value_inputs agrees with customer_features."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import run_dbt

from insiders.loader import load_file
from insiders.registry import LoadedModel, Pin
from insiders.sample import generate_sample
from insiders.value import model as vm
from insiders.value.apply import VALUE_COLUMNS, score_value
from insiders.value.training import read_inputs
from insiders.warehouse import connect

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _build(target: str, sample) -> pd.DataFrame:
    with connect(target) as wh:
        load_file(wh, sample)
    run_dbt(
        "build",
        "--select",
        "+customer_value_inputs",
        "+customer_features",
        "--indirect-selection",
        "cautious",
        target=target,
    )
    with connect(target) as wh:
        frame, _ = read_inputs(wh, wh.target.schema)
    return frame


def test_value_is_identical_on_duckdb_and_postgres(duckdb_file, pg_database, tmp_path, value_group):
    sample = generate_sample(tmp_path / "sample.csv.gz", customers=400, months=13, seed=11).path
    frames = {target: _build(target, sample) for target in ("local", "postgres")}
    duck, pg = frames["local"], frames["postgres"]
    for frame in (duck, pg):
        for column in ("gross_revenue", "repeat_revenue"):
            frame[column] = frame[column].astype(float)
        for column in ("as_of_date", "first_purchase_day", "last_purchase_day"):
            frame[column] = pd.to_datetime(frame[column])
        for column in ("frequency", "recency", "t", "customer_id"):
            frame[column] = frame[column].astype("int64")
    pd.testing.assert_frame_equal(
        duck[sorted(duck.columns)], pg[sorted(pg.columns)], check_dtype=False, check_exact=True
    )
    assert (duck["frequency"] > 0).sum() >= 50  # a real fit, not a degenerate one

    fits = {target: vm.fit(frames[target], notice=lambda _: None) for target in frames}
    assert fits["local"].model == fits["postgres"].model  # bit for bit

    now = dt.datetime(2012, 1, 2, 6, 0, 0)
    written = {}
    for target, fitted in fits.items():
        loaded = LoadedModel(fitted.model, {"model_version": "v-test"}, Pin("v-test", "0" * 64), "")
        with connect(target) as wh:
            score_value(wh, loaded, wh.target.schema, horizon_days=90, run_id="run-1", now=now)
            written[target] = wh.query_df(
                f"select {', '.join(VALUE_COLUMNS)} from {wh.target.schema}.customer_value order by customer_id"
            )
    a, b = written["local"], written["postgres"]
    assert len(a) == len(duck)
    for column in ("expected_purchases", "expected_spend", "expected_revenue", "p_alive"):
        pd.testing.assert_series_equal(a[column].astype(float), b[column].astype(float), check_exact=True)
    assert a["customer_id"].tolist() == b["customer_id"].tolist()
