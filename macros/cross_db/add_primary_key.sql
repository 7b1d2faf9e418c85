{#-
    Post-hook of the marts whose contract is not enforced (dim_customers, segment_profiles: their feature
    columns follow customer_features' contract): gives the table its primary key, which the database checks
    (unique, not null) as the enforced contracts' primary_key constraints are checked, and which Power BI
    reads as the table's key. The other marts declare theirs as contract constraints.
-#}
{% macro add_primary_key(relation, columns) -%}
    {{ return(adapter.dispatch('add_primary_key', 'insiders')(relation, columns)) }}
{%- endmacro %}

{% macro default__add_primary_key(relation, columns) -%}
    alter table {{ relation }} add primary key ({{ columns | join(', ') }})
{%- endmacro %}

{#-
    Spark's Parquet tables have no keys: the key is checked instead, right after the table is built (no
    repeated and no null key; spark_check_columns in spark__persist_constraints.sql), and the hook runs nothing.
-#}
{% macro spark__add_primary_key(relation, columns) -%}
    {%- if execute -%}
        {%- do spark_check_columns(relation, [columns], []) -%}
    {%- endif -%}
{%- endmacro %}
