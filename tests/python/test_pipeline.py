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
from insiders.warehouse import Target, connect, load_target

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


# The key of every published mart (segment_transitions has none: a transition's from/to rank is null for new and
# gone customers, so its uniqueness is a data test).
MART_KEYS = {
    "dim_customers": ["customer_id"],
    "dim_products": ["stock_code"],
    "dim_segments": ["segment_rank"],
    "fct_sales": ["transaction_line_id"],
    "insiders": ["customer_id"],
    "insiders_changes": ["run_id", "customer_id"],
    "insiders_summary": ["run_id"],
    "segment_monthly_revenue": ["revenue_month", "segment_name"],
    "segment_profiles": ["segment_rank"],
    "segment_transitions": [],
    "segment_value": ["segment_rank"],
}


def published_metadata(target: Target) -> dict[str, tuple[list[str], str | None, dict[str, str | None], set[str]]]:
    """Per published mart: primary key columns, table comment, column comments, NOT NULL columns."""
    schema = f"{target.schema}_marts"
    out = {}
    with connect(target) as wh:
        for table in MART_KEYS:
            if wh.kind == "postgres":
                key = [
                    r[0]
                    for r in wh.query(
                        "select k.column_name from information_schema.table_constraints c "
                        "join information_schema.key_column_usage k using (constraint_schema, constraint_name) "
                        "where c.table_schema = %s and c.table_name = %s and c.constraint_type = 'PRIMARY KEY' "
                        "order by k.ordinal_position",
                        [schema, table],
                    )
                ]
                comment = wh.query("select obj_description(%s::regclass, 'pg_class')", [f"{schema}.{table}"])[0][0]
                columns = wh.query(
                    "select column_name, col_description(%s::regclass, ordinal_position), is_nullable "
                    "from information_schema.columns where table_schema = %s and table_name = %s",
                    [f"{schema}.{table}", schema, table],
                )
            else:
                found = wh.query(
                    "select constraint_column_names from duckdb_constraints() "
                    "where schema_name = %s and table_name = %s and constraint_type = 'PRIMARY KEY'",
                    [schema, table],
                )
                key = list(found[0][0]) if found else []
                comment = wh.query(
                    "select comment from duckdb_tables() where schema_name = %s and table_name = %s", [schema, table]
                )[0][0]
                columns = wh.query(
                    "select column_name, comment, case when is_nullable then 'YES' else 'NO' end "
                    "from duckdb_columns() where schema_name = %s and table_name = %s",
                    [schema, table],
                )
            out[table] = (
                key,
                comment,
                {name: text for name, text, _ in columns},
                {name for name, _, nullable in columns if nullable == "NO"},
            )
    return out


# Marts whose key the database holds on PostgreSQL only: on DuckDB a key is an in-memory index, and one entry per
# sales line does not fit at scale (macro add_line_key); the key there is the model's unique_combination test.
KEYED_ON_POSTGRES_ONLY = {"fct_sales"}


def assert_marts_carry_keys_and_descriptions(target: Target) -> None:
    """What Power BI reads besides the rows: each published mart's key, NOT NULL columns and descriptions."""
    metadata = published_metadata(target)
    for table, expected_key in MART_KEYS.items():
        key, comment, column_comments, not_null = metadata[table]
        held = target.type == "postgres" or table not in KEYED_ON_POSTGRES_ONLY
        assert key == (expected_key if held else []), table
        assert comment, f"{table} has no description"
        undocumented = sorted(name for name, text in column_comments.items() if not text)
        assert undocumented == [], f"{table}: columns without a description: {undocumented}"
        assert set(expected_key) <= not_null, table
    _, _, comments, fct_not_null = metadata["fct_sales"]
    assert {"invoice_no", "invoice_day", "stock_code", "revenue"} <= fct_not_null
    assert "customer_id" not in fct_not_null, "an anonymous line has no customer"
    assert comments["customer_id"].startswith("The customer who bought the line"), "the shared doc block"


def history_runs(target: Target) -> int:
    return query(target, f"select count(distinct run_id) from {target.schema}.customer_segment_history")[0][0]


def start_run(target: Target, sample: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        # --force: these runs repeat a published run's inputs, and must do the work to be killed in it.
        # --verbose: the kill tests wait for dbt's line of its first node.
        [
            sys.executable,
            "-m",
            "insiders.cli",
            "run",
            "--target",
            target.name,
            "--source",
            str(sample),
            "--force",
            "--verbose",
        ],
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


def wait_for_text(proc: subprocess.Popen[str], text: str, timeout: float = 300) -> None:
    """Read the run's output until a line contains ``text``."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        if text in line:
            return
        if time.monotonic() > deadline:
            break
    pytest.fail(f"the run never printed a line with {text!r} (exit {proc.poll()})")


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the run, as a crash or an OOM kill would, and wait until its dbt child has exited too.

    dbt runs in a process group of its own and gets SIGTERM when the run dies; it holds the run lock (and the
    run's output pipe) until it has exited, so the test waits for the pipe to close before going on.
    """
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.communicate(timeout=120)


def test_run_twice_and_kills_leave_the_published_marts_intact(target: Target, sample: Path) -> None:
    first = run_cli("run", "--target", target.name, "--source", str(sample), "--train-if-unpinned")
    assert "Run succeeded" in first.stdout
    for step in ("load", "features", "train", "score", "marts", "publish"):
        assert f"<== {step}:" in first.stdout, step
    before = marts(target)
    assert {"dim_customers", "insiders_summary", "fct_sales", "segment_profiles"} <= set(before)
    assert_marts_consistent(target)
    assert_marts_carry_keys_and_descriptions(target)
    runs = history_runs(target)

    # Killed while scoring: the scoring transaction never commits, the marts are untouched.
    proc = start_run(target, sample)
    wait_for(proc, "==> score")
    kill(proc)
    assert_same_marts(target, before)
    assert_marts_consistent(target)

    # Killed while dbt builds the marts: nothing is published. (The kill comes as dbt starts its first node: the
    # whole step takes a few seconds on this sample, so a fixed delay could land after the publish.)
    proc = start_run(target, sample)
    wait_for(proc, "==> marts")
    wait_for_text(proc, " START ")
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
    assert proc.returncode == 4
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


# -- names and numbers that reach SQL are checked at the edge -------------------------------------------------

HOSTILE_SCHEMA = "analytics; drop table sentinel; --"


def assert_user_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit status 4 (a user error), no traceback, and one last ``error:`` line naming the problem."""
    assert proc.returncode == 4, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and [f for f in fragments if f not in last] == [], last


def _sentinel(target: Target) -> None:
    with connect(target) as wh, wh.transaction():
        wh.execute(f"create schema if not exists {target.schema}")
        wh.execute(f"create table {target.schema}.sentinel (x integer)")


def _sentinel_exists(target: Target) -> bool:
    with connect(target) as wh:
        return wh.relation_exists(target.schema, "sentinel")


def test_a_schema_name_carrying_sql_is_refused_at_the_edge(
    target: Target, sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """INSIDERS_PG_SCHEMA / INSIDERS_DUCKDB_SCHEMA, INSIDERS_RAW_SCHEMA and --schema are refused with a clear
    error before anything reaches the warehouse (both targets)."""
    _sentinel(target)
    variable = "INSIDERS_PG_SCHEMA" if target.type == "postgres" else "INSIDERS_DUCKDB_SCHEMA"
    with monkeypatch.context() as mp:
        mp.setenv(variable, HOSTILE_SCHEMA)
        for command in (("score",), ("run", "--source", str(sample)), ("answers",)):
            proc = run_cli(*command, "--target", target.name, check=False)
            assert_user_error(proc, f"${variable}", "is not a valid SQL identifier")
    with monkeypatch.context() as mp:
        mp.setenv("INSIDERS_RAW_SCHEMA", HOSTILE_SCHEMA)
        proc = run_cli("run", "--target", target.name, "--source", str(sample), check=False)
        assert_user_error(proc, "INSIDERS_RAW_SCHEMA", "is not a valid SQL identifier")
        proc = run_cli("load", str(sample), "--target", target.name, check=False)
        assert_user_error(proc, "--schema", "is not a valid SQL identifier")
    proc = run_cli("load", str(sample), "--target", target.name, "--schema", "Raw", check=False)
    assert_user_error(proc, "--schema", "upper-case")
    assert _sentinel_exists(target)
    with connect(target) as wh:
        assert not wh.relation_exists("raw", "load_log"), "nothing was loaded"


def test_a_reserved_word_as_schema_name_is_refused_before_anything_is_written(
    target: Target, sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``full`` passes as an identifier, but ``from full.customer_features`` is a syntax error on both
    warehouses: a run with it used to load and build the features, then fail in the scoring step."""
    variable = "INSIDERS_PG_SCHEMA" if target.type == "postgres" else "INSIDERS_DUCKDB_SCHEMA"
    with monkeypatch.context() as mp:
        mp.setenv(variable, "full")
        proc = run_cli("run", "--target", target.name, "--source", str(sample), check=False)
        assert_user_error(proc, f"${variable}", "'full' is a reserved SQL word")
    with monkeypatch.context() as mp:
        mp.setenv("INSIDERS_RAW_SCHEMA", "user")
        proc = run_cli("run", "--target", target.name, "--source", str(sample), check=False)
        assert_user_error(proc, "INSIDERS_RAW_SCHEMA", "'user' is a reserved SQL word")
    proc = run_cli("load", str(sample), "--target", target.name, "--schema", "order", check=False)
    assert_user_error(proc, "--schema", "'order' is a reserved SQL word")
    with connect(target) as wh:
        assert not wh.relation_exists("raw", "load_log"), "nothing was loaded"
        assert not wh.relation_exists("full", "customer_features"), "nothing was built"


@pytest.mark.parametrize(
    ("dbt_vars", "message"),
    [
        ("{min_unit_price: '0.04 or true'}", "min_unit_price must be a finite number"),
        ("{min_unit_price: .nan}", "min_unit_price must be a finite number"),
        ("{min_unit_price: -1}", "min_unit_price must be at least 0"),
        ("{min_unit_price: true}", "min_unit_price must be a finite number"),
        ("{raw_schema: 'raw; drop table x'}", "--vars raw_schema"),
        ("{as_of_date: 'yesterday'}", "as_of_date must be a day as YYYY-MM-DD"),
        ("[1, 2]", "--vars must be a YAML mapping"),
        ("{a: [", "--vars is not valid YAML"),
    ],
)
def test_bad_dbt_vars_are_refused_before_the_run_starts(duckdb_file: Path, dbt_vars: str, message: str) -> None:
    proc = run_cli("run", "--target", "local", "--vars", dbt_vars, check=False)
    assert_user_error(proc, message)
    assert "==> load" not in proc.stdout, "no step started"


# -- every failure: one error line and a status of errors.py ---------------------------------------------------


@pytest.mark.parametrize(
    ("pin_text", "message"),
    [
        ("model: 20261201T061500Z-3f9c2a1b\n", "'model:' must be a mapping"),
        ("model: [a, b]\n", "'model:' must be a mapping"),
        ("- model\n", "must be a mapping with a 'model:' entry"),
        ("model:\n  version: {a: 1}\n  sha256: abc\n", "model.version must be a single value"),
    ],
)
def test_a_malformed_pin_is_a_user_error(
    duckdb_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pin_text: str, message: str
) -> None:
    pin = tmp_path / "pinned_model.yml"
    pin.write_text(pin_text)
    monkeypatch.setenv("INSIDERS_PIN_FILE", str(pin))
    for name in ("INSIDERS_MODEL_VERSION", "INSIDERS_MODEL_SHA256", "INSIDERS_MODEL_MANIFEST_SHA256"):
        monkeypatch.delenv(name, raising=False)
    assert_user_error(run_cli("score", "--target", "local", check=False), message, str(pin))
    assert_user_error(run_cli("models", check=False), message)


def test_an_unexpected_exception_is_an_internal_error_with_its_own_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from insiders import cli
    from insiders.errors import EXIT_INTERNAL_ERROR, EXIT_USAGE, EXIT_USER_ERROR

    assert len({EXIT_USAGE, EXIT_USER_ERROR, EXIT_INTERNAL_ERROR, 0, 1}) == 5, "statuses are distinct from 0, 1, 2"

    def broken(args):
        raise RuntimeError("surprise\nsecond line")

    monkeypatch.setattr(cli, "cmd_models", broken)
    assert cli.main(["models"]) == EXIT_INTERNAL_ERROR
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: internal error: RuntimeError: surprise second line (run again with -v for the traceback)"
    ]
    assert cli.main(["-v", "models"]) == EXIT_INTERNAL_ERROR
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: internal error: RuntimeError")


def test_an_internal_error_in_a_run_step_still_prints_the_step_table(
    duckdb_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from insiders import cli, pipeline
    from insiders.errors import EXIT_INTERNAL_ERROR

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(pipeline, "dbt_build", broken)
    assert cli.main(["run", "--target", "local"]) == EXIT_INTERNAL_ERROR
    out, err = capsys.readouterr()
    assert "Run FAILED" in out and "features" in out and "FAILED" in out.split("Run FAILED")[1]
    assert err.strip().splitlines()[-1] == (
        "error: internal error: ZeroDivisionError: division by zero (run again with -v for the traceback)"
    )


# -- deploy/run-insiders.sh reads its env file as data -----------------------------------------------------------

WRAPPER = PROJECT / "deploy" / "run-insiders.sh"


def _fake_home(tmp_path: Path) -> Path:
    """A checkout whose `insiders` records the variables it was given (as JSON) and exits 0."""
    home = tmp_path / "home"
    script = home / ".venv" / "bin" / "insiders"
    script.parent.mkdir(parents=True)
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "keys = [k for k in os.environ if k.startswith('T_')]\n"
        "with open(os.environ['T_OUT'], 'w') as fh:\n"
        "    json.dump({'argv': sys.argv[1:], 'env': {k: os.environ[k] for k in keys}}, fh)\n"
    )
    script.chmod(0o755)
    return home


def _run_wrapper(tmp_path: Path, env_text: str) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "env"
    env_file.write_text(env_text)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    # A command named like a word of a value: running the env file as shell code would run it.
    word = bin_dir / "word"
    word.write_text(f"#!/bin/sh\ntouch {tmp_path / 'word-ran'}\n")
    word.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "INSIDERS_ENV_FILE": str(env_file),
        "INSIDERS_HOME": str(_fake_home(tmp_path)),
        "INSIDERS_LOG_DIR": str(tmp_path / "logs"),
        "T_OUT": str(tmp_path / "seen.json"),
    }
    return subprocess.run(["bash", str(WRAPPER)], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_wrapper_reads_the_env_file_as_data_not_shell_code(tmp_path: Path) -> None:
    import json

    env_text = "\n".join(
        [
            "# a comment",
            "   # an indented comment",
            "",
            "T_DOLLAR_HASH=ab$cd#ef",
            "T_SPACE=p@ss word",
            "export T_EXPORTED=x=y",
            "T_QUOTED=' keeps spaces '",
            'T_DOUBLE="$(touch pwned)"',
            "T_BACKTICK=`touch pwned`",
            "T_BACKSLASH=a\\nb\\",
            "T_CRLF=windows\r",
            "T_EMPTY=",
            "INSIDERS_TARGET=local",
            "T_LAST=no newline at the end",
        ]
    )
    proc = _run_wrapper(tmp_path, env_text)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["argv"] == ["run", "--target", "local"]
    assert seen["env"] == {
        "T_DOLLAR_HASH": "ab$cd#ef",
        "T_SPACE": "p@ss word",
        "T_EXPORTED": "x=y",
        "T_QUOTED": " keeps spaces ",
        "T_DOUBLE": "$(touch pwned)",
        "T_BACKTICK": "`touch pwned`",
        "T_BACKSLASH": "a\\nb\\",
        "T_CRLF": "windows",
        "T_EMPTY": "",
        "T_LAST": "no newline at the end",
        "T_OUT": str(tmp_path / "seen.json"),
    }
    assert not (tmp_path / "word-ran").exists() and not (tmp_path / "home" / "pwned").exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [("just words, secret-ish", "line 2 is not KEY=value"), ("BAD-NAME=x", "line 2: the name before '='")],
)
def test_the_wrapper_refuses_a_malformed_env_file_without_showing_the_line(
    tmp_path: Path, line: str, message: str
) -> None:
    proc = _run_wrapper(tmp_path, f"T_A=1\n{line}\n")
    assert proc.returncode == 4
    assert message in proc.stderr and line.split("=")[0] not in proc.stderr
    assert not (tmp_path / "seen.json").exists(), "the job did not start"


# -- kills: children in their own process group, signals forwarded, the lock held until they have exited ---------

FAKE_DBT = """\
import os, pathlib, signal, sys, time
folder = pathlib.Path(os.environ["T_DBT_DIR"])
def stop(signum, frame):
    (folder / f"signalled-{os.getpid()}").write_text(str(signum))
    time.sleep(float(os.environ.get("T_DBT_CLEANUP", "6")))  # a slow, orderly shutdown
    (folder / f"exited-{os.getpid()}").write_text("")
    sys.exit(1)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
(folder / f"started-{os.getpid()}").write_text(str(os.getpgrp()))
time.sleep(float(os.environ.get("T_DBT_SECONDS", "120")))
"""


@pytest.fixture
def fake_dbt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dbt stand-in that runs until signalled, then takes a few seconds to exit; it leaves marker files."""
    folder = tmp_path / "dbt"
    folder.mkdir()
    script = tmp_path / "fake-dbt"
    script.write_text(f"#!{sys.executable}\n{FAKE_DBT}")
    script.chmod(0o755)
    monkeypatch.setenv("INSIDERS_DBT", str(script))
    monkeypatch.setenv("T_DBT_DIR", str(folder))
    monkeypatch.setenv("INSIDERS_PIN_FILE", str(tmp_path / "no-pin.yml"))
    return folder


def _marker(folder: Path, prefix: str, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(folder.glob(f"{prefix}-*"))
        if found:
            return found[0]
        time.sleep(0.05)
    pytest.fail(f"no {prefix}-* marker after {timeout} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead; it only waits for its parent to collect it.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _start(target: Target) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "insiders.cli", "run", "--target", target.name],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_is_forwarded_and_the_lock_is_held_until_dbt_has_exited(target: Target, fake_dbt: Path) -> None:
    run = _start(target)
    started = _marker(fake_dbt, "started")
    dbt_pid = int(started.name.split("-")[1])
    assert int(started.read_text()) == dbt_pid != os.getpgid(run.pid), "dbt runs in a process group of its own"

    os.kill(run.pid, signal.SIGTERM)  # the run only, as a scheduler's timeout does
    _marker(fake_dbt, "signalled", timeout=10)
    # dbt is still shutting down: the run still holds the lock, for runs and hand-run scores alike.
    second = run_cli("run", "--target", target.name, check=False)
    assert second.returncode == 3 and "in progress" in second.stderr, second.stderr
    score = run_cli("score", "--target", target.name, check=False)
    assert score.returncode == 3 and "this insiders score exits" in score.stderr, score.stderr

    out, err = run.communicate(timeout=90)
    assert run.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("error: terminated (SIGTERM)")
    assert "Run FAILED" in out and "features" in out
    assert (fake_dbt / f"exited-{dbt_pid}").exists() and not _alive(dbt_pid), "the run exited after dbt did"


def test_a_killed_run_takes_dbt_down_and_the_lock_outlives_it_until_dbt_exits(
    target: Target, fake_dbt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _start(target)
    dbt_pid = int(_marker(fake_dbt, "started").name.split("-")[1])
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=30)  # not communicate(): dbt still holds the run's output pipes

    _marker(fake_dbt, "signalled", timeout=10)  # the kernel tells the orphaned dbt to stop
    second = run_cli("run", "--target", target.name, check=False)
    assert second.returncode == 3, "the lock is still held by the exiting dbt:\n" + second.stderr
    deadline = time.monotonic() + 60
    while _alive(dbt_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(dbt_pid)

    # dbt is gone: the lock is free (this run's fake dbt finishes at once; the score step then lacks a pin).
    monkeypatch.setenv("T_DBT_SECONDS", "0")
    third = run_cli("run", "--target", target.name, check=False)
    assert third.returncode == 4 and "step 'score' failed" in third.stderr, third.stderr
    run.communicate(timeout=30)


def test_the_wrapper_passes_sigterm_on_and_reports_the_status(tmp_path: Path) -> None:
    home = _fake_home(tmp_path)
    (home / ".venv" / "bin" / "insiders").write_text(
        f"#!{sys.executable}\n"
        "import os, pathlib, signal, sys, time\n"
        "def stop(signum, frame):\n"
        "    print('error: terminated (SIGTERM)', file=sys.stderr)\n"
        "    sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "pathlib.Path(os.environ['T_OUT']).write_text('started')\n"
        "time.sleep(60)\n"
    )
    env_file = tmp_path / "env"
    env_file.write_text("INSIDERS_TARGET=local\n")
    env = {
        "PATH": os.environ["PATH"],
        "INSIDERS_ENV_FILE": str(env_file),
        "INSIDERS_HOME": str(home),
        "INSIDERS_LOG_DIR": str(tmp_path / "logs"),
        "T_OUT": str(tmp_path / "seen.json"),
    }
    wrapper = subprocess.Popen(["bash", str(WRAPPER)], env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / "seen.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    wrapper.send_signal(signal.SIGTERM)  # the wrapper only, not its group
    out, _ = wrapper.communicate(timeout=30)
    assert wrapper.returncode == 143
    assert "insiders run FAILED (exit 143): error: terminated (SIGTERM)" in out


# -- dbt in this process: SIGTERM cancels its queries, the run exits 143, the lock is free at once ---------------


def test_sigterm_cancels_the_in_process_dbt_queries_and_frees_the_lock(
    pg_database: str, sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg2

    monkeypatch.delenv("INSIDERS_DBT", raising=False)
    target = load_target("postgres")
    run_cli("load", "--target", "postgres", str(sample), "--quiet")
    blocker = psycopg2.connect(dbname=pg_database, **_pg_env())
    # pg_stat_activity is read once per transaction: the test watches it from a connection of its own.
    watcher = psycopg2.connect(dbname=pg_database, **_pg_env())
    watcher.autocommit = True
    try:
        with blocker.cursor() as lock_cur, watcher.cursor() as cur:
            # dbt's first read of the raw lines waits behind this lock for as long as the test holds it.
            lock_cur.execute("lock table raw.transactions in access exclusive mode")
            run = _start(target)
            deadline = time.monotonic() + 180
            waiting = 0
            while time.monotonic() < deadline and run.poll() is None:
                cur.execute(
                    "select count(*) from pg_stat_activity where datname = current_database() "
                    "and wait_event_type = 'Lock'"
                )
                waiting = cur.fetchone()[0]
                if waiting:
                    break
                time.sleep(0.2)
            if not waiting:
                run.kill()
                out, err = run.communicate(timeout=30)
                shown = f"{out[-3000:]}\n{err[-2000:]}"
                pytest.fail(f"dbt never queried the locked table (exit {run.returncode}):\n{shown}")
            os.kill(run.pid, signal.SIGTERM)
            out, err = run.communicate(timeout=60)
            assert run.returncode == 143, err
            assert err.strip().splitlines()[-1].startswith("error: terminated (SIGTERM)")
            assert "Run FAILED" in out and "features" in out
            cur.execute(
                "select count(*) from pg_stat_activity where datname = current_database() "
                "and pid not in (pg_backend_pid(), %s)",
                [blocker.get_backend_pid()],
            )
            assert cur.fetchone()[0] == 0, "dbt's queries were cancelled and its connections closed"
            cur.execute("select pg_try_advisory_lock(%s)", [RUN_LOCK_KEY])
            assert cur.fetchone()[0], "the run lock was released when the run exited"
            cur.execute("select pg_advisory_unlock(%s)", [RUN_LOCK_KEY])
    finally:
        blocker.rollback()
        blocker.close()
        watcher.close()
    assert query(target, "select count(*) from information_schema.schemata where schema_name like '%_marts'") == [(0,)]


def _pg_env() -> dict[str, str]:
    return {
        "host": os.environ.get("INSIDERS_PG_HOST", "127.0.0.1"),
        "port": os.environ.get("INSIDERS_PG_PORT", "5432"),
        "user": os.environ.get("INSIDERS_PG_USER", "postgres"),
        "password": os.environ.get("INSIDERS_PG_PASSWORD", ""),
    }
