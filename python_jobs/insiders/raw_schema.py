"""DDL of the raw tables that ``insiders load`` writes and dbt reads as sources.

The same statements run on DuckDB and PostgreSQL; both accept these types.
"""

from __future__ import annotations

# Column order matters: loaders write frames in exactly this order.
TRANSACTION_COLUMNS: tuple[str, ...] = (
    "load_id",
    "line_number",
    "invoice_no",
    "stock_code",
    "description",
    "quantity",
    "invoice_date",
    "unit_price",
    "customer_id",
    "country",
    "loaded_at",
)

REJECTED_COLUMNS: tuple[str, ...] = ("load_id", "line_number", "reason", "raw_line", "loaded_at")

LOAD_LOG_COLUMNS: tuple[str, ...] = (
    "load_id",
    "file_name",
    "file_sha256",
    "layout",
    "lines_read",
    "lines_loaded",
    "lines_rejected",
    "loaded_at",
    "lines_skipped",
)


# Columns added to an existing table since it was first created: (table, column, definition).
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (("load_log", "lines_skipped", "bigint default 0"),)


def ddl(schema: str) -> list[str]:
    """Statements that create the raw schema and its tables if they do not exist."""
    return [
        f"create schema if not exists {schema}",
        f"""
        create table if not exists {schema}.load_log (
            load_id varchar(36) not null primary key,
            file_name varchar not null,
            file_sha256 varchar(64) not null unique,
            layout varchar not null,
            lines_read bigint not null,
            lines_loaded bigint not null,
            lines_rejected bigint not null,
            loaded_at timestamp not null,
            lines_skipped bigint not null default 0
        )""",
        f"""
        create table if not exists {schema}.transactions (
            load_id varchar(36) not null,
            line_number bigint not null,
            invoice_no varchar not null,
            stock_code varchar not null,
            description varchar,
            quantity integer not null,
            invoice_date timestamp not null,
            unit_price numeric(18, 4) not null,
            customer_id bigint,
            country varchar not null,
            loaded_at timestamp not null
        )""",
        f"""
        create table if not exists {schema}.rejected_lines (
            load_id varchar(36) not null,
            line_number bigint not null,
            reason varchar not null,
            raw_line varchar,
            loaded_at timestamp not null
        )""",
    ]
