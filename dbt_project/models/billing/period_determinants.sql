-- Billing determinants per account, billing period and rate segment, in long form
-- (one row per determinant, TOU determinants carry their 0-based tariff period).
-- Energy sums across meters (a meter exchange adds the old and the new meter), demand is
-- the maximum (never the sum of two meters' peaks). Versioning happens downstream
-- (the billing_determinants asset), so this table is the fresh calculation.
with segs as (
    select * from {{ ref('bill_segments') }}
),

buckets as (
    select * from {{ ref('tou_energy_buckets') }}
),

seg_energy as (
    select
        account_id, service_point_id, cycle_id, period_start, segment_start,
        sum(kwh_delivered) as kwh_delivered,
        sum(kwh_received) as kwh_received,
        sum(kwh_import_interval_net) as kwh_import,
        sum(kwh_export_interval_net) as kwh_export,
        sum(kvarh) as kvarh,
        sum(volume) as volume,
        sum(estimated_quantity) as estimated_quantity,
        sum(edited_quantity) as edited_quantity,
        sum(total_quantity) as total_quantity
    from buckets
    group by account_id, service_point_id, cycle_id, period_start, segment_start
),

registers as (
    select
        account_id, service_point_id, cycle_id, period_start, segment_start,
        sum(quantity) as quantity,
        sum(case when estimated then abs(quantity) else 0 end) as estimated_quantity,
        count(*) as meters,
        sum(case when quantity is null then 1 else 0 end) as unread_meters
    from {{ ref('register_usage') }}
    group by account_id, service_point_id, cycle_id, period_start, segment_start
),

demand as (
    select account_id, service_point_id, cycle_id, period_start, segment_start, demand_period,
        max(kw) as kw
    from {{ ref('demand_windows') }}
    group by account_id, service_point_id, cycle_id, period_start, segment_start, demand_period
),

peaks as (
    select
        u.account_id, u.service_point_id, u.cycle_id, u.period_start, u.segment_start,
        avg(u.kwh_delivered * 3600.0 / u.interval_seconds) as kw
    from {{ ref('billing_ready_usage') }} as u
    inner join {{ source('smartmdm', 'system_peaks') }} as p
        on p.interval_end = u.interval_end and p.interval_seconds = u.interval_seconds
    group by u.account_id, u.service_point_id, u.cycle_id, u.period_start, u.segment_start
),

seg as (
    select
        s.*,
        case when s.commodity = 'electric' then 'kwh_delivered' else 'volume' end as energy_name,
        coalesce(e.kwh_delivered, 0) as kwh_delivered,
        coalesce(e.kwh_received, 0) as kwh_received,
        coalesce(e.kwh_import, 0) as kwh_import,
        coalesce(e.kwh_export, 0) as kwh_export,
        coalesce(e.kvarh, 0) as kvarh,
        coalesce(e.volume, 0) as volume,
        coalesce(r.quantity, 0) as register_quantity,
        case
            when e.account_id is not null and r.account_id is not null then 'mixed'
            when r.account_id is not null then 'register'
            else 'interval'
        end as source,
        case when coalesce(e.total_quantity, 0) + abs(coalesce(r.quantity, 0)) > 0
             then (coalesce(e.estimated_quantity, 0) + coalesce(r.estimated_quantity, 0))
                / (coalesce(e.total_quantity, 0) + abs(coalesce(r.quantity, 0)))
             else 0 end as estimated_share,
        case when coalesce(e.total_quantity, 0) > 0
             then e.edited_quantity / e.total_quantity else 0 end as edited_share
    from segs as s
    left join seg_energy as e
        on e.account_id = s.account_id and e.service_point_id = s.service_point_id
        and e.cycle_id = s.cycle_id and e.period_start = s.period_start and e.segment_start = s.segment_start
    left join registers as r
        on r.account_id = s.account_id and r.service_point_id = s.service_point_id
        and r.cycle_id = s.cycle_id and r.period_start = s.period_start and r.segment_start = s.segment_start
),

rows_ as (
    -- total energy or volume: intervals plus register meters
    select seg.*, energy_name as determinant, cast(null as integer) as tou_period,
        case when commodity = 'electric' then kwh_delivered else volume end + register_quantity as value,
        billing_unit as unit
    from seg
    union all
    -- energy per TOU period (interval meters)
    select seg.*, seg.energy_name, b.energy_period,
        case when seg.commodity = 'electric' then b.kwh_delivered else b.volume end, seg.billing_unit
    from seg
    inner join buckets as b
        on b.account_id = seg.account_id and b.service_point_id = seg.service_point_id
        and b.cycle_id = seg.cycle_id and b.period_start = seg.period_start
        and b.segment_start = seg.segment_start
    union all
    -- received energy and the tariff's netting
    select seg.*, 'kwh_received', null, kwh_received, 'kWh' from seg
    where commodity = 'electric' and (kwh_received > 0 or has_solar)
    union all
    select seg.*, 'kwh_received', b.energy_period, b.kwh_received, 'kWh'
    from seg
    inner join buckets as b
        on b.account_id = seg.account_id and b.service_point_id = seg.service_point_id
        and b.cycle_id = seg.cycle_id and b.period_start = seg.period_start
        and b.segment_start = seg.segment_start
    where seg.commodity = 'electric' and (seg.kwh_received > 0 or seg.has_solar)
    union all
    select seg.*, 'kwh_net', null, kwh_delivered + register_quantity - kwh_received, 'kWh' from seg
    where commodity = 'electric' and netting = 'per_period' and (kwh_received > 0 or has_solar)
    union all
    select seg.*, 'kwh_import', null, kwh_import, 'kWh' from seg
    where commodity = 'electric' and netting = 'per_interval' and (kwh_received > 0 or has_solar)
    union all
    select seg.*, 'kwh_export', null, kwh_export, 'kWh' from seg
    where commodity = 'electric' and netting = 'per_interval' and (kwh_received > 0 or has_solar)
    union all
    -- reactive energy and average power factor
    select seg.*, 'kvarh', null, kvarh, 'kVARh' from seg where kvarh > 0
    union all
    select seg.*, 'power_factor', null,
        kwh_delivered / sqrt(kwh_delivered * kwh_delivered + kvarh * kvarh), 'ratio'
    from seg where kvarh > 0 and kwh_delivered > 0
    union all
    -- demand: the maximum over the segment, and per TOU demand period
    select seg.*, 'kw_max', null, d.kw, 'kW'
    from seg
    inner join (
        select account_id, service_point_id, cycle_id, period_start, segment_start, max(kw) as kw
        from demand group by account_id, service_point_id, cycle_id, period_start, segment_start
    ) as d
        on d.account_id = seg.account_id and d.service_point_id = seg.service_point_id
        and d.cycle_id = seg.cycle_id and d.period_start = seg.period_start
        and d.segment_start = seg.segment_start
    where seg.commodity = 'electric'
    union all
    select seg.*, 'kw_max', d.demand_period, d.kw, 'kW'
    from seg
    inner join demand as d
        on d.account_id = seg.account_id and d.service_point_id = seg.service_point_id
        and d.cycle_id = seg.cycle_id and d.period_start = seg.period_start
        and d.segment_start = seg.segment_start
    where seg.commodity = 'electric' and d.demand_period is not null
    union all
    select seg.*, 'kw_coincident', null, p.kw, 'kW'
    from seg
    inner join peaks as p
        on p.account_id = seg.account_id and p.service_point_id = seg.service_point_id
        and p.cycle_id = seg.cycle_id and p.period_start = seg.period_start
        and p.segment_start = seg.segment_start
    union all
    -- days, for proration of fixed charges and tier thresholds
    select seg.*, 'days', null, segment_days, 'day' from seg
    union all
    select seg.*, 'period_days', null, period_days, 'day' from seg
    union all
    select seg.*, 'share_estimated', null, estimated_share, 'ratio' from seg
    union all
    select seg.*, 'share_edited', null, edited_share, 'ratio' from seg
)

select
    account_id,
    service_point_id,
    cycle_id,
    period_start,
    period_end,
    rate_code,
    segment_start,
    segment_end,
    determinant,
    tou_period,
    cast(value as double precision) as value,
    unit,
    source,
    cast(estimated_share as double precision) as estimated_share
from rows_
