{#-
    What goes before an amount in readable text: the currency of var('currency'), else $INSIDERS_CURRENCY, else
    GBP (the data set's), as a symbol for GBP, EUR and USD (£, €, $) and as "<code> " for any other ISO 4217
    code, as the report and `insiders answers` write it. A value that is not a three-letter code fails the run.
-#}
{% macro money_prefix() -%}
    {%- set code = (var('currency', none) or env_var('INSIDERS_CURRENCY', 'GBP')) | string | trim | upper -%}
    {%- if not modules.re.match('^[A-Z]{3}$', code) -%}
        {{- exceptions.raise_compiler_error("the currency must be a three-letter ISO 4217 code, got '" ~ code ~ "'") -}}
    {%- endif -%}
    {{- return({'GBP': '£', 'EUR': '€', 'USD': '$'}.get(code, code ~ ' ')) -}}
{%- endmacro %}
