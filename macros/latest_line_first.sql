{#-
    The order that puts a customer's most recent line first, for "the latest line" rules (the country of a
    customer is that of their latest line): the latest timestamp, then the latest invoice at the same minute,
    then the latest load and line, so the choice never depends on the engine or on the order of the rows.
    Use inside a window: row_number() over (partition by customer_id order by {{ latest_line_first() }}).
-#}
{% macro latest_line_first() -%}
    invoiced_at desc, invoice_no desc, load_id desc, line_number desc
{%- endmacro %}
