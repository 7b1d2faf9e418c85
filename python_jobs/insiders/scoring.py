"""``insiders score``: apply the pinned model to ``customer_features`` and publish ``customer_segments``.

The model is only applied (transform and predict), never refitted. Input is checked against the model's
manifest before anything is written: a trained feature that is missing or has another type stops the run; a
column added since training (a new feature not yet in the model) does not: scoring reads the trained features
only and prints a notice naming the new column(s). Rows are read, scored and written in chunks, so memory stays
flat. The published table is replaced in one transaction: readers see the previous segments or the new ones, never a
partial or empty table, and a failure anywhere leaves the previous table as it was. Every run is also appended
to ``customer_segment_history``.
"""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from insiders.errors import InsidersError
from insiders.registry import LoadedModel
from insiders.warehouse import Warehouse

FEATURES_TABLE = "customer_features"
SEGMENTS_TABLE = "customer_segments"
HISTORY_TABLE = "customer_segment_history"
CHUNK_ROWS = 100_000
# Serialises scoring runs on PostgreSQL.
SCORE_LOCK_KEY = 0x1A5D_E251

SEGMENT_COLUMNS = (
    "customer_id",
    "cluster_id",
    "segment_rank",
    "segment_name",
    "is_insider",
    "model_version",
    "run_id",
    "scored_at",
)


class FeatureValidationError(InsidersError):
    """customer_features does not match what the model was trained on."""


def segments_ddl(schema: str, table: str) -> str:
    """DDL of the published segments table and of its history (same columns)."""
    return f"""
        create table if not exists {schema}.{table} (
            customer_id bigint not null,
            cluster_id integer not null,
            segment_rank integer not null,
            segment_name varchar not null,
            is_insider boolean not null,
            model_version varchar not null,
            run_id varchar(36) not null,
            scored_at timestamp not null
        )"""


def type_family(data_type: str) -> str:
    """Coarse type of a warehouse column, for comparing a table with the model's manifest."""
    t = data_type.lower()
    if any(k in t for k in ("int", "serial")):
        return "integer"
    if any(k in t for k in ("numeric", "decimal", "double", "real", "float")):
        return "number"
    if any(k in t for k in ("char", "text", "string")):
        return "text"
    if "timestamp" in t:
        return "timestamp"
    if "date" in t:
        return "date"
    if "bool" in t:
        return "boolean"
    return t


def check_schema(columns: dict[str, str], manifest: dict[str, Any]) -> list[str]:
    """Refuse a features table that lacks a trained feature or has one with another type.

    Returns the columns the table gained since the model was trained (in table order): they do not stop scoring,
    which reads only the trained features, but the caller names them in a notice.
    """
    if not columns:
        raise FeatureValidationError(
            f"the table {FEATURES_TABLE} does not exist in this warehouse; run `dbt build` first"
        )
    expected: dict[str, str] = manifest["feature_types"]
    trained_columns: list[str] = manifest.get("training_columns", list(expected))
    problems: list[str] = []
    missing = [f for f in expected if f not in columns]
    if missing:
        problems.append(f"missing feature column(s): {', '.join(missing)}")
    wrong = [
        f"{f} is {columns[f]} (trained as {expected[f]})"
        for f in expected
        if f in columns and type_family(columns[f]) != type_family(expected[f])
    ]
    if wrong:
        problems.append("wrong type(s): " + "; ".join(wrong))
    if problems:
        raise FeatureValidationError(
            f"{FEATURES_TABLE} does not match model {manifest.get('model_version')}: " + "; ".join(problems)
        )
    return [c for c in columns if c not in trained_columns]


def new_columns_notice(new_columns: list[str], manifest: dict[str, Any]) -> str:
    """The notice printed when customer_features has columns the model was not trained on."""
    features = ", ".join(manifest["features"])
    return (
        f"notice: {FEATURES_TABLE} has column(s) model {manifest.get('model_version')} was not trained on: "
        f"{', '.join(new_columns)}. Scoring uses the trained features only ({features}). To cluster on a new "
        "column: insiders train --features <list>, insiders evaluate, insiders promote (docs/features.md)."
    )


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class _ValueProblems:
    customers: int = 0
    affected: int = 0
    per_column: dict[str, int] = field(default_factory=dict)

    def add(self, frame: pd.DataFrame, features: list[str]) -> None:
        values = frame[features].to_numpy(dtype=float, na_value=np.nan)
        bad = ~np.isfinite(values)
        self.customers += len(frame)
        self.affected += int(bad.any(axis=1).sum())
        for i, name in enumerate(features):
            n = int(bad[:, i].sum())
            if n:
                self.per_column[name] = self.per_column.get(name, 0) + n

    def raise_if_any(self) -> None:
        if self.affected:
            detail = ", ".join(f"{name}: {n:,}" for name, n in self.per_column.items())
            raise FeatureValidationError(
                f"{self.affected:,} of {self.customers:,} customers have NULL or non-finite feature values "
                f"({detail}); fix the features (nothing is filled in silently)"
            )


@dataclass(frozen=True)
class ScoreResult:
    """The outcome of one scoring run."""

    run_id: str
    model_version: str
    scored_at: dt.datetime
    customers: int
    insiders: int
    segments: dict[str, int]
    seconds: float
    new_columns: tuple[str, ...] = ()


def _features_sql(schema: str, features: list[str]) -> str:
    cols = ", ".join(f"cast({f} as double precision) as {f}" for f in features)
    return f"select customer_id, {cols} from {schema}.{FEATURES_TABLE} order by customer_id"


def score(
    wh: Warehouse,
    loaded: LoadedModel,
    schema: str,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int, int | None], None] | None = None,
    now: dt.datetime | None = None,
    notice: Callable[[str], None] = _stderr,
) -> ScoreResult:
    """Validate, apply the model in chunks, and publish the segments atomically.

    Columns of ``customer_features`` the model was not trained on are left out of scoring and named through
    ``notice`` (stderr by default); a missing or retyped trained feature stops the run before anything is written.
    """
    started = dt.datetime.now()
    manifest = loaded.manifest
    features: list[str] = list(manifest["features"])
    new_columns = check_schema(wh.columns(schema, FEATURES_TABLE), manifest)
    if new_columns:
        notice(new_columns_notice(new_columns, manifest))
    sql = _features_sql(schema, features)

    # Pass 1: every value must be usable before anything is written.
    problems = _ValueProblems()
    for frame in wh.iter_frames(sql, chunk_rows):
        problems.add(frame, features)
    problems.raise_if_any()
    if problems.customers == 0:
        raise FeatureValidationError(f"{FEATURES_TABLE} is empty: nothing to score")

    run_id = str(uuid.uuid4())
    scored_at = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None, microsecond=0)
    version = str(manifest["model_version"])
    counts: dict[str, int] = {}
    scored = 0
    target = f"{schema}.{SEGMENTS_TABLE}"
    with wh.transaction():
        if not wh.advisory_lock(SCORE_LOCK_KEY):
            raise InsidersError("another scoring run is writing customer_segments; try again when it ends")
        wh.execute(segments_ddl(schema, SEGMENTS_TABLE))
        wh.execute(segments_ddl(schema, HISTORY_TABLE))
        # Inside the transaction: readers keep seeing the previous rows until the commit.
        wh.execute(f"delete from {target}")
        # Pass 2: score and write chunk by chunk.
        for frame in wh.iter_frames(sql, chunk_rows):
            out = loaded.model.predict(frame)
            out = out.assign(model_version=version, run_id=run_id, scored_at=scored_at)
            table = pa.Table.from_pandas(out[list(SEGMENT_COLUMNS)], preserve_index=False).cast(
                pa.schema(
                    [
                        ("customer_id", pa.int64()),
                        ("cluster_id", pa.int32()),
                        ("segment_rank", pa.int32()),
                        ("segment_name", pa.string()),
                        ("is_insider", pa.bool_()),
                        ("model_version", pa.string()),
                        ("run_id", pa.string()),
                        ("scored_at", pa.timestamp("s")),
                    ]
                )
            )
            wh.append_arrow(target, table)
            for name, n in out["segment_name"].value_counts().items():
                counts[str(name)] = counts.get(str(name), 0) + int(n)
            scored += len(out)
            if progress is not None:
                progress(scored, problems.customers)
        wh.execute(
            f"insert into {schema}.{HISTORY_TABLE} ({', '.join(SEGMENT_COLUMNS)}) "
            f"select {', '.join(SEGMENT_COLUMNS)} from {target}"
        )
    insiders = int(wh.query(f"select count(*) from {target} where is_insider and run_id = %s", [run_id])[0][0])
    return ScoreResult(
        run_id=run_id,
        model_version=version,
        scored_at=scored_at,
        customers=scored,
        insiders=insiders,
        segments=counts,
        seconds=(dt.datetime.now() - started).total_seconds(),
        new_columns=tuple(new_columns),
    )
