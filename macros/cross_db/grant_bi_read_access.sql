{#-
    Post-hook of every mart: let the BI reader role (var('bi_reader_role'), default insiders_bi_reader) select
    the table that was just built.

    dbt rebuilds a table as a new relation and swaps it in, so privileges granted once are lost at the next
    run. The hook runs inside the transaction that swaps the table, so the new table is never visible without
    its grant. It grants only when the role exists: a developer's database without the roles of
    deploy/postgres/roles.sql still builds. DuckDB has no roles, so nothing is granted there.

    dbt's own `grants` config is not used because it fails the build when the role does not exist, applies the
    grant after the commit, and makes dbt-duckdb warn on every run.
-#}
{% macro grant_bi_read_access(relation) -%}
    {{ return(adapter.dispatch('grant_bi_read_access', 'insiders')(relation)) }}
{%- endmacro %}

{% macro default__grant_bi_read_access(relation) -%}
{%- endmacro %}

{% macro postgres__grant_bi_read_access(relation) -%}
    {#- `insiders run` builds the marts into a build schema with bi_grants false: readers must not see those
        tables; it grants the published copies itself (python_jobs/insiders/publish.py). -#}
    {%- if not var('bi_grants', true) -%}
        {{ return('') }}
    {%- endif -%}
    {%- set role = var('bi_reader_role', 'insiders_bi_reader') | string -%}
    {%- if not modules.re.match('^[a-z_][a-z0-9_$]*$', role) -%}
        {{ exceptions.raise_compiler_error(
            "var('bi_reader_role') must be a plain lower-case role name, got '" ~ role ~ "'"
        ) }}
    {%- endif -%}
    do $grant$
    begin
        if exists (select from pg_catalog.pg_roles where rolname = '{{ role }}') then
            grant select on table {{ relation }} to {{ role }};
        end if;
    end
    $grant$
{%- endmacro %}
