"""``insiders score``: apply the pinned model to ``customer_features`` and publish ``customer_segments``.

The model is only applied (transform and predict), never refitted. Input is checked against the model's
manifest before anything is written: a trained feature that is missing or has another type stops the run; a
column added since training (a new feature not yet in the model) does not: scoring reads the trained features
only and prints a notice naming the new column(s). Rows are read, scored and written in chunks, so memory stays
flat (on Spark, partition by partition on the executors: :mod:`insiders.spark_scoring`). The published table
is replaced in one transaction: readers see the previous segments or the new ones, never a partial or empty
table, and a failure anywhere leaves the previous table as it was. Every run is also appended to
``customer_segment_history``.

Range checks: the manifest records each feature's range on the training customers (``feature_ranges``: min, max,
1st and 99th percentile). A value is *far outside* that range when it lies outside ``[min - w, max + w]``, ``w``
being the width of the training range (``max - min``; 1 when the range is a single value), or when it is negative
while every training value was ≥ 0 (a negative spend, return rate or recency). Far-outside values are counted per
feature and named in a notice; when the share of customers with at least one such value exceeds
``max_out_of_range_share`` (default 1 %), the run fails before anything is written. A manifest without
``feature_ranges`` (models trained before ranges were recorded) skips the check with a notice.

Every history row says what kind of run wrote it (``run_kind``): ``live`` for scheduled and hand-run scoring,
``backfill`` for a back-fill (``insiders run`` with an ``as_of_date``, which scores in a schema of its own).
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

from insiders import tables
from insiders.errors import InsidersError
from insiders.registry import LoadedModel
from insiders.tables import RUN_KINDS, type_family
from insiders.warehouse import Warehouse

FEATURES_TABLE = tables.FEATURES_TABLE
SEGMENTS_TABLE = tables.CUSTOMER_SEGMENTS.name
HISTORY_TABLE = tables.CUSTOMER_SEGMENT_HISTORY.name
CHUNK_ROWS = 100_000
#: the share of customers with a feature value far outside the training range above which scoring fails
DEFAULT_MAX_OUT_OF_RANGE_SHARE = 0.01
# Serialises scoring runs on PostgreSQL.
SCORE_LOCK_KEY = 0x1A5D_E251

SEGMENT_COLUMNS = tables.CUSTOMER_SEGMENTS.column_names


class FeatureValidationError(InsidersError):
    """customer_features does not match what the model was trained on."""


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


class OutOfRangeError(FeatureValidationError):
    """Too many customers have feature values far outside the range the model was trained on."""


def allowed_ranges(manifest: dict[str, Any], features: list[str]) -> dict[str, tuple[float, float]] | None:
    """Per feature, the interval outside which a value counts as far out of the training range.

    ``None`` when the manifest records no ranges (older models). A feature without a recorded range is not checked.
    """
    recorded = manifest.get("feature_ranges")
    if not isinstance(recorded, dict):
        return None
    allowed: dict[str, tuple[float, float]] = {}
    for name in features:
        r = recorded.get(name)
        if not isinstance(r, dict):
            continue
        try:
            low, high = float(r["min"]), float(r["max"])
        except (KeyError, TypeError, ValueError):
            continue
        if not (np.isfinite(low) and np.isfinite(high)) or low > high:
            continue
        width = high - low if high > low else 1.0
        lower = low - width
        if low >= 0:
            lower = max(lower, 0.0)  # negative values where training had none
        allowed[name] = (lower, high + width)
    return allowed


@dataclass
class _RangeProblems:
    allowed: dict[str, tuple[float, float]]
    customers: int = 0
    affected: int = 0
    per_column: dict[str, int] = field(default_factory=dict)
    examples: dict[str, float] = field(default_factory=dict)

    def add(self, frame: pd.DataFrame) -> None:
        self.customers += len(frame)
        if not self.allowed or frame.empty:
            return
        names = list(self.allowed)
        values = frame[names].to_numpy(dtype=float, na_value=np.nan)
        lower = np.array([self.allowed[n][0] for n in names])
        upper = np.array([self.allowed[n][1] for n in names])
        with np.errstate(invalid="ignore"):
            far = (values < lower) | (values > upper)
        self.affected += int(far.any(axis=1).sum())
        for i, name in enumerate(names):
            n = int(far[:, i].sum())
            if n:
                self.per_column[name] = self.per_column.get(name, 0) + n
                column = values[far[:, i], i]
                worst = float(column[np.argmax(np.abs(column))])
                if abs(worst) > abs(self.examples.get(name, 0.0)):
                    self.examples[name] = worst

    def detail(self) -> str:
        return "; ".join(
            f"{name}: {n:,} (allowed {self.allowed[name][0]:g} to {self.allowed[name][1]:g}, e.g. "
            f"{self.examples[name]:g})"
            for name, n in self.per_column.items()
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
    #: per feature, how many customers had a value far outside the training range (none: all within)
    out_of_range: dict[str, int] = field(default_factory=dict)


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
    max_out_of_range_share: float = DEFAULT_MAX_OUT_OF_RANGE_SHARE,
    run_kind: str = "live",
) -> ScoreResult:
    """Validate, apply the model in chunks, and publish the segments atomically.

    Columns of ``customer_features`` the model was not trained on are left out of scoring and named through
    ``notice`` (stderr by default); a missing or retyped trained feature stops the run before anything is written.
    Values far outside the training range are counted and named through ``notice``; above
    ``max_out_of_range_share`` of the customers, :class:`OutOfRangeError` stops the run before anything is written
    (see the module docstring).
    """
    if run_kind not in RUN_KINDS:
        raise ValueError(f"run_kind must be one of {RUN_KINDS}, got {run_kind!r}")
    if wh.kind == "spark":
        from insiders.spark_scoring import score_on_spark

        return score_on_spark(wh, loaded, schema, now, notice, max_out_of_range_share, run_kind)
    started = dt.datetime.now()
    manifest = loaded.manifest
    features: list[str] = list(manifest["features"])
    new_columns = check_schema(wh.columns(schema, FEATURES_TABLE), manifest)
    if new_columns:
        notice(new_columns_notice(new_columns, manifest))
    sql = _features_sql(schema, features)

    allowed = allowed_ranges(manifest, features)
    if allowed is None:
        notice(
            f"notice: model {manifest.get('model_version')} records no training ranges of its features "
            "(trained before they were recorded): the range check is skipped; retrain to have it"
        )

    # Pass 1: every value must be usable before anything is written.
    problems = _ValueProblems()
    ranges = _RangeProblems(allowed or {})
    for frame in wh.iter_frames(sql, chunk_rows):
        problems.add(frame, features)
        ranges.add(frame)
    run_id, scored_at, version = passed_checks(problems, ranges, max_out_of_range_share, manifest, notice, now)
    counts: dict[str, int] = {}
    scored = 0
    target = f"{schema}.{SEGMENTS_TABLE}"
    arrow_schema = tables.CUSTOMER_SEGMENTS.arrow_schema()
    with wh.transaction():
        if not wh.advisory_lock(SCORE_LOCK_KEY):
            raise InsidersError("another scoring run is writing customer_segments; try again when it ends")
        # The value predictions' table too, empty until a value model is applied: the marts left-join it.
        for contract in (tables.CUSTOMER_SEGMENTS, tables.CUSTOMER_SEGMENT_HISTORY, tables.CUSTOMER_VALUE):
            wh.execute(contract.ddl(schema))
        # Histories written before run_kind existed lack it (their rows are live runs).
        for column in tables.CUSTOMER_SEGMENT_HISTORY.added_columns():
            wh.execute(f"alter table {schema}.{HISTORY_TABLE} add column if not exists {column.name} {column.sql}")
        # Inside the transaction: readers keep seeing the previous rows until the commit.
        wh.execute(f"delete from {target}")
        # Pass 2: score and write chunk by chunk.
        for frame in wh.iter_frames(sql, chunk_rows):
            out = loaded.model.predict(frame)
            out = out.assign(model_version=version, run_id=run_id, scored_at=scored_at)
            table = pa.Table.from_pandas(out[list(SEGMENT_COLUMNS)], preserve_index=False).cast(arrow_schema)
            wh.append_arrow(target, table)
            for name, n in out["segment_name"].value_counts().items():
                counts[str(name)] = counts.get(str(name), 0) + int(n)
            scored += len(out)
            if progress is not None:
                progress(scored, problems.customers)
        wh.execute(
            f"insert into {schema}.{HISTORY_TABLE} ({', '.join(SEGMENT_COLUMNS)}, run_kind) "
            f"select {', '.join(SEGMENT_COLUMNS)}, %s from {target}",
            [run_kind],
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
        out_of_range=dict(ranges.per_column),
    )


def passed_checks(
    problems: _ValueProblems,
    ranges: _RangeProblems,
    max_out_of_range_share: float,
    manifest: dict[str, Any],
    notice: Callable[[str], None],
    now: dt.datetime | None,
) -> tuple[str, dt.datetime, str]:
    """The end of pass 1, on any warehouse: refuse unusable, missing or out-of-range features; then the new run's
    id, scoring time (UTC, whole seconds) and model version."""
    problems.raise_if_any()
    if problems.customers == 0:
        raise FeatureValidationError(f"{FEATURES_TABLE} is empty: nothing to score")
    check_out_of_range(ranges, max_out_of_range_share, manifest, notice)
    scored_at = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None, microsecond=0)
    return str(uuid.uuid4()), scored_at, str(manifest["model_version"])


def check_out_of_range(
    ranges: _RangeProblems, max_share: float, manifest: dict[str, Any], notice: Callable[[str], None]
) -> None:
    """Name the far-outside values in a notice, and refuse the run when their share is above ``max_share``."""
    if not ranges.affected:
        return
    share = ranges.affected / ranges.customers
    summary = (
        f"{ranges.affected:,} of {ranges.customers:,} customers ({share:.2%}) have feature values far outside the "
        f"range model {manifest.get('model_version')} was trained on ({ranges.detail()})"
    )
    if share > max_share:
        raise OutOfRangeError(
            f"{summary}; more than --max-out-of-range-share {max_share:g}: nothing was scored. Check the "
            "features (a unit, a sign or a loading error?) or retrain on data that has such values"
        )
    notice(f"notice: {summary}; within --max-out-of-range-share {max_share:g}, scored anyway")
