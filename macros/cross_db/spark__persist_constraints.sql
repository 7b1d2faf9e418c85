-- noqa: disable=LT02
{#-
    Contract constraints on Spark's Parquet tables, which cannot hold them: dbt-spark adds NOT NULL and CHECK
    constraints to Delta tables only, and a Parquet table refuses both ALTER statements. So that a key or a NOT
    NULL column declared in a contract is still checked where DuckDB and PostgreSQL enforce it, the table is
    queried right after it is built: a duplicated or null primary key, or a null in a NOT NULL column, fails
    the node with the number of rows at fault (the run then stops before scoring or publishing). Delta tables
    keep dbt-spark's own behaviour.
-#}
{% macro spark__persist_constraints(relation, model) -%}
    {%- set contract_config = config.get('contract') -%}
    {%- if not contract_config.enforced -%}
        {{ return('') }}
    {%- endif -%}
    {%- if config.get('file_format', 'delta') == 'delta' -%}
        {{ return(dbt.spark__persist_constraints(relation, model)) }}
    {%- endif -%}
    {%- set keys = [] -%}
    {%- set not_null = [] -%}
    {%- for constraint in model.constraints if constraint.type == 'primary_key' -%}
        {%- do keys.append(constraint.columns) -%}
    {%- endfor -%}
    {%- for name, column in model.columns.items() -%}
        {%- for constraint in column.constraints -%}
            {%- if constraint.type == 'not_null' -%}
                {%- do not_null.append(name) -%}
            {%- elif constraint.type == 'primary_key' -%}
                {%- do keys.append([name]) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- do spark_check_columns(relation, keys, not_null) -%}
{%- endmacro %}

{#- Fail when a key of `keys` (lists of columns) repeats or has a null, or a column of `not_null` has a null. -#}
{% macro spark_check_columns(relation, keys, not_null) -%}
    {%- set nullable = [] -%}
    {%- for column in not_null -%}
        {%- if column not in nullable -%}{%- do nullable.append(column) -%}{%- endif -%}
    {%- endfor -%}
    {%- for key in keys -%}
        {%- for column in key if column not in nullable -%}{%- do nullable.append(column) -%}{%- endfor -%}
    {%- endfor -%}
    {%- set failures = [] -%}
    {%- if nullable -%}
        {%- set query -%}
            select
            {%- for column in nullable %}
                count_if({{ column }} is null){{ ',' if not loop.last }}
            {%- endfor %}
            from {{ relation }}
        {%- endset -%}
        {%- set row = run_query(query).rows[0] -%}
        {%- for column in nullable -%}
            {%- if row[loop.index0] > 0 -%}
                {%- do failures.append(row[loop.index0] ~ ' null ' ~ column) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- for key in keys -%}
        {%- set query -%}
            select count(*) from (
                select {{ key | join(', ') }} from {{ relation }} group by {{ key | join(', ') }} having count(*) > 1
            ) as repeated_keys
        {%- endset -%}
        {%- set repeated = run_query(query).rows[0][0] -%}
        {%- if repeated > 0 -%}
            {%- do failures.append(repeated ~ ' repeated primary key (' ~ key | join(', ') ~ ')') -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if failures -%}
        {{ exceptions.raise_compiler_error(relation ~ ' breaks its declared constraints: ' ~ failures | join('; ')) }}
    {%- endif -%}
{%- endmacro %}
