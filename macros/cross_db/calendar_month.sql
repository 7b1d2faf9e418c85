{#-
    The first day of the calendar month of a day or timestamp, typed as a date (Postgres's date_trunc answers a
    timestamp, DuckDB's a date or timestamp depending on the input).
-#}
{% macro calendar_month(day_expression) -%}
    {{ return(adapter.dispatch('calendar_month', 'insiders')(day_expression)) }}
{%- endmacro %}

{% macro default__calendar_month(day_expression) -%}
    cast({{ dbt.date_trunc('month', day_expression) }} as date)
{%- endmacro %}
