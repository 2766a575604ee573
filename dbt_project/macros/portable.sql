{# Small helpers so one model runs on dbt-duckdb and dbt-postgres. #}

{% macro epoch_s(ts) -%}
    extract(epoch from {{ ts }})
{%- endmacro %}

{% macro slot_key(ts, seconds=900) -%}
    cast(floor({{ epoch_s(ts) }} / {{ seconds }}) as bigint)
{%- endmacro %}

{% macro local_midnight(day, tz) -%}
    (cast({{ day }} as timestamp) at time zone {{ tz }})
{%- endmacro %}

{% macro period_filter(cycle_col='cycle_id', start_col='period_start') -%}
    {%- if var('cycle_id') -%}
        {{ cycle_col }} = '{{ var("cycle_id") }}' and {{ start_col }} = cast('{{ var("period_start") }}' as date)
    {%- else -%}
        1 = 1
    {%- endif -%}
{%- endmacro %}
