{#-
    The given columns together identify a row: no two rows share the same values in all of them.
    Written here because packages cannot be installed offline; same idea as the usual package test.

    When the database guarantees it already (a primary key or unique index on exactly these columns, see
    macro declared_key), the test reads nothing: the database refused every duplicate as it was written, which
    proves the same as counting every row again. Otherwise (a view, an older table built before its key, Spark)
    it counts.

    `load_column` (optional) names the relation's load column when every column of the key is unique within
    a load: the key contains the load, or embeds it (transaction_line_id is `load_id:line_number`). Two lines
    of different loads can then never share a key, and the count leaves out the loads a published run of the
    same code and variables tested already (macro tested_loads): at x100 a new month counts its own lines, not
    all 54 M. A plain `dbt build` counts every row.
-#}
{% test unique_combination(model, column_names, load_column=none) %}

    {%- if declared_key(model, column_names) %}
    -- proven by the database's key on ({{ column_names | join(', ') }})
    select
        {{ column_names | join(', ') }},
        cast(null as bigint) as rows_with_this_key

    from {{ model }}
    where 1 = 0
    {%- else %}
    select
        {{ column_names | join(', ') }},
        count(*) as rows_with_this_key

    from {{ model }}
    where {{ untested_loads_only(load_column) }}
    group by {{ column_names | join(', ') }}
    having count(*) > 1
    {%- endif %}

{% endtest %}
