"""The customer-value model on small synthetic data: closed forms against PyMC-Marketing, determinism, storage
and pinning through the registry, the customer_value table, the backtest figures, and bad input."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from insiders.artifacts import LocalStore
from insiders.registry import (
    SEGMENTATION,
    VALUE,
    ManifestRefusedError,
    VersionNotFoundError,
    dump_model,
    load_pinned,
    pin_version,
    read_pin,
    save_model,
)
from insiders.value import model as vm
from insiders.value.model import ValueInputError, ValueModel

# Parameters of the simulated customers (days): about one purchase a month, and a real chance to drop out.
TRUE = {"r": 0.9, "alpha": 30.0, "a": 0.8, "b": 2.5, "p": 6.0, "q": 4.0, "v": 15.0}


def simulate(n: int = 800, seed: int = 3) -> pd.DataFrame:
    """Customers drawn from the BG/NBD and Gamma-Gamma processes, observed over ages of 60 to 365 days."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        big_t = float(rng.integers(60, 366))
        lam = rng.gamma(TRUE["r"], 1 / TRUE["alpha"])
        drop = rng.beta(TRUE["a"], TRUE["b"])
        nu = rng.gamma(TRUE["q"], 1 / TRUE["v"])
        t, days = 0.0, []
        while True:
            t += rng.exponential(1 / lam)
            if t > big_t:
                break
            days.append(np.floor(t))
            if rng.random() < drop:
                break
        days = sorted(set(d for d in days if d > 0))
        x = len(days)
        spend = [rng.gamma(TRUE["p"], 1 / nu) for _ in range(x)]
        rows.append(
            {
                "customer_id": 1000 + i,
                "frequency": x,
                "recency": days[-1] if x else 0.0,
                "t": big_t,
                "monetary_value": float(np.mean(spend)) if x else np.nan,
                "as_of_date": dt.date(2011, 12, 9),
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return simulate()


@pytest.fixture(scope="module")
def fitted(customers, value_group):
    return vm.fit(customers, notice=lambda _: None)


# ------------------------------------------------------------------------------------------------ predictions


def test_closed_forms_equal_pymc_marketing(customers, fitted):
    """The stored parameters predict exactly what PyMC-Marketing's fitted models predict."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

        data = customers.rename(columns={"t": "T"})
        bg = BetaGeoModel(data=data[["customer_id", "frequency", "recency", "T"]])
        bg.fit(method="map", progressbar=False)
        repeat = data[data["frequency"] > 0][["customer_id", "frequency", "monetary_value"]]
        gg = GammaGammaModel(data=repeat.reset_index(drop=True))
        gg.fit(method="map", progressbar=False)
        purchases = bg.expected_purchases(data=data, future_t=90).to_numpy().ravel()
        alive = bg.expected_probability_alive(data=data).to_numpy().ravel()
        spend = gg.expected_customer_spend(data=repeat).to_numpy().ravel()
    model = fitted.model
    assert model.r == pytest.approx(float(bg.idata.posterior["r"].mean()), rel=1e-9)
    assert model.v == pytest.approx(float(gg.idata.posterior["v"].mean()), rel=1e-9)
    predicted = model.predict(customers, 90)
    np.testing.assert_allclose(predicted["expected_purchases"], purchases, rtol=1e-9)
    np.testing.assert_allclose(predicted["p_alive"], alive, rtol=1e-9)
    mask = (customers["frequency"] > 0).to_numpy()
    np.testing.assert_allclose(predicted["expected_spend"].to_numpy()[mask], spend, rtol=1e-9)
    np.testing.assert_allclose(
        predicted["expected_revenue"], predicted["expected_purchases"] * predicted["expected_spend"]
    )


def test_the_fit_recovers_the_simulated_process(customers, fitted):
    """Goodness of fit on data drawn from the model: repeat purchases and mean spend as observed, within 10 %."""
    d = fitted.diagnostics
    assert 0.9 < d["repeat_purchases_ratio"] < 1.1
    assert d["model_mean_spend"] == pytest.approx(d["observed_mean_spend"], rel=0.1)
    assert fitted.method == "map" and fitted.seconds > 0


def test_the_fit_is_deterministic(customers, fitted):
    """Same data, same parameters to the last bit: the same artifact bytes, hence the same version."""
    again = vm.fit(customers.sample(frac=1.0, random_state=1), notice=lambda _: None)
    assert again.model == fitted.model
    assert dump_model(again.model) == dump_model(fitted.model)


def test_predictions_behave():
    """P(alive) is 1 without a repeat purchase and falls with the time since the last one; longer horizons
    expect more purchases; a customer's row does not depend on the others."""
    model = ValueModel(**TRUE)
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "frequency": [0, 5, 5, 200],
            "recency": [0, 300, 50, 360],
            "t": [100, 365, 365, 365],
            "monetary_value": [np.nan, 20.0, 20.0, 35.0],
        }
    )
    out = model.predict(frame, 90)
    assert out["p_alive"].iloc[0] == 1.0
    assert out["p_alive"].iloc[1] > out["p_alive"].iloc[2]
    assert np.isfinite(out.to_numpy()).all()  # a very frequent buyer does not overflow
    assert (model.predict(frame, 180)["expected_purchases"] > out["expected_purchases"]).all()
    alone = model.predict(frame.iloc[[2]], 90)
    assert alone["expected_revenue"].iloc[0] == out["expected_revenue"].iloc[2]
    assert out["expected_spend"].iloc[0] == pytest.approx(TRUE["p"] * TRUE["v"] / (TRUE["q"] - 1))


# ---------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("horizon", [0, -5, float("nan"), "soon"])
def test_a_horizon_that_is_not_positive_is_refused(horizon):
    frame = pd.DataFrame({"customer_id": [1], "frequency": [1], "recency": [5], "t": [10], "monetary_value": [3.0]})
    with pytest.raises(ValueInputError, match="horizon must be a"):
        ValueModel(**TRUE).predict(frame, horizon)


def test_single_purchase_customers_alone_cannot_be_fitted():
    frame = pd.DataFrame({"customer_id": range(50), "frequency": 0, "recency": 0, "t": 100, "monetary_value": np.nan})
    with pytest.raises(ValueInputError, match="only 0 of 50 customers have a repeat purchase"):
        vm.fit(frame)


def test_zero_spend_repeat_buyers_are_left_out_of_the_spend_fit_with_a_notice(customers, value_group):
    frame = customers.copy()
    frame.loc[frame["frequency"] > 0, "monetary_value"] = 0.0
    notices: list[str] = []
    with pytest.raises(ValueInputError, match="only 0 repeat buyers have a positive mean spend"):
        vm.fit(frame, notice=notices.append)
    assert "zero or negative mean spend are left out" in notices[0]
    # One zero-spend buyer gets the population's mean spend, not a zero or a NaN.
    out = ValueModel(**TRUE).predict(frame.head(20), 90)
    assert np.isfinite(out["expected_spend"]).all() and (out["expected_spend"] > 0).all()


def test_inconsistent_inputs_are_refused_naming_the_problems():
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 3],
            "frequency": [1, 0, 2, 1],
            "recency": [50, 4, None, 1],
            "t": [10, 10, 10, 10],
            "monetary_value": [None, None, 3.0, 1.0],
        }
    )
    with pytest.raises(ValueInputError) as exc:
        vm.validate_inputs(frame)
    message = str(exc.value)
    for part in (
        "repeated customer_id",
        "null or non-finite recency",
        "recency outside [0, t]",
        "without a repeat purchase must have recency 0",
        "without a monetary_value",
    ):
        assert part in message
    with pytest.raises(ValueInputError, match="is empty"):
        vm.validate_inputs(frame.head(0))
    with pytest.raises(ValueInputError, match="fit method must be one of map, sample"):
        vm.fit(frame, method="vi")


def test_fitting_without_the_group_says_how_to_install_it(customers, monkeypatch):
    monkeypatch.setattr(vm, "value_group_installed", lambda: False)
    with pytest.raises(vm.ValueGroupMissingError, match=r"\[value\] dependency group .*pip install"):
        vm.fit(customers)


def test_value_commands_refuse_a_bad_horizon_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("INSIDERS_PIN_FILE", str(tmp_path / "pin.yml"))
    monkeypatch.setenv("INSIDERS_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))  # the run lock's file would go there
    proc = run_cli("value", "score", "--horizon-days", "0", check=False)
    assert proc.returncode == 4 and "horizon must be a positive number of days" in proc.stderr
    proc = run_cli("value", "backtest", "--cutoff-days", "-3", check=False)
    assert proc.returncode == 4 and "--cutoff-days must be a positive whole number" in proc.stderr
    proc = run_cli("value", "score", check=False)
    assert proc.returncode == 4 and "no value model is pinned" in proc.stderr
    # Refused before the run lock is taken: nothing of the warehouse's is touched, not even its lock file.
    assert not (tmp_path / "warehouse.duckdb.run.lock").exists()
    assert not (tmp_path / "warehouse.duckdb").exists()


# ------------------------------------------------------------------------------------ stored, pinned, verified


def _save_value(store: LocalStore, model: ValueModel, version: str = "v-value-1"):
    manifest = {
        "features": list(vm.FEATURES),
        "feature_types": {"frequency": "bigint", "recency": "integer", "t": "integer", "monetary_value": "double"},
    }
    return save_model(store, version, dump_model(model), manifest, "# card", kind=VALUE)


def test_a_value_model_is_pinned_beside_the_segmentation_pin_and_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("INSIDERS_PIN_FILE", str(tmp_path / "pin.yml"))
    (tmp_path / "pin.yml").write_text(
        "model:\n  version: seg-1\n  sha256: " + "a" * 64 + "\n  manifest_sha256: " + "b" * 64 + "\n", encoding="utf-8"
    )
    store = LocalStore(tmp_path / "store")
    saved = _save_value(store, ValueModel(**TRUE))
    assert saved.model.key == "value_models/v-value-1/model.joblib"
    pin_version(store, "v-value-1", kind=VALUE)
    assert read_pin(kind=SEGMENTATION).version == "seg-1"  # the segmentation pin is kept
    assert read_pin(kind=VALUE).version == "v-value-1"
    loaded = load_pinned(store, kind=VALUE)
    assert loaded.model == ValueModel(**TRUE) and loaded.manifest["kind"] == VALUE
    # A value version is not a segmentation version, and the other way round.
    with pytest.raises(VersionNotFoundError):
        pin_version(store, "v-value-1")
    # Tampered bytes are refused before unpickling.
    (tmp_path / "store" / "value_models" / "v-value-1" / "model.joblib").write_bytes(b"not the model")
    with pytest.raises(Exception, match="sha256 mismatch"):
        load_pinned(store, kind=VALUE)


def test_a_manifest_of_another_kind_is_refused(tmp_path):
    from insiders.registry import parse_manifest, read_manifest_bytes

    store = LocalStore(tmp_path / "store")
    _save_value(store, ValueModel(**TRUE))
    raw = read_manifest_bytes(store, "v-value-1", VALUE)
    with pytest.raises(ManifestRefusedError, match="is a value model, not a segmentation model"):
        parse_manifest(raw, "v-value-1", SEGMENTATION)


# ------------------------------------------------------------------------------------------- customer_value


def test_customer_value_is_replaced_atomically(duckdb_file, tmp_path, customers):
    from insiders.registry import LoadedModel, Pin
    from insiders.value.apply import VALUE_TABLE, score_value
    from insiders.warehouse import connect

    loaded = LoadedModel(
        model=ValueModel(**TRUE), manifest={"model_version": "v1"}, pin=Pin("v1", "0" * 64), store_uri=""
    )
    with connect("local") as wh:
        wh.conn.register("customers_frame", customers)
        wh.execute("create table main.customer_value_inputs as select * from customers_frame")
        first = score_value(wh, loaded, "main", horizon_days=90, run_id="run-1")
        rows = wh.query(f"select count(*), min(horizon_days), min(run_id), min(model_version) from main.{VALUE_TABLE}")
        assert rows[0] == (len(customers), 90, "run-1", "v1")
        assert first.expected_revenue > 0
        # Broken inputs: the run fails before writing, and the previous predictions stay.
        wh.execute("update main.customer_value_inputs set recency = t + 1 where customer_id = 1000")
        with pytest.raises(ValueInputError, match="recency outside"):
            score_value(wh, loaded, "main", horizon_days=30, run_id="run-2")
        assert wh.query(f"select count(*), min(run_id) from main.{VALUE_TABLE}")[0] == (len(customers), "run-1")


# --------------------------------------------------------------------------------------------------- backtest


def test_backtest_figures_by_hand():
    """Three customers with hand-checkable figures: MAE, totals, per-segment sums and the calibration bands."""
    from insiders.value.backtest import evaluate
    from insiders.value.model import FitResult

    model = ValueModel(**TRUE)
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "frequency": [3, 0, 8],
            "recency": [100, 0, 200],
            "t": [200, 50, 210],
            "monetary_value": [10.0, np.nan, 30.0],
            "actual_revenue": [0.0, 5.0, 100.0],
            "actual_purchases": [0.0, 1.0, 3.0],
            "previous_revenue": [20.0, 0.0, 60.0],
            "segment_name": ["A", "A", "B"],
        }
    )
    frame["bought_again"] = (frame["actual_purchases"] > 0).astype(float)
    result = evaluate(frame, FitResult(model, "map", 42, 0.1), dt.date(2011, 9, 10), 90, "given")
    assert result.mae["last_horizon"] == pytest.approx((20 + 5 + 40) / 3)
    assert result.mae["segment_mean"] == pytest.approx((10 + 5 + 40) / 3)
    expected = model.predict(frame, 90)["expected_revenue"].to_numpy()
    assert result.mae["model"] == pytest.approx(np.mean(np.abs(expected - [0, 5, 100])))
    assert result.totals["last_horizon"] == 80 and result.actual_total == 105
    by = result.by_segment.set_index("segment_name")
    assert by.loc["A", "actual"] == 5 and by.loc["B", "segment_mean"] == 60
    assert int(result.calibration["customers"].sum()) == 3


# ------------------------------------------------------------------------------------- run step, answers, report


def test_the_run_has_a_value_step_only_when_a_value_model_is_pinned(tmp_path, monkeypatch):
    from insiders.value.apply import run_horizon, value_step_enabled

    monkeypatch.setenv("INSIDERS_PIN_FILE", str(tmp_path / "pin.yml"))
    assert not value_step_enabled()
    store = LocalStore(tmp_path / "store")
    _save_value(store, ValueModel(**TRUE))
    pin_version(store, "v-value-1", kind=VALUE)
    assert value_step_enabled()
    assert run_horizon() == 90
    listed = run_cli("value", "models", "--artifacts", str(tmp_path / "store"))
    assert " * v-value-1  " in listed.stdout and "(* pinned: v-value-1)" in listed.stdout
    monkeypatch.setenv("INSIDERS_VALUE_HORIZON_DAYS", "0")
    with pytest.raises(ValueInputError, match="positive number of days"):
        run_horizon()


def _figures(predicted: bool):
    from insiders.value.sections import ValueFigures

    segments = pd.DataFrame(
        {
            "segment_rank": [1, 2],
            "segment_name": ["Insiders", "Others"],
            "is_insider": [True, False],
            "customers": [10.0, 90.0],
            "customers_with_value": [10.0, 90.0] if predicted else [0.0, 0.0],
            "horizon_days": [90.0, 90.0] if predicted else [np.nan, np.nan],
            "expected_purchases": [30.0, 20.0] if predicted else [np.nan, np.nan],
            "expected_revenue": [3000.0, 1000.0] if predicted else [np.nan, np.nan],
            "at_risk_customers": [2.0, 40.0] if predicted else [np.nan, np.nan],
            "at_risk_revenue": [500.0, 800.0] if predicted else [np.nan, np.nan],
            "mean_p_alive": [0.9, 0.5] if predicted else [np.nan, np.nan],
            "value_model_version": ["v1", "v1"] if predicted else [None, None],
        }
    )
    return ValueFigures(segments=segments, at_risk_insiders=[7, 9] if predicted else [])


def test_answers_and_report_section_state_the_value_figures():
    from insiders.value.sections import answer_lines, section_html

    lines = answer_lines(_figures(True), "GBP")
    assert lines[0].startswith("6. Expected revenue from Insiders over the next 90 days: £3,000")
    assert "(75.0% of all customers'" in lines[0]
    assert lines[1] == "7. Insiders at risk (P(alive) below 0.5): 2 of 10, who spent £500.00 to date: 7, 9."
    html = section_html(_figures(True), "GBP")
    assert 'id="value-chart"' in html and "Expected revenue per segment over the next 90 days" in html
    assert html.count("<tr>") == 3  # header and two segments
    # Without predictions: said plainly, no chart; without the mart: nothing at all.
    assert "no value predictions" in answer_lines(_figures(False), "GBP")[0]
    assert "value-chart" not in section_html(_figures(False), "GBP")
    assert answer_lines(None, "GBP") == [] and section_html(None, "GBP") == ""
