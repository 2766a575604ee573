{{ config(materialized='ephemeral') }}
-- Every meter installed at a segment's service point during the segment, with the part of the
-- segment it served ([t_from, t_to]) and whether it was installed or removed inside it.
select
    s.segment_id,
    s.account_id,
    s.service_point_id,
    s.cycle_id,
    s.period_start,
    s.rate_code,
    s.segment_start,
    s.billing_unit,
    mi.meter_id,
    mi.multiplier,
    mi.start_register,
    mi.end_register,
    m.kind,
    m.unit,
    m.dials,
    m.interval_seconds,
    (mi.installed_at > s.window_start) as installed_inside,
    (mi.removed_at is not null and mi.removed_at < s.window_end) as removed_inside,
    case when mi.installed_at > s.window_start then mi.installed_at else s.window_start end as t_from,
    case when mi.removed_at is not null and mi.removed_at < s.window_end then mi.removed_at
         else s.window_end end as t_to
from {{ ref('bill_segments') }} as s
inner join {{ ref('stg_meter_installs') }} as mi
    on mi.service_point_id = s.service_point_id
    and mi.installed_at < s.window_end
    and (mi.removed_at is null or mi.removed_at > s.window_start)
inner join {{ ref('stg_meters') }} as m on m.meter_id = mi.meter_id
