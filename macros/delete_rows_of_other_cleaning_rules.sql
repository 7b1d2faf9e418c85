{#-
    Pre-hook of the incremental models that depend on the cleaning rules: on an incremental run, delete the rows
    whose `cleaning_rules` digest is not the current one (int_cleaning_rules), so that a seed or
    var('min_unit_price') change makes the run recompute them all; nothing on a full build. Runs in the model's
    transaction, so readers never see the table emptied.
-#}
{% macro delete_rows_of_other_cleaning_rules() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where cleaning_rules <> (select current_rules.cleaning_rules from {{ ref('int_cleaning_rules') }} as current_rules)
    {%- endif -%}
{%- endmacro %}
