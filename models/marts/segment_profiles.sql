-- The key, as the enforced marts declare theirs with a primary_key constraint (macro add_primary_key).
{{ config(post_hook="{{ add_primary_key(this, ['segment_rank']) }}") }}
-- The study's profile table for the current segments: size, share of customers, the mean of every feature and
-- the share of revenue, one row per segment. "Every feature" is every numeric column of customer_features'
-- contract (macro feature_columns), so a new feature column gets its mean_<column> here without an edit; a
-- mean is over the customers who have a value (avg_recency_days: those with more than one active day).
-- Revenue is gross_revenue (purchases; returns not subtracted), the definition the segments were ranked by,
-- so the segments' revenue adds up to that of customer_features.
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
        {%- for column in feature_columns(exclude=['customer_id'], numeric_only=true) %}
        avg(cast({{ column.name }} as {{ type_double() }})) as mean_{{ column.name }},
        {%- endfor %}
        avg(invoices_per_month) as mean_invoices_per_month,
        avg(days_between_purchases) as mean_days_between_purchases,
        sum(gross_revenue) as revenue,
        min(model_version) as model_version,
        min(scored_at) as scored_at

    from segmented_customers
    group by segment_rank

),

final as (

    select
        cast(segments.segment_rank as integer) as segment_rank,
        cast(segments.segment_name as {{ type_text() }}) as segment_name,
        cast(segments.is_insider as boolean) as is_insider,
        cast(segments.customers as bigint) as customers,
        {{ safe_ratio('segments.customers', 'totals.customers') }} as customer_share,
        {%- for column in feature_columns(exclude=['customer_id'], numeric_only=true) %}
        cast(segments.mean_{{ column.name }} as {{ type_double() }}) as mean_{{ column.name }},
        {%- endfor %}
        cast(segments.mean_invoices_per_month as {{ type_double() }}) as mean_invoices_per_month,
        cast(segments.mean_days_between_purchases as {{ type_double() }}) as mean_days_between_purchases,
        cast(segments.revenue as numeric(18, 4)) as revenue,
        {{ safe_ratio('segments.revenue', 'totals.revenue') }} as revenue_share,
        cast(segments.model_version as {{ type_text() }}) as model_version,
        cast(segments.scored_at as timestamp) as scored_at

    from segments
    cross join totals

)

select * from final
