{#-
    Post-hook of the marts whose contract is not enforced (dim_customers, segment_profiles: their feature
    columns follow customer_features' contract): gives the table its primary key, which the database checks
    (unique, not null) as the enforced contracts' primary_key constraints are checked, and which Power BI
    reads as the table's key. The other marts declare theirs as contract constraints. A table that already has
    the key (an incremental table on a later run; macro declared_key) is left as it is.
-#}
{% macro add_primary_key(relation, columns) -%}
    {{ return(adapter.dispatch('add_primary_key', 'insiders')(relation, columns)) }}
{%- endmacro %}

{% macro default__add_primary_key(relation, columns) -%}
    {%- if not declared_key(relation, columns) -%}
        alter table {{ relation }} add primary key ({{ columns | join(', ') }})
    {%- endif -%}
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

{#-
    Post-hook of the line-level fact table fct_sales: its primary key where the database keeps indexes on disk
    (PostgreSQL: added once, when the table is created or rebuilt; an incremental run finds it in the catalog,
    macro declared_key). Nothing on DuckDB: there a primary key is an ART index that must stay in memory, and at
    x100 (54 M lines) building it exhausted DuckDB's memory_limit of 3 GB when fct_sales was committed (at x10 a
    copy of the table fails under 300 MB with the key and takes 4.9 s without it). Nothing on Spark. Where the
    database holds no key, the model's unique_combination test counts the key instead.
-#}
{% macro add_line_key(relation, columns) -%}
    {{ return(adapter.dispatch('add_line_key', 'insiders')(relation, columns)) }}
{%- endmacro %}

{% macro default__add_line_key(relation, columns) -%}
    {{ add_primary_key(relation, columns) }}
{%- endmacro %}

{% macro duckdb__add_line_key(relation, columns) -%}
{%- endmacro %}

{% macro spark__add_line_key(relation, columns) -%}
{%- endmacro %}
