-- Billing determinants per account, billing period and rate segment, in long form
-- (one row per determinant, TOU determinants carry their 0-based tariff period).
-- Energy sums across meters (a meter exchange adds the old and the new meter), demand is
-- the maximum (never the sum of two meters' peaks). Versioning happens downstream
-- (the billing_determinants asset), so this table is the fresh calculation.
with buckets as (
    select * from {{ ref('tou_energy_buckets') }}
),

seg_energy as (
    select
        segment_id,
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
    group by segment_id
),

registers as (
    select
        s.segment_id,
        sum(r.quantity) as quantity,
        sum(case when r.estimated then abs(r.quantity) else 0 end) as estimated_quantity
    from {{ ref('register_usage') }} as r
    inner join {{ ref('bill_segments') }} as s
        on s.account_id = r.account_id and s.service_point_id = r.service_point_id
        and s.cycle_id = r.cycle_id and s.period_start = r.period_start and s.segment_start = r.segment_start
    group by s.segment_id
),

demand as (
    select * from {{ ref('demand_windows') }}
),

electric_segments as (
    select * from {{ ref('bill_segments') }} where commodity = 'electric'
),

peak_rows as (
    {{ segment_intervals('electric_segments',
        "i.interval_end in (select interval_end from " ~ ref('stg_system_peaks') ~ ")") }}
),

peaks as (
    select u.segment_id, avg(u.value * 3600.0 / u.interval_seconds) as kw
    from peak_rows as u
    inner join {{ ref('stg_system_peaks') }} as p
        on p.interval_end = u.interval_end and p.interval_seconds = u.interval_seconds
    where u.channel = 'kwh_delivered'
    group by u.segment_id
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
            when e.segment_id is not null and r.segment_id is not null then 'mixed'
            when r.segment_id is not null then 'register'
            else 'interval'
        end as source,
        case when coalesce(e.total_quantity, 0) + abs(coalesce(r.quantity, 0)) > 0
             then (coalesce(e.estimated_quantity, 0) + coalesce(r.estimated_quantity, 0))
                / (coalesce(e.total_quantity, 0) + abs(coalesce(r.quantity, 0)))
             else 0 end as estimated_share,
        case when coalesce(e.total_quantity, 0) > 0
             then e.edited_quantity / e.total_quantity else 0 end as edited_share,
        (s.has_solar or coalesce(e.kwh_received, 0) > 0) as exports
    from {{ ref('bill_segments') }} as s
    left join seg_energy as e on e.segment_id = s.segment_id
    left join registers as r on r.segment_id = s.segment_id
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
    from seg inner join buckets as b on b.segment_id = seg.segment_id
    union all
    -- received energy and the tariff's netting
    select seg.*, 'kwh_received', null, kwh_received, 'kWh' from seg
    where commodity = 'electric' and exports
    union all
    select seg.*, 'kwh_received', b.energy_period, b.kwh_received, 'kWh'
    from seg inner join buckets as b on b.segment_id = seg.segment_id
    where seg.commodity = 'electric' and seg.exports
    union all
    select seg.*, 'kwh_net', null, kwh_delivered + register_quantity - kwh_received, 'kWh' from seg
    where commodity = 'electric' and netting = 'per_period' and exports
    union all
    select seg.*, 'kwh_import', null, kwh_import, 'kWh' from seg
    where commodity = 'electric' and netting = 'per_interval' and exports
    union all
    select seg.*, 'kwh_export', null, kwh_export, 'kWh' from seg
    where commodity = 'electric' and netting = 'per_interval' and exports
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
    inner join (select segment_id, max(kw) as kw from demand group by segment_id) as d
        on d.segment_id = seg.segment_id
    where seg.commodity = 'electric' and d.kw is not null
    union all
    select seg.*, 'kw_max', d.demand_period, d.kw, 'kW'
    from seg inner join demand as d on d.segment_id = seg.segment_id
    where seg.commodity = 'electric' and d.demand_period is not null and d.kw is not null
    union all
    select seg.*, 'kw_coincident', null, p.kw, 'kW'
    from seg inner join peaks as p on p.segment_id = seg.segment_id
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
