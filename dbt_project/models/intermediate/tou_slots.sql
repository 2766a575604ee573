-- Every 15-minute slot (by UTC start) that a segment of the closed period covers, per tariff
-- and time zone, with its local date, month, clock hour, day type (weekends and the tariff's
-- holidays use the weekend schedule) and the tariff's energy and demand periods. Intervals
-- join on the slot their START falls in: an interval ending 16:00 is clock hour 15. DST days
-- simply have 92 or 100 slots.
with keys as (
    select calendar_id, rate_code, tariff_from, timezone, min(window_start) as t0, max(window_end) as t1
    from {{ ref('bill_segments') }}
    group by calendar_id, rate_code, tariff_from, timezone
),

series as (
    select g.slot_start
    from generate_series(
        (select min(t0) from keys),
        (select max(t1) from keys) - interval '15 minutes',
        interval '15 minutes'
    ) as g (slot_start)
),

slots as (
    select
        k.calendar_id,
        k.rate_code,
        k.tariff_from,
        k.timezone,
        s.slot_start,
        s.slot_start at time zone k.timezone as local_start
    from keys as k
    inner join series as s on s.slot_start >= k.t0 and s.slot_start < k.t1
),

typed as (
    select
        sl.calendar_id,
        sl.rate_code,
        sl.tariff_from,
        sl.timezone,
        {{ slot_key('sl.slot_start') }} as slot_key,
        cast(sl.local_start as date) as local_date,
        cast(extract(month from sl.local_start) as integer) as month,
        cast(extract(hour from sl.local_start) as integer) as hour,
        case
            when extract(isodow from sl.local_start) >= 6 or h.holiday is not null then 'weekend'
            else 'weekday'
        end as daytype
    from slots as sl
    left join {{ ref('stg_tariff_holidays') }} as h
        on h.rate_code = sl.rate_code
        and h.effective_from = sl.tariff_from
        and h.holiday = cast(sl.local_start as date)
)

select
    t.*,
    coalesce(e.period, 0) as energy_period,
    d.period as demand_period
from typed as t
left join {{ ref('stg_tariff_schedules') }} as e
    on e.rate_code = t.rate_code and e.effective_from = t.tariff_from and e.kind = 'energy'
    and e.month = t.month and e.daytype = t.daytype and e.hour = t.hour
left join {{ ref('stg_tariff_schedules') }} as d
    on d.rate_code = t.rate_code and d.effective_from = t.tariff_from and d.kind = 'demand'
    and d.month = t.month and d.daytype = t.daytype and d.hour = t.hour
