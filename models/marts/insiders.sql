-- The customers eligible for the Insiders loyalty programme now (business question 1), with what characterises
-- them and since when they have been Insiders without interruption.
with

dim_customers as (

    select * from {{ ref('dim_customers') }}

),

insiders_changes as (

    select * from {{ ref('insiders_changes') }}

),

-- The last time each customer entered the Insiders: for a current Insider, the start of the current stay.
latest_entries as (

    select
        customer_id,
        max(scored_at) as insider_since

    from insiders_changes
    where membership_change = 'entered'
    group by customer_id

),

final as (

    select
        cast(dim_customers.customer_id as bigint) as customer_id,
        cast(dim_customers.country as {{ type_text() }}) as country,
        cast(dim_customers.first_purchase_day as date) as first_purchase_day,
        cast(dim_customers.last_purchase_day as date) as last_purchase_day,
        cast(dim_customers.as_of_date as date) as as_of_date,
        cast(dim_customers.gross_revenue as numeric(18, 4)) as gross_revenue,
        cast(dim_customers.recency_days as integer) as recency_days,
        cast(dim_customers.qty_invoices as bigint) as qty_invoices,
        cast(dim_customers.qty_items as bigint) as qty_items,
        cast(dim_customers.qty_products as bigint) as qty_products,
        cast(dim_customers.avg_ticket as {{ type_double() }}) as avg_ticket,
        cast(dim_customers.avg_recency_days as {{ type_double() }}) as avg_recency_days,
        cast(dim_customers.frequency as {{ type_double() }}) as frequency,
        cast(dim_customers.qty_returns as bigint) as qty_returns,
        cast(dim_customers.avg_basket_size as {{ type_double() }}) as avg_basket_size,
        cast(dim_customers.avg_unique_basket_size as {{ type_double() }}) as avg_unique_basket_size,
        cast(latest_entries.insider_since as timestamp) as insider_since,
        cast(dim_customers.model_version as {{ type_text() }}) as model_version,
        cast(dim_customers.scored_at as timestamp) as scored_at

    from dim_customers
    left join latest_entries
        on dim_customers.customer_id = latest_entries.customer_id
    where dim_customers.is_insider

)

select * from final
