"""``insiders value score`` and the ``value`` step of ``insiders run``: apply the pinned value model.

The pinned model is loaded through :func:`insiders.registry.load_pinned` (manifest and artifact checked against
the pin's digests before anything is unpickled) and applied without refitting to ``customer_value_inputs``.
``customer_value`` is replaced in one transaction: readers see the previous predictions or the new ones, never a
partial table, and a failure leaves the previous table as it was.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from insiders import tables
from insiders.errors import InsidersError
from insiders.registry import LoadedModel
from insiders.value import HORIZON_ENV
from insiders.value.model import DEFAULT_HORIZON_DAYS, check_horizon
from insiders.value.training import read_inputs
from insiders.warehouse import Warehouse

VALUE_TABLE = tables.CUSTOMER_VALUE.name
VALUE_COLUMNS = tables.CUSTOMER_VALUE.column_names
# Serialises value runs on PostgreSQL (the segment scoring uses its own key).
VALUE_LOCK_KEY = 0x1A5D_E252


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
    frame, _ = read_inputs(wh, schema)
    predicted = loaded.model.predict(frame, horizon)
    as_of = pd.to_datetime(frame.sort_values("customer_id")["as_of_date"]).dt.date.to_numpy()
    run_id = run_id or str(uuid.uuid4())
    scored_at = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None, microsecond=0)
    version = str(loaded.manifest["model_version"])
    out = predicted.assign(
        as_of_date=as_of, horizon_days=int(horizon), model_version=version, run_id=run_id, scored_at=scored_at
    )
    table = pa.Table.from_pandas(out[list(VALUE_COLUMNS)], preserve_index=False).cast(
        tables.CUSTOMER_VALUE.arrow_schema()
    )
    target = f"{schema}.{VALUE_TABLE}"
    with wh.transaction():
        if not wh.advisory_lock(VALUE_LOCK_KEY):
            raise InsidersError("another value run is writing customer_value; try again when it ends")
        wh.execute(tables.CUSTOMER_VALUE.ddl(schema))
        wh.execute(f"delete from {target}")
        wh.append_arrow(target, table)
    return ValueScoreResult(
        run_id=run_id,
        model_version=version,
        customers=len(out),
        horizon_days=int(horizon),
        expected_revenue=float(out["expected_revenue"].sum()),
        seconds=time.perf_counter() - started,
    )


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
