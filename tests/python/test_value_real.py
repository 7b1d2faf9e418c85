"""The backtest on the real file (issue 12's acceptance): fitted on the data up to 90 days before the last day,
predicting those 90 days, against the naive baselines. docs/value.md records the figures this test measures."""

from __future__ import annotations

import pytest

from insiders.loader import load_file
from insiders.value.backtest import run_backtest, to_text
from insiders.warehouse import connect

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def backtest(real_data, tmp_path_factory, value_group):
    folder = tmp_path_factory.mktemp("value_real")
    env = {"INSIDERS_DUCKDB_PATH": str(folder / "warehouse.duckdb"), "INSIDERS_PIN_FILE": str(folder / "pin.yml")}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        with connect("local") as wh:
            load_file(wh, real_data)
        result = run_backtest("local", cutoff_days=90, notice=lambda _: None)
        print(to_text(result))
        yield result


def test_real_backtest_shape(backtest):
    """Cut-off 2011-09-10 (the last day is 2011-12-09), every customer who bought before it is compared."""
    assert str(backtest.cutoff) == "2011-09-10" and backtest.horizon_days == 90
    assert len(backtest.customers) == backtest.customers["customer_id"].nunique() > 3000
    assert backtest.actual_total > 2_000_000


def test_real_backtest_model_beats_both_baselines_on_per_customer_mae(backtest):
    mae = backtest.mae
    assert mae["model"] < mae["last_horizon"]
    assert mae["model"] < mae["segment_mean"]


def test_real_backtest_total_revenue_error_is_recorded_not_claimed(backtest):
    """Over a horizon holding the autumn peak, the stationary model under-predicts the total more than the
    last-horizon baseline (docs/value.md says so and gives the figures): this pins the figures the docs report, so
    a change that moves them is noticed, and fails if the model starts to beat the baselines (docs to update)."""
    model_error = backtest.total_error("model") / backtest.actual_total
    baseline_error = backtest.total_error("last_horizon") / backtest.actual_total
    assert model_error == pytest.approx(-0.408, abs=0.01)
    assert baseline_error == pytest.approx(-0.310, abs=0.01)
    assert not backtest.beats_baselines()
