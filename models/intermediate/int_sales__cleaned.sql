-- The valid lines of spec section 3: every line no rule excludes, anonymous lines included (they are real
-- revenue). A valid line with a negative quantity is a return, any other a purchase.
with

classified as (

    select * from {{ ref('int_transactions__classified') }}

),

final as (

    select
        transaction_line_id,
        load_id,
        line_number,
        invoice_no,
        stock_code,
        product_description,
        quantity,
        unit_price,
        line_revenue,
        invoiced_at,
        invoice_day,
        customer_id,
        country,
        is_anonymous,
        is_return,
        loaded_at

    from classified
    where exclusion_reason is null

)

select * from final
