{#-
    The values of a group joined into one text with a separator, in a given order (null for no row):
    string_agg(… order by …) on DuckDB and PostgreSQL, listagg(…) within group (order by …) on Spark.
-#}
{% macro ordered_string_agg(expression, separator, order_by) -%}
    {{ return(adapter.dispatch('ordered_string_agg', 'insiders')(expression, separator, order_by)) }}
{%- endmacro %}

{% macro default__ordered_string_agg(expression, separator, order_by) -%}
    string_agg({{ expression }}, '{{ separator }}' order by {{ order_by }})
{%- endmacro %}

{% macro spark__ordered_string_agg(expression, separator, order_by) -%}
    listagg({{ expression }}, '{{ separator }}') within group (order by {{ order_by }})
{%- endmacro %}
