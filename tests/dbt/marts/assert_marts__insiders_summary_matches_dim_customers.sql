-- insiders_summary has exactly one row, and it agrees with dim_customers, the insiders list and the segment
-- profile of rank 1: the count and share of Insiders, their mean spend, recency and returns, and their revenue
-- share. Returns one row per figure that disagrees.
with

insiders_summary as (

    select * from {{ ref('insiders_summary') }}

),

dim_customers as (

    select * from {{ ref('dim_customers') }}

),

insiders as (

    select * from {{ ref('insiders') }}

),

segment_profiles as (

    select * from {{ ref('segment_profiles') }}

),

summary_rows as (

    select count(*) as row_count

    from insiders_summary

),

from_customers as (

    select
        sum(case when is_insider then 1 else 0 end) as insiders,
        count(*) as customers,
        avg(case when is_insider then cast(gross_revenue as {{ type_double() }}) end) as mean_gross_revenue,
        avg(case when is_insider then cast(recency_days as {{ type_double() }}) end) as mean_recency_days,
        avg(case when is_insider then cast(qty_returns as {{ type_double() }}) end) as mean_qty_returns,
        sum(case when is_insider then gross_revenue else 0 end) as insiders_revenue,
        sum(gross_revenue) as revenue

    from dim_customers
    where segment_rank is not null

),

from_insiders as (

    select count(*) as insiders

    from insiders

),

insiders_profile as (

    select
        coalesce(sum(customers), 0) as insiders,
        coalesce(sum(revenue_share), 0) as revenue_share

    from segment_profiles
    where is_insider

),

checks as (

    select
        'one row' as figure,
        cast(summary_rows.row_count as {{ type_double() }}) as actual,
        1.0 as expected

    from summary_rows

    union all

    select
        'insiders vs dim_customers' as figure,
        cast(insiders_summary.insiders as {{ type_double() }}) as actual,
        cast(from_customers.insiders as {{ type_double() }}) as expected

    from insiders_summary
    cross join from_customers

    union all

    select
        'insiders vs the insiders mart' as figure,
        cast(insiders_summary.insiders as {{ type_double() }}) as actual,
        cast(from_insiders.insiders as {{ type_double() }}) as expected

    from insiders_summary
    cross join from_insiders

    union all

    select
        'insiders vs segment_profiles' as figure,
        cast(insiders_summary.insiders as {{ type_double() }}) as actual,
        cast(insiders_profile.insiders as {{ type_double() }}) as expected

    from insiders_summary
    cross join insiders_profile

    union all

    select
        'customers' as figure,
        cast(insiders_summary.customers as {{ type_double() }}) as actual,
        cast(from_customers.customers as {{ type_double() }}) as expected

    from insiders_summary
    cross join from_customers

    union all

    select
        'insiders_share' as figure,
        insiders_summary.insiders_share as actual,
        {{ safe_ratio('from_customers.insiders', 'from_customers.customers') }} as expected

    from insiders_summary
    cross join from_customers

    union all

    select
        'mean_gross_revenue' as figure,
        insiders_summary.mean_gross_revenue as actual,
        from_customers.mean_gross_revenue as expected

    from insiders_summary
    cross join from_customers

    union all

    select
        'mean_recency_days' as figure,
        insiders_summary.mean_recency_days as actual,
        from_customers.mean_recency_days as expected

    from insiders_summary
    cross join from_customers

    union all

    select
        'mean_qty_returns' as figure,
        insiders_summary.mean_qty_returns as actual,
        from_customers.mean_qty_returns as expected

    from insiders_summary
    cross join from_customers

    union all

    select
        'insiders_revenue_share' as figure,
        insiders_summary.insiders_revenue_share as actual,
        {{ safe_ratio('from_customers.insiders_revenue', 'from_customers.revenue') }} as expected

    from insiders_summary
    cross join from_customers

    union all

    select
        'insiders_revenue_share vs segment_profiles' as figure,
        coalesce(insiders_summary.insiders_revenue_share, 0) as actual,
        insiders_profile.revenue_share as expected

    from insiders_summary
    cross join insiders_profile

)

-- Null on one side only is a disagreement too (for example a mean over no Insiders against a number).
select * from checks
where
    abs(actual - expected) > 0.000001 * greatest(1.0, abs(expected))
    or (actual is null and expected is not null)
    or (actual is not null and expected is null)
