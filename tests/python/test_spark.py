"""Spark as a third target, in local mode: the same file gives the same customers, features, segments and
customer values as on DuckDB, the marts build and pass their tests, the report and the answers say the same,
training reads a bounded sample, a second run is refused, and a load killed mid-way leaves the raw tables as they
were.

Every Spark step runs in a child process (``insiders``, or a short Python snippet for reading tables back): one
process holds one SparkSession, whose warehouse folder and embedded metastore are fixed when it starts, and the
metastore admits one process at a time. The tests skip without pyspark or Java and fail instead with
``INSIDERS_REQUIRE_SPARK=1`` (CI).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PROJECT

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.usefixtures("spark_available")]

RELATIVE = 1e-9
# Exported as Parquet by a child process, read back here (no JVM in the test process).
_EXPORT = """
import sys
from insiders.warehouse import connect
wh = connect("spark")
for pair in sys.argv[1:]:
    path, sql = pair.split("=", 1)
    wh.conn.sql(sql).toPandas().to_parquet(path)
"""


# What a run published, read back by a child process on either warehouse (argv: target, output folder): the
# answers and the report as `insiders answers` and `insiders report` give them, the figures behind the report and
# its value section, customer_value and the value columns of dim_customers; on Spark also what training reads
# under the INSIDERS_SPARK_TRAIN_MAX_CUSTOMERS of the child's environment, and `insiders train` under it.
_READ_BACK = """
import contextlib, io, json, sys
from pathlib import Path
import pandas as pd
from insiders import cli
from insiders.marts import marts_schema, read_report_figures
from insiders.value.sections import read_value_figures
from insiders.warehouse import connect

target, out = sys.argv[1], Path(sys.argv[2])

def command(name, *args):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main([*args, "--target", target])
    (out / f"{name}.out").write_text(stdout.getvalue())
    (out / f"{name}.err").write_text(stderr.getvalue())
    assert status == 0, stderr.getvalue()

command("answers", "answers")
command("report", "report", "--out", str(out / "report.html"))
with connect(target) as wh:
    schema = marts_schema(wh)
    figures = read_report_figures(wh, schema, 50)
    frames = {
        "summary": pd.DataFrame([figures.summary]),
        "everyone": pd.DataFrame([figures.everyone]),
        "profiles": figures.profiles,
        "descriptions": pd.DataFrame(sorted(figures.descriptions.items()), columns=["segment_rank", "text"]),
        "monthly": figures.monthly,
        "runs": figures.runs,
        "latest_changes": figures.latest_changes,
        "first_insiders": pd.DataFrame({"customer_id": figures.first_insiders}),
        "customer_value": wh.query_df(f"select * from {wh.target.schema}.customer_value"),
        "dim_customers": wh.query_df(
            "select customer_id, value_horizon_days, expected_purchases, expected_revenue, p_alive, "
            f"value_model_version from {schema}.dim_customers"
        ),
    }
    value = read_value_figures(wh, schema)
    frames["segment_value"] = value.segments
    frames["at_risk"] = pd.DataFrame({"customer_id": value.at_risk_insiders})
    if target == "spark":
        from insiders.training import read_training_features

        notices = []
        for name, seed in (("sample", 42), ("sample_again", 42), ("sample_other_seed", 7)):
            data = read_training_features(wh, wh.target.schema, seed, notices.append)
            frames[name] = data.frame
            frames[name + "_of"] = pd.DataFrame({"customers": [data.of_customers]})
        (out / "sample.notices").write_text("\\n".join(notices))
    for name, frame in frames.items():
        frame.to_parquet(out / f"{name}.parquet")
if target == "spark":
    command("train", "train", "--artifacts", str(out / "artifacts"))
"""
# Columns that name or time a run: they differ between any two runs.
_RUN_COLUMNS = {"run_id", "scored_at", "previous_run_id", "previous_scored_at", "insider_since", "value_run_id"}


def _env(folder: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "INSIDERS_PIN_FILE": str(folder / "pinned_model.yml"),
        "INSIDERS_ARTIFACT_URI": str(folder / "artifacts"),
        "INSIDERS_DUCKDB_PATH": str(folder / "warehouse.duckdb"),
        "INSIDERS_SPARK_WAREHOUSE_DIR": str(folder / "spark" / "warehouse"),
        "INSIDERS_SPARK_METASTORE_DIR": str(folder / "spark" / "metastore"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **extra,
    }
    env.pop("INSIDERS_TARGET", None)
    return env


def _insiders(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "insiders.cli", *args], capture_output=True, text=True, cwd=PROJECT, env=env
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"insiders {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
        )
    return proc


def _spark_frames(env: dict[str, str], folder: Path, **queries: str) -> dict[str, pd.DataFrame]:
    """Run queries on the Spark warehouse of ``env`` in a child process; their results as DataFrames."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = [f"{folder / name}.parquet={sql}" for name, sql in queries.items()]
    proc = subprocess.run(
        [sys.executable, "-c", _EXPORT, *pairs], capture_output=True, text=True, cwd=PROJECT, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {name: pd.read_parquet(folder / f"{name}.parquet") for name in queries}


def _duckdb_frame(env: dict[str, str], sql: str) -> pd.DataFrame:
    import duckdb

    with duckdb.connect(env["INSIDERS_DUCKDB_PATH"], read_only=True) as con:
        return con.execute(sql).df()


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The generated sample through ``insiders run`` on DuckDB and then on Spark, with the same pinned models.

    A first DuckDB file trains and pins the segmentation model and, with the [value] group, fits and pins a value
    model; the compared DuckDB run then starts from a fresh file, so that both warehouses hold one scoring run.
    """
    from insiders.sample import generate_sample
    from insiders.value.model import value_group_installed

    folder = tmp_path_factory.mktemp("spark_runs")
    sample = generate_sample(folder / "sample.csv.gz", customers=500, months=13, seed=11).path
    env = _env(folder)
    training = {**env, "INSIDERS_DUCKDB_PATH": str(folder / "training.duckdb")}
    _insiders(training, "run", "--target", "local", "--source", str(sample), "--train-if-unpinned")
    valued = value_group_installed()
    if valued:
        _insiders(training, "value", "train", "--promote", "--target", "local")
    local = _insiders(env, "run", "--target", "local", "--source", str(sample))
    spark = _insiders(env, "run", "--target", "spark", "--source", str(sample))
    return {
        "folder": folder,
        "env": env,
        "sample": sample,
        "local": local.stdout,
        "spark": spark.stdout,
        "valued": valued,
    }


@pytest.fixture(scope="module")
def read_back(both_runs) -> dict[str, Path]:
    """What each warehouse published, read back by :data:`_READ_BACK` (Spark's training sample capped at 120)."""
    folder = both_runs["folder"]
    outs = {}
    for target, extra in (("local", {}), ("spark", {"INSIDERS_SPARK_TRAIN_MAX_CUSTOMERS": "120"})):
        out = folder / f"read_back_{target}"
        out.mkdir()
        env = {**both_runs["env"], **extra}
        proc = subprocess.run(
            [sys.executable, "-c", _READ_BACK, target, str(out)],
            capture_output=True,
            text=True,
            cwd=PROJECT,
            env=env,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        outs[target] = out
    return outs


def _frame(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(folder / f"{name}.parquet")


def _comparable(column: pd.Series) -> tuple[str, object]:
    """A column as ("time", text), ("number", floats) or ("text", text), whatever the warehouse's Python types."""
    import datetime as dt

    values = column.dropna()
    if pd.api.types.is_datetime64_any_dtype(column) or (
        len(values) and values.map(lambda v: isinstance(v, dt.date)).all()
    ):
        return "time", pd.to_datetime(column).dt.strftime("%Y-%m-%d %H:%M:%S").tolist()
    if pd.api.types.is_bool_dtype(column) or (len(values) and values.map(lambda v: isinstance(v, bool)).all()):
        return "text", column.astype(str).tolist()
    try:
        return "number", pd.to_numeric(column).astype(float).to_numpy()
    except (TypeError, ValueError):
        return "text", column.astype(str).tolist()


def _assert_columns_equal(left: pd.DataFrame, right: pd.DataFrame, columns: list[str]) -> None:
    """Row-aligned frames: each column of the same kind, numbers to 1e-9 relative with NULLs in the same places."""
    for column in columns:
        (kind, x), (other, y) = _comparable(left[column]), _comparable(right[column])
        assert kind == other, f"{column}: {kind} against {other}"
        if kind == "number":
            assert np.array_equal(np.isnan(x), np.isnan(y)), column
            both = ~np.isnan(x)
            assert np.allclose(x[both], y[both], rtol=RELATIVE, atol=0), column
        else:
            assert x == y, column


def _assert_same_values(left: pd.DataFrame, right: pd.DataFrame, key: str) -> None:
    """Same columns, same keys, and every value equal (numbers to 1e-9 relative, NULLs in the same places)."""
    assert sorted(left.columns) == sorted(right.columns)
    left = left.sort_values(key).reset_index(drop=True)
    right = right.sort_values(key).reset_index(drop=True)
    assert left[key].astype("int64").tolist() == right[key].astype("int64").tolist()
    _assert_columns_equal(left, right, list(left.columns))


def _assert_same_rows(left: pd.DataFrame, right: pd.DataFrame, keys: list[str]) -> None:
    """Same columns (but those naming a run), same rows in key order, numbers to 1e-9 relative."""
    assert sorted(left.columns) == sorted(right.columns)
    columns = [c for c in left.columns if c not in _RUN_COLUMNS]
    left = left[columns].sort_values(keys).reset_index(drop=True)
    right = right[columns].sort_values(keys).reset_index(drop=True)
    assert len(left) == len(right)
    _assert_columns_equal(left, right, columns)


def _neutral(text: str) -> str:
    """Answers or report lines without what differs by warehouse: schema names, the run's time, file paths."""
    text = re.sub(r"\b(main|analytics)_marts\b", "<marts>", text)
    text = re.sub(r"scored \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", "scored <time>", text)
    return re.sub(r"Wrote \S+", "Wrote <file>", text)


def test_report_and_answers_on_spark_say_what_they_say_on_duckdb(both_runs, read_back):
    local, spark = read_back["local"], read_back["spark"]
    answers = (spark / "answers.out").read_text()
    assert "5. Since the previous run" in answers
    assert _neutral(answers) == _neutral((local / "answers.out").read_text())
    report = (spark / "report.out").read_text()
    assert _neutral(report) == _neutral((local / "report.out").read_text())
    assert "note:" not in report, report  # the 2-D picture is drawn from Spark's customer_features too
    assert 'id="value"' in (spark / "report.html").read_text()
    keys = {
        "summary": ["customers"],
        "everyone": ["customers"],
        "profiles": ["segment_rank"],
        "descriptions": ["segment_rank"],
        "monthly": ["revenue_month", "segment_rank", "segment_name"],
        "runs": ["run_number"],
        "latest_changes": ["membership_change", "customer_id"],
        "first_insiders": ["customer_id"],
        "segment_value": ["segment_rank"],
        "at_risk": ["customer_id"],
    }
    for name, key in keys.items():
        _assert_same_rows(_frame(local, name), _frame(spark, name), key)
    assert len(_frame(spark, "first_insiders")) > 0


def test_the_value_step_on_spark_writes_duckdb_s_customer_values(both_runs, read_back, value_group):
    assert both_runs["valued"]
    assert "customers valued with value model" in both_runs["spark"], both_runs["spark"]
    local, spark = read_back["local"], read_back["spark"]
    values = _frame(spark, "customer_value")
    assert len(values) > 400
    assert values["run_id"].nunique() == 1
    _assert_same_rows(_frame(local, "customer_value"), values, ["customer_id"])
    # The marts carry them: every customer of dim_customers has a value, as on DuckDB.
    customers = _frame(spark, "dim_customers")
    assert customers["expected_revenue"].notna().all()
    _assert_same_rows(_frame(local, "dim_customers"), customers, ["customer_id"])
    assert _frame(spark, "segment_value")["customers_with_value"].sum() == len(values)


def test_training_on_spark_reads_a_seeded_sample_above_the_bound(both_runs, read_back):
    spark = read_back["spark"]
    everyone = set(_duckdb_frame(both_runs["env"], "select customer_id from main.customer_features")["customer_id"])
    features = len(everyone)
    sample = _frame(spark, "sample")
    assert len(sample) == 120
    assert int(_frame(spark, "sample_of")["customers"][0]) == features
    assert sample["customer_id"].is_unique and sample["customer_id"].is_monotonic_increasing
    assert set(sample["customer_id"].astype("int64")) <= everyone
    # The same seed chooses the same customers, with the same values; another seed other customers.
    pd.testing.assert_frame_equal(sample, _frame(spark, "sample_again"))
    assert set(sample["customer_id"]) != set(_frame(spark, "sample_other_seed")["customer_id"])
    notices = (spark / "sample.notices").read_text()
    assert f"a sample of 120 of the {features:,} customers" in notices
    # `insiders train` fits on the sample and records it in the manifest and the card.
    assert f"a sample of 120 of the {features:,} customers" in (spark / "train.err").read_text()
    (manifest_path,) = (spark / "artifacts").glob("models/*/manifest.json")
    data = json.loads(manifest_path.read_text())["training_data"]
    assert (data["customers"], data["sampled_from"], data["sample_seed"]) == (120, features, 42)
    assert f"(a sample of its {features:,}, seed 42)" in (manifest_path.parent / "model_card.md").read_text()


def test_spark_gives_the_same_customers_features_and_segments_as_duckdb(both_runs):
    env, folder = both_runs["env"], both_runs["folder"]
    assert "marts published" in both_runs["spark"], both_runs["spark"]
    spark = _spark_frames(
        env,
        folder / "export",
        features="select * from analytics.customer_features",
        segments="select customer_id, cluster_id, segment_rank, segment_name, is_insider, model_version "
        "from analytics.customer_segments",
        summary="select insiders, customers from analytics_marts.insiders_summary",
        products="select * from analytics_marts.dim_products",
    )
    local_features = _duckdb_frame(env, "select * from main.customer_features")
    assert len(local_features) > 400
    _assert_same_values(local_features, spark["features"], "customer_id")

    local_segments = _duckdb_frame(
        env,
        "select customer_id, cluster_id, segment_rank, segment_name, is_insider, model_version "
        "from main.customer_segments",
    )
    local_segments = local_segments.sort_values("customer_id").reset_index(drop=True)
    spark_segments = spark["segments"].sort_values("customer_id").reset_index(drop=True)
    for column in local_segments.columns:
        assert local_segments[column].astype(str).tolist() == spark_segments[column].astype(str).tolist(), column

    local_summary = _duckdb_frame(env, "select insiders, customers from main_marts.insiders_summary")
    assert spark["summary"].astype("int64").to_dict("records") == local_summary.astype("int64").to_dict("records")

    # The product dimension, added up from per-load totals (incremental tables on DuckDB, tables on Spark).
    local_products = _duckdb_frame(env, "select * from main_marts.dim_products")
    assert len(local_products) > 100
    _assert_same_rows(local_products, spark["products"], ["stock_code"])


def test_a_second_run_is_refused_while_one_runs(both_runs):
    env, folder = both_runs["env"], both_runs["folder"]
    lock = folder / "spark" / "metastore" / "insiders.run.lock"
    with open(lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running `insiders run` holds
        proc = _insiders(env, "run", "--target", "spark", "--source", str(both_runs["sample"]), check=False)
    assert proc.returncode == 3, proc.stderr
    assert "another insiders run is in progress" in proc.stderr


def test_a_load_killed_mid_way_leaves_the_previous_raw_tables(both_runs, tmp_path):
    from insiders.sample import generate_sample

    env, folder = both_runs["env"], both_runs["folder"]
    counts = (
        "select (select count(*) from raw.transactions) as lines, (select count(*) from raw.load_log) as loads, "
        "(select count(*) from raw.rejected_lines) as rejected"
    )
    before = _spark_frames(env, tmp_path / "before", counts=counts)["counts"]
    bigger = generate_sample(tmp_path / "next.csv.gz", customers=3000, months=13, seed=12).path
    staging = folder / "spark" / "warehouse" / "_insiders_staging"
    proc = subprocess.Popen(
        [sys.executable, "-m", "insiders.cli", "load", str(bigger), "--target", "spark"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the JVM is killed with it
    )
    try:
        deadline = time.monotonic() + 300
        while not any(staging.glob("*/lines/*.parquet")):  # the load is writing its lines
            assert proc.poll() is None, "the load ended before it could be killed"
            assert time.monotonic() < deadline, "the load never started writing"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    after = _spark_frames(env, tmp_path / "after", counts=counts)["counts"]
    assert after.to_dict("records") == before.to_dict("records")

    # The next load cleans up what the killed one left and loads the file in full.
    result = _insiders(env, "load", str(bigger), "--target", "spark")
    assert "loaded" in result.stdout
    assert not any(staging.glob("*/lines/*.parquet"))
    final = _spark_frames(env, tmp_path / "final", counts=counts)["counts"]
    assert int(final["loads"][0]) == int(before["loads"][0]) + 1
    assert int(final["lines"][0]) > int(before["lines"][0])


@pytest.mark.realdata
def test_the_real_file_gives_the_same_customers_and_features_as_duckdb(real_data, real_features, tmp_path):
    """The acceptance file through the Spark loader and the features step: 4,329 customers, the same values."""
    env = _env(tmp_path)
    _insiders(env, "load", str(real_data), "--target", "spark")
    code = (
        "from insiders.dbt_session import DbtSession\n"
        "from insiders.warehouse import load_target\n"
        "DbtSession(load_target('spark'), None, print).build('features')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    spark = _spark_frames(env, tmp_path / "export", features="select * from analytics.customer_features")["features"]
    assert len(spark) == 4329
    local = real_features.copy()
    spark = spark[local.columns]
    _assert_same_values(local, spark, "customer_id")


def test_lines_delivered_before_are_skipped_at_the_edges_of_the_new_file_s_time_window(tmp_path):
    """On Spark too, earlier lines are read within the new file's invoice times (literals in the session's time
    zone): a repeated line at either edge is skipped, a line differing only by its time is new."""
    from test_load import EARLIER, LATER, write_csv

    env = _env(tmp_path)
    _insiders(env, "load", str(write_csv(tmp_path / "earlier.csv", EARLIER)), "--target", "spark")
    later = _insiders(env, "load", str(write_csv(tmp_path / "later.csv", LATER)), "--target", "spark")
    assert "4 lines read, 2 loaded, 0 rejected, 2 skipped" in later.stdout, later.stdout
    lines = _spark_frames(
        env,
        tmp_path / "lines",
        lines="select invoice_no, cast(invoice_date as string) as invoiced from raw.transactions order by 1, 2",
    )["lines"]
    assert list(lines.itertuples(index=False, name=None)) == [
        ("540001", "2011-01-13 10:00:00"),
        ("540002", "2011-01-20 10:00:00"),
        ("540003", "2011-01-19 10:00:00"),
        ("540003", "2011-01-25 10:00:00"),
        ("540004", "2011-01-15 10:00:00"),
    ]
