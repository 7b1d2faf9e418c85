{#-
    The type of text columns in casts. DuckDB and PostgreSQL take an unbounded varchar; Spark has no varchar
    without a length (and would check one), its text type is string.
-#}
{% macro type_text() -%}
    {{ return(adapter.dispatch('type_text', 'insiders')()) }}
{%- endmacro %}

{% macro default__type_text() -%}
    varchar
{%- endmacro %}

{% macro spark__type_text() -%}
    string
{%- endmacro %}
