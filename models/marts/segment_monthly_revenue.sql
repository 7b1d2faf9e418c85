-- Revenue per current segment and calendar month, from the valid lines up to the reference day of the
-- segmentation. Every line is counted once: lines of a segmented customer under that segment; anonymous lines
-- (no customer: real revenue, but nobody to segment) in a bucket of their own, 'Anonymous'; lines of customers
-- without a segment (returns only) under 'Unsegmented'. Both buckets have a null segment_rank.
with

fct_sales as (

    select * from {{ ref('fct_sales') }}

),

dim_customers as (

    select * from {{ ref('dim_customers') }}

),

-- The segments describe customers as of D_ref; later lines (a back-fill) are left out.
reference_day as (

    select max(as_of_date) as as_of_date

    from dim_customers

),

lines as (

    select
        {{ calendar_month('fct_sales.invoice_day') }} as revenue_month,
        dim_customers.segment_rank,
        case
            when fct_sales.customer_id is null then 'Anonymous'
            when dim_customers.segment_rank is null then 'Unsegmented'
            else dim_customers.segment_name
        end as segment_name,
        coalesce(dim_customers.is_insider, false) as is_insider,
        fct_sales.customer_id,
        fct_sales.invoice_no,
        fct_sales.is_return,
        fct_sales.revenue

    from fct_sales
    cross join reference_day
    left join dim_customers
        on fct_sales.customer_id = dim_customers.customer_id
    where fct_sales.invoice_day <= reference_day.as_of_date

),

monthly as (

    select
        revenue_month,
        segment_rank,
        segment_name,
        is_insider,
        sum(case when is_return then 0 else revenue end) as gross_revenue,
        -sum(case when is_return then revenue else 0 end) as returned_revenue,
        sum(revenue) as net_revenue,
        count(distinct customer_id) as customers,
        count(distinct invoice_no) as invoices,
        count(*) as line_count

    from lines
    group by
        revenue_month,
        segment_rank,
        segment_name,
        is_insider

),

final as (

    select
        cast(revenue_month as date) as revenue_month,
        cast(segment_rank as integer) as segment_rank,
        cast(segment_name as {{ type_text() }}) as segment_name,
        cast(is_insider as boolean) as is_insider,
        cast(gross_revenue as numeric(18, 4)) as gross_revenue,
        cast(returned_revenue as numeric(18, 4)) as returned_revenue,
        cast(net_revenue as numeric(18, 4)) as net_revenue,
        cast(customers as bigint) as customers,
        cast(invoices as bigint) as invoices,
        cast(line_count as bigint) as line_count

    from monthly

)

select * from final
