-- One row per segment: what its customers are expected to bring over the value horizon, and the revenue at
-- risk (docs/value.md). At risk: a customer whose P(alive) is below 0.5, who has probably stopped buying; the
-- segment's at-risk revenue is what those customers have spent to date (gross revenue), the trade the
-- programme stands to lose. Without value predictions (no value model pinned) the value columns are null.
with

customers as (

    select * from {{ ref('dim_customers') }}
    where segment_rank is not null

),

final as (

    select
        cast(segment_rank as integer) as segment_rank,
        cast(segment_name as {{ type_text() }}) as segment_name,
        cast(segment_rank = 1 as boolean) as is_insider,
        cast(count(*) as bigint) as customers,
        cast(count(expected_revenue) as bigint) as customers_with_value,
        cast(max(value_horizon_days) as integer) as horizon_days,
        cast(sum(expected_purchases) as {{ type_double() }}) as expected_purchases,
        cast(sum(expected_revenue) as {{ type_double() }}) as expected_revenue,
        cast(
            case when count(p_alive) > 0 then sum(case when p_alive < 0.5 then 1 else 0 end) end as bigint
        ) as at_risk_customers,
        cast(
            case when count(p_alive) > 0 then sum(case when p_alive < 0.5 then gross_revenue else 0 end) end
            as numeric(18, 4)
        ) as at_risk_revenue,
        cast(avg(p_alive) as {{ type_double() }}) as mean_p_alive,
        cast(max(value_model_version) as {{ type_text() }}) as value_model_version

    from customers
    group by segment_rank, segment_name

)

select * from final
