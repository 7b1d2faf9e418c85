"""Benchmark ``insiders load``: seconds, lines per second and peak memory, on DuckDB and PostgreSQL.

Not a test: it prints figures. Usage:

    python benchmarks/bench_load.py [FILE] [--targets local,postgres]

FILE defaults to the real Online Retail file beside the project (../shared/data/online_retail/).
PostgreSQL runs in a scratch database that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = PROJECT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"

CHILD = """
import resource, sys, time
from insiders.loader import load_file
from insiders.warehouse import connect
t = time.perf_counter()
with connect(sys.argv[1]) as wh:
    r = load_file(wh, sys.argv[2])
s = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{r.lines_read} {r.lines_loaded} {r.lines_rejected} {s:.3f} {peak:.0f}")
"""


def run(target: str, path: Path, env: dict[str, str]) -> None:
    """Load ``path`` into a fresh warehouse of ``target`` in a child process and print the figures."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, target, str(path)], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    read, loaded, rejected, seconds, peak = int(out[0]), int(out[1]), int(out[2]), float(out[3]), float(out[4])
    print(
        f"{target:9s} {read:>12,} {loaded:>12,} {rejected:>9,} {seconds:>9.2f} {read / seconds:>14,.0f} {peak:>10,.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", default=str(DEFAULT_FILE))
    parser.add_argument("--targets", default="local,postgres")
    args = parser.parse_args()
    path = Path(args.file)
    print(f"file: {path} ({path.stat().st_size / 1e6:.1f} MB on disk)")
    print(
        f"{'target':9s} {'lines read':>12} {'loaded':>12} {'rejected':>9} {'seconds':>9} {'lines/s':>14} "
        f"{'peak MiB':>10}"
    )
    for target in args.targets.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "INSIDERS_DUCKDB_PATH": str(Path(tmp) / "bench.duckdb")}
            if target == "postgres":
                db = f"insiders_bench_{uuid.uuid4().hex[:8]}"
                admin = [
                    "psql",
                    "-h",
                    env.get("INSIDERS_PG_HOST", "127.0.0.1"),
                    "-U",
                    env.get("INSIDERS_PG_USER", "postgres"),
                    "-d",
                    "postgres",
                    "-qc",
                ]
                subprocess.run([*admin, f"create database {db}"], check=True)
                env["INSIDERS_PG_DATABASE"] = db
                try:
                    run(target, path, env)
                finally:
                    subprocess.run([*admin, f"drop database {db}"], check=True)
            else:
                run(target, path, env)


if __name__ == "__main__":
    main()
