-- The physical bound of the pipeline: the cleaning of spec section 3 and the per-customer features of spec
-- section 4 (models/intermediate/*.sql, models/features/customer_features.sql) as ONE statement run by DuckDB
-- straight from the raw CSV file, with explicit types. benchmarks/bench_pipeline.py runs it beside every
-- pipeline step and checks that its answer equals the pipeline's customer_features (count and column sums).
-- Parameters: $file (the raw CSV, plain or .gz, latin-1) and $seed_dir (the project's seeds/ folder, ending in /).
-- It reads the file as the loader does for the Kaggle layout (M/D/YYYY H:MM dates); it skips the loader's
-- bookkeeping (line numbers, rejected lines, load log), which is what makes it a lower bound.
create or replace temp table bare_features as
with raw as (
    select * from read_csv(
        $file, header = true, delim = ',', quote = '"', escape = '"', encoding = 'latin-1',
        timestampformat = '%m/%d/%Y %H:%M', auto_detect = false,
        columns = {
            'InvoiceNo': 'VARCHAR', 'StockCode': 'VARCHAR', 'Description': 'VARCHAR', 'Quantity': 'INTEGER',
            'InvoiceDate': 'TIMESTAMP', 'UnitPrice': 'DECIMAL(18,4)', 'CustomerID': 'BIGINT', 'Country': 'VARCHAR'
        }
    )
),
valid as (
    select
        raw.CustomerID as customer_id,
        raw.InvoiceNo as invoice_no,
        raw.StockCode as stock_code,
        raw.Quantity as quantity,
        cast(raw.Quantity * raw.UnitPrice as decimal(18, 4)) as line_revenue,
        raw.InvoiceDate as invoiced_at,
        cast(raw.InvoiceDate as date) as invoice_day,
        raw.Country as country,
        raw.Quantity < 0 as is_return
    from raw
    where raw.UnitPrice >= 0.04
        and raw.StockCode not in (select stock_code from read_csv($seed_dir || 'non_product_stock_codes.csv', all_varchar = true))
        and raw.Country not in (select country from read_csv($seed_dir || 'invalid_countries.csv', all_varchar = true))
        and coalesce(raw.CustomerID not in (select cast(customer_id as bigint) from read_csv($seed_dir || 'excluded_customers.csv', all_varchar = true)), true)
),
reference_day as (select max(invoice_day) as as_of_date from valid),
per_customer as (
    select
        customer_id,
        any_value(reference_day.as_of_date) as as_of_date,
        arg_max(country, (invoiced_at, invoice_no)) filter (where not is_return) as country,
        min(invoice_day) filter (where not is_return) as first_purchase_day,
        max(invoice_day) filter (where not is_return) as last_purchase_day,
        sum(line_revenue) filter (where not is_return) as gross_revenue,
        count(distinct invoice_no) filter (where not is_return) as qty_invoices,
        sum(quantity) filter (where not is_return) as qty_items,
        count(*) filter (where not is_return) as qty_products,
        count(distinct stock_code) filter (where not is_return) as qty_distinct_products,
        avg(line_revenue) filter (where not is_return) as avg_ticket,
        coalesce(-sum(quantity) filter (where is_return), 0) as qty_returns,
        count(distinct invoice_day) as active_days,
        min(invoice_day) as first_active_day,
        max(invoice_day) as last_active_day
    from valid cross join reference_day
    where customer_id is not null and invoice_day <= reference_day.as_of_date
    group by customer_id
    having count(*) filter (where not is_return) > 0
)
select
    customer_id,
    as_of_date,
    country,
    first_purchase_day,
    last_purchase_day,
    cast(gross_revenue as decimal(18, 4)) as gross_revenue,
    cast(as_of_date - last_purchase_day as integer) as recency_days,
    qty_invoices,
    cast(qty_items as bigint) as qty_items,
    qty_products,
    avg_ticket,
    (last_active_day - first_active_day) / nullif(active_days - 1, 0) as avg_recency_days,
    qty_invoices / (last_purchase_day - first_purchase_day + 1) as frequency,
    cast(qty_returns as bigint) as qty_returns,
    qty_items / qty_invoices as avg_basket_size,
    qty_distinct_products / qty_invoices as avg_unique_basket_size,
    qty_returns / (qty_items + qty_returns) as return_rate
from per_customer
