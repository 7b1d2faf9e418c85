"""``insiders train`` and ``insiders evaluate``: fit the segmentation model deliberately, and keep it.

Training reads ``customer_features`` from the warehouse, fits the pipeline of :mod:`insiders.model`, and
writes a new version to the artifact store: the joblib artifact, a manifest (what it is and how to check
it) and a model card (the segment profiles). ``--promote`` pins that version for scoring.

On Spark, where ``customer_features`` may have more customers than one driver fits a model on, training reads at
most ``INSIDERS_SPARK_TRAIN_MAX_CUSTOMERS`` customers (:func:`read_training_features`): above that, a sample
chosen on the Spark side by a seeded hash of ``customer_id``, the same customers for the same table and seed. The
manifest and the card say so; scoring then applies the model to every customer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from insiders import model as segmodel
from insiders import settings
from insiders.artifacts import ArtifactStore
from insiders.errors import InsidersError
from insiders.registry import (
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
from insiders.tables import FEATURES_TABLE, type_family
from insiders.warehouse import Warehouse

#: on Spark, the most customers training reads; above it, a seeded sample of that many
TRAIN_MAX_CUSTOMERS_ENV = "INSIDERS_SPARK_TRAIN_MAX_CUSTOMERS"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def read_features(wh: Warehouse, schema: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """The whole feature table (numbers as floats) and its column types."""
    columns = _feature_columns(wh, schema)
    return _read_features(wh, schema, columns, f"select * from {schema}.{FEATURES_TABLE} order by customer_id"), columns


@dataclass(frozen=True)
class TrainingData:
    """The customers a model is fitted on: all of ``customer_features``, or a sample of ``of_customers``."""

    frame: pd.DataFrame
    columns: dict[str, str]
    #: the customers in the table when ``frame`` is a sample of them, else None
    of_customers: int | None = None
    seed: int | None = None


def read_training_features(
    wh: Warehouse, schema: str, seed: int, notice: Callable[[str], None] = _stderr
) -> TrainingData:
    """What training reads: the whole feature table, except on Spark above ``INSIDERS_SPARK_TRAIN_MAX_CUSTOMERS``.

    There the sample is taken by Spark before anything reaches the driver: the customers with the smallest
    ``xxhash64(customer_id, seed)`` (ties broken by ``customer_id``), a uniform choice that is the same for the same
    table and seed whatever the partitioning. ``notice`` says how many of how many were read.
    """
    if wh.kind != "spark":
        frame, columns = read_features(wh, schema)
        return TrainingData(frame, columns)
    cap = settings.whole(TRAIN_MAX_CUSTOMERS_ENV, minimum=1)
    columns = _feature_columns(wh, schema)
    table = wh.ident(schema, FEATURES_TABLE)
    total = int(wh.query(f"select count(*) from {table}")[0][0])
    if total <= cap:
        return TrainingData(_read_features(wh, schema, columns, f"select * from {table} order by customer_id"), columns)
    sample = (
        f"select * from (select * from {table} order by xxhash64(customer_id, {int(seed)}), customer_id "
        f"limit {cap}) as sampled order by customer_id"
    )
    frame = _read_features(wh, schema, columns, sample)
    notice(
        f"notice: training on a sample of {len(frame):,} of the {total:,} customers of {FEATURES_TABLE} "
        f"({TRAIN_MAX_CUSTOMERS_ENV} = {cap:,}; chosen on Spark by a hash of customer_id with seed {seed})"
    )
    return TrainingData(frame, columns, of_customers=total, seed=int(seed))


def _feature_columns(wh: Warehouse, schema: str) -> dict[str, str]:
    columns = wh.columns(schema, FEATURES_TABLE)
    if not columns:
        raise InsidersError(f"the table {schema}.{FEATURES_TABLE} does not exist; run `dbt build` first")
    return columns


def _read_features(wh: Warehouse, schema: str, columns: dict[str, str], sql: str) -> pd.DataFrame:
    """The rows of ``sql`` over the feature table, numbers as floats."""
    frame = wh.query_df(sql)
    for name, kind in columns.items():
        if name != "customer_id" and type_family(kind) in ("integer", "number"):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    frame["customer_id"] = frame["customer_id"].astype("int64")
    if frame.empty:
        raise InsidersError(f"{schema}.{FEATURES_TABLE} is empty: load data and run `dbt build` first")
    return frame


def _markdown_table(frame: pd.DataFrame, digits: int = 2, percent: tuple[str, ...] = ()) -> str:
    """A Markdown table: thousands separators, shares in ``percent`` as percentages, empty cells for missing."""

    def cell(column: str, v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return ""
        if isinstance(v, bool):
            return "yes" if v else "no"
        if column in percent and isinstance(v, (int, float)):
            return f"{v:.1%}"
        if isinstance(v, float):
            return f"{v:,.{digits}f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = [
        "| " + " | ".join(cell(c, v) for c, v in zip(frame.columns, row, strict=True)) + " |"
        for row in frame.astype(object).itertuples(index=False)
    ]
    return "\n".join([head, rule, *rows])


#: selection-table columns shown as percentages in the model card
_SHARE_COLUMNS = ("insiders_share", "insiders_revenue_share", "variance_drop", "noise_share")


def model_card(
    version: str,
    manifest: dict[str, Any],
    profile: pd.DataFrame,
    selection: pd.DataFrame,
    explanation: list[str] | None = None,
    checks: list[segmodel.BusinessCheck] | None = None,
) -> str:
    """The Markdown model card: what was trained on what, why this k, the business checks, the segments, and the
    whole selection table as an appendix."""
    data = manifest["training_data"]
    lines = [
        f"# Segmentation model {version}",
        "",
        f"Trained {manifest['created_at']} on {data['customers']:,} customers of `{FEATURES_TABLE}` "
        + (
            f"(a sample of its {data['sampled_from']:,}, seed {data['sample_seed']}) "
            if data.get("sampled_from")
            else ""
        )
        + f"(as of {data.get('as_of_date')}, target `{data.get('target')}`, fingerprint "
        f"`{data['fingerprint'][:16]}`).",
        "",
        f"Clustering features: {', '.join(manifest['features'])}. Segments are ranked by mean gross revenue; "
        "rank 1 is **Insiders**.",
        "",
        "## Why this k",
        "",
        *(explanation or [f"Chosen: {manifest['chosen']}"]),
        "",
    ]
    if checks:
        lines += ["## Business checks of the Insiders", "", *(f"- {c.to_text()}" for c in checks), ""]
    lines += [
        "## Segment profiles",
        "",
        _markdown_table(profile, percent=("customer_share", "revenue_share", "mean_return_rate")),
        "",
        "## Appendix: every candidate",
        "",
        "One row per candidate k (KMeans) and per comparison method at the chosen k; Jaccard columns compare the "
        "Insiders of the base model with those of other seeds and of 80 % samples.",
        "",
        _markdown_table(selection, digits=3, percent=_SHARE_COLUMNS),
        "",
        "## Libraries",
        "",
        ", ".join(f"{k} {v}" for k, v in manifest["libraries"].items()),
        "",
    ]
    return "\n".join(lines)


def feature_ranges(frame: pd.DataFrame, features: list[str] | tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Each feature's range on the training customers (min, max, 1st and 99th percentile), for range checks."""
    ranges = {}
    for name in features:
        values = pd.to_numeric(frame[name], errors="coerce").dropna().astype(float)
        ranges[name] = {
            "min": float(values.min()),
            "max": float(values.max()),
            "p01": float(values.quantile(0.01)),
            "p99": float(values.quantile(0.99)),
        }
    return ranges


@dataclass(frozen=True)
class TrainOutcome:
    """What ``train`` produced."""

    saved: SavedModel
    profile: pd.DataFrame
    selection: pd.DataFrame
    promoted: bool
    #: why this k, in sentences
    explanation: list[str] = field(default_factory=list)
    #: the Insiders' business checks
    checks: list[segmodel.BusinessCheck] = field(default_factory=list)
    #: True when the same artifact was already stored: its version was reused, nothing was written
    reused: bool = False

    @property
    def failed(self) -> list[segmodel.BusinessCheck]:
        return segmodel.failed_checks(self.checks)


def _as_of(frame: pd.DataFrame) -> str | None:
    if "as_of_date" in frame.columns and len(frame):
        return str(frame["as_of_date"].iloc[0])[:10]
    return None


def train(
    wh: Warehouse,
    store: ArtifactStore,
    schema: str,
    config: segmodel.ModelConfig,
    promote: bool = False,
    notice: Callable[[str], None] = _stderr,
) -> TrainOutcome:
    """Fit, save a new version, and optionally pin it (on a sample on Spark above the bound, said in ``notice``)."""
    data = read_training_features(wh, schema, config.seed, notice)
    frame, columns = data.frame, data.columns
    missing = [f for f in config.features if f not in columns]
    if missing:
        raise InsidersError(f"{FEATURES_TABLE} has no column(s) {', '.join(missing)} named in the model configuration")
    try:
        segmodel.validate_features(frame, config.features, allow_extra=True)
    except ValueError as exc:
        raise InsidersError(f"cannot train on {FEATURES_TABLE}: {exc}") from exc
    result = segmodel.fit_model(frame, config)
    model_bytes = dump_model(result.model)
    profile = result.model.profile(frame)
    same = find_version_by_digest(store, hashlib.sha256(model_bytes).hexdigest())
    if same is not None:
        # Same data, same configuration, same libraries: the same bytes. Keep one copy and say so.
        saved = stored_model(store, same, read_manifest(store, same))
    else:
        saved = save_model(store, *_new_version(wh, data, config, result, profile, model_bytes))
    if promote:
        promote_version(store, saved.version, saved.model.sha256, saved.model.version_id)
    return TrainOutcome(
        saved=saved,
        profile=profile,
        selection=result.selection,
        promoted=promote,
        explanation=result.explanation,
        checks=result.checks,
        reused=same is not None,
    )


def _new_version(
    wh: Warehouse,
    data: TrainingData,
    config: segmodel.ModelConfig,
    result: segmodel.TrainResult,
    profile: pd.DataFrame,
    model_bytes: bytes,
) -> tuple[str, bytes, dict[str, Any], str]:
    """Version id, artifact bytes, manifest and model card of a new version (``save_model``'s arguments)."""
    frame, columns = data.frame, data.columns
    sample = {} if data.of_customers is None else {"sampled_from": data.of_customers, "sample_seed": data.seed}
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    chosen = result.selection.loc[result.selection["chosen"]].iloc[0]
    version = new_version(model_bytes, created)
    manifest: dict[str, Any] = {
        "model_version": version,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "features": list(config.features),
        "feature_types": {f: columns[f] for f in config.features},
        "training_columns": list(columns),
        "training_data": {
            "table": FEATURES_TABLE,
            "target": wh.target.name,
            "customers": len(frame),
            "as_of_date": _as_of(frame),
            "fingerprint": data_fingerprint(frame),
            **sample,
        },
        "libraries": library_versions(),
        "config": dataclasses.asdict(config),
        "chosen": f"KMeans with k={result.chosen_k} in the forest-embedded space",
        "k": result.chosen_k,
        "explanation": result.explanation,
        "business_checks": [dataclasses.asdict(c) for c in result.checks],
        "insiders": {
            "customers": int(chosen["insiders_customers"]),
            "share": float(chosen["insiders_share"]),
            "revenue_share": float(chosen["insiders_revenue_share"]),
        },
        "feature_ranges": feature_ranges(frame, config.features),
        "selection": result.selection.to_dict(orient="records"),
        "segments": result.model.segments().to_dict(orient="records"),
    }
    card = model_card(version, manifest, profile, result.selection, result.explanation, result.checks)
    return version, model_bytes, manifest, card


def promote_version(store: ArtifactStore, version: str, sha256: str, version_id: str | None = None) -> Pin:
    """Pin a version for scoring (S3 stores are recorded in the pin; local ones come from configuration)."""
    uri = store.uri if store.uri.startswith("s3://") else None
    pin = Pin(version=version, sha256=sha256, artifact_uri=uri, version_id=version_id)
    write_pin(pin)
    return pin
