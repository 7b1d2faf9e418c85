{#-
    The earliest plausible invoice day as a SQL date: INSIDERS_EARLIEST_INVOICE_DATE (YYYY-MM-DD), the same
    variable the loader uses to quarantine older lines, else 2000-01-01. Checked before it reaches SQL.
-#}
{% macro earliest_invoice_day() -%}
    {%- set text = env_var('INSIDERS_EARLIEST_INVOICE_DATE', '2000-01-01') | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
        {%- set message = "INSIDERS_EARLIEST_INVOICE_DATE must be a day as YYYY-MM-DD, got '" ~ text ~ "'" -%}
        {{ exceptions.raise_compiler_error(message) }}
    {%- endif -%}
    {#- Raises on an impossible day such as 2000-02-30. -#}
    {%- set _ = modules.datetime.datetime.strptime(text, '%Y-%m-%d') -%}
    cast('{{ text }}' as date)
{%- endmacro %}
