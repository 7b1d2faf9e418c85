{#-
    A select of the latest line of each group of `lines` (a CTE or relation with the columns of
    latest_line_first), among the lines `where` keeps: the `group_by` columns and the latest line's `columns`,
    one row per group that has such a line. The groups must lie within one load (`group_by` names load_id):
    a line number is unique within its load, which is what lets the DuckDB and Spark version find the line
    again by its number.

    Each engine gets its fastest form. DuckDB and Spark: one hash aggregate finds the number of each group's
    latest line (latest_value: arg_max / max_by) and a join reads its columns back; no line is sorted. A
    row_number() window over every line sorted them all, and at x100 (54 M lines) under DuckDB's 3 GB
    memory_limit that sort spilled: 403 s of int_products__aggregated_by_load's first build; at x10 the
    aggregate builds that model in 2.6-2.8 s against 8.2-16.7 s. PostgreSQL: the window, which sorts once, where its
    ordered array_agg would sort each group again (25-29 s against 31-33 s for that model at x10).
-#}
{% macro latest_line_of_each(lines, group_by, columns, where) -%}
    {%- if 'load_id' not in group_by -%}
        {{ exceptions.raise_compiler_error(
            "latest_line_of_each: group_by must include load_id (line numbers are unique within a load only)"
        ) }}
    {%- endif -%}
    {{ return(adapter.dispatch('latest_line_of_each', 'insiders')(lines, group_by, columns, where)) }}
{%- endmacro %}

{% macro default__latest_line_of_each(lines, group_by, columns, where) -%}
    select
    {%- for column in group_by + columns %}
        candidate.{{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
    from {{ lines }} as candidate
    inner join (
        select
    {%- for column in group_by %}
        {{ column }},
    {%- endfor %}
    {{ latest_value('line_number', where=where) }} as latest_line_number
        from {{ lines }}
        group by {{ group_by | join(', ') }}
    ) as latest
        on
    {%- for column in group_by %}
            candidate.{{ column }} = latest.{{ column }} and
    {%- endfor %}
            candidate.line_number = latest.latest_line_number
{%- endmacro %}

{% macro postgres__latest_line_of_each(lines, group_by, columns, where) -%}
    select
    {%- for column in group_by + columns %}
        ranked.{{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
    from (
        select
    {%- for column in group_by + columns %}
        {{ column }},
    {%- endfor %}
            row_number() over (
                partition by {{ group_by | join(', ') }}
                order by {{ latest_line_first() }}
            ) as recency_rank
        from {{ lines }}
        where {{ where }}
    ) as ranked
    where ranked.recency_rank = 1
{%- endmacro %}
