"""Benchmark ``insiders score``: customers per second and peak memory as the customer count grows.

Not a test: it prints figures. Usage:

    python benchmarks/bench_score.py [--customers 100000,1000000]

For each size it writes a synthetic customer_features table to a scratch DuckDB file, trains a model on a
5,000-customer sample (k fixed, so no model selection), pins it, and scores every customer in a child process
whose peak memory is reported: with chunked scoring it should stay flat as the table grows.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

CHILD = """
import resource, time
from insiders.registry import load_pinned
from insiders.scoring import score
from insiders.warehouse import connect
loaded = load_pinned()
t = time.perf_counter()
with connect("local") as wh:
    r = score(wh, loaded, "main")
s = time.perf_counter() - t
print(r.customers, f"{s:.2f}", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def features(n: int, seed: int = 1) -> pd.DataFrame:
    """Heavy-tailed synthetic features shaped like the real ones."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1, dtype=np.int64),
            "gross_revenue": rng.lognormal(6.5, 1.2, n).round(2),
            "recency_days": rng.integers(0, 370, n),
            "qty_products": rng.lognormal(3.5, 1.0, n).astype(np.int64) + 1,
            "frequency": rng.lognormal(-3.5, 1.0, n),
            "qty_returns": rng.poisson(2, n),
            # Units returned over units bought and returned: mostly 0, a few percent for the others.
            "return_rate": np.where(rng.random(n) < 0.6, 0.0, rng.beta(1.0, 30.0, n)),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", default="100000,1000000", help="comma-separated sizes")
    args = parser.parse_args()
    from insiders.artifacts import LocalStore
    from insiders.model import ModelConfig
    from insiders.training import train
    from insiders.warehouse import connect

    print(f"{'customers':>12} {'seconds':>9} {'customers/s':>12} {'peak MiB':>9}")
    for n in (int(x) for x in args.customers.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **os.environ,
                "INSIDERS_DUCKDB_PATH": str(Path(tmp) / "bench.duckdb"),
                "INSIDERS_PIN_FILE": str(Path(tmp) / "pin.yml"),
                "INSIDERS_ARTIFACT_URI": str(Path(tmp) / "artifacts"),
            }
            os.environ.update(env)
            frame = features(n)
            with connect("local") as wh:
                wh.conn.register("frame", frame)
                wh.execute("create table main.customer_features as select * from frame")
                wh.execute(
                    "create table main.train_sample as select * from frame using sample 5000 rows (reservoir, 7)"
                )
                wh.execute("alter table main.customer_features rename to all_features")
                wh.execute("alter table main.train_sample rename to customer_features")
                train(wh, LocalStore(Path(tmp) / "artifacts"), "main", ModelConfig(k=5), promote=True)
                wh.execute("drop table main.customer_features")
                wh.execute("alter table main.all_features rename to customer_features")
            out = subprocess.run(
                [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
            ).stdout.split()
            scored, seconds, peak = int(out[0]), float(out[1]), int(out[2])
            print(f"{scored:>12,} {seconds:>9.2f} {scored / seconds:>12,.0f} {peak:>9,}")


if __name__ == "__main__":
    main()
