-- customer_features has a row for a customer if and only if the customer has a valid purchase line on or
-- before D_ref. Returns the customers that break this, with the side they are missing from.
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

purchasing_customers as (

    select distinct sales.customer_id

    from sales
    cross join reference_day
    where
        not sales.is_anonymous
        and not sales.is_return
        and sales.invoice_day <= reference_day.as_of_date

),

missing_rows as (

    select
        purchasing_customers.customer_id,
        'no features row' as problem

    from purchasing_customers
    left join customer_features
        on purchasing_customers.customer_id = customer_features.customer_id
    where customer_features.customer_id is null

),

unexpected_rows as (

    select
        customer_features.customer_id,
        'features row without a purchase' as problem

    from customer_features
    left join purchasing_customers
        on customer_features.customer_id = purchasing_customers.customer_id
    where purchasing_customers.customer_id is null

),

final as (

    select * from missing_rows
    union all
    select * from unexpected_rows

)

select * from final
