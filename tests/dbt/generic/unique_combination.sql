{#-
    The given columns together identify a row: no two rows share the same values in all of them.
    Written here because packages cannot be installed offline; same idea as the usual package test.
-#}
{% test unique_combination(model, column_names) %}

    select
        {{ column_names | join(', ') }},
        count(*) as rows_with_this_key

    from {{ model }}
    group by {{ column_names | join(', ') }}
    having count(*) > 1

{% endtest %}
