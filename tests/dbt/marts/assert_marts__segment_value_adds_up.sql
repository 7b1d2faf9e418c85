-- segment_value adds up: its customers and expected revenue equal those of the segmented customers of
-- dim_customers (a cent of tolerance for the sums of doubles).
with

by_segment as (

    select
        sum(customers) as customers,
        coalesce(sum(expected_revenue), 0) as expected_revenue

    from {{ ref('segment_value') }}

),

by_customer as (

    select
        count(*) as customers,
        coalesce(sum(expected_revenue), 0) as expected_revenue

    from {{ ref('dim_customers') }}
    where segment_rank is not null

)

select
    by_segment.customers,
    by_customer.customers as dim_customers

from by_segment
cross join by_customer
where
    by_segment.customers <> by_customer.customers
    or abs(by_segment.expected_revenue - by_customer.expected_revenue) > 0.01
