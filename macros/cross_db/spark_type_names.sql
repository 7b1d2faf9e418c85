{#-
    The project writes column types as DuckDB and PostgreSQL name them (varchar, double precision, integer,
    numeric(18, 4)): in the models' contracts (data_type) and the seeds' column_types. Spark's parser knows
    string, double, int and decimal(18,4) instead. spark_type_name translates one name; spark__cast, which dbt
    dispatches when it checks a contract (it casts null to each declared type), uses it, so one YAML serves the
    three warehouses and Spark checks the same contracts (column names and types; keys and NOT NULL are not
    enforced by Parquet tables: their data tests check them).
-#}
{% macro spark_type_name(data_type) -%}
    {%- set name = data_type | string | trim | lower -%}
    {%- if name in ('varchar', 'text') or name.startswith(('varchar(', 'character varying')) -%}
        {{- return('string') -}}
    {%- elif name == 'double precision' or name == 'float8' -%}
        {{- return('double') -}}
    {%- elif name == 'integer' or name == 'int4' -%}
        {{- return('int') -}}
    {%- elif name.startswith('numeric') -%}
        {{- return('decimal' ~ name[7:] | replace(' ', '')) -}}
    {%- else -%}
        {{- return(name) -}}
    {%- endif -%}
{%- endmacro %}

{% macro spark__cast(field, type) -%}
    cast({{ field }} as {{ spark_type_name(type) }})
{%- endmacro %}
