-- Consumption of manual and AMR meters from register reads: for each meter installed at the
-- service point during a segment, the register at the segment's start and end (the install's
-- start/end register when the meter was installed or removed inside it, otherwise the read
-- nearest the boundary within register_read_tolerance_days), rollover-aware
-- (+10^dials when the end reads below the start) and times the install's multiplier.
-- A missing scheduled read falls back to the VEE's register estimate (register_value).
-- A meter exchange sums the meters.
with installs as (
    select * from {{ ref('segment_installs') }} where kind in ('manual', 'amr')
),

register_versions as (
    -- versions of the register-estimate rows VEE writes for manual and AMR meters (the current
    -- version of each is the estimate in force)
    select i.meter_id, i.channel, i.interval_end, i.version, i.status, i.register_value
    from {{ ref('stg_intervals') }} as i
    where i.meter_id in (select meter_id from installs)
),

reads as (
    -- actual register reads, and the VEE's register estimates where a scheduled read is missing
    select meter_id, read_at, value, false as estimated
    from {{ ref('stg_register_reads') }}
    where channel in ('kwh_delivered', 'water', 'gas') and value is not null
        and meter_id in (select meter_id from installs)
    union all
    select e.meter_id, e.interval_end as read_at, e.register_value as value, true as estimated
    from ({{ current_intervals('register_versions') }}) as e
    where e.status = 'estimated' and e.register_value is not null
),

boundaries as (
    select account_id, service_point_id, cycle_id, period_start, segment_start, meter_id,
        'start' as boundary, t_from as at
    from installs
    union all
    select account_id, service_point_id, cycle_id, period_start, segment_start, meter_id,
        'end' as boundary, t_to as at
    from installs
),

nearest as (
    select
        b.*,
        r.value,
        r.estimated,
        row_number() over (
            partition by b.account_id, b.service_point_id, b.cycle_id, b.period_start, b.segment_start,
                b.meter_id, b.boundary
            order by abs({{ epoch_s('r.read_at') }} - {{ epoch_s('b.at') }}), r.estimated, r.read_at desc
        ) as rn
    from boundaries as b
    inner join reads as r
        on r.meter_id = b.meter_id
        and abs({{ epoch_s('r.read_at') }} - {{ epoch_s('b.at') }})
            <= {{ var('register_read_tolerance_days') }} * 86400
),

per_meter as (
    select
        i.*,
        case when i.installed_inside and i.start_register is not null then i.start_register
             else s.value end as register_start,
        (not (i.installed_inside and i.start_register is not null) and s.estimated)
            or (not (i.removed_inside and i.end_register is not null) and e.estimated) as estimated,
        case when i.removed_inside and i.end_register is not null then i.end_register
             else e.value end as register_end
    from installs as i
    left join nearest as s
        on s.meter_id = i.meter_id and s.account_id = i.account_id and s.segment_start = i.segment_start
        and s.cycle_id = i.cycle_id and s.period_start = i.period_start and s.boundary = 'start' and s.rn = 1
    left join nearest as e
        on e.meter_id = i.meter_id and e.account_id = i.account_id and e.segment_start = i.segment_start
        and e.cycle_id = i.cycle_id and e.period_start = i.period_start and e.boundary = 'end' and e.rn = 1
)

select
    p.account_id,
    p.service_point_id,
    p.cycle_id,
    p.period_start,
    p.rate_code,
    p.segment_start,
    p.meter_id,
    p.register_start,
    p.register_end,
    coalesce(p.estimated, false) as estimated,
    (p.register_end - p.register_start
        + case when p.register_end < p.register_start and p.dials is not null
               then power(10, p.dials) else 0 end)
        * p.multiplier * coalesce(c.factor, 1) as quantity,
    p.billing_unit as unit
from per_meter as p
left join {{ ref('unit_conversions') }} as c on c.from_unit = p.unit and c.to_unit = p.billing_unit
