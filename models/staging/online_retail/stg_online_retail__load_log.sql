-- One row per loaded file.
with

source as (

    select * from {{ source('online_retail', 'load_log') }}

),

renamed as (

    select
        load_id,
        file_name,
        file_sha256,
        layout as file_layout,
        cast(lines_read as bigint) as lines_read,
        cast(lines_loaded as bigint) as lines_loaded,
        cast(lines_rejected as bigint) as lines_rejected,
        -- Lines other files had already delivered (null in load logs written before the column existed).
        cast(coalesce(lines_skipped, 0) as bigint) as lines_skipped,
        cast(loaded_at as timestamp) as loaded_at

    from source

)

select * from renamed
