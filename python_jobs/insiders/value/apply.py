"""``insiders value score`` and the ``value`` step of ``insiders run``: apply the pinned value model.

The pinned model is loaded through :func:`insiders.registry.load_pinned` (manifest and artifact checked against
the pin's digests before anything is unpickled) and applied without refitting to ``customer_value_inputs``.
``customer_value`` is replaced in one transaction: readers see the previous predictions or the new ones, never a
partial table, and a failure leaves the previous table as it was.

On Spark, which has no transactions, the same rows (:func:`value_rows`) are computed partition by partition on
the executors (``mapInPandas``: the inputs never pass through the driver) into a new table
``<schema>_versions.customer_value__v<tag>``, and the view ``<schema>.customer_value`` is then pointed at it in
one statement (:mod:`insiders.spark_tables`), as the segments are: a failure or a kill before that leaves the
previous predictions readable and whole.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from insiders import tables
from insiders.errors import InsidersError
from insiders.registry import LoadedModel
from insiders.value import HORIZON_ENV
from insiders.value.model import (
    DEFAULT_HORIZON_DAYS,
    FEATURES,
    INPUTS_TABLE,
    ValueInputError,
    ValueModel,
    check_horizon,
)
from insiders.value.training import read_inputs
from insiders.warehouse import Warehouse

VALUE_TABLE = tables.CUSTOMER_VALUE.name
VALUE_COLUMNS = tables.CUSTOMER_VALUE.column_names
# Serialises value runs on PostgreSQL (the segment scoring uses its own key).
VALUE_LOCK_KEY = 0x1A5D_E252
_SPARK_VALUE_SCHEMA = ", ".join(f"{c.name} {c.spark_sql}" for c in tables.CUSTOMER_VALUE.columns)


@dataclass(frozen=True)
class ValueScoreResult:
    run_id: str
    model_version: str
    customers: int
    horizon_days: int
    expected_revenue: float
    seconds: float


def score_value(
    wh: Warehouse,
    loaded: LoadedModel,
    schema: str,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    run_id: str | None = None,
    now: dt.datetime | None = None,
) -> ValueScoreResult:
    """Predict every customer of customer_value_inputs and replace customer_value atomically."""
    started = time.perf_counter()
    horizon = check_horizon(horizon_days)
    if horizon != int(horizon):
        raise InsidersError(f"the horizon must be a whole number of days, got {horizon_days!r}")
    run_id = run_id or str(uuid.uuid4())
    scored_at = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None, microsecond=0)
    version = str(loaded.manifest["model_version"])
    if wh.kind == "spark":
        customers, expected = _score_on_spark(wh, loaded.model, schema, int(horizon), version, run_id, scored_at)
    else:
        frame, _ = read_inputs(wh, schema)
        out = value_rows(loaded.model, frame, int(horizon), version, run_id, scored_at)
        table = pa.Table.from_pandas(out, preserve_index=False).cast(tables.CUSTOMER_VALUE.arrow_schema())
        target = f"{schema}.{VALUE_TABLE}"
        with wh.transaction():
            if not wh.advisory_lock(VALUE_LOCK_KEY):
                raise InsidersError("another value run is writing customer_value; try again when it ends")
            wh.execute(tables.CUSTOMER_VALUE.ddl(schema))
            wh.execute(f"delete from {target}")
            wh.append_arrow(target, table)
        customers, expected = len(out), float(out["expected_revenue"].sum())
    return ValueScoreResult(
        run_id=run_id,
        model_version=version,
        customers=customers,
        horizon_days=int(horizon),
        expected_revenue=expected,
        seconds=time.perf_counter() - started,
    )


def value_rows(
    model: ValueModel, frame: pd.DataFrame, horizon: int, version: str, run_id: str, scored_at: dt.datetime
) -> pd.DataFrame:
    """The ``customer_value`` rows of the customers of ``frame`` (customer_value_inputs' columns), by customer id:
    the model's predictions, each customer's reference day, and what says which run made them."""
    predicted = model.predict(frame, horizon)
    as_of = pd.to_datetime(frame.sort_values("customer_id")["as_of_date"]).dt.date.to_numpy()
    out = predicted.assign(
        as_of_date=as_of, horizon_days=horizon, model_version=version, run_id=run_id, scored_at=scored_at
    )
    return out[list(VALUE_COLUMNS)]


def _score_on_spark(
    wh: Warehouse, model: ValueModel, schema: str, horizon: int, version: str, run_id: str, scored_at: dt.datetime
) -> tuple[int, float]:
    """Predict on the executors into a new version of customer_value and point the view at it; return the
    customers valued and their expected revenue.

    Each partition is checked by :meth:`ValueModel.predict` as the whole table is on the other warehouses (a
    customer repeated across partitions is left to the model's contract test: customer_id is its primary key).
    """
    from insiders.spark_tables import commit_version, versions_schema, write_version

    if not wh.columns(schema, INPUTS_TABLE):
        raise InsidersError(
            f"the table {schema}.{INPUTS_TABLE} does not exist; run `dbt build --selector features` first"
        )
    numbers = ", ".join(f"cast({wh.ident(c)} as {wh.sql_type('double precision')}) as {wh.ident(c)}" for c in FEATURES)
    inputs = wh.conn.sql(f"select customer_id, as_of_date, {numbers} from {wh.ident(schema, INPUTS_TABLE)}")

    def apply(parts: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for part in parts:
            if len(part):
                yield value_rows(model, part, horizon, version, run_id, scored_at)

    try:
        table = write_version(wh, inputs.mapInPandas(apply, schema=_SPARK_VALUE_SCHEMA), schema, VALUE_TABLE)
    except Exception as exc:  # a refusal raised on an executor reaches the driver inside Spark's error
        refusal = re.search(r"ValueInputError: (.+)", str(exc))
        if refusal is None:
            raise
        raise ValueInputError(refusal.group(1).strip()) from None
    data = versions_schema(schema)
    customers, expected = wh.query(f"select count(*), sum(expected_revenue) from {wh.ident(data, table)}")[0]
    if not customers:
        wh.execute(f"drop table if exists {wh.ident(data, table)}")
        raise ValueInputError(f"{INPUTS_TABLE} is empty: load data and run `dbt build --selector features` first")
    commit_version(wh, schema, VALUE_TABLE, table)
    return int(customers), float(expected)


def run_horizon() -> int:
    """The horizon of the scheduled run: ``INSIDERS_VALUE_HORIZON_DAYS``, else 90 days."""
    from insiders import settings

    return int(check_horizon(settings.whole(HORIZON_ENV)))


def value_step_enabled() -> bool:
    """Whether ``insiders run`` has a value step: a value model is pinned (applying it needs numpy and scipy only,
    not the [value] group, which only fitting needs)."""
    from insiders.registry import VALUE, read_pin

    return read_pin(required=False, kind=VALUE) is not None


def run_value_step(target, run_id: str | None) -> str:
    """The ``value`` step of ``insiders run``: verify and apply the pinned value model (``run_id``: the scoring
    run's, so that segments and values of one run share it)."""
    from insiders.registry import VALUE, load_pinned, read_pin
    from insiders.warehouse import connect

    horizon = run_horizon()
    loaded = load_pinned(pin=read_pin(kind=VALUE), kind=VALUE)
    with connect(target) as wh:
        result = score_value(wh, loaded, target.schema, horizon_days=horizon, run_id=run_id)
    return (
        f"{result.customers:,} customers valued with value model {result.model_version}: expected revenue "
        f"{result.expected_revenue:,.0f} over {result.horizon_days} days"
    )
