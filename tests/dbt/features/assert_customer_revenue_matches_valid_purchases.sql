-- customer_features has a row for a customer if and only if the customer has a valid purchase line on or
-- before D_ref, and its gross revenue is exactly the revenue of those lines: no customer or line lost, none
-- counted twice. Returns the customers that break this, with what is wrong. One read of the valid lines.
with

sales as (

    select * from {{ ref('int_sales__cleaned') }}

),

customer_features as (

    select * from {{ ref('customer_features') }}

),

reference_day as (

    select * from {{ ref('int_reference_day') }}

),

expected as (

    select
        sales.customer_id,
        sum(sales.line_revenue) as revenue

    from sales
    cross join reference_day
    where
        not sales.is_anonymous
        and not sales.is_return
        and sales.invoice_day <= reference_day.as_of_date
    group by sales.customer_id

),

compared as (

    select
        coalesce(expected.customer_id, customer_features.customer_id) as customer_id,
        expected.revenue as expected_revenue,
        customer_features.gross_revenue as actual_revenue,
        case
            when customer_features.customer_id is null then 'no features row'
            when expected.customer_id is null then 'features row without a purchase'
            when customer_features.gross_revenue <> expected.revenue then 'gross revenue differs'
        end as problem

    from expected
    full outer join customer_features
        on expected.customer_id = customer_features.customer_id

),

final as (

    select * from compared
    where problem is not null

)

select * from final
