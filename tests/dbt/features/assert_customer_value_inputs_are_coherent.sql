-- The customer-value inputs obey the BG/NBD definitions: 0 <= recency <= t, a single purchase has recency 0
-- and no monetary value, a repeat buyer has one, and every customer agrees with customer_features on D_ref,
-- the first and last purchase day and gross revenue.
select
    inputs.customer_id,
    inputs.frequency,
    inputs.recency,
    inputs.t

from {{ ref('customer_value_inputs') }} as inputs
left join {{ ref('customer_features') }} as features
    on inputs.customer_id = features.customer_id
where
    inputs.frequency < 0
    or inputs.recency < 0
    or inputs.recency > inputs.t
    or (inputs.frequency = 0 and (inputs.recency <> 0 or inputs.monetary_value is not null))
    or (inputs.frequency > 0 and inputs.monetary_value is null)
    or features.customer_id is null
    or inputs.as_of_date <> features.as_of_date
    or inputs.first_purchase_day <> features.first_purchase_day
    or inputs.last_purchase_day <> features.last_purchase_day
    or inputs.gross_revenue <> features.gross_revenue
