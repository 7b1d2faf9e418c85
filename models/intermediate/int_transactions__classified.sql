-- Every loaded line with the first cleaning rule of spec section 3 that excludes it (null when none).
-- Lines are flagged, never dropped, so the data-quality model can count each reason.
with

transactions as (

    select * from {{ ref('stg_online_retail__transactions') }}

),

non_product_stock_codes as (

    select * from {{ ref('non_product_stock_codes') }}

),

invalid_countries as (

    select * from {{ ref('invalid_countries') }}

),

excluded_customers as (

    select * from {{ ref('excluded_customers') }}

),

-- The seeds have unique keys (tested), so these left joins never multiply lines.
-- Plain equality is case-sensitive on every supported adapter: `m` and `M` are both listed on purpose.
flagged as (

    select
        transactions.*,
        transactions.unit_price < {{ var('min_unit_price') }} as is_price_below_minimum,
        non_product_stock_codes.stock_code is not null as is_non_product_stock_code,
        invalid_countries.country is not null as is_invalid_country,
        excluded_customers.customer_id is not null as is_excluded_customer

    from transactions
    left join non_product_stock_codes
        on transactions.stock_code = non_product_stock_codes.stock_code
    left join invalid_countries
        on transactions.country = invalid_countries.country
    left join excluded_customers
        on transactions.customer_id = excluded_customers.customer_id

),

classified as (

    select
        transaction_line_id,
        load_id,
        line_number,
        invoice_no,
        stock_code,
        product_description,
        quantity,
        unit_price,
        cast(quantity * unit_price as numeric(18, 4)) as line_revenue,
        invoiced_at,
        {{ calendar_day('invoiced_at') }} as invoice_day,
        customer_id,
        country,
        -- The order of the branches is the order of the rules: the first that applies wins.
        case
            when is_price_below_minimum then 'price_below_minimum'
            when is_non_product_stock_code then 'non_product_stock_code'
            when is_invalid_country then 'invalid_country'
            when is_excluded_customer then 'excluded_customer'
        end as exclusion_reason,
        -- Anonymous lines stay in the sales (rule 5) but belong to no customer.
        customer_id is null as is_anonymous,
        quantity < 0 as is_return,
        loaded_at

    from flagged

),

final as (

    select
        *,
        exclusion_reason is null as is_valid

    from classified

)

select * from final
