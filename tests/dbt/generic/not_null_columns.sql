{#-
    None of the given columns is null in any row: dbt's not_null for several columns in one read of the
    relation instead of one read per column (on a view over every loaded line, each read costs seconds).
    A failing row names the columns that are null in it. With `load_column`, the loads a published run of the
    same code and variables tested already are left out (macro tested_loads).
-#}
{% test not_null_columns(model, column_names, load_column=none) %}

    select
        {% for column in column_names -%}
        case when {{ column }} is null then '{{ column }} ' else '' end
        {%- if not loop.last %} || {% endif %}
        {% endfor -%} as null_columns

    from {{ model }}
    where
        {{ untested_loads_only(load_column) }}
        and (
            {% for column in column_names -%}
            {{ column }} is null{% if not loop.last %} or {% endif %}
            {% endfor %}
        )

{% endtest %}
