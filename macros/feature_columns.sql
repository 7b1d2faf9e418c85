-- noqa: disable=LT02
{#-
    The columns of customer_features, read from its enforced contract (models/features/_features__models.yml),
    in contract order, as a list of {name, data_type}. (Unit tests compile without the project graph: there the
    columns of the built customer_features table are used.) The marts build their feature columns from this
    list, so a column added to customer_features (SQL and contract) reaches dim_customers and segment_profiles
    without editing them. `exclude` leaves out columns a mart selects by hand; `numeric_only` keeps the columns
    whose type is a number (what a segment mean can be taken of). At parse time (nothing runs) the list is empty.
-#}
{% macro feature_columns(exclude=[], numeric_only=false) -%}
    {%- set numbers = ['smallint', 'int', 'integer', 'bigint', 'hugeint', 'int2', 'int4', 'int8'] -%}
    {%- do numbers.extend(['numeric', 'decimal', 'real', 'float', 'double', 'double precision', 'float4', 'float8']) -%}
    {%- set columns = [] -%}
    {%- set found = [] -%}
    {%- if execute and graph.get('nodes') -%}
        {%- set node = graph.nodes.get('model.' ~ project_name ~ '.customer_features') -%}
        {%- if node is none or not node.columns -%}
            {{- exceptions.raise_compiler_error('feature_columns: customer_features has no column contract') -}}
        {%- endif -%}
        {%- for column in node.columns.values() -%}
            {%- if not column.data_type -%}
                {{- exceptions.raise_compiler_error('feature_columns: no data_type for ' ~ column.name) -}}
            {%- endif -%}
            {%- do columns.append({'name': column.name, 'data_type': column.data_type}) -%}
        {%- endfor -%}
    {%- elif execute -%}
        {#- Unit tests: the built table (dbt needs it for their fixtures anyway). -#}
        {%- set relation = adapter.get_relation(target.database, target.schema, 'customer_features') -%}
        {%- if relation is not none -%}
            {%- for column in adapter.get_columns_in_relation(relation) -%}
                {%- do columns.append({'name': column.name | lower, 'data_type': column.data_type}) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
    {%- for column in columns -%}
        {%- set data_type = column.data_type | lower -%}
        {%- set is_number = data_type.split('(')[0] | trim in numbers -%}
        {%- if column.name not in exclude and (is_number or not numeric_only) -%}
            {%- do found.append({'name': column.name, 'data_type': data_type}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{- return(found) -}}
{%- endmacro %}
