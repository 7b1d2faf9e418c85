-- The marts combine the current segments (customer_segments) with the history (customer_segment_history); they
-- only agree if the current table holds exactly one run and that run is the latest of the history, customer for
-- customer. Returns the customers where current and latest run differ, or a row per extra run id.
with

customer_segments as (

    select * from {{ ref('stg_segmentation__customer_segments') }}

),

history as (

    select * from {{ ref('stg_segmentation__customer_segment_history') }}

),

current_runs as (

    select
        run_id,
        count(*) as customers

    from customer_segments
    group by run_id

),

latest_run as (

    select run_id

    from (
        select
            run_id,
            row_number() over (order by max(scored_at) desc, run_id desc) as recency_rank

        from history
        group by run_id
    ) as ranked_runs
    where recency_rank = 1

),

latest_members as (

    select history.*

    from history
    inner join latest_run
        on history.run_id = latest_run.run_id

),

run_count as (

    select count(*) as runs

    from current_runs

),

too_many_runs as (

    select
        cast(null as bigint) as customer_id,
        'customer_segments holds several runs: ' || current_runs.run_id as problem

    from current_runs
    cross join run_count
    where run_count.runs > 1

),

differences as (

    select
        coalesce(customer_segments.customer_id, latest_members.customer_id) as customer_id,
        case
            when latest_members.customer_id is null then 'in customer_segments, not in the latest run of the history'
            when customer_segments.customer_id is null then 'in the latest run of the history, not in customer_segments'
            else 'current segment differs from the latest run of the history'
        end as problem

    from customer_segments
    full outer join latest_members
        on customer_segments.customer_id = latest_members.customer_id
    where
        customer_segments.customer_id is null
        or latest_members.customer_id is null
        or customer_segments.run_id <> latest_members.run_id
        or customer_segments.segment_rank <> latest_members.segment_rank

),

final as (

    select * from too_many_runs
    union all
    select * from differences

)

select * from final
