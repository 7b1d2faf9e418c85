"""Benchmark the whole pipeline, step by step, against the physical bound (the bare DuckDB query).

Not a test: it prints figures, appends them to a CSV and draws a plot. Usage:

    python benchmarks/bench_pipeline.py [--sizes real,x10] [--targets local,postgres,spark] [--data-dir DIR]
                                        [--phases steps,run,month]
    python benchmarks/bench_pipeline.py --markdown      # the README table from the CSV, nothing run
    python benchmarks/bench_pipeline.py --update-readme # write it into README.md, nothing run
    python benchmarks/bench_pipeline.py --plot-only     # redraw the plot from the CSV, nothing run

Sizes: ``real`` is the real Online Retail file beside the project; ``xN`` is that file repeated N times with
shifted invoice and customer ids (``benchmarks/scale_data.py``), written once into the data folder
(``--data-dir``, default ``$INSIDERS_BENCH_DIR`` or ``~/.cache/insiders-bench``) and reused. The split of each
file into "history" (all but the last calendar month) and "last month" is cached there too.

For each size and target (``local``: a scratch DuckDB file; ``postgres``: a scratch database, dropped
afterwards; ``spark``: Spark local mode with a scratch warehouse folder and metastore) it measures, each in a
child process of its own:

- ``bare query``: benchmarks/bare_query.sql run by the duckdb module straight from the CSV: the reference,
  run again right before every step below (files under 1 GB; ``--bare-once`` turns that off) so that each
  ratio compares figures taken back to back;
- ``load``: ``insiders load FILE`` into a fresh warehouse;
- ``features``: ``dbt build --selector features --exclude-resource-type unit_test``, the build a scheduled run
  makes (dbt's unit tests check the SQL on fixed rows; ``make test`` runs them, a run does not);
- ``train (once)``: ``insiders train --promote`` with a pin file and an artifact store of the benchmark's own
  (``models/`` in the data folder), kept for later runs (``--retrain`` trains again). Not a step of the
  scheduled run; reported for information. A size without a model of its own scores with the real file's
  model when there is one (``--train-per-size`` trains on each size: at ×100 that takes very long);
- ``score``: ``insiders score`` with that pinned model;
- ``marts``: ``dbt build --selector segments --exclude-resource-type unit_test``;
- ``whole run``: ``insiders run --source FILE`` on a fresh warehouse, the model pinned;
- ``re-run, nothing new``: the same command again (it must say "nothing new");
- ``history run``: on a fresh warehouse, ``insiders run`` with the file without its last month;
- ``new month``: then ``insiders run`` over a folder holding that history file and the last month's lines as
  a second file (the history file is skipped by its sha256).

The measurements come in three phases, each on a fresh warehouse: ``steps`` (load to marts, one by one),
``run`` (whole run and re-run) and ``month`` (history run and new month). ``--phases`` picks some of them (all
three by default): at ×100 one phase on PostgreSQL takes the better part of an hour on 2 cores.

Seconds are wall-clock time of the child. Peak memory is the ``ru_maxrss`` that ``os.wait4`` reports for the
child: the largest resident set of the child and of every descendant it waited for (a dbt subprocess of
``insiders run`` included), or, when larger, the largest resident set sampled every 0.2 s among the processes
of the child's process group (Spark's JVM, which the child does not wait for); PostgreSQL's server processes are
not descendants and are not counted. After the
step-by-step build and after the new month, the pipeline's ``customer_features`` is compared with the bare
query's answer (customer count and column sums); a difference is reported as a failed ``check`` row and makes
the exit status 1. A step that fails (an error, a kill by the kernel for lack of memory, a timeout) is a row
with its status, and the suite goes on.

Every measurement is appended to ``benchmarks/results/pipeline.csv`` (date, git commit, machine) and
``docs/benchmark_pipeline.svg`` is redrawn from that file.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_data import REAL_FILE, write_scaled  # noqa: E402

from insiders.dbt_session import SCHEDULED_EXCLUDE  # noqa: E402  (what a scheduled build leaves out)

BARE_SQL = Path(__file__).resolve().parent / "bare_query.sql"
RESULTS = PROJECT / "benchmarks" / "results" / "pipeline.csv"
PLOT = PROJECT / "docs" / "benchmark_pipeline.svg"
TARGET_NAMES = {"local": "DuckDB", "postgres": "PostgreSQL", "spark": "Spark"}
STEPS = [
    "bare query",
    "load",
    "features",
    "train (once)",
    "score",
    "marts",
    "whole run",
    "re-run, nothing new",
    "history run",
    "new month",
]
PHASES = ("steps", "run", "month")
CSV_FIELDS = [
    "date",
    "commit",
    "machine",
    "size",
    "lines",
    "target",
    "step",
    "status",
    "seconds",
    "peak_mib",
    "ratio_to_bare",
    "bare_seconds",
    "note",
]

# The bare query in a child process: prints its seconds and the checksum of its answer as JSON.
BARE_CHILD = """
import json, sys, time
import duckdb
sql, path, seeds, checks = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3], sys.argv[4]
con = duckdb.connect()
con.execute("set enable_progress_bar = false")
started = time.perf_counter()
con.execute(sql, {"file": path, "seed_dir": seeds})
seconds = time.perf_counter() - started
row = con.execute(checks.format(table="bare_features")).fetchone()
print(json.dumps({"seconds": seconds, "checksum": [str(v) for v in row]}))
"""

# The checksum of the pipeline's customer_features, read through the project's own connection code.
CHECK_CHILD = """
import json, sys
from insiders.warehouse import connect
with connect(sys.argv[1]) as wh:
    row = wh.query(sys.argv[2].format(table=wh.qualified(wh.target.schema + ".customer_features")))[0]
print(json.dumps([str(v) for v in row]))
"""

# Sums rather than a row-by-row diff: cheap at every size, and any missing, extra or changed customer moves
# one of them. Integer and decimal sums must be equal; sums of doubles to a relative 1e-9.
CHECK_SQL = (
    "select count(*), sum(gross_revenue), sum(qty_invoices), sum(qty_items), sum(qty_products), "
    "sum(recency_days), sum(qty_returns), count(distinct country), sum(avg_ticket), sum(avg_recency_days), "
    "sum(frequency), sum(avg_basket_size), sum(avg_unique_basket_size), sum(return_rate) from {table}"
)
CHECK_NAMES = [
    "customers",
    "gross_revenue",
    "qty_invoices",
    "qty_items",
    "qty_products",
    "recency_days",
    "qty_returns",
    "countries",
    "avg_ticket",
    "avg_recency_days",
    "frequency",
    "avg_basket_size",
    "avg_unique_basket_size",
    "return_rate",
]
EXACT_CHECKS = 8
# Below this file size the bare query is run again right before every step (a few seconds each); above it,
# once per size and target (it takes about a minute at ×100).
BARE_EACH_BELOW = 1_000_000_000


@dataclass
class Measure:
    step: str
    size: str
    target: str
    status: str
    seconds: float | None
    peak_mib: float | None
    note: str = ""
    ratio: float | None = None
    bare_seconds: float | None = None


@dataclass
class Outcome:
    status: str
    seconds: float
    peak_mib: float
    output: str


@dataclass
class Dataset:
    size: str
    path: Path
    lines: int
    history: Path
    month_dir: Path
    month_lines: int


@dataclass
class Suite:
    data_dir: Path
    work: Path
    timeout: float
    machine: str
    commit: str
    results: Path
    retrain: bool = False
    bare_each: bool = True
    train_per_size: bool = False
    phases: tuple[str, ...] = PHASES
    last_bare: dict[tuple[str, str], float] = field(default_factory=dict)
    measures: list[Measure] = field(default_factory=list)
    failed_checks: int = 0


# -- processes ----------------------------------------------------------------------------------------------


def _first_to_die() -> None:
    """In the child: make it the kernel's first choice when memory runs out, before anyone else's process."""
    with suppress(OSError), open("/proc/self/oom_score_adj", "w") as handle:
        handle.write("1000")


def _group_peak_kib(group: int, stop: threading.Event, peak: list[int]) -> None:
    """Until ``stop``: the largest resident set (KiB) of any process in process group ``group``, every 0.2 s.

    ``ru_maxrss`` counts only the descendants a process waited for; Spark's JVM, started by pyspark in the
    child, is not waited for when the child exits, so its memory is read from ``/proc`` while it runs.
    """
    while not stop.wait(0.2):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                # Fields after the command name (which may hold spaces): state, ppid, pgrp, ...
                if int(stat.rsplit(")", 1)[1].split()[2]) != group:
                    continue
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
                        break
            except (OSError, ValueError, IndexError):
                continue


def run_measured(command: list[str], env: dict[str, str], log: Path, timeout: float) -> Outcome:
    """Run ``command`` in a child process; its wall time, its peak memory (with descendants) and status."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            command,
            env=env,
            cwd=PROJECT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_first_to_die,  # the benchmark is killed rather than another program on the machine
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        stop, sampled = threading.Event(), [0]
        sampler = threading.Thread(target=_group_peak_kib, args=(proc.pid, stop, sampled), daemon=True)
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            stop.set()
            sampler.join()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    output = log.read_text(errors="replace")
    code = proc.returncode
    if timed_out.is_set():
        state = f"failed: timeout after {timeout:.0f} s"
    elif code == 0:
        state = "ok"
    elif code == -signal.SIGKILL or re.search(r"\(exit -9\)|exit status -9|Killed", output):
        state = "failed: OOM (killed by SIGKILL)"
    elif "Out of Memory Error" in output:
        state = "failed: OOM (DuckDB out of memory)"
    elif code < 0:
        state = f"failed: signal {-code}"
    else:
        state = f"failed: exit {code}"
    # ru_maxrss is in KiB on Linux; the sampled peak covers processes the child did not wait for (Spark's JVM).
    return Outcome(state, seconds, max(usage.ru_maxrss, sampled[0]) / 1024, output)


def last_json(output: str):
    """The JSON a child printed on its last line that holds one (progress output may come before it), or None."""
    for line in reversed(output.splitlines()):
        starts = [i for i in (line.find("{"), line.find("[")) if i >= 0]
        if starts:
            try:
                return json.loads(line[min(starts) :])
            except ValueError:
                continue
    return None


def insiders(*args: str) -> list[str]:
    return [sys.executable, "-m", "insiders.cli", *args]


def dbt(*args: str) -> list[str]:
    exe = Path(sys.executable).with_name("dbt")
    return [str(exe) if exe.exists() else "dbt", *args]


def base_env(models: Path) -> dict[str, str]:
    env = dict(os.environ)
    package = str(PROJECT / "python_jobs")
    env["PYTHONPATH"] = os.pathsep.join(p for p in [package, env.get("PYTHONPATH", "")] if p)
    env.update(
        {
            "INSIDERS_PROJECT_DIR": str(PROJECT),
            "DBT_PROJECT_DIR": str(PROJECT),
            "DBT_PROFILES_DIR": str(PROJECT),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "INSIDERS_ARTIFACT_URI": str(models / "artifacts"),
        }
    )
    return env


def pg_admin(env: dict[str, str], sql: str) -> None:
    """Run one statement on the PostgreSQL server's maintenance database."""
    import psycopg2

    conn = psycopg2.connect(
        host=env.get("INSIDERS_PG_HOST", "127.0.0.1"),
        port=int(env.get("INSIDERS_PG_PORT", "5432")),
        user=env.get("INSIDERS_PG_USER", "postgres"),
        password=env.get("INSIDERS_PG_PASSWORD", ""),
        dbname="postgres",
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@contextmanager
def fresh_warehouse(suite: Suite, target: str, env: dict[str, str], tag: str) -> Iterator[dict[str, str]]:
    """An empty warehouse of ``target`` for the duration of the block: its environment."""
    env = {**env, "INSIDERS_TARGET": target, "DBT_TARGET_PATH": str(suite.work / f"dbt-target-{target}")}
    env["DBT_LOG_PATH"] = str(suite.work / "dbt-logs")
    if target == "postgres":
        name = f"insiders_bench_{tag}_{uuid.uuid4().hex[:8]}"
        pg_admin(env, f"create database {name}")
        try:
            yield {**env, "INSIDERS_PG_DATABASE": name}
        finally:
            pg_admin(env, f"drop database if exists {name} with (force)")
    elif target == "spark":
        # Spark local mode: a warehouse folder (Parquet) and an embedded metastore of its own.
        folder = suite.work / f"spark-{tag}"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            yield {
                **env,
                "INSIDERS_SPARK_WAREHOUSE_DIR": str(folder / "warehouse"),
                "INSIDERS_SPARK_METASTORE_DIR": str(folder / "metastore"),
                "INSIDERS_DUCKDB_PATH": str(folder / "unused.duckdb"),
            }
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        folder = suite.work / f"duckdb-{tag}"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            yield {**env, "INSIDERS_DUCKDB_PATH": str(folder / "bench.duckdb")}
        finally:
            shutil.rmtree(folder, ignore_errors=True)


# -- data ---------------------------------------------------------------------------------------------------


def dataset(size: str, data_dir: Path) -> Dataset:
    """The file of ``size`` (written once) and its history / last-month split (cached beside it)."""
    if size == "real":
        path = REAL_FILE
        if not path.is_file():
            sys.exit(f"error: the real file is not at {path}")
    else:
        match = re.fullmatch(r"x(\d+)", size)
        if not match or int(match.group(1)) < 1:
            sys.exit(f"error: unknown size {size!r}: use real or xN (x10, x100)")
        path = data_dir / f"online_retail_{size}.csv"
        if not path.is_file():
            print(f"writing {path} (the real file {match.group(1)} times) ...", flush=True)
            write_scaled(REAL_FILE, path, int(match.group(1)), log=lambda m: print(m, flush=True))
    return split_last_month(size, path, data_dir)


def split_last_month(size: str, path: Path, data_dir: Path) -> Dataset:
    """Cut ``path`` by InvoiceDate into the file without its last calendar month and that month's lines."""
    folder = data_dir / f"split_{size}"
    history = folder / f"online_retail_{size}_1_history.csv"
    month_dir = folder / "month"
    month = month_dir / f"online_retail_{size}_2_last_month.csv"
    facts = folder / "lines.json"
    if facts.is_file() and history.is_file() and month.is_file():
        counts = json.loads(facts.read_text())
        if counts.get("source_size") == path.stat().st_size:
            return Dataset(size, path, counts["lines"], history, month_dir, counts["month_lines"])
    print(f"splitting {path.name} into history and last month ...", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    month_dir.mkdir(exist_ok=True)
    opener = gzip.open if path.name.endswith(".gz") else open
    # The last calendar month, found by DuckDB (seconds even at ×100); the cut itself keeps the file's own lines.
    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")
    year, month_of_year = con.execute(
        "select year(d), month(d) from (select max(strptime(InvoiceDate, '%m/%d/%Y %H:%M')) as d "
        "from read_csv($file, header = true, all_varchar = true, encoding = 'latin-1'))",
        {"file": str(path)},
    ).fetchone()
    last = (year, month_of_year)
    column = 4  # InvoiceDate, checked against the header below
    lines = month_lines = 0
    with (
        opener(path, "rt", encoding="latin-1", newline="") as handle,
        open(history.with_suffix(".partial"), "w", encoding="latin-1", newline="") as old,
        open(month.with_suffix(".partial"), "w", encoding="latin-1", newline="") as new,
    ):
        reader = csv.reader(handle)
        header = next(reader)
        if header[column] != "InvoiceDate":
            sys.exit(f"error: {path} is not in the Kaggle layout (InvoiceDate is not its 5th column)")
        writers = [csv.writer(old, lineterminator="\n"), csv.writer(new, lineterminator="\n")]
        for w in writers:
            w.writerow(header)
        for row in reader:
            day = row[column].split(" ", 1)[0].split("/")
            is_last = (int(day[2]), int(day[0])) == last
            writers[is_last].writerow(row)
            lines += 1
            month_lines += is_last
    history.with_suffix(".partial").replace(history)
    month.with_suffix(".partial").replace(month)
    link = month_dir / history.name
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(history)
    facts.write_text(json.dumps({"source_size": path.stat().st_size, "lines": lines, "month_lines": month_lines}))
    return Dataset(size, path, lines, history, month_dir, month_lines)


# -- measurements -------------------------------------------------------------------------------------------


def record(suite: Suite, data: Dataset, m: Measure) -> Measure:
    suite.measures.append(m)
    bare = suite.last_bare.get((m.size, m.target))
    if bare and m.seconds is not None and m.step != "check":
        m.bare_seconds = bare
        m.ratio = m.seconds / bare
    print(format_row(m), flush=True)
    append_csv(suite, data, m)
    return m


def step(suite: Suite, data: Dataset, target: str, name: str, command: list[str], env: dict[str, str]) -> Outcome:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if suite.bare_each and data.path.stat().st_size < BARE_EACH_BELOW:
        # The reference measured right before the step, so that the ratio compares figures taken back to back.
        bare = run_bare(suite, data, target, env, f"bare-before-{slug}")
        result = last_json(bare.output) if bare.status == "ok" else None
        if result:
            suite.last_bare[(data.size, target)] = result["seconds"]
    outcome = run_measured(command, env, suite.work / "logs" / f"{data.size}-{target}-{slug}.log", suite.timeout)
    note = ""
    if name == "re-run, nothing new" and outcome.status == "ok" and "nothing new" not in outcome.output.lower():
        outcome.status = "failed: did not say nothing new"
    if outcome.status != "ok":
        tail = [line for line in outcome.output.splitlines() if line.strip()][-3:]
        note = " | ".join(tail)[-300:]
    record(suite, data, Measure(name, data.size, target, outcome.status, outcome.seconds, outcome.peak_mib, note))
    return outcome


def dbt_top_nodes(env: dict[str, str], label: str) -> None:
    """dbt's own timing of the last build: its elapsed time and the five slowest nodes."""
    path = Path(env["DBT_TARGET_PATH"]) / "run_results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    nodes = sorted(results.get("results", []), key=lambda r: r.get("execution_time") or 0, reverse=True)
    top = ", ".join(f"{n['unique_id'].split('.', 2)[-1]} {n['execution_time']:.1f} s" for n in nodes[:5])
    print(f"    dbt {label}: {results.get('elapsed_time', 0):.1f} s in dbt, {len(nodes)} nodes; slowest: {top}")


def run_bare(suite: Suite, data: Dataset, target: str, env: dict[str, str], label: str) -> Outcome:
    command = [sys.executable, "-c", BARE_CHILD, str(BARE_SQL), str(data.path), str(PROJECT / "seeds") + "/", CHECK_SQL]
    return run_measured(command, env, suite.work / "logs" / f"{data.size}-{target}-{label}.log", suite.timeout)


def bare_query(suite: Suite, data: Dataset, target: str, env: dict[str, str]) -> list[str] | None:
    outcome = run_bare(suite, data, target, env, "bare")
    checksum = None
    seconds = outcome.seconds
    result = last_json(outcome.output) if outcome.status == "ok" else None
    if outcome.status == "ok" and not result:
        outcome.status = "failed: no result printed"
    if result:
        checksum, seconds = result["checksum"], result["seconds"]
        suite.last_bare[(data.size, target)] = seconds
        note = (
            f"{checksum[0]} customers, gross revenue {float(checksum[1]):,.2f}; "
            f"{outcome.seconds:.2f} s with the interpreter's start"
        )
    else:
        note = " | ".join(outcome.output.strip().splitlines()[-2:])[-300:]
    # The reference is the query's own time (without the interpreter's start and imports): the stricter bound.
    record(suite, data, Measure("bare query", data.size, target, outcome.status, seconds, outcome.peak_mib, note))
    return checksum


def compare(suite: Suite, data: Dataset, target: str, env: dict[str, str], bare: list[str] | None, what: str) -> None:
    """Compare the warehouse's customer_features with the bare query's answer; a failed check is a row."""
    if bare is None:
        return
    out = subprocess.run(
        [sys.executable, "-c", CHECK_CHILD, target, CHECK_SQL], env=env, cwd=PROJECT, capture_output=True, text=True
    )
    mine = last_json(out.stdout) if out.returncode == 0 else None
    if mine is None:
        status, note = "failed: cannot read customer_features", (out.stderr.strip().splitlines() or [""])[-1][-300:]
    else:
        differences = []
        for i, name in enumerate(CHECK_NAMES):
            a, b = bare[i], mine[i]
            if i < EXACT_CHECKS:
                same = a == b or (a != "None" and b != "None" and float(a) == float(b))
            else:
                same = a == b or (
                    a != "None" and b != "None" and abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
                )
            if not same:
                differences.append(f"{name}: bare {a} vs pipeline {b}")
        status = "ok" if not differences else "failed: differs from the bare query"
        note = f"{what}: " + (
            "same customers and sums as the bare query" if not differences else "; ".join(differences)
        )
    if status != "ok":
        suite.failed_checks += 1
        print(f"WARNING: customer_features after {what} on {target} ({data.size}): {note}", flush=True)
    record(suite, data, Measure("check", data.size, target, status, None, None, note))


def step_by_step(
    suite: Suite, data: Dataset, target: str, wenv: dict[str, str], pin: Path, bare: list[str] | None
) -> None:
    """Phase ``steps``: load, features, (train once,) score and marts, one command each, on ``wenv``'s warehouse."""
    t = ["--target", target]
    if step(suite, data, target, "load", insiders("load", str(data.path), *t, "--quiet"), wenv).status == "ok":
        features = dbt("build", "--selector", "features", *SCHEDULED_EXCLUDE, *t)
        built = step(suite, data, target, "features", features, wenv)
        dbt_top_nodes(wenv, "features")
        if built.status == "ok":
            compare(suite, data, target, wenv, bare, "the step-by-step build")
            if not pin.exists():
                step(suite, data, target, "train (once)", insiders("train", *t, "--promote"), wenv)
            if (
                pin.exists()
                and step(suite, data, target, "score", insiders("score", *t, "--quiet"), wenv).status == "ok"
            ):
                marts = dbt("build", "--selector", "segments", *SCHEDULED_EXCLUDE, *t)
                step(suite, data, target, "marts", marts, wenv)
                dbt_top_nodes(wenv, "marts")


def bench_target(suite: Suite, data: Dataset, target: str) -> None:
    env = base_env(suite.data_dir / "models")
    models = suite.data_dir / "models"
    pin = models / f"pin-{data.size}.yml"
    if suite.retrain and pin.exists():
        pin.unlink()
    if not pin.exists() and not suite.train_per_size and (models / "pin-real.yml").exists():
        # Training is not a step of the scheduled run, and at ×N it fits N copies of the real customers (hours
        # at ×100): the real file's model fits them as well and scoring costs the same with either.
        pin = models / "pin-real.yml"
    env["INSIDERS_PIN_FILE"] = str(pin)
    t = ["--target", target]
    bare = bare_query(suite, data, target, env)

    if "steps" in suite.phases:
        with fresh_warehouse(suite, target, env, f"{data.size}_steps") as wenv:
            step_by_step(suite, data, target, wenv, pin, bare)
    if not pin.exists():
        print(f"    no pinned model for {data.size}: the runs are skipped", flush=True)
        return

    if "run" in suite.phases:
        with fresh_warehouse(suite, target, env, f"{data.size}_run") as wenv:
            run = insiders("run", *t, "--source", str(data.path))
            if step(suite, data, target, "whole run", run, wenv).status == "ok":
                step(suite, data, target, "re-run, nothing new", run, wenv)

    if "month" not in suite.phases:
        return
    with fresh_warehouse(suite, target, env, f"{data.size}_month") as wenv:
        history = step(suite, data, target, "history run", insiders("run", *t, "--source", str(data.history)), wenv)
        if history.status == "ok":
            # Dates of 1-9 December read both month first and day first: the loader refuses such a file until
            # it is told the order, as an operator would tell it.
            month_run = insiders("run", *t, "--source", str(data.month_dir), "--date-format", "%m/%d/%Y %H:%M")
            month = step(suite, data, target, "new month", month_run, wenv)
            if month.status == "ok":
                compare(suite, data, target, wenv, bare, "history + new month")


# -- output -------------------------------------------------------------------------------------------------


def format_row(m: Measure) -> str:
    seconds = f"{m.seconds:9.1f}" if m.seconds is not None else f"{'':9s}"
    peak = f"{m.peak_mib:9,.0f}" if m.peak_mib is not None else f"{'':9s}"
    ratio = f"{m.ratio:7.1f}x" if m.ratio is not None else f"{'':8s}"
    status = "" if m.status == "ok" else f"  {m.status.upper()}"
    note = f"  ({m.note})" if m.note and (m.status != "ok" or m.step in {"bare query", "check"}) else ""
    return f"{m.step:22s} {m.size:6s} {TARGET_NAMES.get(m.target, m.target):11s} {seconds} {peak} {ratio}{status}{note}"


def header() -> str:
    return f"{'step':22s} {'size':6s} {'target':11s} {'seconds':>9s} {'peak MiB':>9s} {'vs bare':>8s}"


def append_csv(suite: Suite, data: Dataset, m: Measure) -> None:
    suite.results.parent.mkdir(parents=True, exist_ok=True)
    new = not suite.results.exists()
    with open(suite.results, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow(
            {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "commit": suite.commit,
                "machine": suite.machine,
                "size": m.size,
                "lines": data.lines,
                "target": m.target,
                "step": m.step,
                "status": m.status,
                "seconds": "" if m.seconds is None else f"{m.seconds:.2f}",
                "peak_mib": "" if m.peak_mib is None else f"{m.peak_mib:.0f}",
                "ratio_to_bare": "" if m.ratio is None else f"{m.ratio:.2f}",
                "bare_seconds": "" if m.bare_seconds is None else f"{m.bare_seconds:.2f}",
                "note": m.note,
            }
        )


def machine() -> str:
    """CPU model, cores, memory, OS and the versions that matter, in one line."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kib / 1024**2:.1f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    versions = [f"DuckDB {duckdb.__version__}"]
    try:
        from importlib.metadata import version

        versions.append(f"dbt-core {version('dbt-core')}")
    except Exception:  # a missing version is not worth failing the benchmark
        pass
    try:
        out = subprocess.run(
            [
                "psql",
                "-h",
                os.environ.get("INSIDERS_PG_HOST", "127.0.0.1"),
                "-U",
                os.environ.get("INSIDERS_PG_USER", "postgres"),
                "-d",
                "postgres",
                "-Atc",
                "show server_version",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0:
            versions.append(f"PostgreSQL {out.stdout.strip().split()[0]}")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {memory}, {platform.system()} {platform.release()}, " + ", ".join(versions)


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "python_jobs", "models", "macros"],
            cwd=PROJECT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return head + ("-dirty" if dirty else "") if head else "unknown"
    except OSError:
        return "unknown"


def read_results(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def latest(rows: list[dict[str, str]]) -> dict[tuple[str, str, str], dict[str, str]]:
    """The newest row of each (size, target, step)."""
    out: dict[tuple[str, str, str], dict[str, str]] = {}
    for row in rows:
        out[(row["size"], row["target"], row["step"])] = row
    return out


def size_order(size: str) -> int:
    return 1 if size == "real" else int(size[1:]) if size[1:].isdigit() else 10**9


def markdown(path: Path) -> str:
    """The README's table: the newest figure of each step, size and target, from the CSV."""
    rows = read_results(path)
    if not rows:
        return f"(no results in {path})"
    last = latest(rows)
    sizes = sorted({s for s, _, _ in last}, key=size_order)
    targets = [t for t in TARGET_NAMES if any(tt == t for _, tt, _ in last)]
    lines = [
        "| size | step | " + " | ".join(f"{TARGET_NAMES[t]} | × bare | peak memory" for t in targets) + " |",
        "| --- | --- | " + " | ".join("---: | ---: | ---:" for _ in targets) + " |",
    ]

    def cell(row: dict[str, str] | None) -> list[str]:
        if row is None:
            return ["–", "–", "–"]
        if row["status"] != "ok":
            return [row["status"].replace("|", "/"), "–", "–"]
        ratio = f"{float(row['ratio_to_bare']):.1f}×" if row["ratio_to_bare"] else "–"
        peak = f"{float(row['peak_mib']) / 1024:.1f} GiB" if row["peak_mib"] else "–"
        return [f"{float(row['seconds']):.1f} s", ratio, peak]

    for size in sizes:
        n = next((r["lines"] for (s, _, _), r in last.items() if s == size), "")
        label = f"{size} ({int(n):,} lines)" if n else size
        for name in STEPS:
            found = [last.get((size, t, name)) for t in targets]
            if all(row is None for row in found):
                continue
            shown = "**bare DuckDB query**" if name == "bare query" else name
            lines.append("| " + " | ".join([label, shown, *(c for row in found for c in cell(row))]) + " |")
            label = ""
    checks = [r for (_, _, st), r in last.items() if st == "check"]
    bad = [r for r in checks if r["status"] != "ok"]
    dates = sorted(r["date"] for r in last.values())
    machines = sorted({r["machine"] for r in last.values()})
    commits = sorted({r["commit"] for r in last.values()})
    lines.append("")
    lines.append(
        f"Measured {dates[0][:10]} to {dates[-1][:10]} at commit {', '.join(commits)} on {'; '.join(machines)}. "
        "Seconds are wall-clock time of the command; × bare divides them by the bare DuckDB query's, run right "
        "before the step on the same file (the bare query's own row: its first run, beside that target). "
        f"Checks of customer_features against the bare query: {len(checks) - len(bad)} of {len(checks)} equal."
    )
    return "\n".join(lines)


def update_readme(readme: Path, table: str) -> int:
    """Replace what lies between the README's bench markers with ``table``."""
    text = readme.read_text()
    begin = text.find("<!-- bench:begin")
    end = text.find("<!-- bench:end -->")
    if begin < 0 or end < begin:
        print(f"error: {readme} has no <!-- bench:begin … --> … <!-- bench:end --> markers", file=sys.stderr)
        return 4
    begin = text.index("\n", begin) + 1
    readme.write_text(text[:begin] + table + "\n" + text[end:])
    print(f"{readme}: performance table updated")
    return 0


def svg_plot(path: Path, out: Path) -> None:
    """Seconds per step against the number of lines, one panel per target, the bare query as reference."""
    rows = [r for r in read_results(path) if r["status"] == "ok" and r["seconds"] and r["step"] in STEPS]
    if not rows:
        return
    last = latest(rows)
    colours = {
        "bare query": "#000000",
        "load": "#1f77b4",
        "features": "#ff7f0e",
        "score": "#2ca02c",
        "marts": "#d62728",
        "whole run": "#9467bd",
        "re-run, nothing new": "#8c564b",
        "new month": "#e377c2",
    }
    import math

    lines_of = {s: int(r["lines"]) for (s, _, _), r in last.items()}
    xs = [math.log10(v) for v in lines_of.values()]
    ys = [math.log10(max(float(r["seconds"]), 0.1)) for (_, _, st), r in last.items() if st in colours]
    x0, x1 = math.floor(min(xs) * 2) / 2 - 0.1, math.ceil(max(xs) * 2) / 2 + 0.1
    y0, y1 = math.floor(min(ys)), math.ceil(max(ys))
    if y1 == y0:
        y1 += 1
    targets = [t for t in TARGET_NAMES if any(tt == t for _, tt, _ in last)]
    pw, ph, top, left = 380, 330, 50, 70
    width, height = left + len(targets) * (pw + 90), 470
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">insiders pipeline: seconds per step '
        "vs. lines in the file (log-log; newest run of benchmarks/bench_pipeline.py)</text>",
    ]
    for panel, target in enumerate(targets):
        ox = left + panel * (pw + 90)

        def px(v: float, ox: float = ox) -> float:
            return ox + (math.log10(v) - x0) / (x1 - x0) * pw

        def py(v: float) -> float:
            return top + ph - (math.log10(max(v, 0.1)) - y0) / (y1 - y0) * ph

        parts.append(f'<rect x="{ox}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
        parts.append(
            f'<text x="{ox + pw / 2}" y="{top - 8}" text-anchor="middle" font-weight="bold">'
            f"{TARGET_NAMES[target]}</text>"
        )
        for e in range(y0, y1 + 1):
            y = py(10**e)
            parts.append(f'<line x1="{ox}" x2="{ox + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
            parts.append(f'<text x="{ox - 6}" y="{y + 4:.1f}" text-anchor="end">{10**e:g} s</text>')
        for size, n in sorted(lines_of.items(), key=lambda kv: kv[1]):
            x = px(n)
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>')
            parts.append(f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle">{size} ({n / 1e6:.1f} M)</text>')
        for name, colour in colours.items():
            points = sorted(
                (lines_of[s], float(r["seconds"])) for (s, t, st), r in last.items() if t == target and st == name
            )
            if not points:
                continue
            dash = ' stroke-dasharray="6 4"' if name == "bare query" else ""
            coords = " ".join(f"{px(n):.1f},{py(v):.1f}" for n, v in points)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
            for n, v in points:
                parts.append(f'<circle cx="{px(n):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}"/>')
    for i, (name, colour) in enumerate(colours.items()):
        x, y = left + (i % 4) * 220, top + ph + 40 + (i // 4) * 20
        dash = ' stroke-dasharray="6 4"' if name == "bare query" else ""
        parts.append(
            f'<line x1="{x}" x2="{x + 24}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        parts.append(f'<text x="{x + 30}" y="{y}">{name}</text>')
    parts.append("</svg>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts) + "\n")


# -- main ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="real,x10", help="comma-separated: real, x10, x100, … (default real,x10)")
    parser.add_argument("--targets", default="local,postgres", help="comma-separated: local, postgres, spark")
    default_dir = os.environ.get("INSIDERS_BENCH_DIR") or str(Path.home() / ".cache" / "insiders-bench")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(default_dir),
        help="where the ×N files, their splits and the scratch warehouses go (default %(default)s)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="CSV the figures are appended to")
    parser.add_argument("--plot", type=Path, default=PLOT, help="SVG drawn from the CSV")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds a step may take (default 3600)")
    parser.add_argument(
        "--retrain", action="store_true", help="train a new model per size even if the data folder pins one"
    )
    parser.add_argument(
        "--train-per-size",
        action="store_true",
        help="train a model on each size (default: sizes without their own reuse the real file's model)",
    )
    parser.add_argument(
        "--bare-once",
        action="store_true",
        help="run the bare query once per size and target, not before every step (always so for files over 1 GB)",
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help="comma-separated: steps (load to marts), run (whole run, re-run), month (history, new month)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, DuckDB files)")
    parser.add_argument("--markdown", action="store_true", help="print the README table from the CSV and exit")
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help="write that table into README.md between its bench:begin and bench:end markers and exit",
    )
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from the CSV and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(args.results))
        return 0
    if args.update_readme:
        return update_readme(PROJECT / "README.md", markdown(args.results))
    if args.plot_only:
        svg_plot(args.results, args.plot)
        print(f"plot: {args.plot}")
        return 0
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGET_NAMES]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}: use local, postgres, spark")
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    if not phases or set(phases) - set(PHASES):
        parser.error(f"--phases {args.phases!r}: use one or more of {', '.join(PHASES)}")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    work = args.data_dir / f"work-{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}"
    suite = Suite(
        args.data_dir,
        work,
        args.timeout,
        machine(),
        git_commit(),
        args.results,
        args.retrain,
        not args.bare_once,
        args.train_per_size,
        phases,
    )
    print(f"machine: {suite.machine}\ncommit: {suite.commit}\ndata: {args.data_dir}  scratch: {work}", flush=True)
    try:
        for size in sizes:
            data = dataset(size, args.data_dir)
            print(
                f"\n{size}: {data.path.name}, {data.lines:,} lines; last month {data.month_lines:,} lines", flush=True
            )
            print(header(), flush=True)
            for target in targets:
                bench_target(suite, data, target)
    finally:
        if args.keep:
            print(f"scratch kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        svg_plot(args.results, args.plot)
    print(f"\nresults appended to {args.results}; plot: {args.plot}")
    failed = [m for m in suite.measures if m.status != "ok"]
    if failed:
        print(
            f"{len(failed)} measurement(s) did not succeed: "
            + "; ".join(f"{m.step} {m.size} {m.target}: {m.status}" for m in failed)
        )
    return 1 if suite.failed_checks else 0


if __name__ == "__main__":
    sys.exit(main())
