"""The ``insiders`` command line: thin entry points over the package's functions."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from insiders import __version__
from insiders.errors import InsidersError

log = logging.getLogger("insiders")


def _raw_schema() -> str:
    return os.environ.get("INSIDERS_RAW_SCHEMA", "raw")


class _Progress:
    """Progress on stderr for long work: a line every few seconds, not a line per chunk."""

    def __init__(self, label: str, every: float = 2.0):
        self.label = label
        self.every = every
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - self.last < self.every and (total is None or done < total):
            return
        self.last = now
        elapsed = now - self.started
        share = f" ({done / total:.0%})" if total else ""
        print(f"  {self.label}: {done:,} lines{share}, {elapsed:.1f} s", file=sys.stderr, flush=True)


def cmd_load(args: argparse.Namespace) -> int:
    """Load raw invoice files into the warehouse."""
    from insiders.loader import load_file
    from insiders.warehouse import connect

    status = 0
    with connect(args.target) as wh:
        print(f"Loading into {wh.target.describe()}, schema '{args.schema}'")
        for path in args.files:
            result = load_file(
                wh,
                path,
                schema=args.schema,
                encoding=args.encoding,
                max_rejected_share=args.max_rejected_share,
                progress=None if args.quiet else _Progress(Path(path).name),
            )
            if result.already_loaded:
                print(
                    f"{result.file_name}: already loaded (load {result.load_id} at "
                    f"{result.previous_loaded_at:%Y-%m-%d %H:%M:%S}, same sha256 {result.sha256[:12]}…); "
                    "nothing to do"
                )
                continue
            print(
                f"{result.file_name}: layout {result.layout}; {result.lines_read:,} lines read, "
                f"{result.lines_loaded:,} loaded, {result.lines_rejected:,} rejected "
                f"in {result.seconds:.1f} s (load {result.load_id})"
            )
            if result.lines_rejected:
                print(
                    f"  see {args.schema}.rejected_lines where load_id = '{result.load_id}' for the reasons",
                )
    return status


def cmd_generate(args: argparse.Namespace) -> int:
    """Write a synthetic raw file with planted segments and its truth file."""
    from insiders.generate import generate_sample

    result = generate_sample(
        args.out,
        customers=args.customers,
        months=args.months,
        seed=args.seed,
        progress=None if args.quiet else _Progress("generated"),
    )
    segments = ", ".join(f"{name} {count:,}" for name, count in sorted(result.segments.items()))
    print(f"Wrote {result.lines:,} lines for {result.customers:,} customers to {result.path}")
    print(f"Wrote the planted segments ({segments}) to {result.truth_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="insiders",
        description="Customer segmentation for the Insiders loyalty programme, on DuckDB or PostgreSQL.",
    )
    parser.add_argument("--version", action="version", version=f"insiders {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    target_help = "profiles.yml target: local (DuckDB, default) or postgres"

    p = sub.add_parser("load", help="load raw invoice files (CSV, CSV.gz, Excel) into the raw tables")
    p.add_argument("files", nargs="+", metavar="FILE", help="raw file(s) in a supported layout")
    p.add_argument("--target", help=target_help)
    p.add_argument("--schema", default=_raw_schema(), help="raw schema (default: $INSIDERS_RAW_SCHEMA or raw)")
    p.add_argument(
        "--encoding",
        default="auto",
        help="text encoding of CSV files (default auto: UTF-8 when valid, else latin-1)",
    )
    p.add_argument(
        "--max-rejected-share",
        type=float,
        default=0.05,
        metavar="SHARE",
        help="refuse a file when more than this share of its lines cannot be read (default 0.05)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("generate", help="write a synthetic raw file with planted customer segments")
    p.add_argument("--out", required=True, help="output file (.csv or .csv.gz)")
    p.add_argument("--customers", type=int, default=4000, help="number of customers (default 4000)")
    p.add_argument("--months", type=int, default=13, help="months of trading (default 13)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_generate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except InsidersError as exc:
        if args.verbose:
            log.exception("failed")
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; nothing was committed by the step in progress", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
