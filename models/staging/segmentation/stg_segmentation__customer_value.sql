-- The predicted value of every customer, as `insiders value score` wrote it (empty without a pinned value
-- model).
with

source as (

    select * from {{ source('segmentation', 'customer_value') }}

),

renamed as (

    select
        customer_id,
        as_of_date,
        horizon_days,
        expected_purchases,
        expected_spend,
        expected_revenue,
        p_alive,
        model_version,
        run_id,
        scored_at

    from source

)

select * from renamed
