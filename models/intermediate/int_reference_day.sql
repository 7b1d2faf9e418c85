-- The reference day D_ref, the one definition every model and test reads: the `as_of_date` variable when set
-- (a back-fill or a reproducible run), else the latest invoice day among all valid lines (anonymous ones
-- included: they are sales on that day too). One row.
--
-- A table, not a view: customer_features, customer_value_inputs and four tests read it, and as a view each of
-- them took the maximum over every valid line again (1.3 s each at x10 on PostgreSQL).
{{ config(materialized='table') }}
with

sales as (

    select * from {{ ref('int_sales__cleaned') }}

),

reference_day as (

    select coalesce({{ as_of_date() }}, max(invoice_day)) as as_of_date

    from sales

)

select * from reference_day
