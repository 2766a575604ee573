{#
  The current intervals of the interval meters installed at the service points of
  `segments` (a relation or CTE name shaped like bill_segments), joined to their segment and
  TOU slot. `interval_filter` narrows the intervals read (e.g. to system-peak instants).
  Restricting to the segments first keeps the subsets (net billing, rolling demand,
  coincident peaks) from re-reading the whole period; `every_segment=true` (billing-ready usage:
  the segments are the whole period's) skips that semi-join, which the join to the installs
  does anyway.

  The read days are bounded by the period's segments' first and last day (± 1, interval ends
  are UTC), as literal dates read from bill_segments when the model is compiled (it is built by
  then): the scan filters them (DuckDB skips row groups by their min/max, PostgreSQL prunes the
  monthly partitions of `intervals` and estimates the rows it reads). Without bill_segments (a
  compile by hand) the bounds are a subquery.

  Current version: the `current_intervals` macro (the store's definition, written for dbt).
#}
{% macro segment_intervals(segments, interval_filter='1 = 1', every_segment=false) %}
    with
    {%- if not every_segment %}
    seg_meters as (
        select distinct mi.meter_id
        from {{ ref('stg_meter_installs') }} as mi
        inner join {{ segments }} as s0 on s0.service_point_id = mi.service_point_id
    ),
    {%- endif %}

    {%- set days = read_day_bounds() %}
    {%- if days is none %}
    bounds as (
        select min(segment_start) - 1 as d0, max(segment_end) + 1 as d1 from {{ ref('bill_segments') }}
    ),
    {%- endif %}

    window_rows as not materialized (
        select
            i.meter_id, i.channel, i.interval_end, i.version, i.interval_seconds, i.value, i.status
        from {{ ref('stg_intervals') }} as i
        {%- if days is none %}
        where i.read_day between (select d0 from bounds) and (select d1 from bounds)
        {%- else %}
        where i.read_day between cast('{{ days[0] }}' as date) and cast('{{ days[1] }}' as date)
        {%- endif %}
            {%- if not every_segment %}
            and i.meter_id in (select meter_id from seg_meters)
            {%- endif %}
            and {{ interval_filter }}
    ),

    current_rows as (
        {{ current_intervals('window_rows') }}
    ),

    -- the installs of interval meters at the segments' service points, with the unit factor:
    -- small (installs × segments), so every interval joins once, on its meter (DuckDB builds it
    -- first; PostgreSQL's planner may still join meters per interval: it underestimates the
    -- period's intervals, and materialising this CTE made it hash the intervals instead)
    meter_segments as (
        select
            mi.meter_id,
            mi.installed_at,
            mi.removed_at,
            s.segment_id,
            s.account_id,
            s.service_point_id,
            s.cycle_id,
            s.period_start,
            s.segment_start,
            s.calendar_id,
            s.window_start,
            s.window_end,
            coalesce(c.factor, 1) as factor
        from {{ ref('stg_meter_installs') }} as mi
        inner join {{ ref('stg_meters') }} as m
            on m.meter_id = mi.meter_id and m.kind not in ('manual', 'amr')
        inner join {{ segments }} as s
            on s.service_point_id = mi.service_point_id
        left join {{ ref('unit_conversions') }} as c
            on c.from_unit = m.unit and c.to_unit = s.billing_unit
    )

    select
        s.segment_id,
        s.account_id,
        s.service_point_id,
        s.cycle_id,
        s.period_start,
        s.segment_start,
        i.meter_id,
        i.channel,
        i.interval_end,
        i.interval_seconds,
        i.value,
        i.status,
        i.value * s.factor as billed_quantity,
        t.local_date,
        t.month,
        t.energy_period,
        t.demand_period
    from current_rows as i
    inner join meter_segments as s
        on s.meter_id = i.meter_id
        and i.interval_end > s.installed_at
        and (s.removed_at is null or i.interval_end <= s.removed_at)
        and i.interval_end > s.window_start
        and i.interval_end <= s.window_end
    inner join {{ ref('tou_slots') }} as t
        on t.calendar_id = s.calendar_id
        and t.slot_key = cast(floor(({{ epoch_s('i.interval_end') }} - i.interval_seconds) / 900) as bigint)
{% endmacro %}

{# The first and last read day of the built period's segments, ± 1 (strings), or none when
   bill_segments does not exist yet or is empty. #}
{% macro read_day_bounds() %}
    {%- if execute -%}
        {%- set seg = ref('bill_segments') -%}
        {%- set rel = adapter.get_relation(database=seg.database, schema=seg.schema, identifier=seg.identifier) -%}
        {%- if rel is not none -%}
            {%- set res = run_query(
                "select cast(min(segment_start) - 1 as varchar), cast(max(segment_end) + 1 as varchar) from " ~ rel) -%}
            {%- if res.rows[0][0] is not none -%}
                {{ return((res.rows[0][0], res.rows[0][1])) }}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}
