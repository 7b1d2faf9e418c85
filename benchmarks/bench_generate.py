"""Benchmark ``insiders generate``: lines, seconds, lines per second, file size and peak memory.

Not a test: it prints figures. Usage:

    python benchmarks/bench_generate.py [--lines N | --customers N] [--months M] [--seed S] [--gzip]

By default it generates about 10 million lines (the customer count is estimated from the lines asked for)
into a temporary directory, which is removed afterwards. Each run is a separate process, so the peak memory
(``ru_maxrss``) is that of the generation alone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import resource, sys, time
from insiders.sample import generate_sample
out, customers, months, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t = time.perf_counter()
r = generate_sample(out, customers=customers, months=months, seed=seed)
s = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(r.lines, r.customers, r.invoices, r.size_bytes, f"{s:.3f}", f"{peak:.0f}")
"""


def run(out: Path, customers: int, months: int, seed: int) -> None:
    """Generate ``out`` in a child process and print one row of figures."""
    fields = subprocess.run(
        [sys.executable, "-c", CHILD, str(out), str(customers), str(months), str(seed)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    lines, custs, invoices, size = (int(v) for v in fields[:4])
    seconds, peak = float(fields[4]), float(fields[5])
    print(
        f"{out.name:14s} {custs:>10,} {invoices:>10,} {lines:>12,} {seconds:>9.2f} {lines / seconds:>12,.0f} "
        f"{size / 1e6:>10.1f} {peak:>9,.0f}"
    )


def main() -> None:
    """Parse the arguments and run the benchmark."""
    from insiders.sample import estimate_customers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--lines", type=int, default=10_000_000, help="about this many data lines (default 10 M)")
    size.add_argument("--customers", type=int, help="exactly this many customers")
    parser.add_argument("--months", type=int, default=13)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--gzip", action="store_true", help="also write a .csv.gz file")
    args = parser.parse_args()
    customers = args.customers or estimate_customers(args.lines, args.months)
    print(f"customers: {customers:,}  months: {args.months}  seed: {args.seed}")
    print(
        f"{'file':14s} {'customers':>10} {'invoices':>10} {'lines':>12} {'seconds':>9} {'lines/s':>12} "
        f"{'MB':>10} {'peak MiB':>9}"
    )
    names = ["sample.csv", "sample.csv.gz"] if args.gzip else ["sample.csv"]
    for name in names:
        with tempfile.TemporaryDirectory(prefix="insiders-bench-") as tmp:
            run(Path(tmp) / name, customers, args.months, args.seed)


if __name__ == "__main__":
    main()
