-- The segments' revenue adds up to the revenue of all customers of customer_features, in the profile table and
-- in the monthly table, and the shares add up to 1. Returns one row per figure that does not (to the cent for
-- amounts, 1e-9 for shares).
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

segment_profiles as (

    select * from {{ ref('segment_profiles') }}

),

segment_monthly_revenue as (

    select * from {{ ref('segment_monthly_revenue') }}

),

features_total as (

    select coalesce(sum(gross_revenue), 0) as revenue

    from customer_features

),

profiles_total as (

    select
        coalesce(sum(revenue), 0) as revenue,
        coalesce(sum(revenue_share), 0) as revenue_share,
        coalesce(sum(customer_share), 0) as customer_share

    from segment_profiles

),

-- Purchases of segmented customers, month by month: the same lines as the features.
monthly_total as (

    select coalesce(sum(gross_revenue), 0) as revenue

    from segment_monthly_revenue
    where segment_rank is not null

),

checks as (

    select
        'segment_profiles.revenue' as figure,
        cast(profiles_total.revenue as {{ type_double() }}) as actual,
        cast(features_total.revenue as {{ type_double() }}) as expected,
        0.01 as tolerance

    from profiles_total
    cross join features_total

    union all

    select
        'segment_monthly_revenue.gross_revenue' as figure,
        cast(monthly_total.revenue as {{ type_double() }}) as actual,
        cast(features_total.revenue as {{ type_double() }}) as expected,
        0.01 as tolerance

    from monthly_total
    cross join features_total

    union all

    select
        'segment_profiles.revenue_share' as figure,
        cast(revenue_share as {{ type_double() }}) as actual,
        1.0 as expected,
        0.000000001 as tolerance

    from profiles_total

    union all

    select
        'segment_profiles.customer_share' as figure,
        cast(customer_share as {{ type_double() }}) as actual,
        1.0 as expected,
        0.000000001 as tolerance

    from profiles_total

)

select * from checks
where abs(actual - expected) > tolerance
