{#-
    The reference day D_ref set by the `as_of_date` variable, as a SQL date expression, or a null date when
    the variable is unset (the models then fall back to the latest invoice day among valid lines).

    The value is checked before it reaches SQL: a typo such as 2011-6-30 must fail the run, not silently
    compare as a string or select nothing.
-#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', none) -%}
    {%- if not as_of_date_is_set() -%}
        cast(null as date)
    {%- else -%}
        {%- set text = value | string | trim -%}
        {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
            {{ exceptions.raise_compiler_error("var('as_of_date') must be a day as YYYY-MM-DD, got '" ~ text ~ "'") }}
        {%- endif -%}
        {#- Raises on an impossible day such as 2011-02-30. -#}
        {%- set _ = modules.datetime.datetime.strptime(text, '%Y-%m-%d') -%}
        cast('{{ text }}' as date)
    {%- endif -%}
{%- endmacro %}

{#-
    True when the `as_of_date` variable names a day (a back-fill or a reproducible run), false when it is unset
    and D_ref is the latest invoice day. The value itself is checked by as_of_date().
-#}
{% macro as_of_date_is_set() -%}
    {%- set value = var('as_of_date', none) -%}
    {{ return(not (value is none or (value | string | trim) in ('', 'none', 'None', 'null'))) }}
{%- endmacro %}
