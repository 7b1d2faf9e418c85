-- One row per customer with at least one purchase on or before the reference day D_ref: the inputs of the
-- customer-value models (BG/NBD for purchases and P(alive), Gamma-Gamma for spend per purchase). A purchase
-- is a day with purchase lines (several invoices on one day are one purchase, as these models count them);
-- its spend is the day's gross revenue (returns are not subtracted, as in customer_features).
with

sales as (

    select * from {{ ref('int_sales__cleaned') }}

),

-- D_ref (int_reference_day).
reference_day as (

    select * from {{ ref('int_reference_day') }}

),

purchase_days as (

    select
        sales.customer_id,
        sales.invoice_day,
        min(reference_day.as_of_date) as as_of_date,
        sum(sales.line_revenue) as day_spend

    from sales
    cross join reference_day
    where
        not sales.is_anonymous
        and not sales.is_return
        and sales.invoice_day <= reference_day.as_of_date
    group by sales.customer_id, sales.invoice_day

),

ranked_days as (

    select
        customer_id,
        invoice_day,
        as_of_date,
        day_spend,
        row_number() over (partition by customer_id order by invoice_day) as purchase_number

    from purchase_days

),

customers as (

    select
        customer_id,
        min(as_of_date) as as_of_date,
        min(invoice_day) as first_purchase_day,
        max(invoice_day) as last_purchase_day,
        count(*) as purchase_days,
        sum(day_spend) as gross_revenue,
        -- The first purchase is not a repeat purchase: Gamma-Gamma models the spend of repeat purchases.
        coalesce(sum(case when purchase_number > 1 then day_spend end), 0) as repeat_revenue

    from ranked_days
    group by customer_id

),

typed as (

    select
        cast(customer_id as bigint) as customer_id,
        cast(as_of_date as date) as as_of_date,
        cast(first_purchase_day as date) as first_purchase_day,
        cast(last_purchase_day as date) as last_purchase_day,
        cast(purchase_days - 1 as bigint) as frequency,
        cast(gross_revenue as numeric(18, 4)) as gross_revenue,
        cast(repeat_revenue as numeric(18, 4)) as repeat_revenue

    from customers

),

-- The mean is taken from the exact decimal sum, so both warehouses give the same double.
final as (

    select
        customer_id,
        as_of_date,
        first_purchase_day,
        last_purchase_day,
        frequency,
        {{ days_between('first_purchase_day', 'last_purchase_day') }} as recency,
        {{ days_between('first_purchase_day', 'as_of_date') }} as t,
        {{ safe_ratio('repeat_revenue', 'frequency') }} as monetary_value,
        gross_revenue,
        repeat_revenue

    from typed

)

select * from final
