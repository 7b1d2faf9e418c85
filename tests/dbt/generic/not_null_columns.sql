{#-
    None of the given columns is null in any row: dbt's not_null for several columns in one read of the
    relation instead of one read per column (on a view over every loaded line, each read costs seconds).
    A failing row names the columns that are null in it.
-#}
{% test not_null_columns(model, column_names) %}

    select
        {% for column in column_names -%}
        case when {{ column }} is null then '{{ column }} ' else '' end
        {%- if not loop.last %} || {% endif %}
        {% endfor -%} as null_columns

    from {{ model }}
    where
        {% for column in column_names -%}
        {{ column }} is null{% if not loop.last %} or {% endif %}
        {% endfor %}

{% endtest %}
