-- The loader's log and the tables agree for every load: every line read is stored, rejected or skipped (already
-- delivered by another file), and the rows the warehouse holds are the ones the log counts. A mismatch means
-- lines were lost or duplicated.
with

quality_loads as (

    select * from {{ ref('quality_loads') }}

),

final as (

    select
        load_id,
        file_name,
        lines_read,
        lines_loaded,
        lines_rejected,
        lines_skipped,
        stored_lines,
        stored_rejected_lines

    from quality_loads
    where
        lines_loaded <> stored_lines
        or lines_rejected <> stored_rejected_lines
        or lines_read <> lines_loaded + lines_rejected + lines_skipped

)

select * from final
