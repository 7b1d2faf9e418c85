-- sqlfluff:indentation:template_blocks_indent:False
-- depends_on: {{ ref('dim_customers') }}
-- depends_on: {{ ref('stg_online_retail__load_log') }}
-- depends_on: {{ ref('int_cleaning_rules') }}
-- One row per valid invoice line (spec section 3), anonymous lines and returns included.
--
-- The lines need nothing from the scoring job, but fct_sales is built after its dimension (declared above):
-- that puts it in the `segments` step with the other marts, so the star schema is rebuilt as one after each
-- scoring run, and when dim_customers is not rebuilt (stale segments fail the build first), neither is
-- fct_sales: a report never sees sales of customers that dim_customers does not list.
--
-- Incremental by load, like int_sales__cleaned, which it copies: a run appends the lines of the loads this table
-- does not hold yet (raw lines only ever arrive, a whole load at a time). Each row carries its load and the
-- digest of the cleaning rules that kept it: a change of the rules deletes every row first (pre-hook), so that
-- run rebuilds the table in full, and the publish step copies it in full instead of appending (insiders.publish).
{{
    config(
        materialized=incremental_materialization(),
        incremental_strategy='append',
        pre_hook="{{ delete_rows_of_other_cleaning_rules() }}",
        post_hook="{{ add_line_key(this, ['transaction_line_id']) }}",
    )
}}

with

sales as (

    select * from {{ ref('int_sales__cleaned') }}

),

final as (

    select
        cast(transaction_line_id as {{ type_text() }}) as transaction_line_id,
        cast(invoice_no as {{ type_text() }}) as invoice_no,
        cast(invoice_day as date) as invoice_day,
        cast(customer_id as bigint) as customer_id,
        cast(stock_code as {{ type_text() }}) as stock_code,
        cast(quantity as integer) as quantity,
        cast(unit_price as numeric(18, 4)) as unit_price,
        cast(line_revenue as numeric(18, 4)) as revenue,
        cast(is_return as boolean) as is_return,
        cast(country as {{ type_text() }}) as country,
        cast(load_id as {{ type_text() }}) as load_id,
        cast(cleaning_rules as {{ type_text() }}) as cleaning_rules

    from sales
    {% if is_incremental() %}
    -- The loads not here yet, as literals (macro loads_not_yet_in): only their lines are read.
    where {{ load_id_in(loads_not_yet_in(this)) }}
    {% endif %}

)

select * from final
