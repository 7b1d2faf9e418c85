"""The ``insiders`` command line: thin entry points over the package's functions."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from insiders import __version__, settings
from insiders.errors import EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED, InsidersError, Terminated

log = logging.getLogger("insiders")


def _raw_schema() -> str:
    """The default of ``--schema``; validated when used (cmd_load), so a bad value cannot break other commands."""
    return settings.text("INSIDERS_RAW_SCHEMA")


class _Progress:
    """Progress on stderr for long work: a line every few seconds, not a line per chunk."""

    def __init__(self, label: str, unit: str = "lines", every: float = 2.0):
        self.label = label
        self.unit = unit
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
        print(f"  {self.label}: {done:,} {self.unit}{share}, {elapsed:.1f} s", file=sys.stderr, flush=True)


def _share(text: str) -> float:
    """A share between 0 and 1, for argparse."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text!r}")
    return value


def cmd_load(args: argparse.Namespace) -> int:
    """Load raw invoice files into the warehouse."""
    from insiders.loader import load_file
    from insiders.targets import validate_schema_name
    from insiders.warehouse import connect

    status = 0
    validate_schema_name(args.schema, "the raw schema name (--schema, default $INSIDERS_RAW_SCHEMA or raw)")
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
                date_format=args.date_format,
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
                f"{result.lines_loaded:,} loaded, {result.lines_rejected:,} rejected"
                + (
                    f", {result.lines_skipped:,} skipped (already loaded from other files)"
                    if result.lines_skipped
                    else ""
                )
                + f" in {result.seconds:.1f} s (load {result.load_id})"
            )
            if result.lines_rejected:
                print(
                    f"  see {args.schema}.rejected_lines where load_id = '{result.load_id}' for the reasons",
                )
    return status


def cmd_generate(args: argparse.Namespace) -> int:
    """Write a synthetic raw file with planted segments and its truth file."""
    from insiders.sample import generate_sample

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
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


def _model_config(args: argparse.Namespace):
    from insiders.model import ModelConfig

    overrides: dict = {}
    if getattr(args, "k", None):
        overrides["k"] = args.k
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    if getattr(args, "features", None):
        overrides["features"] = tuple(f.strip() for f in args.features.split(",") if f.strip())
    return ModelConfig(**overrides)


def cmd_train(args: argparse.Namespace) -> int:
    """Fit the segmentation model on customer_features and write a new version to the artifact store."""
    from insiders.artifacts import open_store
    from insiders.training import train
    from insiders.warehouse import connect

    store = open_store(args.artifacts)
    config = _model_config(args)
    with connect(args.target) as wh:
        print(f"Training on {wh.target.describe()}; artifacts in {store.describe()}")
        started = time.monotonic()
        outcome = train(wh, store, wh.target.schema, config, promote=args.promote)
    saved = outcome.saved
    print("Why this k:")
    for line in outcome.explanation:
        print(f"  {line}")
    print("\nBusiness checks of the Insiders:")
    for check in outcome.checks:
        print(f"  {check.to_text()}")
    print("\nSegment profiles:")
    print(outcome.profile.to_string(index=False))
    for check in outcome.failed:
        print(f"warning: the Insiders fail a business check: {check.to_text()}", file=sys.stderr)
    if outcome.reused:
        print(
            f"\nThe same artifact is already stored as version {saved.version} (sha256 {saved.model.sha256}): "
            "reused it, nothing new was written"
        )
    else:
        print(
            f"\nSaved model version {saved.version} (sha256 {saved.model.sha256}) in "
            f"{time.monotonic() - started:.1f} s; the model card has the whole selection table"
        )
    if outcome.promoted:
        from insiders.registry import pin_file

        print(f"Promoted: {pin_file()} now pins {saved.version}; commit it to deploy")
    else:
        print(f"Not promoted; to use it for scoring: insiders promote {saved.version}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """Pin an existing model version for scoring."""
    from insiders.artifacts import open_store
    from insiders.registry import pin_file, pin_version

    store = open_store(args.artifacts)
    pin = pin_version(store, args.version)
    print(f"{pin_file()} now pins model {pin.version} (sha256 {pin.sha256}, manifest sha256 {pin.manifest_sha256})")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List the model versions in the artifact store and which one is pinned."""
    from insiders.artifacts import open_store
    from insiders.registry import ManifestRefusedError, list_versions, read_manifest, read_pin

    store = open_store(args.artifacts)
    pin = read_pin(required=False)
    versions = list_versions(store)
    print(f"Model versions in {store.describe()}:")
    if not versions:
        print("  (none) - run `insiders train --promote`")
    for version in versions:
        mark = "*" if pin and pin.version == version else " "
        try:
            manifest = read_manifest(store, version)
        except ManifestRefusedError as exc:
            print(f" {mark} {version}  REFUSED: {exc}")
            continue
        data = manifest.get("training_data", {})
        k = manifest.get("k") or manifest.get("config", {}).get("k") or "-"
        insiders = manifest.get("insiders")
        size = f"{insiders['customers']:,} ({insiders['share']:.1%})" if insiders else "-"
        print(
            f" {mark} {version}  k={k}  Insiders={size}  customers={data.get('customers')}"
            f"  features={','.join(manifest.get('features', []))}  sha256={manifest['artifact']['sha256'][:12]}"
        )
    if pin:
        print(f"(* pinned: {pin.version})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Print the stability of the Insiders membership for the configured pipeline."""
    from insiders.model import stability
    from insiders.training import read_training_features
    from insiders.warehouse import connect

    config = _model_config(args)
    with connect(args.target) as wh:
        print(f"Evaluating on {wh.target.describe()}")
        frame = read_training_features(wh, wh.target.schema, config.seed).frame
    report = stability(frame, config, seeds=args.seeds, samples=args.samples)
    print(report.to_text())
    shortcomings = report.shortcomings(config)
    if shortcomings:
        print("Verdict: the Insiders fall short of the bars (docs/model.md):")
        for item in shortcomings:
            print(f"  {item}")
        return 1
    print("Verdict: stable, and every business check passes")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Apply the pinned model to customer_features and publish customer_segments."""
    from insiders.artifacts import open_store
    from insiders.pipeline import run_lock
    from insiders.registry import load_pinned, pinned
    from insiders.scoring import score
    from insiders.warehouse import connect, load_target

    target = load_target(args.target)  # configuration first: a bad schema is reported before the model is fetched
    # The same lock as `insiders run`, taken first: a hand-run score never overlaps a scheduled run.
    with run_lock(target, what="insiders score"):
        pin = pinned()
        # Without --artifacts, load_pinned resolves the store ($INSIDERS_ARTIFACT_URI, else the pin's).
        loaded = load_pinned(open_store(args.artifacts) if args.artifacts else None, pin)
        print(f"Model {pin.version} verified (sha256 {pin.sha256[:12]}…) from {loaded.store_uri}")
        with connect(target) as wh:
            result = score(
                wh,
                loaded,
                wh.target.schema,
                progress=None if args.quiet else _Progress("scored", unit="customers"),
                max_out_of_range_share=args.max_out_of_range_share,
            )
            print(
                f"Scored {result.customers:,} customers into {wh.target.schema}.customer_segments "
                f"(run {result.run_id}) in {result.seconds:.1f} s; {result.insiders:,} Insiders"
            )
    for name, n in sorted(result.segments.items(), key=lambda kv: -kv[1]):
        print(f"  {name}: {n:,}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Load, build features, score with the pinned model and build the marts, in one locked run."""
    from insiders.pipeline import RunReport, run
    from insiders.warehouse import load_target

    report = RunReport(target=load_target(args.target).describe())
    try:
        run(
            args.target,
            args.source,
            train_if_unpinned=args.train_if_unpinned,
            dbt_vars=args.vars,
            date_format=args.date_format,
            max_out_of_range_share=args.max_out_of_range_share,
            log=lambda line: print(line, flush=True),
            report=report,
            force=args.force,
            full_refresh=args.full_refresh,
            verbose=args.verbose,
        )
    except (Exception, KeyboardInterrupt, Terminated):
        # Whatever stopped the run (a step, the lock, a bug, a signal), the step table says how far it got.
        print("\nRun FAILED. Steps:", flush=True)
        print(report.table(), flush=True)
        raise
    if report.nothing_new:
        print("\nNothing new: no scoring, no publishing. Steps:")
        print(report.table())
        return 0
    print("\nRun succeeded. Steps:")
    print(report.table())
    return 0


def cmd_answers(args: argparse.Namespace) -> int:
    """Print the answers to the business questions from the marts."""
    from insiders.answers import business_answers
    from insiders.warehouse import connect

    with connect(args.target) as wh:
        print(business_answers(wh, currency=args.currency))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the self-contained HTML report of the latest run."""
    from insiders.report import DEFAULT_TITLE, write_report
    from insiders.warehouse import connect

    with connect(args.target) as wh:
        result = write_report(wh, Path(args.out), title=args.title or DEFAULT_TITLE, currency=args.currency)
    print(
        f"Wrote {result.path} ({result.size_bytes / 1024:,.0f} KiB): {result.insiders:,} Insiders of "
        f"{result.customers:,} customers, model {result.model_version}, {result.charts} charts"
    )
    for note in result.notes:
        print(f"  note: {note}")
    return 0


def _common_options() -> dict[str, argparse.ArgumentParser]:
    """Parent parsers for the options several commands share, so each is declared (and described) once."""

    def parent() -> argparse.ArgumentParser:
        return argparse.ArgumentParser(add_help=False)

    options = {name: parent() for name in ("target", "artifacts", "quiet", "model", "out_of_range", "currency")}
    options["target"].add_argument(
        "--target", help="profiles.yml target: local (DuckDB, default: $INSIDERS_TARGET) or postgres"
    )
    options["artifacts"].add_argument(
        "--artifacts",
        help="artifact store: a folder or s3://bucket/prefix (default: $INSIDERS_ARTIFACT_URI or artifacts/)",
    )
    options["quiet"].add_argument("-q", "--quiet", action="store_true", help="no progress output")
    model = options["model"]
    model.add_argument("--k", type=int, help="number of segments (default: chosen by the selection rule)")
    model.add_argument("--seed", type=int, help="random seed (default 42)")
    model.add_argument("--features", help="comma-separated clustering features (default: the configured list)")
    options["out_of_range"].add_argument(
        "--max-out-of-range-share",
        type=_share,
        default=0.01,
        metavar="SHARE",
        help="fail when more than this share of customers has a feature value far outside the model's training "
        "range (docs/operations.md; default 0.01)",
    )
    options["currency"].add_argument(
        "--currency", help="currency of the amounts, an ISO 4217 code (default: $INSIDERS_CURRENCY or GBP)"
    )
    return options


def cmd_settings(args: argparse.Namespace) -> int:
    """Print every INSIDERS_* variable: the value in effect (secrets masked), where it comes from, what reads it."""
    rows = [
        (s.name, value or "-", "environment" if from_env else "default", s.read_by)
        for s, value, from_env in settings.effective()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3])
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

    # Options several commands share, declared once (argparse parent parsers).
    common = _common_options()
    target, artifacts, quiet = common["target"], common["artifacts"], common["quiet"]
    date_format_help = (
        "strptime format of InvoiceDate, e.g. '%%d/%%m/%%Y %%H:%%M' for day first (default: chosen from the "
        "file; a file whose dates read both day first and month first is refused until this names one)"
    )

    p = sub.add_parser(
        "load", parents=[target, quiet], help="load raw invoice files (CSV, CSV.gz, Excel) into the raw tables"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="raw file(s) in a supported layout")
    p.add_argument("--schema", default=_raw_schema(), help="raw schema (default: $INSIDERS_RAW_SCHEMA or raw)")
    p.add_argument(
        "--encoding",
        default="auto",
        help="text encoding of CSV files (default auto: UTF-8 when valid, else latin-1)",
    )
    p.add_argument(
        "--max-rejected-share",
        type=_share,
        default=0.05,
        metavar="SHARE",
        help="refuse a file when more than this share of its lines cannot be read (default 0.05)",
    )
    p.add_argument("--date-format", metavar="FORMAT", help=date_format_help)
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("generate", parents=[quiet], help="write a synthetic raw file with planted customer segments")
    p.add_argument("--out", required=True, help="output file (.csv or .csv.gz)")
    p.add_argument("--customers", type=int, default=4000, help="number of customers (default 4000)")
    p.add_argument("--months", type=int, default=13, help="months of trading (default 13)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "train",
        parents=[target, artifacts, common["model"]],
        help="fit the segmentation model on customer_features and store a new version",
    )
    p.add_argument("--promote", action="store_true", help="pin the new version for scoring")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("promote", parents=[artifacts], help="pin an existing model version for scoring")
    p.add_argument("version")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("models", parents=[artifacts], help="list model versions and the pinned one")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "evaluate",
        parents=[target, common["model"]],
        help="measure how stable the Insiders membership is (seeds, 80%% samples)",
    )
    p.add_argument("--seeds", type=int, default=5, help="models trained with other seeds (default 5)")
    p.add_argument("--samples", type=int, default=5, help="models trained on 80%% samples (default 5)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "score",
        parents=[target, artifacts, common["out_of_range"], quiet],
        help="apply the pinned model and publish customer_segments",
    )
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "run",
        parents=[target, common["out_of_range"]],
        help="the scheduled job: load new files, build features, score, build the marts",
    )
    p.add_argument("--source", help="raw files to load first: a file, a folder or s3://bucket/prefix")
    p.add_argument(
        "--train-if-unpinned",
        action="store_true",
        help="train and pin a model when none is pinned (quick start; production pins deliberately)",
    )
    p.add_argument(
        "--vars",
        help="dbt --vars for both dbt steps; with an as_of_date, e.g. '{as_of_date: 2011-06-30}', a back-fill that "
        "builds and publishes in <schema>_backfill_<YYYYMMDD>, never in the live marts",
    )
    p.add_argument("--date-format", metavar="FORMAT", help=date_format_help)
    p.add_argument(
        "--force",
        action="store_true",
        help="score and publish even when loads, --vars, model and code are those of the last published run",
    )
    p.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the incremental models from all raw lines (dbt --full-refresh); implies --force",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,  # keeps `insiders -v run` working
        help="show dbt's line per model and test (by default only failures; logs/dbt.log has them all)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "answers", parents=[target, common["currency"]], help="print the answers to the business questions"
    )
    p.set_defaults(func=cmd_answers)

    p = sub.add_parser(
        "report", parents=[target, common["currency"]], help="write a self-contained HTML report of the latest run"
    )
    p.add_argument("--out", default="report.html", help="output file (default report.html)")
    p.add_argument("--title", help="report title")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("settings", help="list the INSIDERS_* environment variables with the values in effect")
    p.set_defaults(func=cmd_settings)

    from insiders.value.cli import add_value_parser

    add_value_parser(sub, common)
    return parser


def _one_line(text: object) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script: every failure ends with one ``error:`` line and a status of errors.py."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    previous = _raise_on_sigterm()
    try:
        return int(args.func(args) or 0)
    except InsidersError as exc:
        if args.verbose:
            traceback.print_exc(file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; nothing was committed by the step in progress", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("error: terminated (SIGTERM); nothing was committed by the step in progress", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:
        # Not a failure the code knows how to explain: a bug. Say so in one line, keep the traceback for -v.
        if args.verbose:
            traceback.print_exc(file=sys.stderr)
        hint = "" if args.verbose else " (run again with -v for the traceback)"
        print(f"error: internal error: {type(exc).__name__}: {_one_line(exc)}{hint}", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_on_sigterm():
    """Turn SIGTERM into :class:`Terminated` (unwinding like Ctrl-C: transactions roll back, locks are released,
    the CLI reports it); return the previous handler, or ``None`` when not in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def terminate(signum: int, frame: object) -> None:
        raise Terminated

    return signal.signal(signal.SIGTERM, terminate)


if __name__ == "__main__":
    sys.exit(main())
