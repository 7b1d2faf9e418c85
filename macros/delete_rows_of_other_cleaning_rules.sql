{#-
    Pre-hook of the incremental models that depend on the cleaning rules: on an incremental run, delete the rows
    whose `cleaning_rules` digest is not the current one (int_cleaning_rules), so that a seed or
    var('min_unit_price') change makes the run recompute them all; nothing on a full build. Runs in the model's
    transaction, so readers never see the table emptied.

    Every row of such a table carries the same digest: a full build writes the current one, and an incremental
    run deletes every other digest before it adds rows under the current one, in one transaction. So one row
    tells whether anything is to be deleted, and a run whose rules did not change reads that row instead of
    scanning the whole table for other digests (int_sales__cleaned holds every valid line: a full scan cost
    every scheduled run a read of the history). A table whose rows disagreed anyway (edited by hand) would still
    not pass silently: the loads of its stale rows count as not held (loads_not_yet_in), their lines would be
    added again and break the model's unique key and its key test.
-#}
{% macro delete_rows_of_other_cleaning_rules() -%}
    {%- if not (execute and is_incremental()) -%}
        {{ return('') }}
    {%- endif -%}
    {%- set probe -%}
        select
            held.cleaning_rules,
            current_rules.cleaning_rules as current_rules
        from {{ this }} as held
        cross join {{ ref('int_cleaning_rules') }} as current_rules
        limit 1
    {%- endset -%}
    {%- set rows = run_query(probe).rows -%}
    {%- if rows | length > 0 and rows[0][0] != rows[0][1] -%}
        delete from {{ this }}
        where cleaning_rules <> '{{ rows[0][1] }}'
    {%- endif -%}
{%- endmacro %}
