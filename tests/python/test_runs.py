"""What a scheduled ``insiders run`` does when nothing changed, when data is stale, and when it back-fills."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import query, run_cli

from insiders.pipeline import RUN_STATE_TABLE
from insiders.warehouse import Target, connect

pytestmark = pytest.mark.slow


@pytest.fixture
def landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A landing folder with one small generated file; the model pin and the artifacts stay in the test's folder."""
    monkeypatch.setenv("INSIDERS_PIN_FILE", str(tmp_path / "pinned_model.yml"))
    monkeypatch.setenv("INSIDERS_ARTIFACT_URI", str(tmp_path / "artifacts"))
    folder = tmp_path / "landing"
    run_cli("generate", "--out", str(folder / "a.csv.gz"), "--customers", "300", "--months", "6", "--seed", "11", "-q")
    return folder


def published(target: Target, schema: str | None = None) -> dict[str, pd.DataFrame]:
    """Every table of a marts schema, rows sorted, as strings."""
    schema = schema or f"{target.schema}_marts"
    with connect(target) as wh:
        names = [
            r[0]
            for r in wh.query(
                "select table_name from information_schema.tables where table_schema = %s order by 1", [schema]
            )
        ]
        frames = {}
        for name in names:
            frame = wh.query_df(f"select * from {schema}.{name}")
            frames[name] = frame.sort_values(list(frame.columns)).reset_index(drop=True).astype(str)
    return frames


def scoring_runs(target: Target, schema: str | None = None) -> int:
    schema = schema or target.schema
    return query(target, f"select count(distinct run_id) from {schema}.customer_segment_history")[0][0]


def test_a_rerun_with_nothing_new_does_nothing_and_says_what_it_compared(target: Target, landing: Path) -> None:
    first = run_cli("run", "--target", target.name, "--source", str(landing), "--train-if-unpinned")
    assert "Run succeeded" in first.stdout
    before = published(target)
    assert scoring_runs(target) == 1

    again = run_cli("run", "--target", target.name, "--source", str(landing))
    assert again.returncode == 0 and "Run succeeded" not in again.stdout
    assert "Nothing new: no scoring, no publishing" in again.stdout
    (line,) = [x for x in again.stdout.splitlines() if x.startswith("<== check: nothing new since run")]
    compared_inputs = ("loads: 1 file(s) in raw", "vars: {}", "model: ", "sha256 ", "value: none pinned", "code: ")
    for compared in (*compared_inputs, f"schema: {target.schema}"):
        assert compared in line, compared
    for step in ("==> features", "==> score", "==> marts", "==> publish"):
        assert step not in again.stdout, step
    assert scoring_runs(target) == 1
    now = published(target)
    assert now.keys() == before.keys()
    for name, frame in now.items():  # the run's own columns included: "entered / left" are not reset to 0 / 0
        pd.testing.assert_frame_equal(frame, before[name], obj=name)
    assert query(target, f"select count(*) from {target.schema}.{RUN_STATE_TABLE}") == [(1,)]

    # --force does the work anyway.
    forced = run_cli("run", "--target", target.name, "--source", str(landing), "--force")
    assert "nothing new, but --force" in forced.stdout and "Run succeeded" in forced.stdout
    assert scoring_runs(target) == 2
    assert query(target, f"select count(*) from {target.schema}.{RUN_STATE_TABLE}") == [(2,)]

    # Other --vars are a change too (the as-of day among them).
    other = run_cli("run", "--target", target.name, "--vars", "{min_unit_price: 0.01}")
    assert "changed since run" in other.stdout and "vars: {} -> {min_unit_price: 0.01}" in other.stdout
    assert "Run succeeded" in other.stdout and scoring_runs(target) == 3

    # A new file is a change: the run does its work and says what changed.
    run_cli("generate", "--out", str(landing / "b.csv.gz"), "--customers", "120", "--months", "2", "--seed", "12", "-q")
    new = run_cli("run", "--target", target.name, "--source", str(landing))
    assert (
        "changed since run" in new.stdout
        and "loads: 1 file(s) in raw" in new.stdout
        and "-> 2 file(s) in raw" in new.stdout
    )
    assert "Run succeeded" in new.stdout and scoring_runs(target) == 4


def age_loads(target: Target, days: int) -> None:
    """Make every load look ``days`` days older, as if nothing had been delivered since."""
    with connect(target) as wh, wh.transaction():
        for table in ("load_log", "transactions", "rejected_lines"):
            wh.execute(f"update raw.{table} set loaded_at = loaded_at - interval '{days} days'")


def test_stale_data_fails_the_run_and_late_data_warns(target: Target, landing: Path, tmp_path: Path) -> None:
    run_cli("load", "--target", target.name, str(landing / "a.csv.gz"), "-q")
    age_loads(target, 100)
    empty = tmp_path / "empty"
    empty.mkdir()
    for source in (str(empty), str(landing)):  # an empty folder; the folder whose only file is loaded already
        stale = run_cli("run", "--target", target.name, "--source", source, "--train-if-unpinned", check=False)
        assert stale.returncode != 0 and "Run succeeded" not in stale.stdout and "Run FAILED" in stale.stdout
        (line,) = [x for x in stale.stderr.splitlines() if x.startswith("error:")]
        assert "step 'freshness' failed" in line and "a.csv.gz" in line and "is 100.0 days old" in line
        assert "error threshold of 70.0 days" in line and "--source" in line
        assert "==> features" not in stale.stdout
    with connect(target) as wh:
        assert not wh.relation_exists(f"{target.schema}_marts", "insiders_summary"), "nothing was published"

    # Between the warn (35 days) and the error (70 days) thresholds: the run warns with the age, and succeeds.
    age_loads(target, -60)
    late = run_cli("run", "--target", target.name, "--source", str(empty), "--train-if-unpinned")
    assert "Run succeeded" in late.stdout
    assert "warning: the newest load (a.csv.gz" in late.stdout and "is 40.0 days old" in late.stdout
    assert "warn threshold of 35.0 days" in late.stdout


def test_freshness_thresholds_come_from_the_sources_yaml() -> None:
    from insiders.pipeline import declared_freshness

    assert declared_freshness() == (35 * 86400.0, 70 * 86400.0)


def test_a_backfill_publishes_in_its_own_schema_and_never_touches_the_live_marts(target: Target, landing: Path) -> None:
    run_cli("run", "--target", target.name, "--source", str(landing), "--train-if-unpinned")
    live = published(target)
    assert scoring_runs(target) == 1

    backfill = run_cli("run", "--target", target.name, "--vars", "{as_of_date: 2011-03-31}")
    schema = f"{target.schema}_backfill_20110331"
    assert "Run succeeded" in backfill.stdout
    assert f"back-fill as of 2011-03-31: building, scoring and publishing in {schema}" in backfill.stdout
    assert f"marts published to {schema}_marts" in backfill.stdout

    # The live marts, history and changes are exactly as the live run left them: no old picture, no departures.
    now = published(target)
    assert now.keys() == live.keys()
    for name, frame in now.items():
        pd.testing.assert_frame_equal(frame, live[name], obj=name)
    assert query(
        target,
        f"select run_kind, count(distinct run_id) from {target.schema}.customer_segment_history group by run_kind",
    ) == [("live", 1)]

    # The back-fill has its own features as of that day, its own history (marked), and its own marts.
    assert query(target, f"select distinct as_of_date from {schema}.customer_features") == [
        (pd.Timestamp("2011-03-31").date(),)
    ]
    assert query(
        target, f"select run_kind, count(distinct run_id) from {schema}.customer_segment_history group by run_kind"
    ) == [("backfill", 1)]
    marts = published(target, f"{schema}_marts")
    assert {"dim_customers", "insiders_summary", "insiders_changes"} <= set(marts)
    changes = marts["insiders_changes"]
    assert set(changes["membership_change"]) <= {"entered"}, "a back-fill's only run records no departures"

    # The same back-fill again has nothing new (its own run state); the live schema is still untouched.
    again = run_cli("run", "--target", target.name, "--vars", "{as_of_date: 2011-03-31}")
    assert "Nothing new" in again.stdout and scoring_runs(target, schema) == 1
    assert scoring_runs(target) == 1


def test_backfill_day_and_schema_are_read_from_the_vars() -> None:
    import datetime as dt

    from insiders.errors import ConfigError
    from insiders.pipeline import backfill_day, backfill_schema

    assert backfill_day(None) is None and backfill_day("{}") is None
    assert backfill_day("{as_of_date: null}") is None and backfill_day("{min_unit_price: 0.1}") is None
    assert backfill_day("{as_of_date: 2011-06-30}") == dt.date(2011, 6, 30)
    assert backfill_day("{as_of_date: '2011-06-30'}") == dt.date(2011, 6, 30)
    assert backfill_schema("analytics", dt.date(2011, 6, 30)) == "analytics_backfill_20110630"
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        backfill_day("{as_of_date: 2011-6-31}")


def test_allowed_range_is_the_training_range_widened_by_its_width_never_negative_if_training_was_not() -> None:
    from insiders.scoring import allowed_ranges

    manifest = {
        "feature_ranges": {
            "gross_revenue": {"min": 0.0, "max": 1000.0, "p01": 5.0, "p99": 900.0},
            "balance": {"min": -50.0, "max": 50.0, "p01": -40.0, "p99": 40.0},
            "constant": {"min": 3.0, "max": 3.0, "p01": 3.0, "p99": 3.0},
        }
    }
    allowed = allowed_ranges(manifest, ["gross_revenue", "balance", "constant", "unrecorded"])
    assert allowed == {"gross_revenue": (0.0, 2000.0), "balance": (-150.0, 150.0), "constant": (2.0, 4.0)}
    assert allowed_ranges({}, ["gross_revenue"]) is None


def test_the_code_input_covers_every_module_and_the_data_tests() -> None:
    """A change to any module of the package (a subpackage's too) or to a data test makes the next run run: the
    code digest reads them all. It once read only the modules beside run_state.py."""
    from insiders.pipeline.run_state import _code_files
    from insiders.warehouse import project_dir

    package = Path(__file__).resolve().parents[2] / "python_jobs" / "insiders"
    read = {path.resolve() for path in _code_files()}
    modules = {path.resolve() for path in package.rglob("*.py")}
    assert len(modules) > 30 and modules <= read, sorted(map(str, modules - read))[:5]
    for expected in (
        package / "scoring.py",
        package / "loader" / "parsing.py",
        package / "pipeline" / "run_state.py",
        project_dir() / "tests" / "dbt" / "generic" / "unique_combination.sql",
        project_dir() / "macros" / "tested_loads.sql",
        project_dir() / "models" / "marts" / "fct_sales.sql",
        project_dir() / "seeds" / "_seeds.yml",
    ):
        assert expected.resolve() in read, expected
