{#-
    The mean of a decimal expression over the rows where `condition` holds, as exact as a double allows (null
    when no row does). DuckDB and PostgreSQL average decimals exactly. Spark's avg of a decimal(18, 4) is a
    decimal(22, 8): rounded to 8 decimals, which moves a mean of a few pounds in its 9th significant digit, so
    Spark divides the exact decimal sum by the count instead.
-#}
{% macro decimal_mean(expression, condition) -%}
    {{ return(adapter.dispatch('decimal_mean', 'insiders')(expression, condition)) }}
{%- endmacro %}

{% macro default__decimal_mean(expression, condition) -%}
    avg({{ expression }}) filter (where {{ condition }})
{%- endmacro %}

{% macro spark__decimal_mean(expression, condition) -%}
    (
        cast(sum({{ expression }}) filter (where {{ condition }}) as double)
        / count({{ expression }}) filter (where {{ condition }})
    )
{%- endmacro %}
