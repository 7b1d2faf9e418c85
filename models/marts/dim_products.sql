-- depends_on: {{ ref('fct_sales') }}
-- One row per product (stock code) with a valid sales line: its description and what it sold, so that a line of
-- fct_sales has a readable product in Power BI. A code's description is that of its latest line that has one
-- (the shop renames products over time). Built after fct_sales (declared above), with the rest of the star.
with

sales as (

    select * from {{ ref('int_sales__cleaned') }}

),

latest_descriptions as (

    select
        stock_code,
        product_description,
        row_number() over (
            partition by stock_code
            order by {{ latest_line_first() }}
        ) as recency_rank

    from sales
    where product_description is not null

),

products as (

    select
        stock_code,
        min(invoice_day) as first_sold_day,
        max(invoice_day) as last_sold_day,
        sum(case when not is_return then quantity else 0 end) as units_sold,
        -sum(case when is_return then quantity else 0 end) as units_returned,
        sum(case when not is_return then line_revenue else 0 end) as gross_revenue,
        count(distinct customer_id) as customers

    from sales
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
