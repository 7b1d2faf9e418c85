-- sqlfluff:indentation:template_blocks_indent:False
-- One row per customer with at least one valid line: the per-customer totals that customer_features derives
-- the features of spec section 4 from (sums, counts, distinct counts, first and last days, latest country).
--
-- Incremental by customer. A customer's row is recomputed, from all of their lines, when the number of their
-- valid lines differs from the stored valid_lines: raw lines are only added (see int_sales__cleaned), so that
-- is exactly the customers the new loads touched. Every other row is left as it is, and recomputing a customer
-- is idempotent, so a run killed half-way is repaired by the next one. Nothing here depends on D_ref except the
-- cut below: recency, which moves with D_ref for everyone, is derived in customer_features.
--
-- With var('as_of_date') set (a back-fill, or a reproducible run), lines after that day do not exist yet: the
-- model is then rebuilt in full as a table, every total cut at D_ref. A later run without the variable finds
-- the customers with lines after the cut by their line count and recomputes them, so the table is exact again.
-- A change of the cleaning rules deletes every row first (pre-hook), so that run recomputes every customer.
{{
    config(
        materialized=('table' if as_of_date_is_set() else incremental_materialization()),
        incremental_strategy='delete+insert',
        unique_key='customer_id',
        pre_hook="{{ delete_rows_of_other_cleaning_rules() }}",
    )
}}

with

sales as (

    select * from {{ ref('int_sales__cleaned') }}

),

cleaning_rules as (

    select * from {{ ref('int_cleaning_rules') }}

),

customer_lines as (

    select
        customer_id,
        invoice_no,
        stock_code,
        quantity,
        line_revenue,
        invoiced_at,
        invoice_day,
        load_id,
        line_number,
        country,
        is_return

    from sales
    where
        not is_anonymous
        -- Lines after D_ref when as_of_date is set; no line is cut without it.
        and invoice_day <= coalesce({{ as_of_date() }}, invoice_day)

),

{% if is_incremental() %}
line_counts as (

    select
        customer_id,
        count(*) as valid_lines

    from customer_lines
    group by customer_id

),

-- New customers, and customers whose stored totals miss some of their lines.
changed_customers as (

    select line_counts.customer_id

    from line_counts
    left join {{ this }} as held_totals
        on line_counts.customer_id = held_totals.customer_id
    where
        held_totals.customer_id is null
        or held_totals.valid_lines <> line_counts.valid_lines

),

lines as (

    select customer_lines.*

    from customer_lines
    inner join changed_customers
        on customer_lines.customer_id = changed_customers.customer_id

),

{% else %}
lines as (

    select * from customer_lines

),

{% endif %}
totals as (

    select
        customer_id,
        count(*) as valid_lines,
        min(invoice_day) filter (where not is_return) as first_purchase_day,
        max(invoice_day) filter (where not is_return) as last_purchase_day,
        sum(line_revenue) filter (where not is_return) as gross_revenue,
        count(distinct invoice_no) filter (where not is_return) as qty_invoices,
        sum(quantity) filter (where not is_return) as qty_items,
        -- Lines, not distinct products: the study's definition.
        count(*) filter (where not is_return) as qty_products,
        count(distinct stock_code) filter (where not is_return) as qty_distinct_products,
        {{ decimal_mean('line_revenue', 'not is_return') }} as avg_ticket,
        -sum(quantity) filter (where is_return) as qty_returns,
        -- Distinct days with any valid line, purchases and returns alike (for avg_recency_days).
        min(invoice_day) as first_active_day,
        max(invoice_day) as last_active_day,
        count(distinct invoice_day) as active_days,
        -- Country of the most recent purchase line (ties broken as in macro latest_line_first).
        {{ latest_value('country', where='not is_return') }} as country

    from lines
    group by customer_id

),

final as (

    select
        cast(totals.customer_id as bigint) as customer_id,
        cast(totals.valid_lines as bigint) as valid_lines,
        cast(totals.country as {{ type_text() }}) as country,
        cast(totals.first_purchase_day as date) as first_purchase_day,
        cast(totals.last_purchase_day as date) as last_purchase_day,
        cast(totals.gross_revenue as numeric(18, 4)) as gross_revenue,
        cast(coalesce(totals.qty_invoices, 0) as bigint) as qty_invoices,
        cast(coalesce(totals.qty_items, 0) as bigint) as qty_items,
        cast(coalesce(totals.qty_products, 0) as bigint) as qty_products,
        cast(coalesce(totals.qty_distinct_products, 0) as bigint) as qty_distinct_products,
        cast(totals.avg_ticket as {{ type_double() }}) as avg_ticket,
        cast(coalesce(totals.qty_returns, 0) as bigint) as qty_returns,
        cast(totals.first_active_day as date) as first_active_day,
        cast(totals.last_active_day as date) as last_active_day,
        cast(totals.active_days as bigint) as active_days,
        -- The rules the lines were cleaned by (see int_cleaning_rules).
        cleaning_rules.cleaning_rules

    from totals
    cross join cleaning_rules

)

select * from final
