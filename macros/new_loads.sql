{#-
    The loads an incremental model built by load has still to add, as a list of load ids, read when the model
    runs (dbt compiles a node right before it executes it, after its parents): the loads of the load log of
    which `relation` (the model itself, `this`) holds no row built under the current cleaning rules. Rows of
    other rules do not count as held: the model's pre-hook (delete_rows_of_other_cleaning_rules) deletes them
    after this list is made, and their loads must be added again.

    Why a list of literals and not a subquery: `load_id in ('…', '…')` is a filter every planner pushes down to
    the scan of the raw lines (PostgreSQL and DuckDB skip the other loads' rows early, Spark prunes the other
    loads' partitions), where `load_id in (select … from load_log …)` made PostgreSQL join and classify every
    loaded line first and drop the held loads last (29 s of a x10 new month for quality_lines_by_load_class).

    A load whose lines were all excluded never appears in the model and is listed again each run: it adds
    nothing. `held_column` names the relation's load column when it is not `load_id` (the pairs of
    int_product_customers__deduplicated hold the load that first brought them). Outside an incremental run (a
    full build, parsing, a unit test that does not override it) the list is empty and the models do not use
    it. Unit tests of the incremental path override it (`overrides:
    macros:`) with the loads they mean to add.
-#}
{% macro loads_not_yet_in(relation, held_column='load_id') -%}
    {%- if not (execute and is_incremental()) -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        select load_log.load_id
        from {{ ref('stg_online_retail__load_log') }} as load_log
        where not exists (
            select 1
            from {{ relation }} as held
            where
                held.{{ held_column }} = load_log.load_id
                and held.cleaning_rules = (
                    select current_rules.cleaning_rules from {{ ref('int_cleaning_rules') }} as current_rules
                )
        )
        order by load_log.load_id
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | map('string') | list) }}
{%- endmacro %}

{#-
    A condition keeping the rows whose `column` is one of `load_ids` (from loads_not_yet_in): `column in ('…')`,
    or a condition no row meets when the list is empty. Quotes in an id are doubled.
-#}
{% macro load_id_in(load_ids, column='load_id') -%}
    {%- if load_ids | length == 0 -%}
        1 = 0
    {%- else -%}
        {{ column }} in (
        {%- for load_id in load_ids -%}
            '{{ load_id | replace("'", "''") }}'{{ ', ' if not loop.last }}
        {%- endfor -%}
        )
    {%- endif -%}
{%- endmacro %}
