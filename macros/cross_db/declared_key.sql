{#-
    True when the database itself guarantees that `columns` identify a row of `relation`: a primary key or a
    unique index (PostgreSQL), a primary key or unique constraint (DuckDB), on exactly these columns, valid and
    without a predicate. The unique_combination test then has nothing to count: the database refused any
    duplicate when it was written. False for anything else (a view, a subquery, a relation without such a key,
    Spark, whose Parquet tables declare no keys), and at parse time: the test then counts.
-#}
{% macro declared_key(relation, columns) -%}
    {%- if not execute or relation is string or relation.identifier is not defined or relation.identifier is none -%}
        {{- return(false) -}}
    {%- endif -%}
    {{- return(adapter.dispatch('declared_key', 'insiders')(relation, columns)) -}}
{%- endmacro %}

{% macro default__declared_key(relation, columns) -%}
    {{- return(false) -}}
{%- endmacro %}

{% macro postgres__declared_key(relation, columns) -%}
    {%- set query -%}
        select count(*)
        from pg_index as i
        inner join pg_class as c on c.oid = i.indrelid
        inner join pg_namespace as n on n.oid = c.relnamespace
        where
            n.nspname = '{{ relation.schema }}'
            and c.relname = '{{ relation.identifier }}'
            and c.relkind in ('r', 'p')
            and i.indisunique
            and i.indisvalid
            and i.indpred is null
            and i.indexprs is null
            and i.indnkeyatts = {{ columns | length }}
            and (
                select array_agg(a.attname::text order by a.attname::text)
                from pg_attribute as a
                where a.attrelid = c.oid and a.attnum = any(i.indkey::int2[])
            ) = array[{%- for column in columns | sort -%}'{{ column }}'{{ ', ' if not loop.last }}{%- endfor -%}]::text[]
    {%- endset -%}
    {{- return(run_query(query).columns[0].values()[0] > 0) -}}
{%- endmacro %}

{% macro duckdb__declared_key(relation, columns) -%}
    {%- set query -%}
        select count(*)
        from duckdb_constraints()
        where
            database_name = '{{ relation.database }}'
            and schema_name = '{{ relation.schema }}'
            and table_name = '{{ relation.identifier }}'
            and constraint_type in ('PRIMARY KEY', 'UNIQUE')
            and list_sort(constraint_column_names) = list_sort([{{ "'" ~ (columns | join("', '")) ~ "'" }}])
    {%- endset -%}
    {{- return(run_query(query).columns[0].values()[0] > 0) -}}
{%- endmacro %}
