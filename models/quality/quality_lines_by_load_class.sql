-- sqlfluff:indentation:template_blocks_indent:False
-- How many lines, and how much money, each cleaning rule takes out of each load: one row per load and line
-- class (each exclusion reason of spec section 3, and `valid`), zeros included, so that a rule that suddenly
-- catches nothing is as visible as one that catches too much.
--
-- Incremental by load, like quality_loads: the rows of a committed load never change, so a run adds the rows
-- of the loads not here yet and reads only their lines; a change of the cleaning rules deletes every row first
-- (pre-hook), so that run recomputes every load.
{{
    config(
        materialized=incremental_materialization(),
        incremental_strategy='append',
        pre_hook="{{ delete_rows_of_other_cleaning_rules() }}",
    )
}}

{#- The loads not here yet (macro loads_not_yet_in), named as literals: only their lines are read. #}
{%- set new_load_ids = loads_not_yet_in(this) %}
with

load_log as (

    select * from {{ ref('stg_online_retail__load_log') }}
    {% if is_incremental() %}
    where {{ load_id_in(new_load_ids) }}
    {% endif %}

),

classified as (

    select * from {{ ref('int_transactions__classified') }}
    {% if is_incremental() %}
    where {{ load_id_in(new_load_ids) }}
    {% endif %}

),

cleaning_rules as (

    select * from {{ ref('int_cleaning_rules') }}

),

-- The classes in rule order. Keep in step with int_transactions__classified: a reason missing here loses its
-- lines from these counts, and assert_load_log_matches_stored_lines fails (through quality_loads).
line_classes as (

    select
        line_class,
        class_order

    from (
        values
        ('price_below_minimum', 1),
        ('non_product_stock_code', 2),
        ('invalid_country', 3),
        ('excluded_customer', 4),
        ('valid', 5)
    ) as classes (line_class, class_order)

),

class_totals as (

    select
        load_id,
        coalesce(exclusion_reason, 'valid') as line_class,
        count(*) as line_count,
        sum(line_revenue) as revenue,
        count(*) filter (where is_anonymous) as anonymous_line_count,
        sum(line_revenue) filter (where is_anonymous) as anonymous_revenue,
        count(*) filter (where is_return) as return_line_count,
        -sum(quantity) filter (where is_return) as returned_units,
        min(invoiced_at) as first_invoiced_at,
        max(invoiced_at) as last_invoiced_at

    from classified
    group by
        load_id,
        coalesce(exclusion_reason, 'valid')

),

-- Every load times every class, so a class with no line shows as 0 instead of a missing row.
final as (

    select
        load_log.load_id,
        load_log.file_name,
        load_log.loaded_at,
        line_classes.line_class,
        line_classes.class_order,
        cast(coalesce(class_totals.line_count, 0) as bigint) as line_count,
        cast(coalesce(class_totals.revenue, 0) as numeric(18, 4)) as revenue,
        cast(coalesce(class_totals.anonymous_line_count, 0) as bigint) as anonymous_line_count,
        cast(coalesce(class_totals.anonymous_revenue, 0) as numeric(18, 4)) as anonymous_revenue,
        cast(coalesce(class_totals.return_line_count, 0) as bigint) as return_line_count,
        cast(coalesce(class_totals.returned_units, 0) as bigint) as returned_units,
        class_totals.first_invoiced_at,
        class_totals.last_invoiced_at,
        -- The rules the lines were classified by (see int_cleaning_rules).
        cleaning_rules.cleaning_rules

    from load_log
    cross join line_classes
    cross join cleaning_rules
    left join class_totals
        on
            load_log.load_id = class_totals.load_id
            and line_classes.line_class = class_totals.line_class

)

select * from final
