{#-
    Settings of int_sales__cleaned, a copy of every valid line that the project can always rebuild from the raw
    tables (as int_sales__cleaned's header says), returned as config values like incremental_materialization:

    - unlogged_table(): true on PostgreSQL: the table skips the write-ahead log, which halved its build at x10
      (27 s logged, 16 s unlogged). After a crash of the server PostgreSQL empties an unlogged table, and
      replicas do not hold it; the next run then adds every load again and gives the same rows. False elsewhere
      (the setting is dbt-postgres's).
    - unique_key_indexes(columns): on PostgreSQL a unique index on the columns, built with the table (dbt-postgres
      builds `indexes` when it creates or fully rebuilds a table), so the database refuses a repeated key and
      the unique_combination test reads nothing (macro declared_key). None elsewhere: DuckDB would hold such an
      index in memory (54 M keys at x100), Spark's Parquet tables have none; the test counts there.
-#}
{% macro unlogged_table() -%}
    {{ return(adapter.dispatch('unlogged_table', 'insiders')()) }}
{%- endmacro %}

{% macro default__unlogged_table() -%}
    {{ return(false) }}
{%- endmacro %}

{% macro postgres__unlogged_table() -%}
    {{ return(true) }}
{%- endmacro %}

{% macro unique_key_indexes(columns) -%}
    {{ return(adapter.dispatch('unique_key_indexes', 'insiders')(columns)) }}
{%- endmacro %}

{% macro default__unique_key_indexes(columns) -%}
    {{ return([]) }}
{%- endmacro %}

{% macro postgres__unique_key_indexes(columns) -%}
    {{ return([{'columns': columns, 'unique': true}]) }}
{%- endmacro %}
