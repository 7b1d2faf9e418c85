-- One row per line the loader could not parse.
with

source as (

    select * from {{ source('online_retail', 'rejected_lines') }}

),

renamed as (

    select
        load_id,
        cast(line_number as bigint) as line_number,
        reason as rejection_reason,
        raw_line,
        cast(loaded_at as timestamp) as loaded_at

    from source

)

select * from renamed
