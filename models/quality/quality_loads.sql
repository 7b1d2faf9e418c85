-- sqlfluff:indentation:template_blocks_indent:False
-- One row per load: what the loader says it did next to what the warehouse holds, and how much of the
-- load survived cleaning. The load log and the tables must agree; tests/dbt checks that they do.
--
-- Incremental by load: a load's row never changes once its lines and its load_log row are committed (one
-- transaction in the loader), so a run adds the rows of the loads not here yet, from their rows in
-- quality_lines_by_load_class (which reads the lines).
-- A change of the cleaning rules deletes every row first (pre-hook), so that run recomputes every load.
{{
    config(
        materialized=incremental_materialization(),
        incremental_strategy='append',
        pre_hook="{{ delete_rows_of_other_cleaning_rules() }}",
    )
}}

{#- The loads not here yet (macro loads_not_yet_in), named as literals: only their lines are read. #}
{%- set new_load_ids = loads_not_yet_in(this) %}
with

load_log as (

    select * from {{ ref('stg_online_retail__load_log') }}
    {% if is_incremental() %}
    where {{ load_id_in(new_load_ids) }}
    {% endif %}

),

-- The stored lines per class (one row per load and class, zeros included): the only read of the loads'
-- lines; counting them here again took a second pass over every line (4.5 s at x10 on PostgreSQL).
lines_by_class as (

    select * from {{ ref('quality_lines_by_load_class') }}
    {% if is_incremental() %}
    where {{ load_id_in(new_load_ids) }}
    {% endif %}

),

cleaning_rules as (

    select * from {{ ref('int_cleaning_rules') }}

),

rejected_lines as (

    select * from {{ ref('stg_online_retail__rejected_lines') }}
    {% if is_incremental() %}
    where {{ load_id_in(new_load_ids) }}
    {% endif %}

),

stored_lines as (

    select
        load_id,
        sum(line_count) as stored_lines,
        sum(case when line_class = 'valid' then line_count else 0 end) as valid_lines,
        sum(case when line_class <> 'valid' then line_count else 0 end) as excluded_lines,
        min(first_invoiced_at) as first_invoiced_at,
        max(last_invoiced_at) as last_invoiced_at

    from lines_by_class
    group by load_id

),

stored_rejections as (

    select
        load_id,
        count(*) as stored_rejected_lines

    from rejected_lines
    group by load_id

),

final as (

    select
        load_log.load_id,
        load_log.file_name,
        load_log.file_layout,
        load_log.file_sha256,
        load_log.loaded_at,
        load_log.lines_read,
        load_log.lines_loaded,
        load_log.lines_rejected,
        load_log.lines_skipped,
        cast(coalesce(stored_lines.stored_lines, 0) as bigint) as stored_lines,
        cast(coalesce(stored_rejections.stored_rejected_lines, 0) as bigint) as stored_rejected_lines,
        cast(coalesce(stored_lines.valid_lines, 0) as bigint) as valid_lines,
        cast(coalesce(stored_lines.excluded_lines, 0) as bigint) as excluded_lines,
        {{ safe_ratio('stored_lines.valid_lines', 'load_log.lines_read') }} as valid_line_share,
        stored_lines.first_invoiced_at,
        stored_lines.last_invoiced_at,
        -- The rules the lines were classified by (see int_cleaning_rules).
        cleaning_rules.cleaning_rules

    from load_log
    cross join cleaning_rules
    left join stored_lines
        on load_log.load_id = stored_lines.load_id
    left join stored_rejections
        on load_log.load_id = stored_rejections.load_id

)

select * from final
