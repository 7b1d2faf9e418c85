{#-
    Fails the build when the reference day D_ref of customer_features, or any stored line, is dated outside
    the plausible window: before INSIDERS_EARLIEST_INVOICE_DATE (default 2000-01-01), after tomorrow for D_ref,
    or more than 14 hours after its own (UTC) load time for a line (invoice times are the shop's local time;
    UTC+14 is the latest time zone). One line dated 2101 would otherwise become D_ref and shift the recency of
    every customer. The loader quarantines such lines; this catches rows that reached the raw tables another
    way.
-#}
with

features as (

    select * from {{ ref('customer_features') }}

),

transactions as (

    select * from {{ ref('stg_online_retail__transactions') }}

),

bounds as (

    select {{ earliest_invoice_day() }} as earliest_day

),

implausible_reference_days as (

    select distinct
        'reference day' as problem,
        cast(features.as_of_date as timestamp) as dated_at

    from features
    cross join bounds
    where
        features.as_of_date < bounds.earliest_day
        or features.as_of_date > current_date + 1

),

implausible_lines as (

    select
        'line ' || transactions.transaction_line_id as problem,
        transactions.invoiced_at as dated_at

    from transactions
    cross join bounds
    where
        transactions.invoiced_at < bounds.earliest_day
        or transactions.invoiced_at > transactions.loaded_at + interval '14 hours'

),

final as (

    select * from implausible_reference_days
    union all
    select * from implausible_lines

)

select * from final
