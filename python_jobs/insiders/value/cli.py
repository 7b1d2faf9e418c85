"""``insiders value …``: train, promote, score and backtest the customer-value model (docs/value.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from insiders.value.model import DEFAULT_HORIZON_DAYS, DEFAULT_SEED, FIT_METHODS


def _days(text: str) -> int:
    """A whole number of days, for argparse; the commands themselves refuse a value <= 0 with a clear message."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of days, got {text!r}") from None


def cmd_value_train(args: argparse.Namespace) -> int:
    from insiders.artifacts import open_store
    from insiders.registry import pin_file
    from insiders.value.training import train_value
    from insiders.warehouse import connect

    store = open_store(args.artifacts)
    with connect(args.target) as wh:
        print(
            f"Fitting the customer-value model ({args.method}) on {wh.target.describe()}; artifacts in "
            f"{store.describe()}"
        )
        outcome = train_value(
            wh,
            store,
            wh.target.schema,
            method=args.method,
            seed=args.seed,
            promote=args.promote,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
        )
    print(outcome.card)
    saved = outcome.saved
    if outcome.reused:
        print(f"The same artifact is already stored as value model {saved.version}: reused, nothing new written")
    else:
        print(f"Saved value model {saved.version} (sha256 {saved.model.sha256}); fit {outcome.result.seconds:.1f} s")
    if outcome.promoted:
        print(f"Promoted: {pin_file()} now pins value model {saved.version}; commit it to deploy")
    else:
        print(f"Not promoted; to apply it: insiders value promote {saved.version}")
    return 0


def cmd_value_promote(args: argparse.Namespace) -> int:
    from insiders.artifacts import open_store
    from insiders.registry import VALUE, pin_file, pin_version

    pin = pin_version(open_store(args.artifacts), args.version, kind=VALUE)
    print(f"{pin_file()} now pins value model {pin.version} (sha256 {pin.sha256})")
    return 0


def cmd_value_models(args: argparse.Namespace) -> int:
    from insiders.artifacts import open_store
    from insiders.registry import VALUE, ManifestRefusedError, list_versions, read_manifest, read_pin

    store = open_store(args.artifacts)
    pin = read_pin(required=False, kind=VALUE)
    versions = list_versions(store, VALUE)
    print(f"Value model versions in {store.describe()}:")
    if not versions:
        print("  (none) - run `insiders value train --promote`")
    for version in versions:
        mark = "*" if pin and pin.version == version else " "
        try:
            manifest = read_manifest(store, version, VALUE)
        except ManifestRefusedError as exc:
            print(f" {mark} {version}  REFUSED: {exc}")
            continue
        data = manifest.get("training_data", {})
        params = ", ".join(f"{k}={v:.4g}" for k, v in manifest.get("parameters", {}).items())
        print(
            f" {mark} {version}  {manifest.get('method', '?')}  customers={data.get('customers')}  "
            f"as_of={data.get('as_of_date')}  {params}"
        )
    if pin:
        print(f"(* pinned: {pin.version})")
    return 0


def cmd_value_score(args: argparse.Namespace) -> int:
    from insiders.artifacts import open_store
    from insiders.pipeline import run_lock
    from insiders.registry import VALUE, load_pinned, read_pin
    from insiders.value.apply import VALUE_TABLE, score_value
    from insiders.value.model import check_horizon
    from insiders.warehouse import connect, load_target

    check_horizon(args.horizon_days)
    target = load_target(args.target)
    # The pin and the artifact are checked before the run lock is taken: a missing pin or a tampered artifact is
    # refused without touching the warehouse.
    pin = read_pin(kind=VALUE)
    loaded = load_pinned(open_store(args.artifacts) if args.artifacts else None, pin, kind=VALUE)
    print(f"Value model {loaded.pin.version} verified (sha256 {loaded.pin.sha256[:12]}…) from {loaded.store_uri}")
    with run_lock(target, what="insiders value score"), connect(target) as wh:
        result = score_value(wh, loaded, wh.target.schema, horizon_days=args.horizon_days)
    print(
        f"Predicted {result.customers:,} customers into {target.schema}.{VALUE_TABLE} (run {result.run_id}) in "
        f"{result.seconds:.1f} s: expected revenue over {result.horizon_days} days {result.expected_revenue:,.0f}"
    )
    return 0


def cmd_value_backtest(args: argparse.Namespace) -> int:
    from insiders.value.backtest import plot_svg, run_backtest, to_text

    result = run_backtest(
        args.target,
        cutoff_days=args.cutoff_days,
        horizon_days=args.horizon_days,
        method=args.method,
        seed=args.seed,
    )
    print(to_text(result))
    if args.plot:
        Path(args.plot).write_text(plot_svg(result), encoding="utf-8")
        print(f"Wrote {args.plot}")
    return 0


def add_value_parser(sub: argparse._SubParsersAction, common: dict[str, argparse.ArgumentParser]) -> None:
    """The ``value`` subcommand and its own subcommands."""
    value = sub.add_parser("value", help="predicted customer value: BG/NBD + Gamma-Gamma (needs the [value] group)")
    vsub = value.add_subparsers(dest="value_command", required=True, metavar="VALUE_COMMAND")

    def fit_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--method", choices=FIT_METHODS, default="map", help="map (default) or full sampling")
        p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed of the sampler")

    target, artifacts = common["target"], common["artifacts"]
    p = vsub.add_parser(
        "train", parents=[target, artifacts], help="fit on customer_value_inputs and store a new version"
    )
    p.add_argument("--promote", action="store_true", help="pin the new version for `insiders run`")
    fit_options(p)
    p.add_argument("--draws", type=int, default=1000, help="draws per chain (--method sample)")
    p.add_argument("--tune", type=int, default=1000, help="tuning steps per chain (--method sample)")
    p.add_argument("--chains", type=int, default=2, help="chains (--method sample)")
    p.set_defaults(func=cmd_value_train)

    p = vsub.add_parser("promote", parents=[artifacts], help="pin an existing value model version")
    p.add_argument("version")
    p.set_defaults(func=cmd_value_promote)

    p = vsub.add_parser("models", parents=[artifacts], help="list value model versions and the pinned one")
    p.set_defaults(func=cmd_value_models)

    p = vsub.add_parser(
        "score", parents=[target, artifacts], help="apply the pinned value model and publish customer_value"
    )
    p.add_argument("--horizon-days", type=_days, default=DEFAULT_HORIZON_DAYS, help="prediction horizon (90)")
    p.set_defaults(func=cmd_value_score)

    p = vsub.add_parser(
        "backtest", parents=[target], help="fit up to a cut-off day and compare the next horizon with what happened"
    )
    p.add_argument("--cutoff-days", type=_days, default=90, help="cut-off: this many days before the last day (90)")
    p.add_argument("--horizon-days", type=_days, help="horizon to predict (default: --cutoff-days)")
    p.add_argument("--plot", help="write the per-segment comparison as SVG to this file")
    fit_options(p)
    p.set_defaults(func=cmd_value_backtest)
