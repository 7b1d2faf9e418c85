"""``insiders train`` and ``insiders evaluate``: fit the segmentation model deliberately, and keep it.

Training reads ``customer_features`` from the warehouse, fits the pipeline of :mod:`insiders.model`, and
writes a new version to the artifact store: the joblib artifact, a manifest (what it is and how to check
it) and a model card (the segment profiles). ``--promote`` pins that version for scoring.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

from insiders import model as segmodel
from insiders.artifacts import ArtifactStore
from insiders.errors import InsidersError
from insiders.registry import (
    Pin,
    SavedModel,
    data_fingerprint,
    dump_model,
    library_versions,
    new_version,
    save_model,
    write_pin,
)
from insiders.scoring import FEATURES_TABLE, type_family
from insiders.warehouse import Warehouse


def read_features(wh: Warehouse, schema: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """The whole feature table (numbers as floats) and its column types."""
    columns = wh.columns(schema, FEATURES_TABLE)
    if not columns:
        raise InsidersError(f"the table {schema}.{FEATURES_TABLE} does not exist; run `dbt build` first")
    frame = wh.query_df(f"select * from {schema}.{FEATURES_TABLE} order by customer_id")
    for name, kind in columns.items():
        if name != "customer_id" and type_family(kind) in ("integer", "number"):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    frame["customer_id"] = frame["customer_id"].astype("int64")
    if frame.empty:
        raise InsidersError(f"{schema}.{FEATURES_TABLE} is empty: load data and run `dbt build` first")
    return frame, columns


def _markdown_table(frame: pd.DataFrame, digits: int = 2) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.{digits}f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def model_card(version: str, manifest: dict[str, Any], profile: pd.DataFrame, selection: pd.DataFrame) -> str:
    """The Markdown model card: what was trained on what, and what each segment looks like."""
    data = manifest["training_data"]
    lines = [
        f"# Segmentation model {version}",
        "",
        f"Trained {manifest['created_at']} on {data['customers']:,} customers of `{FEATURES_TABLE}` "
        f"(as of {data.get('as_of_date')}, target `{data.get('target')}`, fingerprint `{data['fingerprint'][:16]}`).",
        "",
        f"Clustering features: {', '.join(manifest['features'])}. Segments are ranked by mean gross revenue; "
        "rank 1 is **Insiders**.",
        "",
        "## Segment profiles",
        "",
        _markdown_table(profile),
        "",
        "## Model selection",
        "",
        _markdown_table(selection, digits=3),
        "",
        f"Chosen: {manifest['chosen']}",
        "",
        "## Libraries",
        "",
        ", ".join(f"{k} {v}" for k, v in manifest["libraries"].items()),
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class TrainOutcome:
    """What ``train`` produced."""

    saved: SavedModel
    profile: pd.DataFrame
    selection: pd.DataFrame
    promoted: bool


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
) -> TrainOutcome:
    """Fit, save a new version, and optionally pin it."""
    frame, columns = read_features(wh, schema)
    missing = [f for f in config.features if f not in columns]
    if missing:
        raise InsidersError(f"{FEATURES_TABLE} has no column(s) {', '.join(missing)} named in the model configuration")
    try:
        segmodel.validate_features(frame, config.features, allow_extra=True)
    except ValueError as exc:
        raise InsidersError(f"cannot train on {FEATURES_TABLE}: {exc}") from exc
    result = segmodel.train(frame, config)
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    model_bytes = dump_model(result.model)
    version = new_version(model_bytes, created)
    profile = result.model.profile(frame)
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
        },
        "libraries": library_versions(),
        "config": dataclasses.asdict(config),
        "chosen": f"KMeans with k={result.chosen_k} in the forest-embedded space",
        "selection": result.selection.to_dict(orient="records"),
        "segments": result.model.segments().to_dict(orient="records"),
    }
    card = model_card(version, manifest, profile, result.selection)
    saved = save_model(store, version, model_bytes, manifest, card)
    if promote:
        promote_version(store, saved.version, saved.model.sha256, saved.model.version_id)
    return TrainOutcome(saved=saved, profile=profile, selection=result.selection, promoted=promote)


def promote_version(store: ArtifactStore, version: str, sha256: str, version_id: str | None = None) -> Pin:
    """Pin a version for scoring (S3 stores are recorded in the pin; local ones come from configuration)."""
    uri = store.uri if store.uri.startswith("s3://") else None
    pin = Pin(version=version, sha256=sha256, artifact_uri=uri, version_id=version_id)
    write_pin(pin)
    return pin
