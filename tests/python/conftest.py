"""Shared fixtures: isolated DuckDB files and PostgreSQL databases, the real data file, and a dbt runner.

Tests that need PostgreSQL, the real file, the [value] group or Spark (the [spark] group and Java) skip when it is
missing on a developer's machine, and fail instead when ``INSIDERS_REQUIRE_POSTGRES=1`` /
``INSIDERS_REQUIRE_REAL_DATA=1`` / ``INSIDERS_REQUIRE_VALUE=1`` / ``INSIDERS_REQUIRE_SPARK=1`` (CI sets them all).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from insiders.warehouse import Target, connect, load_target, project_dir

pytest_plugins = ["s3_server"]

PROJECT = project_dir()
REAL_DATA = Path(
    os.environ.get("INSIDERS_REAL_DATA", PROJECT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz")
)


_DBT_SCRATCH = Path(tempfile.mkdtemp(prefix="insiders-dbt-"))


def _required(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def _missing(what: str, flag: str) -> None:
    if _required(flag):
        pytest.fail(f"{what} ({flag}=1 makes this a failure)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real Online Retail file."""
    if not REAL_DATA.is_file():
        _missing(f"the real data file {REAL_DATA} is missing", "INSIDERS_REQUIRE_REAL_DATA")
    return REAL_DATA


@pytest.fixture(scope="session")
def value_group() -> None:
    """The optional [value] group (PyMC-Marketing): skipped without it, a failure with INSIDERS_REQUIRE_VALUE=1."""
    from insiders.value.model import value_group_installed

    if not value_group_installed():
        _missing("the [value] group (PyMC-Marketing) is not installed", "INSIDERS_REQUIRE_VALUE")


@pytest.fixture(scope="session")
def spark_available() -> None:
    """pyspark (the [spark] group) and Java: skipped without them, a failure with INSIDERS_REQUIRE_SPARK=1."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        _missing("the [spark] group (pyspark) is not installed", "INSIDERS_REQUIRE_SPARK")
    java_home = os.environ.get("JAVA_HOME", "")
    if shutil.which("java") is None and not (java_home and Path(java_home, "bin", "java").is_file()):
        _missing("Java is not installed (Spark needs Java 17)", "INSIDERS_REQUIRE_SPARK")


def _pg_admin_env() -> dict[str, str]:
    return {
        "host": os.environ.get("INSIDERS_PG_HOST", "127.0.0.1"),
        "port": os.environ.get("INSIDERS_PG_PORT", "5432"),
        "user": os.environ.get("INSIDERS_PG_USER", "postgres"),
        "password": os.environ.get("INSIDERS_PG_PASSWORD", ""),
    }


def _pg_admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dbname="postgres", connect_timeout=5, **_pg_admin_env())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def pg_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards; the env points the profile at it."""
    import psycopg2

    name = f"insiders_test_{uuid.uuid4().hex[:10]}"
    try:
        _pg_admin(f"create database {name}")
    except psycopg2.OperationalError as exc:
        _missing(f"PostgreSQL is not reachable: {str(exc).strip()}", "INSIDERS_REQUIRE_POSTGRES")
    monkeypatch.setenv("INSIDERS_PG_DATABASE", name)
    try:
        yield name
    finally:
        _pg_admin(f"drop database if exists {name} with (force)")


@pytest.fixture
def duckdb_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh DuckDB file for one test; the env points the profile at it."""
    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("INSIDERS_DUCKDB_PATH", str(path))
    return path


@pytest.fixture(params=["local", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest) -> Target:
    """Each test using this runs once on DuckDB and once on PostgreSQL, each on its own empty warehouse."""
    if request.param == "postgres":
        request.getfixturevalue("pg_database")
    else:
        request.getfixturevalue("duckdb_file")
    return load_target(request.param)


@pytest.fixture
def features_built(target: Target, tmp_path: Path) -> Target:
    """The target with a small generated sample loaded and the features step built (data tests passing)."""
    sample = tmp_path / "sample.csv.gz"
    run_cli("generate", "--out", str(sample), "--customers", "60", "--months", "2", "--seed", "5", "--quiet")
    run_cli("load", str(sample), "--target", target.name, "--quiet")
    run_dbt("build", "--selector", "features", target=target.name)
    return target


def query(target: Target, sql: str) -> list[tuple]:
    """Run one query on a target in a short-lived connection."""
    with connect(target) as wh:
        return wh.query(sql)


def execute(target: Target, *statements: str) -> None:
    """Run statements on a target in one transaction (a test's hand-made change to a table)."""
    with connect(target) as wh, wh.transaction():
        for statement in statements:
            wh.execute(statement)


def dbt_test(target: Target, selection: str) -> tuple[int, str]:
    """``dbt test --select`` on the target: its exit status and output (``FAIL n`` names the rows returned)."""
    proc = run_dbt("test", "--select", selection, target=target.name, check=False)
    return proc.returncode, proc.stdout


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``insiders`` command as a user would (a separate process, the current environment)."""
    proc = subprocess.run(
        [sys.executable, "-m", "insiders.cli", *args], capture_output=True, text=True, cwd=PROJECT, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"insiders {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_dbt(
    *args: str, target: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run dbt in the project with the given target (``env`` adds or overrides environment variables)."""
    dbt = Path(sys.executable).with_name("dbt")
    env = {
        **os.environ,
        **(env or {}),
        "DBT_PROFILES_DIR": str(PROJECT),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        # Tests keep dbt's artifacts and logs out of the working tree.
        "DBT_TARGET_PATH": str(_DBT_SCRATCH / "target"),
        "DBT_LOG_PATH": str(_DBT_SCRATCH / "logs"),
    }
    proc = subprocess.run(
        [str(dbt), *args, "--target", target, "--project-dir", str(PROJECT)],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env=env,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-6000:]}\n{proc.stderr}")
    return proc


def _features_of(raw_file: Path, folder: Path) -> pd.DataFrame:
    """Load a raw file into a fresh DuckDB file, build the features step with dbt, and read customer_features."""
    from insiders.loader import load_file
    from insiders.training import read_features

    env = {"INSIDERS_DUCKDB_PATH": str(folder / "warehouse.duckdb")}
    previous = os.environ.get("INSIDERS_DUCKDB_PATH")
    os.environ.update(env)
    try:
        with connect("local") as wh:
            load_file(wh, raw_file)
        run_dbt("build", "--selector", "features", target="local", env=env)
        with connect("local") as wh:
            frame, _ = read_features(wh, "main")
    finally:
        if previous is None:
            os.environ.pop("INSIDERS_DUCKDB_PATH", None)
        else:
            os.environ["INSIDERS_DUCKDB_PATH"] = previous
    return frame


@pytest.fixture(scope="session")
def real_features(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """customer_features of the real file, built by the project's own loader and dbt models (DuckDB)."""
    return _features_of(real_data, tmp_path_factory.mktemp("real_features"))


@pytest.fixture(scope="session")
def generated_features(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """customer_features of a generated file (default size, seed 7) and its truth file (customer_id, segment)."""
    from insiders.sample import generate_sample

    folder = tmp_path_factory.mktemp("generated_features")
    result = generate_sample(folder / "sample.csv.gz", seed=7)
    truth = pd.read_csv(result.truth_path)
    return _features_of(result.path, folder), truth
