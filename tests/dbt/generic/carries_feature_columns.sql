{#-
    Generic test of a mart whose feature columns are derived from customer_features' contract (dim_customers,
    segment_profiles): every contract column, with `prefix` (mean_ for segment means), is a column of the mart.
    A missing column makes the query fail; otherwise it returns no rows.
-#}
{% test carries_feature_columns(model, prefix='', exclude=[], numeric_only=false) -%}
    {%- set columns = feature_columns(exclude=exclude, numeric_only=numeric_only) %}
select
    1 as found
    {%- for column in columns %},
    {{ prefix ~ column.name }}
    {%- endfor %}
from {{ model }}
where 1 = 0
{%- endtest %}
