-- The transitions of a run account for every customer once: all but the 'gone' ones are the customers scored in
-- the run, and all but the 'new' ones are the customers scored in the previous run (none for the first run).
-- Returns the runs where a count does not match.
with

history as (

    select * from {{ ref('stg_segmentation__customer_segment_history') }}

),

segment_transitions as (

    select * from {{ ref('segment_transitions') }}

),

run_sizes as (

    select
        run_id,
        count(*) as customers

    from history
    group by run_id

),

transition_totals as (

    select
        run_id,
        previous_run_id,
        sum(case when transition <> 'gone' then customers else 0 end) as customers_now,
        sum(case when transition <> 'new' then customers else 0 end) as customers_before

    from segment_transitions
    group by run_id, previous_run_id

),

final as (

    select
        run_sizes.run_id,
        run_sizes.customers as customers_in_run,
        transition_totals.customers_now,
        coalesce(previous_sizes.customers, 0) as customers_in_previous_run,
        transition_totals.customers_before

    from run_sizes
    left join transition_totals
        on run_sizes.run_id = transition_totals.run_id
    left join run_sizes as previous_sizes
        on transition_totals.previous_run_id = previous_sizes.run_id

)

select * from final
where
    customers_now is null
    or customers_in_run <> customers_now
    or customers_in_previous_run <> customers_before
