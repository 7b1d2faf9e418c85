{#-
    The calendar day of a timestamp, typed as a date. The spec does all day arithmetic on calendar days, so
    timestamps are truncated before any difference is taken.
-#}
{% macro calendar_day(timestamp_expression) -%}
    {{ return(adapter.dispatch('calendar_day', 'insiders')(timestamp_expression)) }}
{%- endmacro %}

{% macro default__calendar_day(timestamp_expression) -%}
    cast({{ dbt.date_trunc('day', timestamp_expression) }} as date)
{%- endmacro %}
