-- Every customer of customer_features has a current segment, and every segmented customer still has features.
-- Fails when customer_segments is stale: features were rebuilt (a new load, another as_of_date) and
-- `insiders score` has not run since. That is the point: the marts must not publish a partial segmentation.
-- It reads the two inputs, not the marts, so `dbt build` runs it before any mart and skips them all when it
-- fails: Power BI keeps the previous, consistent tables.
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

customer_segments as (

    select * from {{ ref('stg_segmentation__customer_segments') }}

),

features_without_segment as (

    select
        customer_features.customer_id,
        'features but no segment: run insiders score' as problem

    from customer_features
    left join customer_segments
        on customer_features.customer_id = customer_segments.customer_id
    where customer_segments.customer_id is null

),

segment_without_features as (

    select
        customer_segments.customer_id,
        'segment but no features: the segments are older than customer_features' as problem

    from customer_segments
    left join customer_features
        on customer_segments.customer_id = customer_features.customer_id
    where customer_features.customer_id is null

),

final as (

    select * from features_without_segment
    union all
    select * from segment_without_features

)

select * from final
