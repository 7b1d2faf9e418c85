-- The revenue the features attribute to customers is exactly the revenue of the valid purchase lines that
-- belong to a customer and fall on or before D_ref: no line lost, none counted twice.
-- Returns a row when the two totals differ.
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

    select coalesce(sum(sales.line_revenue), 0) as revenue

    from sales
    cross join reference_day
    where
        not sales.is_anonymous
        and not sales.is_return
        and sales.invoice_day <= reference_day.as_of_date

),

actual as (

    select coalesce(sum(gross_revenue), 0) as revenue

    from customer_features

),

final as (

    select
        expected.revenue as expected_revenue,
        actual.revenue as actual_revenue

    from expected
    cross join actual
    where expected.revenue <> actual.revenue

)

select * from final
