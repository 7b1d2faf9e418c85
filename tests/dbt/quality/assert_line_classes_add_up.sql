-- The per-class quality counts of a load add up to the lines stored for it, and its `valid` class holds
-- exactly the valid lines: the data-quality report neither drops nor double-counts a line.
with

quality_lines_by_load_class as (

    select * from {{ ref('quality_lines_by_load_class') }}

),

quality_loads as (

    select * from {{ ref('quality_loads') }}

),

class_sums as (

    select
        load_id,
        sum(line_count) as classified_lines,
        sum(case when line_class = 'valid' then line_count else 0 end) as valid_lines

    from quality_lines_by_load_class
    group by load_id

),

final as (

    select
        quality_loads.load_id,
        quality_loads.stored_lines,
        class_sums.classified_lines,
        quality_loads.valid_lines,
        class_sums.valid_lines as valid_lines_by_class

    from quality_loads
    inner join class_sums
        on quality_loads.load_id = class_sums.load_id
    where
        quality_loads.stored_lines <> class_sums.classified_lines
        or quality_loads.valid_lines <> class_sums.valid_lines

)

select * from final
