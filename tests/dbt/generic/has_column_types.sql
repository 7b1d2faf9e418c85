{#-
    A contract for a relation that dbt does not build (a source written by a Python job): the relation must
    have exactly the given columns, each of the given type family (integer, number, text, boolean, date,
    timestamp). One failing row per missing, unexpected or mistyped column. Type names differ between
    warehouses (bigint / BIGINT, varchar / character varying / string), so types are compared by family; the
    columns come from relation_column_types (information_schema, or the catalog on Spark).
-#}
{% test has_column_types(model, columns) %}

    with expected as (
        {% for column_name, type_family in columns.items() %}
            select
                '{{ column_name | lower }}' as column_name,
                '{{ type_family | lower }}' as type_family
            {% if not loop.last %}union all{% endif %}
        {% endfor %}
    ),

    relation_columns as (
        {{ relation_column_types(model) }}
    ),

    actual as (
        select
            lower(column_name) as column_name,
            case
                when lower(data_type) like '%int%' then 'integer'
                when
                    lower(data_type) like '%char%'
                    or lower(data_type) like '%text%'
                    or lower(data_type) like '%string%'
                    then 'text'
                when lower(data_type) like '%bool%' then 'boolean'
                when lower(data_type) like '%timestamp%' then 'timestamp'
                when lower(data_type) like '%date%' then 'date'
                when
                    lower(data_type) like '%numeric%'
                    or lower(data_type) like '%decimal%'
                    or lower(data_type) like '%double%'
                    or lower(data_type) like '%real%'
                    or lower(data_type) like '%float%'
                    then 'number'
                else lower(data_type)
            end as type_family
        from relation_columns
    ),

    final as (
        select
            coalesce(expected.column_name, actual.column_name) as column_name,
            expected.type_family as expected_type_family,
            actual.type_family as actual_type_family,
            case
                when actual.column_name is null then 'missing'
                when expected.column_name is null then 'unexpected'
                else 'wrong type'
            end as problem
        from expected
        full outer join actual on expected.column_name = actual.column_name
        where
            expected.column_name is null
            or actual.column_name is null
            or expected.type_family != actual.type_family
    )

    select * from final

{% endtest %}
