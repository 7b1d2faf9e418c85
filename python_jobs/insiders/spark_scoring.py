"""``insiders score`` on Spark: the pinned model applied where the data is, partition by partition.

The same checks as on the other warehouses (:mod:`insiders.scoring`), the same model and the same output; only
the mechanics differ:

- the model, already verified by its digests when it was loaded (:func:`insiders.registry.load_pinned`), is
  broadcast to the executors once, and each partition of ``customer_features`` is checked and scored there
  (``mapInPandas``): neither the features nor the segments pass through the driver;
- Spark has no transaction to replace ``customer_segments`` in, so the run writes its segments into a new table
  ``<schema>_versions.customer_segments__v<tag>`` and then points the view ``<schema>.customer_segments`` at
  it in one statement (:mod:`insiders.spark_tables`): readers see the previous run or the new one, never a
  partial table, and a failure or a kill before that statement leaves the previous segments published;
- the run's rows are added to ``customer_segment_history`` as a partition (``run_id``) written aside and added
  in one statement, just before the view is switched; a kill between the two (milliseconds) leaves the history
  one run ahead of the current segments, which the next scoring run brings level.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator

import pandas as pd

from insiders import tables
from insiders.registry import LoadedModel
from insiders.scoring import (
    FEATURES_TABLE,
    HISTORY_TABLE,
    SEGMENT_COLUMNS,
    SEGMENTS_TABLE,
    ScoreResult,
    _RangeProblems,
    _ValueProblems,
    allowed_ranges,
    check_schema,
    new_columns_notice,
    passed_checks,
)
from insiders.spark_tables import (
    add_partition,
    commit_version,
    versions_schema,
    write_partition,
    write_version,
)
from insiders.warehouse import Warehouse

_SEGMENT_SCHEMA = ", ".join(f"{c.name} {c.spark_sql}" for c in tables.CUSTOMER_SEGMENTS.columns)


def ensure_segmentation_tables(wh: Warehouse, schema: str) -> None:
    """The history table (partitioned by run) and an empty ``customer_value`` (the marts left-join it) until the
    value step first points a view of that name at its predictions."""
    wh.execute(f"create database if not exists {wh.ident(schema)}")
    wh.execute(f"create database if not exists {wh.ident(versions_schema(schema))}")
    wh.execute(tables.CUSTOMER_SEGMENT_HISTORY.spark_ddl(schema, partitioned_by=("run_id",)))
    if not wh.relation_exists(schema, tables.CUSTOMER_VALUE.name):
        wh.execute(tables.CUSTOMER_VALUE.spark_ddl(schema))


def _features_sql(wh: Warehouse, schema: str, features: list[str]) -> str:
    cols = ", ".join(f"cast({wh.ident(f)} as double) as {wh.ident(f)}" for f in features)
    return f"select customer_id, {cols} from {wh.ident(schema, FEATURES_TABLE)}"


def score_on_spark(
    wh: Warehouse,
    loaded: LoadedModel,
    schema: str,
    now: dt.datetime | None,
    notice: Callable[[str], None],
    max_out_of_range_share: float,
    run_kind: str,
) -> ScoreResult:
    """Validate, apply the model on the executors, and publish the segments by a view switch."""
    started = dt.datetime.now()
    manifest = loaded.manifest
    features: list[str] = list(manifest["features"])
    new_columns = check_schema(wh.columns(schema, FEATURES_TABLE), manifest)
    if new_columns:
        notice(new_columns_notice(new_columns, manifest))
    allowed = allowed_ranges(manifest, features)
    if allowed is None:
        notice(
            f"notice: model {manifest.get('model_version')} records no training ranges of its features "
            "(trained before they were recorded): the range check is skipped; retrain to have it"
        )
    spark = wh.conn
    frame = spark.sql(_features_sql(wh, schema, features))

    # Pass 1, on the executors: every value must be usable before anything is written.
    ranges_allowed = allowed or {}

    def check(parts: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        values, ranges = _ValueProblems(), _RangeProblems(ranges_allowed)
        for part in parts:
            values.add(part, features)
            ranges.add(part)
        yield pd.DataFrame({"stats": [json.dumps([values.__dict__, ranges.__dict__])]})

    problems, ranges = _ValueProblems(), _RangeProblems(ranges_allowed)
    for (stats,) in frame.mapInPandas(check, schema="stats string").collect():
        value_part, range_part = json.loads(stats)
        problems.customers += value_part["customers"]
        problems.affected += value_part["affected"]
        for name, n in value_part["per_column"].items():
            problems.per_column[name] = problems.per_column.get(name, 0) + n
        ranges.customers += range_part["customers"]
        ranges.affected += range_part["affected"]
        for name, n in range_part["per_column"].items():
            ranges.per_column[name] = ranges.per_column.get(name, 0) + n
        for name, worst in range_part["examples"].items():
            if abs(worst) > abs(ranges.examples.get(name, 0.0)):
                ranges.examples[name] = worst
    run_id, scored_at, version = passed_checks(problems, ranges, max_out_of_range_share, manifest, notice, now)

    # Pass 2: score each partition with the broadcast model, into a new version of the segments.
    model = spark.sparkContext.broadcast(loaded.model)

    def apply(parts: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        applied = model.value
        for part in parts:
            out = applied.predict(part).assign(model_version=version, run_id=run_id, scored_at=scored_at)
            yield out[list(SEGMENT_COLUMNS)]

    ensure_segmentation_tables(wh, schema)
    try:
        table = write_version(wh, frame.mapInPandas(apply, schema=_SEGMENT_SCHEMA), schema, SEGMENTS_TABLE)
    finally:
        model.destroy()
    written = spark.table(wh.ident(versions_schema(schema), table))
    history = f"{schema}.{HISTORY_TABLE}"
    write_partition(wh, written.selectExpr("*", f"'{run_kind}' as run_kind"), history, "run_id", run_id)
    # The commit: the history's partition, then the view (each one metastore operation).
    add_partition(wh, history, "run_id", run_id)
    commit_version(wh, schema, SEGMENTS_TABLE, table)
    counts = {str(name): int(n) for name, n in written.groupBy("segment_name").count().collect()}
    insiders = int(written.where("is_insider").count())
    return ScoreResult(
        run_id=run_id,
        model_version=version,
        scored_at=scored_at,
        customers=sum(counts.values()),
        insiders=insiders,
        segments=counts,
        seconds=(dt.datetime.now() - started).total_seconds(),
        new_columns=tuple(new_columns),
        out_of_range=dict(ranges.per_column),
    )
