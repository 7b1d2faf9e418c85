-- noqa: disable=LT02
{#-
    The columns of a relation and their types as a query with the columns column_name and data_type, for tests
    that check a relation dbt does not build (has_column_types). DuckDB and PostgreSQL list them in
    information_schema.columns; Spark has no information schema, so the columns dbt reads from the catalog
    (DESCRIBE) are written out as rows.
-#}
{% macro relation_column_types(relation) -%}
    {{ return(adapter.dispatch('relation_column_types', 'insiders')(relation)) }}
{%- endmacro %}

{% macro default__relation_column_types(relation) -%}
    select
        column_name,
        data_type
    from information_schema.columns
    where
        lower(table_schema) = lower('{{ relation.schema }}')
        and lower(table_name) = lower('{{ relation.identifier }}')
{%- endmacro %}

{% macro spark__relation_column_types(relation) -%}
    {%- set columns = adapter.get_columns_in_relation(relation) if execute else [] -%}
    {%- for column in columns %}
    select
        '{{ column.name }}' as column_name,
        '{{ column.dtype }}' as data_type
    {% if not loop.last %}union all{% endif %}
    {%- else %}
    select
        cast(null as string) as column_name,
        cast(null as string) as data_type
    where false
    {%- endfor %}
{%- endmacro %}
