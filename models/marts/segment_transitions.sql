-- How customers moved between segments from one scoring run to the next: one row per run and per (from, to)
-- pair of segments, with the number of customers. `from` is the customer's segment in the previous run (null
-- when the customer was not scored then: 'new'; every customer of the first run is new), `to` the segment in
-- this run (null when the customer is no longer scored: 'gone').
with

paired as (

    select * from {{ ref('int_segment_history__paired') }}

),

transitions as (

    select
        run_id,
        model_version,
        scored_at,
        run_number,
        previous_run_id,
        previous_model_version,
        previous_scored_at,
        from_rank,
        from_name,
        to_rank,
        to_name,
        transition,
        count(*) as customers

    from paired
    group by
        run_id,
        model_version,
        scored_at,
        run_number,
        previous_run_id,
        previous_model_version,
        previous_scored_at,
        from_rank,
        from_name,
        to_rank,
        to_name,
        transition

),

final as (

    select
        cast(run_id as {{ type_text() }}) as run_id,
        cast(model_version as {{ type_text() }}) as model_version,
        cast(scored_at as timestamp) as scored_at,
        cast(run_number as bigint) as run_number,
        cast(previous_run_id as {{ type_text() }}) as previous_run_id,
        cast(previous_model_version as {{ type_text() }}) as previous_model_version,
        cast(previous_scored_at as timestamp) as previous_scored_at,
        cast(from_rank as integer) as from_rank,
        cast(from_name as {{ type_text() }}) as from_name,
        cast(to_rank as integer) as to_rank,
        cast(to_name as {{ type_text() }}) as to_name,
        cast(transition as {{ type_text() }}) as transition,
        cast(customers as bigint) as customers

    from transitions

)

select * from final
