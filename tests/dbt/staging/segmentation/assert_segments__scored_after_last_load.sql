{#-
    Warns when customer_segments is stale: raw data was loaded after the last scoring run, so the segments
    (and every mart built from them) describe older features. `insiders run` always scores after loading;
    this catches a plain `dbt build` after a load without `insiders score`.
-#}
{{ config(severity='warn') }}

with

last_load as (

    select max(loaded_at) as loaded_at
    from {{ source('online_retail', 'load_log') }}

),

last_scoring as (

    select max(scored_at) as scored_at
    from {{ ref('stg_segmentation__customer_segments') }}

),

final as (

    select
        last_load.loaded_at as last_loaded_at,
        last_scoring.scored_at as last_scored_at
    from last_load
    cross join last_scoring
    where last_scoring.scored_at is null or last_load.loaded_at > last_scoring.scored_at

)

select * from final
