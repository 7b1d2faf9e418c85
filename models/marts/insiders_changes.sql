-- Who entered and who left the Insiders at each scoring run, compared with the run before it (business question
-- 5): one row per run and per customer whose membership changed. On the first run every Insider has entered.
-- The reason says where the customer came from or went to, and whether the model changed between the two runs
-- (a retrain, not the customer's behaviour, may explain the move).
with

paired as (

    select * from {{ ref('int_segment_history__paired') }}

),

changes as (

    select
        run_id,
        model_version,
        scored_at,
        run_number,
        previous_run_id,
        previous_model_version,
        customer_id,
        case when is_insider then 'entered' else 'left' end as membership_change,
        from_rank,
        from_name,
        to_rank,
        to_name,
        coalesce(previous_model_version <> model_version, false) as model_changed

    from paired
    where was_insider <> is_insider

),

final as (

    select
        cast(run_id as {{ type_text() }}) as run_id,
        cast(model_version as {{ type_text() }}) as model_version,
        cast(scored_at as timestamp) as scored_at,
        cast(run_number as bigint) as run_number,
        cast(previous_run_id as {{ type_text() }}) as previous_run_id,
        cast(customer_id as bigint) as customer_id,
        cast(membership_change as {{ type_text() }}) as membership_change,
        cast(from_rank as integer) as previous_segment_rank,
        cast(from_name as {{ type_text() }}) as previous_segment_name,
        cast(to_rank as integer) as new_segment_rank,
        cast(to_name as {{ type_text() }}) as new_segment_name,
        cast(model_changed as boolean) as model_changed,
        cast(
            case
                when previous_run_id is null then 'first scoring run'
                when from_rank is null then 'first scored in this run'
                when to_rank is null then 'not scored in this run'
                when membership_change = 'entered' then 'moved up from ' || from_name
                else 'moved to ' || to_name
            end
            || case
                when model_changed
                    then ' (model changed from ' || previous_model_version || ' to ' || model_version || ')'
                else ''
            end
            as {{ type_text() }}
        ) as reason

    from changes

)

select * from final
