"""The segmentation model: determinism, scoring, ranks and names, validation, and the quality bars.

Fast tests run on small synthetic customer tables built here. The quality bars run on the real file's features
(fixture ``real_features``) and on generated data with planted segments (fixture ``generated_features``).
"""

from __future__ import annotations

import io
import re
from dataclasses import replace

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from insiders.model import (
    DEFAULT_FEATURES,
    ModelConfig,
    SegmentModel,
    StabilityReport,
    explain_choice,
    fit_model,
    jaccard,
    select_model,
    stability,
    validate_features,
)

# Small and quick: few trees, few restarts, one extra seed and one sample in model selection.
FAST = ModelConfig(
    candidate_ks=(3, 4, 5), n_estimators=40, n_init=5, selection_seeds=1, selection_samples=1, min_samples_leaf=0.02
)


def make_customers(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Customers from four groups: a few big spenders, regulars, lapsed buyers and one-off buyers."""
    rng = np.random.default_rng(seed)
    groups = [  # share, log revenue, recency range, log lines, frequency, returns rate
        (0.07, 9.0, (0, 15), 5.5, 0.06, 20),
        (0.33, 7.0, (5, 60), 4.0, 0.03, 2),
        (0.33, 6.0, (180, 360), 3.0, 0.02, 1),
        (0.27, 5.3, (10, 300), 2.5, 1.0, 0.2),
    ]
    sizes = [round(share * n) for share, *_ in groups]
    sizes[-1] = n - sum(sizes[:-1])
    parts = []
    for size, (_, log_rev, (r_lo, r_hi), log_lines, freq, returns) in zip(sizes, groups, strict=True):
        parts.append(
            pd.DataFrame(
                {
                    "gross_revenue": np.round(np.exp(rng.normal(log_rev, 0.35, size)), 2),
                    "recency_days": rng.integers(r_lo, r_hi + 1, size).astype("int32"),
                    "qty_products": np.maximum(1, np.exp(rng.normal(log_lines, 0.3, size))).astype("int64"),
                    "frequency": freq * np.exp(rng.normal(0, 0.1, size)) if freq < 1 else np.ones(size),
                    "qty_returns": rng.poisson(returns, size).astype("int64"),
                }
            )
        )
        part = parts[-1]
        part["qty_invoices"] = np.maximum(1, np.round(part["frequency"] * 30)).astype("int64")
        part["qty_items"] = (part["qty_products"] * 6).astype("int64")
        part["return_rate"] = part["qty_returns"] / (part["qty_items"] + part["qty_returns"])
    df = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    df.insert(0, "customer_id", np.arange(20_000, 20_000 + n, dtype="int64"))
    df["as_of_date"] = pd.Timestamp("2011-12-09")
    return df


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return make_customers()


@pytest.fixture(scope="module")
def trained(customers):
    return fit_model(customers, FAST)


# ------------------------------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_model_labels_and_pickled_predictions(customers, trained):
    again = fit_model(customers, FAST)
    first = trained.model.predict(customers)
    pd.testing.assert_frame_equal(first, again.model.predict(customers))
    pd.testing.assert_frame_equal(trained.selection, again.selection)
    pd.testing.assert_frame_equal(trained.profile, again.profile)
    assert trained.chosen_k == again.chosen_k

    buffer = io.BytesIO()
    joblib.dump(trained.model, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    assert isinstance(loaded, SegmentModel)
    pd.testing.assert_frame_equal(first, loaded.predict(customers))
    np.testing.assert_array_equal(trained.model.embed_2d(customers), loaded.embed_2d(customers))


def test_another_seed_is_another_model_but_the_same_insiders(customers, trained):
    other = fit_model(customers, replace(FAST, seed=7))
    a = trained.model.predict(customers)
    b = other.model.predict(customers)
    assert jaccard(a.customer_id[a.is_insider], b.customer_id[b.is_insider]) >= 0.9


# ------------------------------------------------------------------------------------------------------ scoring


def test_predict_is_row_independent(customers, trained):
    model = trained.model
    whole = model.predict(customers)
    chunks = pd.concat([model.predict(customers.iloc[i : i + 97]) for i in range(0, len(customers), 97)])
    pd.testing.assert_frame_equal(whole, chunks)
    one = model.predict(customers.iloc[[5]])
    pd.testing.assert_frame_equal(one, whole.iloc[[5]])
    shuffled = customers.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(model.predict(shuffled), whole.loc[shuffled.index])


def test_predict_output_columns_and_order(customers, trained):
    out = trained.model.predict(customers)
    assert list(out.columns) == ["customer_id", "cluster_id", "segment_rank", "segment_name", "is_insider"]
    assert out.index.equals(customers.index)
    assert out["customer_id"].tolist() == customers["customer_id"].tolist()
    assert out["is_insider"].tolist() == (out["segment_rank"] == 1).tolist()
    assert set(out.loc[out.is_insider, "segment_name"]) == {"Insiders"}
    empty = trained.model.predict(customers.iloc[:0])
    assert len(empty) == 0 and list(empty.columns) == list(out.columns)


def test_predict_ignores_extra_columns_and_column_order(customers, trained):
    reordered = customers[["as_of_date", *reversed(DEFAULT_FEATURES), "customer_id"]].assign(country="X")
    pd.testing.assert_frame_equal(trained.model.predict(reordered), trained.model.predict(customers))


def test_embed_2d_shape(customers, trained):
    xy = trained.model.embed_2d(customers)
    assert xy.shape == (len(customers), 2)
    assert np.isfinite(xy).all()


# ------------------------------------------------------------------------------------------- ranks, names, profile


def test_rank_one_has_the_highest_mean_revenue(customers, trained):
    profile = trained.profile
    assert profile["segment_rank"].tolist() == list(range(1, trained.chosen_k + 1))
    means = profile["mean_gross_revenue"].to_numpy()
    assert (np.diff(means) < 0).all()
    assert profile.loc[0, "segment_name"] == "Insiders"
    scored = trained.model.predict(customers)
    by_rank = customers.groupby(scored["segment_rank"])["gross_revenue"].mean()
    assert by_rank.idxmax() == 1


def test_segment_names_are_unique_and_readable(trained):
    names = trained.profile["segment_name"].tolist()
    assert len(set(names)) == len(names)
    assert names.count("Insiders") == 1
    assert all(name and not name.isdigit() for name in names)


def test_the_planted_big_spenders_are_the_insiders(customers, trained):
    scored = trained.model.predict(customers)
    planted = customers.nlargest(round(0.07 * len(customers)), "gross_revenue")["customer_id"]
    assert jaccard(planted, scored.loc[scored.is_insider, "customer_id"]) >= 0.8


def test_profile_adds_up(customers, trained):
    profile = trained.model.profile(customers)
    assert profile["customers"].sum() == len(customers)
    assert profile["customer_share"].sum() == pytest.approx(1.0)
    assert profile["revenue_share"].sum() == pytest.approx(1.0)
    assert profile["revenue"].sum() == pytest.approx(customers["gross_revenue"].sum())
    for feature in DEFAULT_FEATURES:
        assert f"mean_{feature}" in profile.columns


def test_profile_of_a_subset_lists_every_segment(customers, trained):
    profile = trained.model.profile(customers.iloc[:3])
    assert len(profile) == trained.chosen_k
    assert profile["customers"].sum() == 3


# -------------------------------------------------------------------------------------------------- selection


def test_selection_table(customers, trained):
    table = trained.selection
    kmeans = table[table.method == "kmeans"]
    assert kmeans["k"].tolist() == [3, 4, 5]
    assert set(table.method) == {"kmeans", "gaussian_mixture", "agglomerative_ward", "dbscan"}
    assert table["chosen"].sum() == 1
    assert int(table.loc[table.chosen, "k"].iloc[0]) == trained.chosen_k
    for column in (
        "silhouette_embedded",
        "insiders_customers",
        "insiders_share",
        "insiders_revenue_share",
        "jaccard_seeds_median",
        "jaccard_samples_min",
        "noise_share",
    ):
        assert column in table.columns
    assert table.loc[table.method == "dbscan", "noise_share"].between(0, 1).all()
    assert kmeans["silhouette_embedded"].between(-1, 1).all()
    chosen_k, again = select_model(customers, FAST)
    assert chosen_k == trained.chosen_k
    pd.testing.assert_frame_equal(again, table)


def test_a_selection_table_without_candidates_is_refused(trained):
    with pytest.raises(ValueError, match="no candidate k to choose from"):
        explain_choice(trained.selection.iloc[:0], FAST, trained.chosen_k)


def test_a_fixed_k_skips_the_choice(customers):
    result = fit_model(customers, replace(FAST, k=5))
    assert result.chosen_k == 5
    assert result.selection.loc[result.selection.method == "kmeans", "k"].tolist() == [5]


def test_stability_report(customers):
    report = stability(customers, replace(FAST, k=4), seeds=2, samples=2)
    assert isinstance(report, StabilityReport)
    assert len(report.seed_pairs) == 3  # all pairs among the base model and 2 other seeds
    assert len(report.sample_runs) == 2
    frame = report.to_frame()
    assert list(frame.columns) == ["comparison", "a", "b", "jaccard"] and len(frame) == 5
    assert frame["jaccard"].between(0, 1).all()
    text = report.to_text()
    assert "Jaccard" in text and "silhouette" in text
    assert 0 < report.insiders_share < 1


def test_invalid_configurations():
    with pytest.raises(ValueError, match="gross_revenue"):
        ModelConfig(features=("recency_days", "qty_products"))
    with pytest.raises(ValueError, match="k must be"):
        ModelConfig(k=1)
    with pytest.raises(ValueError, match="n_components"):
        ModelConfig(n_components=9)


# -------------------------------------------------------------------------------------------------- validation

# Validation is exercised on a five-column feature list with integer, float and day columns.
VALIDATED = ("gross_revenue", "recency_days", "qty_products", "frequency", "qty_returns")
DTYPES = {
    "gross_revenue": "float64",
    "recency_days": "int32",
    "qty_products": "int64",
    "frequency": "float64",
    "qty_returns": "int64",
}


def _table(n: int = 5) -> pd.DataFrame:
    return make_customers(40)[["customer_id", *VALIDATED]].head(n).copy()


def _message(df: pd.DataFrame, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        validate_features(df, VALIDATED, DTYPES, **kwargs)
    return str(info.value)


def test_validate_accepts_a_good_table():
    validate_features(_table(), VALIDATED, DTYPES)
    validate_features(_table().assign(recency_days=lambda d: d.recency_days.astype("int64")), VALIDATED, DTYPES)


def test_validate_names_missing_and_extra_columns():
    message = _message(_table().drop(columns=["frequency", "customer_id"]).assign(country="UK", note=1))
    assert "missing columns: customer_id, frequency" in message
    assert "unexpected columns: country, note" in message
    validate_features(_table().assign(country="UK"), VALIDATED, DTYPES, allow_extra=True)


def test_validate_counts_null_and_infinite_values():
    df = _table()
    df.loc[[0, 1], "gross_revenue"] = np.nan
    df.loc[1, "frequency"] = np.nan
    df.loc[3, "frequency"] = np.inf
    message = _message(df)
    assert "2 customers with NULL values (gross_revenue: 2, frequency: 1)" in message
    assert "1 customer with infinite values (frequency: 1)" in message


def test_validate_catches_wrong_types():
    df = _table()
    df["gross_revenue"] = df["gross_revenue"].astype(str)
    df["qty_returns"] = df["qty_returns"] > 0
    df["qty_products"] = df["qty_products"] + 0.5
    message = _message(df)
    assert "column gross_revenue has type" in message and "expected a number (trained as float64)" in message
    assert "column qty_returns has type bool" in message
    assert "column qty_products has type float64 with 5 customers holding fractions" in message


def test_validate_catches_repeated_customers():
    df = _table()
    df.loc[1, "customer_id"] = df.loc[0, "customer_id"]
    assert "1 repeated customer_id values" in _message(df)


def test_predict_refuses_bad_input(customers, trained):
    bad = customers.head(10).copy()
    bad.loc[bad.index[:3], "recency_days"] = pd.NA
    bad = bad.astype({"recency_days": "Int32"})
    with pytest.raises(ValueError, match="3 customers with NULL values"):
        trained.model.predict(bad)
    with pytest.raises(ValueError, match="missing columns: return_rate"):
        trained.model.predict(customers.drop(columns="return_rate"))


# ------------------------------------------------------------------------------------------------ quality bars


@pytest.fixture(scope="module")
def real_model(real_features):
    return fit_model(real_features, ModelConfig())


@pytest.mark.slow
@pytest.mark.realdata
def test_real_data_insiders_are_defensible(real_features, real_model):
    """Issue 7's acceptance on the real file, measured here from the scored customers, not from the checks."""
    f = real_features.merge(real_model.model.predict(real_features), on="customer_id", validate="one_to_one")
    insiders = f[f["is_insider"]]
    n = len(f)
    assert 0.05 <= len(insiders) / n <= 0.16, len(insiders)
    assert insiders["gross_revenue"].sum() / f["gross_revenue"].sum() >= 0.50
    # every top-1 % spender who bought within 30 days is in
    top = f.nlargest(round(0.01 * n), "gross_revenue")
    recent_top = top[top["recency_days"] <= 30]
    assert len(recent_top) >= 30
    assert recent_top["is_insider"].all(), recent_top.loc[~recent_top["is_insider"], "customer_id"].tolist()
    # returns do not gate membership
    top_same = f.nlargest(len(insiders), "gross_revenue")
    gap = abs((insiders["return_rate"] == 0).mean() - (top_same["return_rate"] == 0).mean())
    assert gap <= 0.10, gap
    assert (insiders["return_rate"] == 0).sum() > 0
    # no weak Insiders
    assert (insiders["gross_revenue"] < f["gross_revenue"].median()).mean() <= 0.01
    assert insiders["recency_days"].max() <= 90
    # the example: the second biggest spender, no returns, bought on the reference day
    assert bool(f.loc[f["customer_id"] == 18102, "is_insider"].iloc[0])
    # the model agrees with what it reports
    assert not real_model.failed, [c.to_text() for c in real_model.failed]
    assert any("(chosen)" in line and "eligible." in line for line in real_model.explanation)


@pytest.mark.slow
@pytest.mark.realdata
def test_real_data_insiders_are_stable(real_features, real_model):
    report = stability(real_features, ModelConfig(), seeds=5, samples=5)
    print(report.to_text())
    summary = report.summary()
    assert report.k == real_model.chosen_k
    assert len(report.seed_pairs) >= 5 and len(report.sample_runs) == 5
    assert summary["jaccard_seeds_median"] >= 0.95, report.to_text()
    assert summary["jaccard_seeds_min"] >= 0.93, report.to_text()
    assert summary["jaccard_samples_median"] >= 0.95, report.to_text()
    assert summary["jaccard_samples_min"] >= 0.90, report.to_text()
    assert report.shortcomings(ModelConfig()) == []


@pytest.mark.slow
@pytest.mark.realdata
def test_segment_names_are_unique_and_meaningful_at_every_k(real_features):
    for k in range(3, 11):
        names = fit_model(real_features, ModelConfig(k=k, n_estimators=100, n_init=5)).model.segments()["segment_name"]
        assert names.is_unique, (k, names.tolist())
        assert not any("rank" in name for name in names), (k, names.tolist())
        assert names.iloc[0] == "Insiders"


@pytest.mark.slow
def test_generated_segments_are_recovered(generated_features):
    features, truth = generated_features
    result = fit_model(features, ModelConfig())
    scored = result.model.predict(features).merge(truth, on="customer_id", how="inner", validate="one_to_one")
    assert len(scored) == len(features)
    ari = adjusted_rand_score(scored["segment"], scored["segment_rank"])
    planted = set(scored.loc[scored["segment"] == "insiders", "customer_id"])
    found = set(scored.loc[scored["is_insider"], "customer_id"])
    assert ari >= 0.9, f"adjusted Rand index {ari:.3f} (k={result.chosen_k})"
    assert jaccard(planted, found) >= 0.95, f"Jaccard {jaccard(planted, found):.3f}: {len(planted)} vs {len(found)}"
    # The planted Insiders are fewer (3 %) than the real bar (5 %): the rule falls back and says so.
    assert any(line.startswith("Warning:") for line in result.explanation)


def test_a_forced_k_that_fails_a_check_trains_and_says_which(customers):
    result = fit_model(customers, replace(FAST, k=3, max_insiders_share=0.05))
    assert result.chosen_k == 3
    failed = [c.name for c in result.failed]
    assert "insiders_share" in failed
    assert any("forced k = 3 fail" in line and "insiders_share" in line for line in result.explanation)
    assert not fit_model(customers, replace(FAST, k=5)).failed


def test_model_card_explains_the_choice_and_reads_well(customers, trained):
    from insiders.training import model_card

    manifest = {
        "training_data": {
            "customers": len(customers),
            "as_of_date": "2011-12-09",
            "target": "local",
            "fingerprint": "0" * 64,
        },
        "created_at": "2026-01-01T00:00:00Z",
        "features": list(FAST.features),
        "chosen": f"KMeans with k={trained.chosen_k}",
        "libraries": {"scikit-learn": "x"},
    }
    card = model_card("v1", manifest, trained.profile, trained.selection, trained.explanation, trained.checks)
    assert "## Why this k" in card and trained.explanation[0] in card
    assert "## Business checks of the Insiders" in card and "[pass]" in card
    assert "## Appendix: every candidate" in card
    assert not re.search(r"\|\s*(nan|<NA>|None|NaT)\s*\|", card), card
    appendix = card.split("## Appendix")[1]
    share = trained.selection.loc[trained.selection["chosen"], "insiders_share"].iloc[0]
    assert f"{share:.1%}" in appendix
