"""Reading the published marts: where they are, and the queries behind the HTML report and ``insiders answers``.

Every figure comes from the marts of the latest scoring run (insiders_summary, segment_profiles, dim_segments,
dim_customers, segment_monthly_revenue, segment_transitions, insiders_changes, insiders). Exact decimals
(PostgreSQL numeric, Spark decimal) arrive as floats, so DuckDB, PostgreSQL and Spark give the same figures, and no
result depends on the order the warehouse returns rows in. The queries are written once for the three
warehouses: a cast names its type through :meth:`Warehouse.sql_type` (Spark has no ``double precision``).
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from insiders.errors import InsidersError
from insiders.formatting import is_missing
from insiders.warehouse import Warehouse


def marts_schema(wh: Warehouse) -> str:
    """The schema of the marts: ``<target schema>_marts`` (dbt's naming for the ``marts`` custom schema), or the
    target schema itself when the marts were built there."""
    base = wh.target.schema
    for schema in (f"{base}_marts", base):
        if wh.relation_exists(schema, "insiders_summary"):
            return schema
    raise InsidersError(
        f"the marts (insiders_summary, …) are not in schema {base}_marts or {base} of {wh.target.describe()}; "
        "run `insiders run` (or `dbt build --selector segments` after `insiders score`) first"
    )


def read_frame(wh: Warehouse, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
    """A query's result with exact decimals (PostgreSQL numeric) turned into floats."""
    frame = wh.query_df(sql, params)
    for col in frame.columns:
        if frame[col].dtype == object and frame[col].map(lambda v: isinstance(v, decimal.Decimal)).any():
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    return frame


def latest_summary(wh: Warehouse, schema: str) -> dict[str, Any]:
    """The one row of insiders_summary (the latest scoring run) as a dict; {} when it is empty."""
    rows = read_frame(wh, f"select * from {schema}.insiders_summary")
    return rows.iloc[0].to_dict() if len(rows) else {}


def segment_profiles(wh: Warehouse, schema: str) -> pd.DataFrame:
    """segment_profiles, one row per segment in rank order (Insiders first)."""
    return read_frame(wh, f"select * from {schema}.segment_profiles order by segment_rank")


def first_insider_ids(wh: Warehouse, schema: str, limit: int) -> list[int]:
    """The first ``limit`` Insiders by customer id (the whole list is the ``insiders`` mart)."""
    rows = wh.query(f"select customer_id from {schema}.insiders order by customer_id limit {int(limit)}")
    return [int(r[0]) for r in rows]


def everyone_means(wh: Warehouse, schema: str) -> dict[str, Any]:
    """Count and mean features of all segmented customers (the yardstick the Insiders are compared with).

    One ``mean_<feature>`` per ``mean_`` column of segment_profiles whose feature is a column of dim_customers, so a
    feature added to customer_features is compared too.
    """
    customer_columns = wh.columns(schema, "dim_customers")
    features = [
        c[len("mean_") :]
        for c in wh.columns(schema, "segment_profiles")
        if c.startswith("mean_") and c[len("mean_") :] in customer_columns
    ]
    number = wh.sql_type("double precision")
    means = "".join(f", avg(cast({f} as {number})) as mean_{f}" for f in features)
    return (
        read_frame(
            wh, f"select count(*) as customers{means} from {schema}.dim_customers where segment_rank is not null"
        )
        .iloc[0]
        .to_dict()
    )


def insider_profile(profiles: pd.DataFrame) -> dict[str, Any]:
    """The segment_profiles row of the Insiders segment ({} when there is none)."""
    rows = profiles[profiles["is_insider"].astype(bool)] if "is_insider" in profiles else profiles.iloc[0:0]
    return rows.iloc[0].to_dict() if len(rows) else {}


@dataclass
class ReportFigures:
    """What the HTML report presents, read from the marts of ``schema``."""

    schema: str
    #: insiders_summary's row ({} before the first scoring run)
    summary: dict[str, Any]
    #: :func:`everyone_means`
    everyone: dict[str, Any]
    #: segment_profiles in rank order
    profiles: pd.DataFrame
    #: dim_segments' description of each segment, by rank
    descriptions: dict[int, str]
    #: segment_monthly_revenue
    monthly: pd.DataFrame
    #: per scoring run (oldest first): its number, id, model, time, Insiders after it, customers who entered and left
    runs: pd.DataFrame
    #: insiders_changes of the latest run, by change and customer id
    latest_changes: pd.DataFrame
    #: the first Insiders by customer id
    first_insiders: list[int]


def read_report_figures(wh: Warehouse, schema: str, first_insiders: int) -> ReportFigures:
    """The figures of the HTML report, with the first ``first_insiders`` Insider ids."""
    summary = latest_summary(wh, schema)
    everyone = everyone_means(wh, schema)
    profiles = segment_profiles(wh, schema)
    segments = read_frame(
        wh, f"select segment_rank, segment_description from {schema}.dim_segments order by segment_rank"
    )
    descriptions = {
        int(r): str(d) for r, d in zip(segments["segment_rank"], segments["segment_description"], strict=True)
    }
    monthly = read_frame(
        wh,
        "select revenue_month, segment_rank, segment_name, gross_revenue, net_revenue, customers"
        f" from {schema}.segment_monthly_revenue order by revenue_month, segment_rank, segment_name",
    )
    runs = read_frame(
        wh,
        "select t.run_number, t.run_id, t.model_version, t.scored_at,"
        " sum(case when t.to_rank = 1 then t.customers else 0 end) as insiders_after,"
        " sum(t.customers) as transitions"
        f" from {schema}.segment_transitions t"
        " group by t.run_number, t.run_id, t.model_version, t.scored_at order by t.run_number",
    )
    changes = read_frame(
        wh,
        "select run_id, membership_change, count(*) as customers"
        f" from {schema}.insiders_changes group by run_id, membership_change",
    )
    counts = changes.pivot_table(index="run_id", columns="membership_change", values="customers", aggfunc="sum")
    for col in ("entered", "left"):
        runs[col] = runs["run_id"].map(counts.get(col, {})).fillna(0).astype(int)
    latest_changes = pd.DataFrame(
        columns=["customer_id", "membership_change", "previous_segment_name", "new_segment_name", "reason"]
    )
    if summary.get("run_id") is not None and not is_missing(summary.get("run_id")):
        latest_changes = read_frame(
            wh,
            "select customer_id, membership_change, previous_segment_name, new_segment_name, reason"
            f" from {schema}.insiders_changes where run_id = %s order by membership_change, customer_id",
            [str(summary["run_id"])],
        )
    return ReportFigures(
        schema=schema,
        summary=summary,
        everyone=everyone,
        profiles=profiles,
        descriptions=descriptions,
        monthly=monthly,
        runs=runs,
        latest_changes=latest_changes,
        first_insiders=first_insider_ids(wh, schema, first_insiders),
    )
