-- depends_on: {{ ref('fct_sales') }}
-- One row per product (stock code) with a valid sales line: its description and what it sold, so that a line of
-- fct_sales has a readable product in Power BI. A code's description is that of its latest line that has one
-- (the shop renames products over time). Built after fct_sales (declared above), with the rest of the star.
--
-- Cost follows change: the totals are added up from int_products__aggregated_by_load (one row per product and
-- load, kept up to date incrementally, by load), not from every valid line, so a new month reads that month's
-- lines once there and a few rows per product here. Every column adds up exactly across loads (see that
-- model), so this table is the one a full refresh computes from all lines, and it is still rebuilt whole on
-- each run: a few thousand rows, and nothing to reconcile after a change of the cleaning rules.
with

product_loads as (

    select * from {{ ref('int_products__aggregated_by_load') }}

),

-- Each load's latest described line of the product, under the names macro latest_line_first orders by.
described_lines as (

    select
        stock_code,
        latest_description as product_description,
        latest_described_at as invoiced_at,
        latest_described_invoice_no as invoice_no,
        load_id,
        latest_described_line_number as line_number

    from product_loads
    where latest_description is not null

),

latest_descriptions as (

    select
        stock_code,
        product_description,
        row_number() over (
            partition by stock_code
            order by {{ latest_line_first() }}
        ) as recency_rank

    from described_lines

),

products as (

    select
        stock_code,
        min(first_sold_day) as first_sold_day,
        max(last_sold_day) as last_sold_day,
        sum(units_sold) as units_sold,
        sum(units_returned) as units_returned,
        sum(gross_revenue) as gross_revenue,
        -- Each (product, customer) pair is counted in one load only: the sum is count(distinct customer_id).
        sum(new_customers) as customers

    from product_loads
    group by stock_code

),

final as (

    select
        cast(products.stock_code as {{ type_text() }}) as stock_code,
        cast(coalesce(latest_descriptions.product_description, products.stock_code) as {{ type_text() }})
            as product_description,
        cast(products.first_sold_day as date) as first_sold_day,
        cast(products.last_sold_day as date) as last_sold_day,
        cast(products.units_sold as bigint) as units_sold,
        cast(products.units_returned as bigint) as units_returned,
        cast(products.gross_revenue as numeric(18, 4)) as gross_revenue,
        cast(products.customers as bigint) as customers

    from products
    left join latest_descriptions
        on
            products.stock_code = latest_descriptions.stock_code
            and latest_descriptions.recency_rank = 1

)

select * from final
