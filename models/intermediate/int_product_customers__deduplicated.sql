-- sqlfluff:indentation:template_blocks_indent:False
-- depends_on: {{ ref('stg_online_retail__load_log') }}
-- One row per (product, known customer) pair with a valid line, and the load that first brought the pair: what
-- int_products__aggregated_by_load counts a product's distinct customers from, load by load, so that
-- dim_products need not read every line for count(distinct customer_id).
--
-- Incremental by load, like int_sales__cleaned: a run reads the lines of the loads no stored pair names yet and
-- appends the pairs it does not hold (raw lines are only ever added, a whole load at a time, so a stored pair
-- stays true). A load whose pairs were all known already never appears here: it is read again on each run and
-- adds nothing. A change of the cleaning rules deletes every row first (pre-hook), so that run rebuilds the
-- table in full. Not cut by var('as_of_date'): dim_products describes every valid line, as before.
{{
    config(
        materialized=incremental_materialization(),
        incremental_strategy='append',
        pre_hook="{{ delete_rows_of_other_cleaning_rules() }}",
        indexes=unique_key_indexes(['stock_code', 'customer_id']),
    )
}}

{#- The loads not here yet (macro loads_not_yet_in), named as literals: only their lines are read. #}
{%- set new_load_ids = loads_not_yet_in(this, 'first_load_id') %}
with

sales as (

    select * from {{ ref('int_sales__cleaned') }}

),

cleaning_rules as (

    select * from {{ ref('int_cleaning_rules') }}

),

customer_lines as (

    select
        stock_code,
        customer_id,
        load_id,
        loaded_at

    from sales
    where not is_anonymous

),

pair_loads as (

    select
        stock_code,
        customer_id,
        load_id,
        min(loaded_at) as loaded_at

    from customer_lines
    {% if is_incremental() %}
    where {{ load_id_in(new_load_ids) }}
    {% endif %}
    group by stock_code, customer_id, load_id

),

-- The earliest load of the pair (by load time, then id): loads are added in that order, so a full refresh
-- names the same load as the runs that added them one by one, and this table equals a rebuilt one.
ranked_pair_loads as (

    select
        stock_code,
        customer_id,
        load_id,
        row_number() over (
            partition by stock_code, customer_id
            order by loaded_at asc, load_id asc
        ) as load_rank

    from pair_loads

),

pairs as (

    select
        stock_code,
        customer_id,
        load_id as first_load_id

    from ranked_pair_loads
    where load_rank = 1

),

{% if is_incremental() %}
new_pairs as (

    select pairs.*

    from pairs
    left join {{ this }} as held_pairs
        on
            pairs.stock_code = held_pairs.stock_code
            and pairs.customer_id = held_pairs.customer_id
    where held_pairs.stock_code is null

),

{% else %}
new_pairs as (

    select * from pairs

),

{% endif %}
final as (

    select
        cast(new_pairs.stock_code as {{ type_text() }}) as stock_code,
        cast(new_pairs.customer_id as bigint) as customer_id,
        cast(new_pairs.first_load_id as {{ type_text() }}) as first_load_id,
        -- The rules that kept the lines (see int_cleaning_rules).
        cleaning_rules.cleaning_rules

    from new_pairs
    cross join cleaning_rules

)

select * from final
