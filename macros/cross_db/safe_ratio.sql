{#-
    numerator / denominator as double precision, null when the denominator is 0 or null.

    Postgres divides two integers with integer division (7 / 2 = 3) while DuckDB returns a double (3.5):
    casting both sides first gives the same answer everywhere.
-#}
{% macro safe_ratio(numerator, denominator) -%}
    {{ return(adapter.dispatch('safe_ratio', 'insiders')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__safe_ratio(numerator, denominator) -%}
    (cast({{ numerator }} as double precision) / nullif(cast({{ denominator }} as double precision), 0))
{%- endmacro %}

{% macro spark__safe_ratio(numerator, denominator) -%}
    (cast({{ numerator }} as double) / nullif(cast({{ denominator }} as double), 0))
{%- endmacro %}
