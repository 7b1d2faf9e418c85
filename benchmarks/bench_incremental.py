"""A new month on top of a long history: the features step incremental, against a full refresh.

The file (by default the ×10 file of ``scale_data.py``) is split by invoice day into a history and a new month.
On a fresh warehouse of the chosen target the script loads the history and builds the features step (the first
build is a full build), loads the new month and builds again (incremental), then rebuilds with
``--full-refresh``. For each build it prints the wall time of ``dbt build --selector features`` and dbt's own
time spent in models and in tests (from ``run_results.json``), so the cost of a new month can be read against
the cost of rebuilding the history.

    python benchmarks/bench_incremental.py /path/to/online_retail_x10.csv --target local --work /tmp/bench-incr
    python benchmarks/bench_incremental.py FILE --target postgres   # uses INSIDERS_PG_* (a database it creates)

The work folder holds the two parts, the DuckDB file and dbt's artifacts; delete it afterwards.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def split(source: Path, new_month: dt.date, folder: Path) -> tuple[Path, Path, int, int]:
    """Write the lines before ``new_month`` to history.csv and those of that month to new_month.csv."""
    history, month = folder / "history.csv", folder / "new_month.csv"
    month_end = (new_month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    opener = gzip.open if source.suffix == ".gz" else open
    counts = [0, 0]
    with (
        opener(source, "rt", encoding="latin-1", newline="") as reader_file,
        open(history, "w", encoding="latin-1", newline="") as history_file,
        open(month, "w", encoding="latin-1", newline="") as month_file,
    ):
        reader = csv.reader(reader_file)
        header = next(reader)
        day_column = header.index("InvoiceDate")
        writers = (csv.writer(history_file), csv.writer(month_file))
        for writer in writers:
            writer.writerow(header)
        for row in reader:
            day = dt.datetime.strptime(row[day_column].split(" ")[0], "%m/%d/%Y").date()
            if day < new_month:
                writers[0].writerow(row)
                counts[0] += 1
            elif day < month_end:
                writers[1].writerow(row)
                counts[1] += 1
    if not all(counts):
        raise SystemExit(f"error: splitting at {new_month} leaves a part empty ({counts[0]:,} / {counts[1]:,} lines)")
    return history, month, counts[0], counts[1]


def run(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=PROJECT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr}")
    return seconds


def dbt_seconds(target_path: Path) -> tuple[float, float, list[tuple[float, str]]]:
    """dbt's own execution time of the last invocation: models and seeds, tests, and the slowest nodes."""
    results = json.loads((target_path / "run_results.json").read_text(encoding="utf-8"))["results"]
    models = sum(r["execution_time"] for r in results if r["unique_id"].split(".")[0] in ("model", "seed"))
    tests = sum(r["execution_time"] for r in results if r["unique_id"].split(".")[0] in ("test", "unit_test"))
    slowest = sorted(((r["execution_time"], r["unique_id"]) for r in results), reverse=True)[:6]
    return models, tests, slowest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="raw file in the Online Retail layout (M/D/YYYY H:MM dates)")
    parser.add_argument("--target", choices=("local", "postgres"), default="local")
    parser.add_argument("--new-month", default="2011-11-01", help="first day of the month added (YYYY-MM-DD)")
    parser.add_argument("--work", type=Path, default=PROJECT / "data" / "bench-incremental")
    args = parser.parse_args()
    if not args.file.is_file():
        raise SystemExit(f"error: {args.file} does not exist")
    new_month = dt.date.fromisoformat(args.new_month)
    args.work.mkdir(parents=True, exist_ok=True)

    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(PROJECT),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_TARGET_PATH": str(args.work / "target"),
        "DBT_LOG_PATH": str(args.work / "logs"),
        "INSIDERS_TARGET": args.target,
    }
    database = None
    if args.target == "local":
        duckdb_file = args.work / "warehouse.duckdb"
        for stale in (duckdb_file, duckdb_file.with_suffix(".duckdb.wal")):
            stale.unlink(missing_ok=True)
        env["INSIDERS_DUCKDB_PATH"] = str(duckdb_file)
    else:
        import psycopg2

        database = f"insiders_bench_incr_{os.getpid()}"
        admin = psycopg2.connect(
            dbname="postgres",
            host=os.environ.get("INSIDERS_PG_HOST", "127.0.0.1"),
            port=os.environ.get("INSIDERS_PG_PORT", "5432"),
            user=os.environ.get("INSIDERS_PG_USER", "postgres"),
            password=os.environ.get("INSIDERS_PG_PASSWORD", ""),
        )
        admin.autocommit = True
        admin.cursor().execute(f"create database {database}")
        env["INSIDERS_PG_DATABASE"] = database

    history, month, history_lines, month_lines = split(args.file, new_month, args.work)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"target {args.target}: history {history_lines:,} lines, new month {new_month:%Y-%m} {month_lines:,} lines")
    python = [sys.executable, "-m", "insiders.cli"]
    dbt = [str(Path(sys.executable).with_name("dbt")), "build", "--selector", "features", "--target", args.target]
    load = ["load", "--quiet", "--target", args.target, "--date-format", "%m/%d/%Y %H:%M"]
    try:
        rows = []
        seconds = run([*python, *load, str(history)], env)
        print(f"load history: {seconds:.1f} s")
        for label, extra, before in (
            ("features, first build (history)", [], None),
            ("features, incremental (+ new month)", [], month),
            ("features, --full-refresh (history + month)", ["--full-refresh"], None),
        ):
            if before is not None:
                print(f"load new month: {run([*python, *load, str(before)], env):.1f} s")
            wall = run([*dbt, *extra], env)
            models, tests, slowest = dbt_seconds(args.work / "target")
            rows.append((label, wall, models, tests))
            print(f"{label}: {wall:.1f} s wall (dbt: models {models:.1f} s, tests {tests:.1f} s)")
            print("  slowest: " + ", ".join(f"{name.split('.', 2)[2]} {seconds:.1f} s" for seconds, name in slowest))
        incremental, full = rows[1][1], rows[2][1]
        print(
            f"new month incremental / full refresh: {incremental / full:.2f} (wall), "
            f"{rows[1][2] / rows[2][2]:.2f} (models), {rows[1][3] / rows[2][3]:.2f} (tests); "
            f"new lines / all lines: {month_lines / (history_lines + month_lines):.2f}"
        )
    finally:
        if database is not None:
            admin.cursor().execute(f"drop database if exists {database} with (force)")
            admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
