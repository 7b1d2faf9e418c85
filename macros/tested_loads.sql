{#-
    The loads whose lines the line-level data tests may leave out in this invocation, as a list of load ids:
    the loads of the last published run, named by `insiders run` in $INSIDERS_TESTED_LOADS (comma-separated)
    only when that run was made with the same dbt project, package code and variables (see
    python_jobs/insiders/pipeline/run_state.py, already_tested_loads). That run's build passed every test over those
    loads' lines; loads are never rewritten, and the incremental models keep the rows they built for them, so
    testing them again proves nothing new. Empty (test every line) when the variable is unset, as in a plain
    `dbt build`, and while parsing: the variable is read only when a test runs, so a new list does not
    invalidate dbt's partial parsing.
-#}
{% macro tested_loads() -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set listed = env_var('INSIDERS_TESTED_LOADS', '') -%}
    {{ return(listed.split(',') | map('trim') | reject('equalto', '') | list) }}
{%- endmacro %}

{#-
    A condition keeping the rows whose `load_column` is not one of tested_loads(), or `1 = 1` when every row is
    to be tested (no `load_column` given, or no tested load). Used by the generic tests unique_combination and
    not_null_columns.
-#}
{% macro untested_loads_only(load_column) -%}
    {%- set tested = tested_loads() if load_column else [] -%}
    {%- if tested | length > 0 -%}
        /* {{ tested | length }} load(s) tested by the last published run of the same code and variables */
        not ({{ load_id_in(tested, load_column) }})
    {%- else -%}
        1 = 1
    {%- endif -%}
{%- endmacro %}
