-- The current segment of every customer, as `insiders score` wrote it. The only reader of the source table:
-- the marts read this view, so the lineage shows the scoring job between customer_features and the marts.
with

source as (

    select * from {{ source('segmentation', 'customer_segments') }}

),

renamed as (

    select
        customer_id,
        cluster_id,
        segment_rank,
        segment_name,
        is_insider,
        model_version,
        run_id,
        scored_at

    from source

)

select * from renamed
