-- One row per customer with at least one purchase line on or before the reference day D_ref: the eleven
-- features of spec section 4, kept exactly as the original study defined them so results compare with it,
-- and better-defined features beside them (return_rate).
--
-- The sums, counts and days come from int_customers__aggregated (kept up to date incrementally, cut at D_ref
-- when var('as_of_date') is set); what moves with D_ref for everyone, recency, is derived here. A table
-- rebuilt on every run: one row per customer, no scan of the lines.
with

totals as (

    select * from {{ ref('int_customers__aggregated') }}

),

-- D_ref (int_reference_day).
reference_day as (

    select * from {{ ref('int_reference_day') }}

),

-- Customers with at least one purchase line (returns-only customers get no row).
purchases as (

    select
        totals.*,
        reference_day.as_of_date

    from totals
    cross join reference_day
    where totals.qty_products > 0

),

final as (

    select
        purchases.customer_id,
        cast(purchases.as_of_date as date) as as_of_date,
        purchases.country,
        purchases.first_purchase_day,
        purchases.last_purchase_day,
        purchases.gross_revenue,
        {{ days_between('purchases.last_purchase_day', 'purchases.as_of_date') }} as recency_days,
        purchases.qty_invoices,
        purchases.qty_items,
        purchases.qty_products,
        purchases.avg_ticket,
        -- The mean gap between consecutive distinct active days telescopes to
        -- (last day - first day) / (days - 1); null with a single day, as the spec asks.
        {{ safe_ratio(
            days_between('purchases.first_active_day', 'purchases.last_active_day'),
            'purchases.active_days - 1'
        ) }} as avg_recency_days,
        {{ safe_ratio(
            'purchases.qty_invoices',
            days_between('purchases.first_purchase_day', 'purchases.last_purchase_day') ~ ' + 1'
        ) }} as frequency,
        purchases.qty_returns,
        {{ safe_ratio('purchases.qty_items', 'purchases.qty_invoices') }} as avg_basket_size,
        {{ safe_ratio('purchases.qty_distinct_products', 'purchases.qty_invoices') }} as avg_unique_basket_size,
        -- Beside the study's features: returns as a rate, so that the size of a customer's trade, not the
        -- mere fact of having returned something, is what a returns feature measures (docs/model.md).
        {{ safe_ratio('purchases.qty_returns', 'purchases.qty_items + purchases.qty_returns') }} as return_rate

    from purchases

)

select * from final
