{#-
    The materialization of the models that are kept up to date incrementally (int_sales__cleaned,
    int_customers__aggregated, the quality models): incremental on DuckDB and PostgreSQL; a table rebuilt in
    full on Spark. Their incremental runs delete rows (the pre-hook delete_rows_of_other_cleaning_rules, the
    delete+insert strategy), which Spark's Parquet tables cannot do (only Delta, Iceberg or Hudi tables can,
    with jars this project does not download). A full rebuild gives the same rows, and is what Spark is for.
-#}
{% macro incremental_materialization() -%}
    {{ return(adapter.dispatch('incremental_materialization', 'insiders')()) }}
{%- endmacro %}

{% macro default__incremental_materialization() -%}
    {{ return('incremental') }}
{%- endmacro %}

{% macro spark__incremental_materialization() -%}
    {{ return('table') }}
{%- endmacro %}
