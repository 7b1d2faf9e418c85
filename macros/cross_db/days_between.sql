{#-
    Whole calendar days from start_day to end_day (end minus start), as an integer on every adapter.

    dbt.datediff already speaks each dialect; the cast is the part that differs: DuckDB answers a bigint and
    Postgres an integer, and the feature contract wants one type.
-#}
{% macro days_between(start_day, end_day) -%}
    {{ return(adapter.dispatch('days_between', 'insiders')(start_day, end_day)) }}
{%- endmacro %}

{% macro default__days_between(start_day, end_day) -%}
    cast({{ dbt.datediff(start_day, end_day, 'day') }} as integer)
{%- endmacro %}
