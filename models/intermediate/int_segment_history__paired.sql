-- Every scoring run of customer_segment_history next to the run before it, customer by customer: one row per
-- run and per customer scored in that run or in the previous one, with both segments (null on the side where
-- the customer was not scored). The first run has no previous run, so all its customers are new.
with

history as (

    select * from {{ ref('stg_segmentation__customer_segment_history') }}

),

runs as (

    select
        run_id,
        min(model_version) as model_version,
        min(scored_at) as scored_at

    from history
    group by run_id

),

-- Runs in the order they were scored; the run id breaks a tie so the order never depends on the engine.
numbered_runs as (

    select
        run_id,
        model_version,
        scored_at,
        row_number() over (order by scored_at, run_id) as run_number

    from runs

),

run_pairs as (

    select
        current_run.run_id,
        current_run.model_version,
        current_run.scored_at,
        current_run.run_number,
        previous_run.run_id as previous_run_id,
        previous_run.model_version as previous_model_version,
        previous_run.scored_at as previous_scored_at

    from numbered_runs as current_run
    left join numbered_runs as previous_run
        on current_run.run_number - 1 = previous_run.run_number

),

current_members as (

    select
        run_pairs.run_id,
        history.customer_id,
        history.segment_rank,
        history.segment_name,
        history.is_insider

    from run_pairs
    inner join history
        on run_pairs.run_id = history.run_id

),

previous_members as (

    select
        run_pairs.run_id,
        history.customer_id,
        history.segment_rank,
        history.segment_name,
        history.is_insider

    from run_pairs
    inner join history
        on run_pairs.previous_run_id = history.run_id

),

members as (

    select
        coalesce(current_members.run_id, previous_members.run_id) as run_id,
        coalesce(current_members.customer_id, previous_members.customer_id) as customer_id,
        previous_members.segment_rank as from_rank,
        previous_members.segment_name as from_name,
        coalesce(previous_members.is_insider, false) as was_insider,
        current_members.segment_rank as to_rank,
        current_members.segment_name as to_name,
        coalesce(current_members.is_insider, false) as is_insider

    from current_members
    full outer join previous_members
        on
            current_members.run_id = previous_members.run_id
            and current_members.customer_id = previous_members.customer_id

),

final as (

    select
        run_pairs.run_id,
        run_pairs.model_version,
        run_pairs.scored_at,
        run_pairs.run_number,
        run_pairs.previous_run_id,
        run_pairs.previous_model_version,
        run_pairs.previous_scored_at,
        members.customer_id,
        members.from_rank,
        members.from_name,
        members.was_insider,
        members.to_rank,
        members.to_name,
        members.is_insider,
        -- Compared by name, not rank: after a retrain, rank 3 may be another kind of segment, while the name
        -- says what the segment is (within one model, names and ranks match one to one).
        case
            when members.from_rank is null then 'new'
            when members.to_rank is null then 'gone'
            when members.from_name = members.to_name then 'stayed'
            else 'moved'
        end as transition

    from members
    inner join run_pairs
        on members.run_id = run_pairs.run_id

)

select * from final
