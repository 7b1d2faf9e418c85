-- One row per loaded invoice line: names and types for the rest of the project, nothing else.
with

source as (

    select * from {{ source('online_retail', 'transactions') }}

),

renamed as (

    select
        -- load_id and line_number identify a line; one text key saves every test and join from pairing them
        load_id || ':' || cast(line_number as {{ type_text() }}) as transaction_line_id,
        load_id,
        cast(line_number as bigint) as line_number,
        invoice_no,
        stock_code,
        description as product_description,
        cast(quantity as integer) as quantity,
        cast(invoice_date as timestamp) as invoiced_at,
        cast(unit_price as numeric(18, 4)) as unit_price,
        cast(customer_id as bigint) as customer_id,
        country,
        cast(loaded_at as timestamp) as loaded_at

    from source

)

select * from renamed
