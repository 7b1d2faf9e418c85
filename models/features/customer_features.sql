-- One row per customer with at least one purchase line on or before the reference day D_ref: the eleven
-- features of spec section 4, kept exactly as the original study defined them so results compare with it,
-- and better-defined features beside them (return_rate).
with

sales as (

    select * from {{ ref('int_sales__cleaned') }}

),

-- D_ref: the `as_of_date` variable when set, else the latest invoice day among all valid lines
-- (anonymous ones included: they are sales on that day too).
reference_day as (

    select coalesce({{ as_of_date() }}, max(invoice_day)) as as_of_date

    from sales

),

-- Lines after D_ref do not exist yet from the point of view of a run as of D_ref.
customer_lines as (

    select
        sales.customer_id,
        sales.invoice_no,
        sales.stock_code,
        sales.quantity,
        sales.line_revenue,
        sales.invoiced_at,
        sales.invoice_day,
        sales.line_number,
        sales.load_id,
        sales.country,
        sales.is_return,
        reference_day.as_of_date

    from sales
    cross join reference_day
    where
        not sales.is_anonymous
        and sales.invoice_day <= reference_day.as_of_date

),

purchases as (

    select
        customer_id,
        min(as_of_date) as as_of_date,
        min(invoice_day) as first_purchase_day,
        max(invoice_day) as last_purchase_day,
        sum(line_revenue) as gross_revenue,
        count(distinct invoice_no) as qty_invoices,
        sum(quantity) as qty_items,
        -- Lines, not distinct products: the study's definition.
        count(*) as qty_products,
        count(distinct stock_code) as qty_distinct_products,
        avg(line_revenue) as avg_ticket

    from customer_lines
    where not is_return
    group by customer_id

),

returns as (

    select
        customer_id,
        -sum(quantity) as qty_returns

    from customer_lines
    where is_return
    group by customer_id

),

-- Distinct days with any valid line, purchases and returns alike.
activity_days as (

    select distinct
        customer_id,
        invoice_day

    from customer_lines

),

-- The mean gap between consecutive distinct days telescopes to (last day - first day) / (days - 1);
-- null with a single day, as the spec asks.
activity as (

    select
        customer_id,
        {{ safe_ratio(days_between('min(invoice_day)', 'max(invoice_day)'), 'count(*) - 1') }} as avg_recency_days

    from activity_days
    group by customer_id

),

-- Country of the most recent purchase line; ties at the same minute go to the latest invoice, then the
-- last line of the file, so the choice never depends on the engine's row order.
latest_purchase_lines as (

    select
        customer_id,
        country,
        row_number() over (
            partition by customer_id
            order by invoiced_at desc, invoice_no desc, load_id desc, line_number desc
        ) as recency_rank

    from customer_lines
    where not is_return

),

customer_countries as (

    select
        customer_id,
        country

    from latest_purchase_lines
    where recency_rank = 1

),

final as (

    select
        cast(purchases.customer_id as bigint) as customer_id,
        cast(purchases.as_of_date as date) as as_of_date,
        cast(customer_countries.country as varchar) as country,
        cast(purchases.first_purchase_day as date) as first_purchase_day,
        cast(purchases.last_purchase_day as date) as last_purchase_day,
        cast(purchases.gross_revenue as numeric(18, 4)) as gross_revenue,
        {{ days_between('purchases.last_purchase_day', 'purchases.as_of_date') }} as recency_days,
        cast(purchases.qty_invoices as bigint) as qty_invoices,
        cast(purchases.qty_items as bigint) as qty_items,
        cast(purchases.qty_products as bigint) as qty_products,
        cast(purchases.avg_ticket as double precision) as avg_ticket,
        cast(activity.avg_recency_days as double precision) as avg_recency_days,
        {{ safe_ratio(
            'purchases.qty_invoices',
            days_between('purchases.first_purchase_day', 'purchases.last_purchase_day') ~ ' + 1'
        ) }} as frequency,
        cast(coalesce(returns.qty_returns, 0) as bigint) as qty_returns,
        {{ safe_ratio('purchases.qty_items', 'purchases.qty_invoices') }} as avg_basket_size,
        {{ safe_ratio('purchases.qty_distinct_products', 'purchases.qty_invoices') }} as avg_unique_basket_size,
        -- Beside the study's features: returns as a rate, so that the size of a customer's trade, not the
        -- mere fact of having returned something, is what a returns feature measures (docs/model.md).
        {{ safe_ratio(
            'coalesce(returns.qty_returns, 0)',
            'purchases.qty_items + coalesce(returns.qty_returns, 0)'
        ) }} as return_rate

    from purchases
    left join returns
        on purchases.customer_id = returns.customer_id
    left join activity
        on purchases.customer_id = activity.customer_id
    left join customer_countries
        on purchases.customer_id = customer_countries.customer_id

)

select * from final
