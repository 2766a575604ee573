{#
  The current intervals of the interval meters installed at the service points of
  `segments` (a relation or CTE name shaped like bill_segments), joined to their segment and
  TOU slot. `interval_filter` narrows the intervals read (e.g. to system-peak instants).
  Restricting to the segments first keeps the subsets (net billing, rolling demand,
  coincident peaks) from re-reading the whole period; `every_segment=true` (billing-ready usage:
  the segments are the whole period's) skips that semi-join, which the join to the installs
  does anyway.

  The read days are bounded by the segments' first and last day (± 1, interval ends are UTC):
  on DuckDB a join (its bounds become a filter on the scan), on PostgreSQL scalar subqueries,
  whose values prune the monthly partitions of `intervals` when the query runs.

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

    bounds as (
        select min(segment_start) - 1 as d0, max(segment_end) + 1 as d1 from {{ segments }}
    ),

    window_rows as not materialized (
        select
            i.meter_id, i.channel, i.interval_end, i.version, i.interval_seconds, i.value, i.status
        from {{ ref('stg_intervals') }} as i
        {%- if target.type == 'postgres' %}
        where i.read_day between (select d0 from bounds) and (select d1 from bounds)
        {%- else %}
        inner join bounds as b on i.read_day between b.d0 and b.d1
        where 1 = 1
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
