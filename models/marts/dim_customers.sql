-- The key, as the enforced marts declare theirs with a primary_key constraint (macro add_primary_key).
{{ config(post_hook="{{ add_primary_key(this, ['customer_id']) }}") }}
-- One row per customer: every customer of customer_features with their features and current segment, plus the
-- few customers who have valid lines but no features row (returns only, or only lines after the reference day
-- of a back-fill), so that every customer line of fct_sales finds its customer. The feature columns are every
-- column of customer_features' contract (macro feature_columns), cast to their contract type: a new feature
-- column reaches this mart, and Power BI, without an edit here.
{%- set selected_by_hand = ['customer_id', 'country', 'first_purchase_day', 'last_purchase_day'] %}
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

customer_segments as (

    select * from {{ ref('stg_segmentation__customer_segments') }}

),

-- Predicted value (docs/value.md): empty until a value model is pinned and applied, so these columns are null.
customer_value as (

    select * from {{ ref('stg_segmentation__customer_value') }}

),

-- Repeat purchase days up to the reference day (frequency = distinct purchase days - 1), counted once for the
-- value model; read here instead of counting every line's day again.
customer_value_inputs as (

    select * from {{ ref('customer_value_inputs') }}

),

sales as (

    select * from {{ ref('int_sales__cleaned') }}

),

-- The lines of the few customers without features: the others' lines are dropped by the anti-join before
-- anything is sorted or grouped.
lines_without_features as (

    select
        sales.customer_id,
        sales.country,
        sales.invoiced_at,
        sales.invoice_no,
        sales.load_id,
        sales.line_number

    from sales
    left join customer_features
        on sales.customer_id = customer_features.customer_id
    where
        not sales.is_anonymous
        and customer_features.customer_id is null

),

-- The country of a customer without features: that of their latest line (macro latest_line_first's order).
customers_without_features as (

    select
        customer_id,
        {{ latest_value('country') }} as country

    from lines_without_features
    group by customer_id

),

customers as (

    select
        customer_id,
        country,
        true as has_features

    from customer_features

    union all

    select
        customer_id,
        country,
        false as has_features

    from customers_without_features

),

final as (

    select
        cast(customers.customer_id as bigint) as customer_id,
        cast(customers.country as {{ type_text() }}) as country,
        -- Columns of customer_features pass through as they are: its enforced contract fixes their types.
        customer_features.first_purchase_day,
        customer_features.last_purchase_day,
        cast(customers.has_features as boolean) as has_features,
        {%- for column in feature_columns(exclude=selected_by_hand) %}
        customer_features.{{ column.name }},
        {%- endfor %}
        -- Purchase rhythm in words a marketer reads correctly (the study's `frequency`, invoices per day of the
        -- active span, makes a one-day buyer the most frequent customer): invoices per month as a customer
        -- (first purchase to the reference day, counted as at least one month), and mean days between two
        -- purchase days (null with a single purchase day).
        {{ safe_ratio(
            'customer_features.qty_invoices',
            'greatest(1.0, cast(' ~ days_between('customer_features.first_purchase_day', 'customer_features.as_of_date')
            ~ ' + 1 as ' ~ type_double() ~ ') / 30.4375)'
        ) }} as invoices_per_month,
        {{ safe_ratio(
            days_between('customer_features.first_purchase_day', 'customer_features.last_purchase_day'),
            'nullif(customer_value_inputs.frequency, 0)'
        ) }} as days_between_purchases,
        cast(customer_segments.segment_rank as integer) as segment_rank,
        cast(customer_segments.segment_name as {{ type_text() }}) as segment_name,
        -- A customer without a segment is not eligible: false, not unknown, for filters in reports.
        cast(coalesce(customer_segments.is_insider, false) as boolean) as is_insider,
        cast(customer_segments.model_version as {{ type_text() }}) as model_version,
        cast(customer_segments.scored_at as timestamp) as scored_at,
        cast(customer_value.horizon_days as integer) as value_horizon_days,
        cast(customer_value.expected_purchases as {{ type_double() }}) as expected_purchases,
        cast(customer_value.expected_revenue as {{ type_double() }}) as expected_revenue,
        cast(customer_value.p_alive as {{ type_double() }}) as p_alive,
        cast(customer_value.model_version as {{ type_text() }}) as value_model_version

    from customers
    left join customer_features
        on customers.customer_id = customer_features.customer_id
    left join customer_value_inputs
        on customers.customer_id = customer_value_inputs.customer_id
    left join customer_segments
        on customers.customer_id = customer_segments.customer_id
    left join customer_value
        on customers.customer_id = customer_value.customer_id

)

select * from final
