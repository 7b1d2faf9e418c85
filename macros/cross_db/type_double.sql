{#-
    The 8-byte floating-point type in casts: double precision on DuckDB and PostgreSQL, double on Spark (whose
    parser does not know the two-word name).
-#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'insiders')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double precision
{%- endmacro %}

{% macro spark__type_double() -%}
    double
{%- endmacro %}
