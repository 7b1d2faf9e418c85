-- One row: a digest of the cleaning rules of spec section 3 as they are now (the minimum price and the three
-- seeds). The incremental models store it beside each row and, when it differs, delete their rows before the
-- run (pre-hook delete_rows_of_other_cleaning_rules), so that a change of the rules recomputes them in full
-- instead of leaving past lines classified by the old rules.
with

non_product_stock_codes as (

    select * from {{ ref('non_product_stock_codes') }}

),

invalid_countries as (

    select * from {{ ref('invalid_countries') }}

),

excluded_customers as (

    select * from {{ ref('excluded_customers') }}

),

rule_texts as (

    select
        (
            select coalesce({{ ordered_string_agg('stock_code', '|', 'stock_code') }}, '')
            from non_product_stock_codes
        ) as stock_codes,
        (
            select coalesce({{ ordered_string_agg('country', '|', 'country') }}, '')
            from invalid_countries
        ) as countries,
        (
            select
                coalesce(
                    {{ ordered_string_agg('cast(customer_id as ' ~ type_text() ~ ')', '|', 'customer_id') }}, ''
                )
            from excluded_customers
        ) as customers

),

final as (

    select
        md5(
            'min_unit_price={{ var("min_unit_price") }};non_product_stock_codes=' || stock_codes
            || ';invalid_countries=' || countries
            || ';excluded_customers=' || customers
        ) as cleaning_rules

    from rule_texts

)

select * from final
