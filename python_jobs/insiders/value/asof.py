"""The data as of an earlier day, built aside: what the backtest and the level factor fit on and compare with.

The project's own dbt models are built in a scratch schema (``<schema>_<suffix>``, dropped afterwards) with
``as_of_date`` set to the day, so nothing after that day reaches a fit: :func:`build_sales` builds the cleaned
sales (the same valid purchase lines as everywhere), :func:`build_as_of` rebuilds ``customer_value_inputs`` and
``customer_features`` as of a day, and :func:`read_outcome` says per customer what they bought in a window after
it, from those cleaned lines.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

import pandas as pd

from insiders.dbt_session import DbtSession
from insiders.errors import InsidersError
from insiders.warehouse import Target, Warehouse, connect, target_in_schema, validate_identifier


@contextlib.contextmanager
def scratch_target(target: Target, suffix: str) -> Iterator[Target]:
    """Point this process (and dbt in it) at ``<schema>_<suffix>``; drop it afterwards."""
    schema = validate_identifier(f"{target.schema}_{suffix}", "scratch schema")
    with target_in_schema(target, schema) as scratch:
        try:
            yield scratch
        finally:
            with connect(scratch) as wh:
                wh.execute(f"drop schema if exists {schema} cascade")


def build_sales(scratch: Target) -> dt.date:
    """Build the seeds and the models up to ``int_sales__cleaned`` in the scratch schema; the last valid day."""
    DbtSession(scratch, None).run(
        ["build", "--select", "+int_sales__cleaned", "--resource-type", "seed", "--resource-type", "model"]
    )
    with connect(scratch) as wh:
        last = wh.query(f"select max(invoice_day) from {scratch.schema}.int_sales__cleaned")[0][0]
    if last is None:
        raise InsidersError("no valid sales: load data first")
    return pd.Timestamp(last).date()


def build_as_of(scratch: Target, day: dt.date) -> None:
    """Rebuild ``customer_features`` and ``customer_value_inputs`` (and their parents) as of ``day``."""
    selection = "+customer_features +customer_value_inputs"
    DbtSession(scratch, f"{{as_of_date: '{day}'}}").run(["run", "--select", selection])


def read_outcome(wh: Warehouse, schema: str, start: dt.date, cutoff: dt.date, end: dt.date) -> pd.DataFrame:
    """Per customer with a purchase in (start, end]: gross revenue and purchases in (cutoff, end]
    (``actual_revenue``, ``actual_purchases``) and revenue in (start, cutoff] (``previous_revenue``), as floats.

    A purchase is a day with purchase lines, as in customer_value_inputs.
    """
    sql = f"""
        with purchase_days as (
            select customer_id, invoice_day, sum(line_revenue) as spend
            from {schema}.int_sales__cleaned
            where
                not is_anonymous
                and not is_return
                and invoice_day > cast(%s as date)
                and invoice_day <= cast(%s as date)
            group by customer_id, invoice_day
        )
        select
            customer_id,
            sum(case when invoice_day > cast(%s as date) then spend else 0 end) as actual_revenue,
            sum(case when invoice_day > cast(%s as date) then 1 else 0 end) as actual_purchases,
            sum(case when invoice_day <= cast(%s as date) then spend else 0 end) as previous_revenue
        from purchase_days
        group by customer_id
        order by customer_id
    """
    out = wh.query_df(sql, [str(d) for d in (start, end, cutoff, cutoff, cutoff)])
    out["customer_id"] = out["customer_id"].astype("int64")
    for column in ("actual_revenue", "actual_purchases", "previous_revenue"):
        out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
    return out


def with_outcome(inputs: pd.DataFrame, outcome: pd.DataFrame) -> pd.DataFrame:
    """The inputs with each customer's outcome (0 for a customer who bought nothing in the window)."""
    frame = inputs.merge(outcome, on="customer_id", how="left", validate="one_to_one")
    for column in ("actual_revenue", "previous_revenue", "actual_purchases"):
        frame[column] = frame[column].fillna(0.0)
    return frame
