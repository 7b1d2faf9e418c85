"""``insiders run`` end to end: repeatable marts, no overlapping runs, and kills that publish nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import PROJECT, query, run_cli

from insiders.pipeline import RUN_LOCK_KEY
from insiders.warehouse import Target, connect

pytestmark = pytest.mark.slow

# Columns about the run itself (its id, time, and changes since the run before); everything else must be
# identical when the same data is run again.
RUN_COLUMNS = {"run_id", "scored_at", "insider_since", "entered_since_previous_run", "left_since_previous_run"}
# Marts that list every run: they grow by one run per run.
PER_RUN_MARTS = {"segment_transitions", "insiders_changes"}


@pytest.fixture
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small generated raw file; the model pin and the artifacts stay in the test's folder."""
    monkeypatch.setenv("INSIDERS_PIN_FILE", str(tmp_path / "pinned_model.yml"))
    monkeypatch.setenv("INSIDERS_ARTIFACT_URI", str(tmp_path / "artifacts"))
    path = tmp_path / "landing" / "sample.csv.gz"
    run_cli("generate", "--out", str(path), "--customers", "300", "--months", "6", "--seed", "11", "--quiet")
    return path


def marts(target: Target) -> dict[str, pd.DataFrame]:
    """Every published mart, rows sorted, as DataFrames."""
    schema = f"{target.schema}_marts"
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


def without_run_columns(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {
        name: frame.drop(columns=[c for c in frame.columns if c in RUN_COLUMNS])
        for name, frame in frames.items()
        if name not in PER_RUN_MARTS
    }


def assert_marts_consistent(target: Target) -> None:
    """The published marts describe one run: counts and revenues agree across them."""
    s = f"{target.schema}_marts"
    (summary,) = query(target, f"select insiders, customers, run_id, scored_at from {s}.insiders_summary")
    assert query(target, f"select count(*) from {s}.insiders") == [(summary[0],)]
    assert query(target, f"select count(*) from {s}.dim_customers where is_insider") == [(summary[0],)]
    assert query(target, f"select sum(customers) from {s}.segment_profiles")[0][0] == summary[1]
    scored = query(target, f"select distinct scored_at from {s}.dim_customers where scored_at is not null")
    assert scored == [(summary[3],)], "dim_customers and insiders_summary come from the same run"


def assert_same_marts(target: Target, before: dict[str, pd.DataFrame]) -> None:
    """The published marts are exactly what they were (the killed run published nothing)."""
    now = marts(target)
    assert now.keys() == before.keys()
    for name, frame in now.items():
        pd.testing.assert_frame_equal(frame, before[name], obj=name)


def history_runs(target: Target) -> int:
    return query(target, f"select count(distinct run_id) from {target.schema}.customer_segment_history")[0][0]


def start_run(target: Target, sample: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        # --force: these runs repeat a published run's inputs, and must do the work to be killed in it.
        [sys.executable, "-m", "insiders.cli", "run", "--target", target.name, "--source", str(sample), "--force"],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for(proc: subprocess.Popen[str], marker: str, timeout: float = 300) -> None:
    """Read the run's output until a line starts with ``marker``."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(marker):
            return
        if time.monotonic() > deadline:
            break
    pytest.fail(f"the run never printed {marker!r} (exit {proc.poll()})")


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the run and everything it started (dbt included), as a crash or an OOM kill would."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def test_run_twice_and_kills_leave_the_published_marts_intact(target: Target, sample: Path) -> None:
    first = run_cli("run", "--target", target.name, "--source", str(sample), "--train-if-unpinned")
    assert "Run succeeded" in first.stdout
    for step in ("load", "features", "train", "score", "marts", "publish"):
        assert f"<== {step}:" in first.stdout, step
    before = marts(target)
    assert {"dim_customers", "insiders_summary", "fct_sales", "segment_profiles"} <= set(before)
    assert_marts_consistent(target)
    runs = history_runs(target)

    # Killed while scoring: the scoring transaction never commits, the marts are untouched.
    proc = start_run(target, sample)
    wait_for(proc, "==> score")
    kill(proc)
    assert_same_marts(target, before)
    assert_marts_consistent(target)

    # Killed while dbt builds the marts: nothing is published.
    proc = start_run(target, sample)
    wait_for(proc, "==> marts")
    time.sleep(3)
    kill(proc)
    assert_same_marts(target, before)
    assert_marts_consistent(target)

    # The same data again: identical marts (but for the run's own id and time), one more run in the history.
    runs = history_runs(target)
    again = run_cli("run", "--target", target.name, "--source", str(sample), "--force")
    assert "already loaded" in again.stdout and "Run succeeded" in again.stdout
    assert history_runs(target) == runs + 1
    now = marts(target)
    for name, frame in without_run_columns(now).items():
        pd.testing.assert_frame_equal(frame, without_run_columns(before)[name], obj=name)
    for name in PER_RUN_MARTS:
        assert len(now[name]) >= len(before[name]), name
    assert_marts_consistent(target)


def test_a_second_run_is_refused_while_one_runs(target: Target, sample: Path) -> None:
    run_cli("run", "--target", target.name, "--source", str(sample), "--train-if-unpinned")
    proc = start_run(target, sample)
    try:
        wait_for(proc, "==> features")
        second = run_cli("run", "--target", target.name, "--source", str(sample), check=False)
    finally:
        kill(proc)
    assert second.returncode == 3
    assert "another insiders run is in progress" in second.stderr and "Traceback" not in second.stderr


def test_the_postgres_lock_is_a_session_advisory_lock(pg_database: str, sample: Path) -> None:
    import psycopg2

    holder = psycopg2.connect(
        host=os.environ.get("INSIDERS_PG_HOST", "127.0.0.1"),
        port=int(os.environ.get("INSIDERS_PG_PORT", "5432")),
        user=os.environ.get("INSIDERS_PG_USER", "postgres"),
        dbname=pg_database,
    )
    try:
        with holder.cursor() as cur:
            cur.execute("select pg_advisory_lock(%s)", [RUN_LOCK_KEY])
        refused = run_cli("run", "--target", "postgres", "--source", str(sample), check=False)
    finally:
        holder.close()
    assert refused.returncode == 3 and "advisory lock" in refused.stderr
    assert query_count_raw(pg_database) == 0, "a refused run does nothing"


def query_count_raw(database: str) -> int:
    with connect("postgres") as wh:
        if not wh.relation_exists("raw", "transactions"):
            return 0
        return int(wh.query("select count(*) from raw.transactions")[0][0])


def test_missing_pin_names_the_step_and_the_fix(duckdb_file: Path, sample: Path) -> None:
    proc = run_cli("run", "--target", "local", "--source", str(sample), check=False)
    assert proc.returncode == 2
    assert "step 'score' failed" in proc.stderr and "insiders train --promote" in proc.stderr
    assert "Run FAILED" in proc.stdout and "features" in proc.stdout


def test_source_can_be_an_s3_prefix(s3_bucket: str, tmp_path: Path) -> None:
    """Raw files under an s3:// prefix are downloaded for loading; truth files and other objects are not."""
    from s3_server import s3_client

    from insiders.pipeline import raw_files

    client = s3_client(os.environ["INSIDERS_S3_ENDPOINT_URL"])
    client.put_object(Bucket=s3_bucket, Key="landing/2011-11.csv.gz", Body=b"nov")
    client.put_object(Bucket=s3_bucket, Key="landing/2011-12.csv", Body=b"dec")
    client.put_object(Bucket=s3_bucket, Key="landing/2011-12.csv.truth.csv", Body=b"truth")
    client.put_object(Bucket=s3_bucket, Key="landing/readme.txt", Body=b"notes")
    client.put_object(Bucket=s3_bucket, Key="elsewhere/2011-10.csv", Body=b"oct")
    work = tmp_path / "work"
    work.mkdir()
    files = raw_files(f"s3://{s3_bucket}/landing", work)
    assert [p.read_bytes() for p in files] == [b"nov", b"dec"]
    assert all(p.parent == work for p in files)
