-- The study's profile table for the current segments: size, share of customers, the mean of every feature and
-- the share of revenue, one row per segment. Revenue is gross_revenue (purchases; returns not subtracted), the
-- definition the segments were ranked by, so the segments' revenue adds up to that of customer_features.
with

dim_customers as (

    select * from {{ ref('dim_customers') }}

),

segmented_customers as (

    select * from dim_customers
    where segment_rank is not null

),

totals as (

    select
        count(*) as customers,
        sum(gross_revenue) as revenue

    from segmented_customers

),

segments as (

    select
        segment_rank,
        min(segment_name) as segment_name,
        bool_or(is_insider) as is_insider,
        count(*) as customers,
        avg(cast(gross_revenue as double precision)) as mean_gross_revenue,
        avg(cast(recency_days as double precision)) as mean_recency_days,
        avg(cast(qty_invoices as double precision)) as mean_qty_invoices,
        avg(cast(qty_items as double precision)) as mean_qty_items,
        avg(cast(qty_products as double precision)) as mean_qty_products,
        avg(avg_ticket) as mean_avg_ticket,
        -- Customers with a single active day have no gap; the mean is over the others.
        avg(avg_recency_days) as mean_avg_recency_days,
        avg(frequency) as mean_frequency,
        avg(cast(qty_returns as double precision)) as mean_qty_returns,
        avg(avg_basket_size) as mean_avg_basket_size,
        avg(avg_unique_basket_size) as mean_avg_unique_basket_size,
        sum(gross_revenue) as revenue,
        min(model_version) as model_version,
        min(scored_at) as scored_at

    from segmented_customers
    group by segment_rank

),

final as (

    select
        cast(segments.segment_rank as integer) as segment_rank,
        cast(segments.segment_name as varchar) as segment_name,
        cast(segments.is_insider as boolean) as is_insider,
        cast(segments.customers as bigint) as customers,
        {{ safe_ratio('segments.customers', 'totals.customers') }} as customer_share,
        cast(segments.mean_gross_revenue as double precision) as mean_gross_revenue,
        cast(segments.mean_recency_days as double precision) as mean_recency_days,
        cast(segments.mean_qty_invoices as double precision) as mean_qty_invoices,
        cast(segments.mean_qty_items as double precision) as mean_qty_items,
        cast(segments.mean_qty_products as double precision) as mean_qty_products,
        cast(segments.mean_avg_ticket as double precision) as mean_avg_ticket,
        cast(segments.mean_avg_recency_days as double precision) as mean_avg_recency_days,
        cast(segments.mean_frequency as double precision) as mean_frequency,
        cast(segments.mean_qty_returns as double precision) as mean_qty_returns,
        cast(segments.mean_avg_basket_size as double precision) as mean_avg_basket_size,
        cast(segments.mean_avg_unique_basket_size as double precision) as mean_avg_unique_basket_size,
        cast(segments.revenue as numeric(18, 4)) as revenue,
        {{ safe_ratio('segments.revenue', 'totals.revenue') }} as revenue_share,
        cast(segments.model_version as varchar) as model_version,
        cast(segments.scored_at as timestamp) as scored_at

    from segments
    cross join totals

)

select * from final
