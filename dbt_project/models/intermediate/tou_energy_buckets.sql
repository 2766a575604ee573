-- Energy (and volume) per segment and TOU energy period, with the share of estimated and
-- edited quantity and, for per-interval netting, the netted imports and exports.
select
    s.account_id,
    s.service_point_id,
    s.cycle_id,
    s.period_start,
    s.rate_code,
    s.segment_start,
    u.segment_id,
    u.energy_period,
    sum(u.kwh_delivered) as kwh_delivered,
    sum(u.kwh_received) as kwh_received,
    max(n.kwh_import) as kwh_import_interval_net,
    max(n.kwh_export) as kwh_export_interval_net,
    sum(u.kvarh) as kvarh,
    sum(u.volume) as volume,
    sum(u.estimated_quantity) as estimated_quantity,
    sum(u.edited_quantity) as edited_quantity,
    sum(u.total_quantity) as total_quantity,
    sum(u.primary_present) as primary_present
from {{ ref('segment_usage') }} as u
inner join {{ ref('bill_segments') }} as s on s.segment_id = u.segment_id
left join {{ ref('interval_netting') }} as n on n.segment_id = u.segment_id and n.energy_period = u.energy_period
group by
    s.account_id, s.service_point_id, s.cycle_id, s.period_start, s.rate_code, s.segment_start,
    u.segment_id, u.energy_period
