{{ config(materialized='ephemeral') }}
-- The current version of every interval in the closed periods' operating days (±1 day
-- for service points in other time zones). Most intervals have only version 1, so the
-- current set is version 1 minus the superseded keys plus the latest higher versions:
-- an anti-join against a small set instead of a window over the whole table.
with bounds as (
    select min(segment_start) - 1 as d0, max(segment_end) + 1 as d1
    from {{ ref('bill_segments') }}
),

window_rows as (
    select
        i.meter_id, i.channel, i.interval_end, i.version, i.interval_seconds, i.value, i.status,
        i.estimation_method, i.register_value
    from {{ source('smartmdm', 'intervals') }} as i
    inner join bounds as b on i.read_day between b.d0 and b.d1
),

latest as (
    select meter_id, channel, interval_end, max(version) as version
    from window_rows
    where version > 1
    group by meter_id, channel, interval_end
)

select w.*
from window_rows as w
where w.version = 1
    and not exists (
        select 1 from latest as l
        where l.meter_id = w.meter_id and l.channel = w.channel and l.interval_end = w.interval_end
    )
union all
select w.*
from window_rows as w
inner join latest as l
    on l.meter_id = w.meter_id and l.channel = w.channel
    and l.interval_end = w.interval_end and l.version = w.version
