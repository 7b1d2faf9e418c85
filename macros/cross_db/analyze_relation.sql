{#-
    Post-hook of the large incremental table int_sales__cleaned: refresh the planner's statistics right after
    the build, so the models and tests that read it next are planned for its real size. PostgreSQL leaves that
    to autovacuum, which may come minutes later: a table just created from 5 million lines was estimated at
    0.6 million, and its readers planned for that. DuckDB and Spark: nothing (DuckDB keeps its own statistics;
    Spark's are not used by this project's plans).
-#}
{% macro analyze_relation(relation) -%}
    {{ return(adapter.dispatch('analyze_relation', 'insiders')(relation)) }}
{%- endmacro %}

{% macro default__analyze_relation(relation) -%}
{%- endmacro %}

{% macro postgres__analyze_relation(relation) -%}
    analyze {{ relation }}
{%- endmacro %}
