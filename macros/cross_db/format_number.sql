{#-
    A number as readable text with thousands separators and a fixed number of decimals, for sentences that
    people read (segment descriptions): 6757.9 -> '6,758' with 0 decimals, '6,757.9' with 1.

    Each warehouse formats numbers with its own function (Postgres: to_char with a picture, DuckDB: format
    with a fmt specification); both round a double the same way (an exact half to even: 156.5 -> '156') and
    give the same text, which the unit test of dim_segments checks on both.
-#}
{% macro format_number(number_expression, decimals=0) -%}
    {{ return(adapter.dispatch('format_number', 'insiders')(number_expression, decimals)) }}
{%- endmacro %}

{% macro default__format_number(number_expression, decimals=0) -%}
    {%- set picture = 'FM999,999,999,999,990' ~ ('.' ~ '0' * decimals if decimals > 0 else '') -%}
    to_char(cast({{ number_expression }} as double precision), '{{ picture }}')
{%- endmacro %}

{% macro duckdb__format_number(number_expression, decimals=0) -%}
    format('{:,.{{ decimals }}f}', cast({{ number_expression }} as double precision))
{%- endmacro %}

{#- Spark's format_number rounds a half to even too (156.5 -> '156'), with the same separators. -#}
{% macro spark__format_number(number_expression, decimals=0) -%}
    format_number(cast({{ number_expression }} as double), {{ decimals }})
{%- endmacro %}
