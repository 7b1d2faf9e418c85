"""Training, promotion and scoring against a real warehouse (DuckDB and PostgreSQL) and artifact store."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import query, run_cli

from insiders import registry
from insiders.artifacts import ArtifactError, LocalStore, S3Store
from insiders.model import ModelConfig
from insiders.registry import ModelNotPinnedError, load_pinned, read_pin
from insiders.scoring import FeatureValidationError, score
from insiders.training import train
from insiders.warehouse import Target, Warehouse, connect

FAST = ModelConfig(k=4, n_estimators=40, n_init=4, selection_seeds=1, selection_samples=1)
SEGMENT_COLUMNS = "customer_id, cluster_id, segment_rank, segment_name, is_insider, model_version"


def synthetic_features(n: int = 600, seed: int = 3) -> pd.DataFrame:
    """Customers from three behaviours: a few big frequent spenders, regulars, and lapsed one-off buyers."""
    rng = np.random.default_rng(seed)
    group = rng.choice(3, size=n, p=[0.1, 0.5, 0.4])
    revenue = np.where(
        group == 0,
        rng.lognormal(9, 0.4, n),
        np.where(group == 1, rng.lognormal(6.5, 0.5, n), rng.lognormal(4.5, 0.5, n)),
    )
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(10_000, 10_000 + n, dtype=np.int64),
            "as_of_date": dt.date(2011, 12, 9),
            "gross_revenue": revenue.round(2),
            "recency_days": np.where(group == 2, rng.integers(150, 370, n), rng.integers(0, 60, n)),
            "qty_invoices": np.where(group == 0, rng.integers(20, 60, n), rng.integers(1, 8, n)),
            "qty_products": np.where(group == 0, rng.integers(200, 900, n), rng.integers(5, 80, n)),
            "frequency": np.where(group == 0, rng.uniform(0.1, 0.4, n), rng.uniform(0.005, 0.05, n)),
            "qty_returns": np.where(group == 0, rng.integers(0, 60, n), rng.integers(0, 3, n)),
            "return_rate": np.where(group == 0, rng.uniform(0, 0.2, n), rng.uniform(0, 0.05, n)).round(4),
        }
    )
    return frame


COLUMN_TYPES = {
    "customer_id": "bigint not null",
    "as_of_date": "date",
    "gross_revenue": "numeric(18, 4)",
    "recency_days": "integer",
    "qty_invoices": "bigint",
    "qty_products": "bigint",
    "frequency": "double precision",
    "qty_returns": "bigint",
    "return_rate": "double precision",
}


def create_features(wh: Warehouse, frame: pd.DataFrame, types: dict[str, str] | None = None) -> None:
    """Write a customer_features table as dbt would (same name, schema and types)."""
    import pyarrow as pa

    types = types or COLUMN_TYPES
    schema = wh.target.schema
    with wh.transaction():
        wh.execute(f"create schema if not exists {schema}")
        wh.execute(f"drop table if exists {schema}.customer_features")
        cols = ", ".join(f"{c} {types[c]}" for c in frame.columns)
        wh.execute(f"create table {schema}.customer_features ({cols})")
        wh.append_arrow(f"{schema}.customer_features", pa.Table.from_pandas(frame, preserve_index=False))


@pytest.fixture
def pin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "pinned_model.yml"
    monkeypatch.setenv("INSIDERS_PIN_FILE", str(path))
    monkeypatch.delenv("INSIDERS_MODEL_VERSION", raising=False)
    monkeypatch.delenv("INSIDERS_MODEL_SHA256", raising=False)
    return path


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "artifacts")


@pytest.fixture
def trained(target: Target, store: LocalStore, pin_path: Path):
    """A warehouse with customer_features, and a model trained on it and promoted."""
    with connect(target) as wh:
        create_features(wh, synthetic_features())
        outcome = train(wh, store, target.schema, FAST, promote=True)
    return outcome


def segments(target: Target) -> list[tuple]:
    return query(target, f"select {SEGMENT_COLUMNS} from {target.schema}.customer_segments order by customer_id")


def test_train_writes_a_verified_version_and_pins_it(trained, store: LocalStore, pin_path: Path) -> None:
    saved = trained.saved
    pin = read_pin()
    assert pin.version == saved.version and pin.sha256 == saved.model.sha256
    manifest = registry.read_manifest(store, saved.version)
    assert manifest["features"] == list(FAST.features)
    assert manifest["artifact"]["sha256"] == saved.model.sha256
    assert manifest["training_data"]["customers"] == 600 and len(manifest["training_data"]["fingerprint"]) == 64
    assert {"python", "scikit-learn", "pandas"} <= set(manifest["libraries"])
    assert [s["segment_rank"] for s in manifest["segments"]] == [1, 2, 3, 4]
    assert manifest["selection"], "the selection table is recorded"
    card = store.get(f"models/{saved.version}/model_card.md").decode()
    assert "## Segment profiles" in card and "Insiders" in card
    # Rank 1 is the segment with the highest mean gross revenue.
    profile = trained.profile.sort_values("segment_rank")
    assert profile.iloc[0]["mean_gross_revenue"] == profile["mean_gross_revenue"].max()


def test_score_publishes_every_customer_and_appends_history(trained, target: Target, store: LocalStore) -> None:
    loaded = load_pinned(store)
    with connect(target) as wh:
        first = score(wh, loaded, target.schema, chunk_rows=128)
    assert first.customers == 600 and sum(first.segments.values()) == 600
    rows = segments(target)
    assert len(rows) == 600 and len({r[0] for r in rows}) == 600
    insiders = [r for r in rows if r[4]]
    assert insiders and all(r[2] == 1 for r in insiders) and len(insiders) == first.insiders
    assert {r[5] for r in rows} == {trained.saved.version}

    with connect(target) as wh:
        second = score(wh, loaded, target.schema, chunk_rows=600)
    assert segments(target) == rows, "same inputs, same model: identical segments"
    history = query(
        target,
        f"select run_id, count(*) from {target.schema}.customer_segment_history group by run_id order by 1",
    )
    assert sorted(history) == sorted([(first.run_id, 600), (second.run_id, 600)])


def test_failure_while_scoring_leaves_the_previous_table(
    trained, target: Target, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_pinned(store)
    with connect(target) as wh:
        good = score(wh, loaded, target.schema, chunk_rows=200)
    before = query(target, f"select {SEGMENT_COLUMNS}, run_id from {target.schema}.customer_segments order by 1")

    calls = {"n": 0}
    original = Warehouse.append_arrow

    def fail_on_second_chunk(self, table, data, casts=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected failure while writing segments")
        return original(self, table, data, casts)

    monkeypatch.setattr(Warehouse, "append_arrow", fail_on_second_chunk)
    with connect(target) as wh, pytest.raises(RuntimeError, match="injected"):
        score(wh, loaded, target.schema, chunk_rows=200)
    after = query(target, f"select {SEGMENT_COLUMNS}, run_id from {target.schema}.customer_segments order by 1")
    assert after == before and {r[-1] for r in after} == {good.run_id}
    assert query(target, f"select count(distinct run_id) from {target.schema}.customer_segment_history") == [(1,)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("drop", "missing feature column(s): return_rate"),
        ("text", "recency_days is"),
        ("null", "2 of 600 customers have NULL or non-finite feature values (frequency: 2)"),
    ],
)
def test_schema_drift_and_bad_values_are_refused(
    trained, target: Target, store: LocalStore, change: str, message: str
) -> None:
    loaded = load_pinned(store)
    with connect(target) as wh:
        score(wh, loaded, target.schema)
    before = segments(target)
    frame = synthetic_features()
    types = dict(COLUMN_TYPES)
    if change == "drop":
        frame = frame.drop(columns="return_rate")
    elif change == "text":
        frame["recency_days"] = frame["recency_days"].astype(str)
        types["recency_days"] = "varchar"
    else:
        frame["frequency"] = frame["frequency"].astype(object)
        frame.loc[[5, 17], "frequency"] = None
    with connect(target) as wh:
        create_features(wh, frame, types)
        with pytest.raises(FeatureValidationError) as err:
            score(wh, loaded, target.schema)
    assert message in str(err.value)
    assert segments(target) == before, "a refused run writes nothing"


def test_a_new_column_is_named_and_left_out_of_scoring(trained, target: Target, store: LocalStore) -> None:
    """A column added to customer_features after training does not stop scoring; the trained features decide."""
    loaded = load_pinned(store)
    with connect(target) as wh:
        score(wh, loaded, target.schema)
    before = segments(target)
    frame = synthetic_features()
    # Values that would move customers if they were used.
    frame["loyalty_points"] = np.arange(len(frame))[::-1] * 1000
    types = {**COLUMN_TYPES, "loyalty_points": "integer"}
    notices: list[str] = []
    with connect(target) as wh:
        create_features(wh, frame, types)
        result = score(wh, loaded, target.schema, notice=notices.append)
    assert result.new_columns == ("loyalty_points",) and result.customers == 600
    assert len(notices) == 1 and "loyalty_points" in notices[0] and "insiders train --features" in notices[0]
    after = segments(target)
    assert [r[:5] for r in after] == [r[:5] for r in before], "the new column does not change the segments"


def test_cli_score_prints_the_notice_for_a_new_column(duckdb_file: Path, tmp_path: Path, pin_path: Path) -> None:
    store = LocalStore(tmp_path / "artifacts")
    with connect("local") as wh:
        create_features(wh, synthetic_features())
        train(wh, store, "main", FAST, promote=True)
        frame = synthetic_features().assign(loyalty_points=7)
        create_features(wh, frame, {**COLUMN_TYPES, "loyalty_points": "integer"})
    proc = run_cli("score", "--target", "local", "--artifacts", str(store.root), "--quiet")
    assert "Scored 600 customers" in proc.stdout
    assert "notice:" in proc.stderr and "loyalty_points" in proc.stderr and "not trained on" in proc.stderr
    assert "--allow-extra-columns" not in run_cli("score", "--help").stdout


def test_tampered_artifact_is_refused_before_unpickling(
    trained, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"models/{trained.saved.version}/model.joblib"
    store.put(key, store.get(key) + b"tampered")

    def never(*args, **kwargs):
        raise AssertionError("joblib.load must not run on unverified bytes")

    monkeypatch.setattr(joblib, "load", never)
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        load_pinned(store)


def test_pin_overrides_and_missing_pin(trained, store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDERS_MODEL_SHA256", "0" * 64)
    with pytest.raises(ArtifactError, match="pin expects sha256 0000"):
        load_pinned(store)
    monkeypatch.setenv("INSIDERS_MODEL_VERSION", "20000101T000000Z-00000000")
    with pytest.raises(ArtifactError, match="model version 20000101T000000Z-00000000 is not in"):
        load_pinned(store)
    monkeypatch.delenv("INSIDERS_MODEL_VERSION")
    monkeypatch.delenv("INSIDERS_MODEL_SHA256")
    registry.pin_file().unlink()
    with pytest.raises(ModelNotPinnedError, match="insiders train --promote"):
        read_pin()


def test_training_is_deterministic(duckdb_file: Path, store: LocalStore, pin_path: Path) -> None:
    with connect("local") as wh:
        create_features(wh, synthetic_features())
        a = train(wh, store, "main", FAST)
        b = train(wh, store, "main", FAST)
    assert a.saved.model.sha256 == b.saved.model.sha256, "same data and config: the same artifact bytes"
    features = synthetic_features()
    model_a = joblib.load(io.BytesIO(store.get(a.saved.model.key)))
    model_b = joblib.load(io.BytesIO(store.get(b.saved.model.key)))
    pd.testing.assert_frame_equal(model_a.predict(features), model_b.predict(features))
    pd.testing.assert_frame_equal(a.profile, b.profile)


def test_train_promote_and_score_with_the_artifact_in_s3(duckdb_file: Path, s3_bucket: str, pin_path: Path) -> None:
    s3 = S3Store(s3_bucket, "insiders/prod")
    with connect("local") as wh:
        create_features(wh, synthetic_features())
        outcome = train(wh, s3, "main", FAST, promote=True)
    pin = read_pin()
    assert pin.artifact_uri == f"s3://{s3_bucket}/insiders/prod"
    assert pin.version_id and pin.version_id == outcome.saved.model.version_id
    proc = run_cli("score", "--target", "local")
    assert "Scored 600 customers" in proc.stdout
    assert query(load_target_local(), "select count(*) from main.customer_segments") == [(600,)]


def load_target_local() -> Target:
    from insiders.warehouse import load_target

    return load_target("local")


def test_cli_score_without_a_pin_says_what_to_do(duckdb_file: Path, pin_path: Path) -> None:
    proc = run_cli("score", check=False)
    assert proc.returncode == 4
    assert "no model is pinned" in proc.stderr and "insiders train --promote" in proc.stderr


@pytest.mark.slow  # 15-25 s: make test runs it, make test-fast leaves it out
def test_cli_promote_pins_an_older_version_and_models_lists_it(
    duckdb_file: Path, tmp_path: Path, pin_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSIDERS_ARTIFACT_URI", str(tmp_path / "artifacts"))
    with connect("local") as wh:
        create_features(wh, synthetic_features())
    first = run_cli("train", "--target", "local", "--k", "3", "--promote")
    second = run_cli("train", "--target", "local", "--k", "4")
    v1 = read_pin().version
    assert v1 in first.stdout and "Not promoted" in second.stdout
    store = LocalStore(tmp_path / "artifacts")
    versions = registry.list_versions(store)
    assert len(versions) == 2 and v1 in versions
    v2 = next(v for v in versions if v != v1)
    run_cli("promote", v2)
    assert read_pin().version == v2
    listing = run_cli("models").stdout
    assert f"* {v2}" in listing and f"  {v1}" in listing
    unknown = run_cli("promote", "19990101T000000Z-deadbeef", check=False)
    assert unknown.returncode == 4 and "is not in" in unknown.stderr
    assert read_pin().version == v2, "a failed promotion leaves the pin alone"


# ----------------------------------------------------------------------------------------------------------------
# Range checks: finite but absurd values are counted against the training range, and refuse the run above a share
# ----------------------------------------------------------------------------------------------------------------
ABSURD = {
    "frequency 1e308": ("frequency", 1e308),
    "negative return rate": ("return_rate", -0.5),
    "revenue of 1e14": ("gross_revenue", 1e14),
}
# gross_revenue as a double: numeric(18, 4) cannot hold 1e14.
WIDE_TYPES = {**COLUMN_TYPES, "gross_revenue": "double precision"}


@pytest.mark.parametrize("case", list(ABSURD))
def test_values_far_outside_the_training_range_refuse_the_run(
    trained, target: Target, store: LocalStore, case: str
) -> None:
    column, value = ABSURD[case]
    loaded = load_pinned(store)
    assert set(loaded.manifest["feature_ranges"]) == set(loaded.manifest["features"])
    with connect(target) as wh:
        score(wh, loaded, target.schema)
    before = segments(target)
    frame = synthetic_features()
    frame[column] = frame[column].astype(float)
    frame.loc[[3, 50, 51, 52, 53, 54, 99], column] = value  # 7 of 600 customers: 1.17 % > 1 %
    with connect(target) as wh:
        create_features(wh, frame, WIDE_TYPES)
        with pytest.raises(FeatureValidationError) as err:
            score(wh, loaded, target.schema)
    message = str(err.value)
    assert "7 of 600 customers (1.17%) have feature values far outside the range" in message
    assert f"{column}: 7 (allowed" in message and "--max-out-of-range-share 0.01" in message
    assert segments(target) == before, "a refused run writes nothing"

    # Under a looser share the same values are scored, and counted in a notice.
    notices: list[str] = []
    with connect(target) as wh:
        result = score(wh, loaded, target.schema, notice=notices.append, max_out_of_range_share=0.05)
    assert result.customers == 600 and result.out_of_range == {column: 7}
    assert len(notices) == 1 and f"{column}: 7" in notices[0] and "scored anyway" in notices[0]


def test_values_within_the_training_range_are_not_counted_and_old_manifests_skip_the_check(
    trained, target: Target, store: LocalStore
) -> None:
    import dataclasses

    loaded = load_pinned(store)
    notices: list[str] = []
    with connect(target) as wh:
        result = score(wh, loaded, target.schema, notice=notices.append)
    assert result.out_of_range == {} and notices == []

    frame = synthetic_features()
    frame["frequency"] = frame["frequency"].astype(float)
    frame.loc[:20, "frequency"] = 1e308
    old = dataclasses.replace(loaded, manifest={k: v for k, v in loaded.manifest.items() if k != "feature_ranges"})
    with connect(target) as wh:
        create_features(wh, frame, WIDE_TYPES)
        result = score(wh, old, target.schema, notice=notices.append)
    assert result.customers == 600 and result.out_of_range == {}
    assert len(notices) == 1 and "range check is skipped" in notices[0]


def test_cli_score_fails_with_an_error_line_above_the_share(duckdb_file: Path, tmp_path: Path, pin_path: Path) -> None:
    store = LocalStore(tmp_path / "artifacts")
    frame = synthetic_features()
    frame["gross_revenue"] = frame["gross_revenue"].astype(float)
    frame.loc[:9, "gross_revenue"] = 1e14
    with connect("local") as wh:
        create_features(wh, synthetic_features())
        train(wh, store, "main", FAST, promote=True)
        create_features(wh, frame, WIDE_TYPES)
    refused = run_cli("score", "--target", "local", "--artifacts", str(store.root), "--quiet", check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    (line,) = [x for x in refused.stderr.splitlines() if x.startswith("error:")]
    assert "10 of 600 customers" in line and "gross_revenue: 10" in line
    assert query("local", "select count(*) from information_schema.tables where table_name = 'customer_segments'") == [
        (0,)
    ]
    loose = run_cli(
        "score", "--target", "local", "--artifacts", str(store.root), "--quiet", "--max-out-of-range-share", "0.02"
    )
    assert "Scored 600 customers" in loose.stdout and "gross_revenue: 10" in loose.stderr
    bad = run_cli("score", "--max-out-of-range-share", "2", check=False)
    assert bad.returncode == 2 and "between 0 and 1" in bad.stderr
