-- depends_on: {{ ref('dim_customers') }}
-- One row per valid invoice line (spec section 3), anonymous lines and returns included.
--
-- The lines need nothing from the scoring job, but fct_sales is built after its dimension (declared above):
-- that puts it in the `segments` step with the other marts, so the star schema is rebuilt as one after each
-- scoring run, and when dim_customers is not rebuilt (stale segments fail the build first), neither is
-- fct_sales: a report never sees sales of customers that dim_customers does not list.
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
        cast(country as {{ type_text() }}) as country

    from sales

)

select * from final
