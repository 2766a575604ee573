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
   memory are a third faster (measured on 5.76 M intervals). It also misjudges the period's
   read-day range (a parameter) and then loops over an index per interval; without nested loops
   the same aggregate took 11.0 s instead of 18.3 s on 2.88 M intervals. #}
{% macro heavy_aggregate_settings() -%}
    {%- if target.type == 'postgres' -%}
        set local work_mem = '512MB'; set local enable_mergejoin = off; set local enable_sort = off;
        set local enable_nestloop = off
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

{# The billing period a run builds: --vars cycle_id/period_start when given (a run by hand), else
   the environment the runners set (SMARTMDM_CLOSE_CYCLE/SMARTMDM_CLOSE_PERIOD). An environment
   variable that changes makes dbt's partial parse re-read only the models using it; changed
   --vars make it parse the whole project again (seconds on every close). #}
{% macro close_period() -%}
    {%- if var('cycle_id') -%}
        {{ return((var('cycle_id'), var('period_start'))) }}
    {%- else -%}
        {{ return((env_var('SMARTMDM_CLOSE_CYCLE', ''), env_var('SMARTMDM_CLOSE_PERIOD', ''))) }}
    {%- endif -%}
{%- endmacro %}

{% macro period_filter(cycle_col='cycle_id', start_col='period_start') -%}
    {%- set cycle_id, period_start = close_period() -%}
    {%- if cycle_id -%}
        {{ cycle_col }} = '{{ cycle_id }}' and {{ start_col }} = cast('{{ period_start }}' as date)
    {%- else -%}
        1 = 1
    {%- endif -%}
{%- endmacro %}

{# Every dbt run first empties the inputs fingerprint (models/marts/close_inputs.sql): only a
   build that finishes every model and test of its period writes one again. #}
{% macro forget_close_inputs() -%}
    {%- if execute -%}
        {%- set rel = adapter.get_relation(database=target.database, schema=target.schema, identifier='close_inputs') -%}
        {%- if rel is not none -%}
            delete from {{ rel }}
        {%- else -%}
            select 1
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
