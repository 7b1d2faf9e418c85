-- One row per current segment: its rank, name, size and a description a marketer can read. The description is
-- written from the segment's profile at each build (not kept in a seed), so it always describes the segments
-- the pinned model produced, whatever their number and names. Amounts carry the currency (macro money_prefix).
with

segment_profiles as (

    select * from {{ ref('segment_profiles') }}

),

descriptions as (

    select
        segment_rank,
        case
            when is_insider
                then 'The Insiders loyalty programme: the segment with the highest mean spend. '
            else ''
        end
        || {{ format_number('customers') }} || ' customers ('
        || {{ format_number('100 * customer_share', 1) }} || ' % of customers) bringing '
        || {{ format_number('100 * revenue_share', 1) }} || ' % of revenue. On average {{ money_prefix() }}'
        || {{ format_number('mean_gross_revenue') }} || ' spent over '
        || {{ format_number('mean_qty_invoices', 1) }} || ' invoices, last purchase '
        || {{ format_number('mean_recency_days') }} || ' days before the reference day, '
        || {{ format_number('mean_qty_returns', 1) }} || ' units returned.' as segment_description

    from segment_profiles

),

final as (

    select
        cast(segment_profiles.segment_rank as integer) as segment_rank,
        cast(segment_profiles.segment_name as {{ type_text() }}) as segment_name,
        cast(descriptions.segment_description as {{ type_text() }}) as segment_description,
        cast(segment_profiles.customers as bigint) as customers,
        cast(segment_profiles.customer_share as {{ type_double() }}) as customer_share,
        cast(segment_profiles.is_insider as boolean) as is_insider

    from segment_profiles
    inner join descriptions
        on segment_profiles.segment_rank = descriptions.segment_rank

)

select * from final
