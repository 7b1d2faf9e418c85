-- One row that answers business questions 2 to 5 for the latest scoring run: how many Insiders, their share of
-- customers, what characterises them (mean spend, recency, invoices per month, days between purchases, products,
-- returns, basket; the study's frequency is kept for compatibility), the share of
-- revenue they bring, and how many entered and left since the previous run. Built as a single aggregate, so the
-- row exists even when a run finds no Insiders.
with

customer_segments as (

    select * from {{ ref('stg_segmentation__customer_segments') }}

),

dim_customers as (

    select * from {{ ref('dim_customers') }}

),

insiders_changes as (

    select * from {{ ref('insiders_changes') }}

),

current_run as (

    select
        max(run_id) as run_id,
        max(model_version) as model_version,
        max(scored_at) as scored_at

    from customer_segments

),

customers as (

    select
        max(as_of_date) as as_of_date,
        count(*) as customers,
        sum(case when is_insider then 1 else 0 end) as insiders,
        sum(gross_revenue) as revenue,
        sum(case when is_insider then gross_revenue else 0 end) as insiders_revenue,
        avg(case when is_insider then cast(gross_revenue as {{ type_double() }}) end) as mean_gross_revenue,
        avg(case when is_insider then cast(recency_days as {{ type_double() }}) end) as mean_recency_days,
        avg(case when is_insider then frequency end) as mean_frequency,
        avg(case when is_insider then cast(qty_invoices as {{ type_double() }}) end) as mean_qty_invoices,
        avg(case when is_insider then cast(qty_products as {{ type_double() }}) end) as mean_qty_products,
        avg(case when is_insider then cast(qty_returns as {{ type_double() }}) end) as mean_qty_returns,
        avg(case when is_insider then avg_basket_size end) as mean_avg_basket_size,
        avg(case when is_insider then avg_ticket end) as mean_avg_ticket,
        avg(case when is_insider then invoices_per_month end) as mean_invoices_per_month,
        avg(case when is_insider then days_between_purchases end) as mean_days_between_purchases

    from dim_customers
    where segment_rank is not null

),

changes as (

    select
        sum(case when insiders_changes.membership_change = 'entered' then 1 else 0 end) as entered,
        sum(case when insiders_changes.membership_change = 'left' then 1 else 0 end) as left_count

    from insiders_changes
    inner join current_run
        on insiders_changes.run_id = current_run.run_id

),

final as (

    select
        cast(current_run.run_id as {{ type_text() }}) as run_id,
        cast(current_run.model_version as {{ type_text() }}) as model_version,
        cast(current_run.scored_at as timestamp) as scored_at,
        cast(customers.as_of_date as date) as as_of_date,
        cast(coalesce(customers.insiders, 0) as bigint) as insiders,
        cast(customers.customers as bigint) as customers,
        {{ safe_ratio('customers.insiders', 'customers.customers') }} as insiders_share,
        cast(customers.mean_gross_revenue as {{ type_double() }}) as mean_gross_revenue,
        cast(customers.mean_recency_days as {{ type_double() }}) as mean_recency_days,
        cast(customers.mean_frequency as {{ type_double() }}) as mean_frequency,
        cast(customers.mean_qty_invoices as {{ type_double() }}) as mean_qty_invoices,
        cast(customers.mean_qty_products as {{ type_double() }}) as mean_qty_products,
        cast(customers.mean_qty_returns as {{ type_double() }}) as mean_qty_returns,
        cast(customers.mean_avg_basket_size as {{ type_double() }}) as mean_avg_basket_size,
        cast(customers.mean_avg_ticket as {{ type_double() }}) as mean_avg_ticket,
        cast(customers.mean_invoices_per_month as {{ type_double() }}) as mean_invoices_per_month,
        cast(customers.mean_days_between_purchases as {{ type_double() }}) as mean_days_between_purchases,
        cast(coalesce(customers.insiders_revenue, 0) as numeric(18, 4)) as insiders_revenue,
        cast(coalesce(customers.revenue, 0) as numeric(18, 4)) as revenue,
        {{ safe_ratio('customers.insiders_revenue', 'customers.revenue') }} as insiders_revenue_share,
        cast(coalesce(changes.entered, 0) as bigint) as entered_since_previous_run,
        cast(coalesce(changes.left_count, 0) as bigint) as left_since_previous_run

    from current_run
    cross join customers
    cross join changes

)

select * from final
