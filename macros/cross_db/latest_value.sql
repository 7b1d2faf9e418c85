{#-
    Aggregate: the value of `column` on the group's latest line, in the order of latest_line_first (timestamp,
    then invoice, load and line, all descending), inside a GROUP BY. It does in the aggregate's own pass what a
    row_number() window over latest_line_first does in a second one: on PostgreSQL that window sorted every line
    again (4 s of the 13 s int_customers__aggregated took at x10) and made the lines a materialised CTE.
    `where` restricts the lines it looks at (the purchases, say), as a FILTER clause would. The order columns
    are never null (tested on the source), so no engine's NULL ordering comes into it.
-#}
{% macro latest_value(column, where=none) -%}
    {{ return(adapter.dispatch('latest_value', 'insiders')(column, where)) }}
{%- endmacro %}

{#- DuckDB: arg_max over the tuple of the order columns. -#}
{% macro default__latest_value(column, where) -%}
    arg_max({{ column }}, (invoiced_at, invoice_no, load_id, line_number))
    {%- if where %} filter (where {{ where }}){% endif %}
{%- endmacro %}

{% macro spark__latest_value(column, where) -%}
    max_by({{ column }}, struct(invoiced_at, invoice_no, load_id, line_number))
    {%- if where %} filter (where {{ where }}){% endif %}
{%- endmacro %}

{#- PostgreSQL has no arg_max: the first element of the values ordered latest first. -#}
{% macro postgres__latest_value(column, where) -%}
    (array_agg({{ column }} order by {{ latest_line_first() }})
    {%- if where %} filter (where {{ where }}){% endif %})[1]
{%- endmacro %}
