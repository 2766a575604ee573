{# Small helpers so one model runs on dbt-duckdb and dbt-postgres. #}

{# seconds since the epoch as a double: PostgreSQL's extract() returns numeric, which is slow #}
{% macro epoch_s(ts) -%}
    {%- if target.type == 'postgres' -%}
        date_part('epoch', {{ ts }})
    {%- else -%}
        epoch({{ ts }})
    {%- endif -%}
{%- endmacro %}

{# Settings for a heavy aggregate, for this model's transaction only: PostgreSQL's planner
   underestimates the joined interval rows by four orders of magnitude and then sorts millions
   of rows to disk for merge joins and a group aggregate; hash joins and a hash aggregate with
   memory are a third faster (measured on 5.76 M intervals). #}
{% macro heavy_aggregate_settings() -%}
    {%- if target.type == 'postgres' -%}
        set local work_mem = '512MB'; set local enable_mergejoin = off; set local enable_sort = off
    {%- else -%}
        select 1
    {%- endif -%}
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
