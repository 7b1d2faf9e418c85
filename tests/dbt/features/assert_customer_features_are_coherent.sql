-- Relations between features that hold by definition; a row here means a formula or a type went wrong.
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

final as (

    select
        customer_id,
        as_of_date,
        first_purchase_day,
        last_purchase_day,
        recency_days,
        qty_invoices,
        qty_products,
        qty_returns,
        frequency,
        avg_unique_basket_size,
        avg_recency_days,
        gross_revenue,
        avg_ticket

    from customer_features
    where
        first_purchase_day > last_purchase_day
        or last_purchase_day > as_of_date
        or recency_days < 0
        or qty_invoices < 1
        or qty_products < qty_invoices
        or qty_returns < 0
        or frequency <= 0
        or frequency > qty_invoices
        or avg_unique_basket_size <= 0
        or avg_recency_days < 0
        -- purchase lines have a positive price and a non-negative quantity
        or gross_revenue < 0
        or avg_ticket < 0

)

select * from final
