{#-
    Seeds on Spark: the seeds' column_types (seeds/_seeds.yml) name DuckDB/PostgreSQL types (varchar); they are
    translated to Spark's (string) by spark_type_name, then dbt-spark creates and fills the table as usual.
-#}
{% macro spark__create_csv_table(model, agate_table) -%}
    {%- set translated = {} -%}
    {%- for column_name, data_type in (model['config'].get('column_types') or {}).items() -%}
        {%- do translated.update({column_name: spark_type_name(data_type)}) -%}
    {%- endfor -%}
    {%- do model['config'].update({'column_types': translated}) -%}
    {{ return(dbt.spark__create_csv_table(model, agate_table)) }}
{%- endmacro %}
