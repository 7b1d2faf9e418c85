-- Run by run, the Insiders of a scoring run are exactly the customers who entered at or before that run and
-- have not left since: the number who entered minus the number who left, summed over the runs so far, equals
-- the number of Insiders in the run. Returns the runs where it does not.
with

history as (

    select * from {{ ref('stg_segmentation__customer_segment_history') }}

),

insiders_changes as (

    select * from {{ ref('insiders_changes') }}

),

runs as (

    select
        run_id,
        min(scored_at) as scored_at,
        sum(case when is_insider then 1 else 0 end) as insiders

    from history
    group by run_id

),

numbered_runs as (

    select
        run_id,
        insiders,
        row_number() over (order by scored_at, run_id) as run_number

    from runs

),

net_changes as (

    select
        numbered_runs.run_number,
        sum(
            case
                when insiders_changes.membership_change = 'entered' then 1
                when insiders_changes.membership_change = 'left' then -1
                else 0
            end
        ) as net_change

    from numbered_runs
    left join insiders_changes
        on numbered_runs.run_id = insiders_changes.run_id
    group by numbered_runs.run_number

),

running as (

    select
        numbered_runs.run_id,
        numbered_runs.run_number,
        numbered_runs.insiders,
        sum(net_changes.net_change) over (
            order by numbered_runs.run_number
            rows between unbounded preceding and current row
        ) as insiders_from_changes

    from numbered_runs
    inner join net_changes
        on numbered_runs.run_number = net_changes.run_number

)

select * from running
where insiders <> insiders_from_changes
