"""``insiders value train``: fit the customer-value model and keep it like the segmentation model.

The artifact (the fitted :class:`~insiders.value.model.ValueModel`, joblib), its manifest and its card are written
with :mod:`insiders.registry` under the ``value`` kind (``value_models/<version>/`` in the same store, pinned
under ``value_model:`` in the same pin file), so a value model is verified by its digest before use exactly as a
segmentation model is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import platform
from dataclasses import dataclass
from typing import Any

import pandas as pd

from insiders.artifacts import ArtifactStore
from insiders.errors import InsidersError
from insiders.registry import (
    VALUE,
    Pin,
    SavedModel,
    data_fingerprint,
    dump_model,
    find_version_by_digest,
    library_versions,
    new_version,
    read_manifest,
    save_model,
    stored_model,
    write_pin,
)
from insiders.value.model import FEATURES, INPUTS_TABLE, FitResult, fit
from insiders.warehouse import Warehouse


def read_inputs(wh: Warehouse, schema: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """customer_value_inputs ordered by customer, and its column types."""
    columns = wh.columns(schema, INPUTS_TABLE)
    if not columns:
        raise InsidersError(
            f"the table {schema}.{INPUTS_TABLE} does not exist; run `dbt build --selector features` first"
        )
    frame = wh.query_df(f"select * from {schema}.{INPUTS_TABLE} order by customer_id")
    for name in FEATURES:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    if frame.empty:
        raise InsidersError(f"{schema}.{INPUTS_TABLE} is empty: load data and run `dbt build --selector features`")
    return frame, columns


def value_library_versions() -> dict[str, str]:
    versions = library_versions()
    from importlib.metadata import PackageNotFoundError, version

    for name in ("scipy", "pymc-marketing", "pymc", "pytensor"):
        with contextlib.suppress(PackageNotFoundError):
            versions[name] = version(name)
    versions["python"] = platform.python_version()
    return versions


@dataclass(frozen=True)
class ValueTrainOutcome:
    saved: SavedModel
    result: FitResult
    promoted: bool
    reused: bool
    card: str


def value_card(version: str, manifest: dict[str, Any]) -> str:
    """The Markdown card: what was fitted on what, the parameters and the goodness-of-fit figures."""
    data = manifest["training_data"]
    params = manifest["parameters"]
    diag = manifest["diagnostics"]
    lines = [
        f"# Customer-value model {version}",
        "",
        f"Fitted {manifest['created_at']} ({manifest['method'].upper()}, seed {manifest['seed']}, "
        f"{manifest['fit_seconds']:.1f} s) on {data['customers']:,} customers of `{INPUTS_TABLE}` as of "
        f"{data.get('as_of_date')} (target `{data.get('target')}`, fingerprint `{data['fingerprint'][:16]}`).",
        "",
        "## Parameters",
        "",
        "| model | parameter | value |",
        "| --- | --- | --- |",
        *(f"| BG/NBD | {k} | {params[k]:.6g} |" for k in ("r", "alpha", "a", "b")),
        *(f"| Gamma-Gamma | {k} | {params[k]:.6g} |" for k in ("p", "q", "v")),
        "",
        "## Diagnostics",
        "",
        f"- Repeat purchases on the training customers: observed {diag['observed_repeat_purchases']:,.0f}, "
        f"expected by the model for customers of the same ages {diag['expected_repeat_purchases']:,.0f} "
        f"(ratio {diag['repeat_purchases_ratio']:.3f}).",
        f"- Mean spend per repeat purchase: observed {diag['observed_mean_spend']:,.2f}, model "
        f"{diag['model_mean_spend']:,.2f}; {diag['gamma_gamma_excluded_customers']:,} repeat buyer(s) with a "
        "zero or negative spend left out of the Gamma-Gamma fit.",
        f"- {diag['repeat_customers']:,} of {diag['customers']:,} customers have a repeat purchase; mean P(alive) "
        f"{diag['mean_p_alive']:.3f}, {diag['share_p_alive_below_half']:.1%} of customers below 0.5.",
    ]
    sampling = diag.get("sampling")
    if sampling:
        lines += ["", "| parameter | mean | sd | R-hat | ESS (bulk) |", "| --- | --- | --- | --- | --- |"]
        lines += [
            f"| {k} | {v['mean']:.6g} | {v['sd']:.3g} | {v['r_hat']:.3f} | {v['ess_bulk']:,.0f} |"
            for k, v in sampling.items()
        ]
    lines += ["", "## Libraries", "", ", ".join(f"{k} {v}" for k, v in manifest["libraries"].items()), ""]
    return "\n".join(lines)


def train_value(
    wh: Warehouse,
    store: ArtifactStore,
    schema: str,
    method: str = "map",
    seed: int = 42,
    promote: bool = False,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
) -> ValueTrainOutcome:
    """Fit on customer_value_inputs, save a new version (or reuse an identical one), optionally pin it."""
    frame, columns = read_inputs(wh, schema)
    result = fit(frame, method=method, seed=seed, draws=draws, tune=tune, chains=chains)
    model_bytes = dump_model(result.model)
    same = find_version_by_digest(store, hashlib.sha256(model_bytes).hexdigest(), VALUE)
    if same is not None:
        manifest = read_manifest(store, same, VALUE)
        saved = stored_model(store, same, manifest)
        card = value_card(same, manifest)
    else:
        created = dt.datetime.now(dt.UTC).replace(microsecond=0)
        version = new_version(model_bytes, created)
        as_of = str(frame["as_of_date"].iloc[0])[:10] if "as_of_date" in frame.columns else None
        manifest = {
            "model_version": version,
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "features": list(FEATURES),
            "feature_types": {f: columns[f] for f in FEATURES},
            "training_columns": list(columns),
            "training_data": {
                "table": INPUTS_TABLE,
                "target": wh.target.name,
                "customers": len(frame),
                "as_of_date": as_of,
                "fingerprint": data_fingerprint(frame),
            },
            "method": result.method,
            "seed": result.seed,
            "fit_seconds": round(result.seconds, 3),
            "parameters": dataclasses.asdict(result.model),
            "diagnostics": result.diagnostics,
            "libraries": value_library_versions(),
        }
        card = value_card(version, manifest)
        saved = save_model(store, version, model_bytes, manifest, card, kind=VALUE)
    if promote:
        uri = store.uri if store.uri.startswith("s3://") else None
        write_pin(
            Pin(version=saved.version, sha256=saved.model.sha256, artifact_uri=uri, version_id=saved.model.version_id),
            kind=VALUE,
        )
    return ValueTrainOutcome(saved=saved, result=result, promoted=promote, reused=same is not None, card=card)
