-- sqlfluff:indentation:template_blocks_indent:False
-- The valid lines of spec section 3: every line no rule excludes, anonymous lines included (they are real
-- revenue). A valid line with a negative quantity is a return, any other a purchase.
--
-- Incremental by load: raw lines are only ever added, a whole load at a time (the loader writes a load's lines
-- and its load_log row in one transaction, and nothing deletes a load), so a run appends the valid lines of
-- the loads this table does not hold yet. `dbt build --full-refresh` rebuilds it from every loaded line and
-- gives the same rows. A change to the cleaning rules (a seed, var('min_unit_price')) changes past lines too:
-- it needs a full refresh (docs/operations.md).
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
    )
}}

with

classified as (

    select * from {{ ref('int_transactions__classified') }}

),

{% if is_incremental() %}
-- Loads already here. A load whose lines were all excluded never appears and is looked at again each run;
-- it adds nothing.
stored_loads as (

    select distinct load_id

    from {{ this }}

),

{% endif %}
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
    where
        exclusion_reason is null
    {% if is_incremental() %}
    and not exists (
        select 1
        from stored_loads
        where stored_loads.load_id = classified.load_id
    )
    {% endif %}

)

select * from final
