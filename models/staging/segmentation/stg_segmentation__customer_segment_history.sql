-- One row per customer per scoring run, as `insiders score` appended it. Rows written before `run_kind`
-- existed were all live runs.
with

source as (

    select * from {{ source('segmentation', 'customer_segment_history') }}

),

renamed as (

    select
        run_id,
        customer_id,
        cluster_id,
        segment_rank,
        segment_name,
        is_insider,
        model_version,
        scored_at,
        coalesce(run_kind, 'live') as run_kind

    from source

)

select * from renamed
