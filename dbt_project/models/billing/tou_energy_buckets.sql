-- Energy (and volume) per segment and TOU energy period, with the share of estimated and
-- edited quantity. Netting follows the tariff: per_interval nets each interval before
-- summing imports and exports; per_period and buy_all_sell_all keep the channel sums
-- (per_period nets them in period_determinants).
select
    u.account_id,
    u.service_point_id,
    u.cycle_id,
    u.period_start,
    u.rate_code,
    u.segment_start,
    u.energy_period,
    sum(u.kwh_delivered) as kwh_delivered,
    sum(u.kwh_received) as kwh_received,
    sum(case when u.kwh_delivered > u.kwh_received then u.kwh_delivered - u.kwh_received else 0 end)
        as kwh_import_interval_net,
    sum(case when u.kwh_received > u.kwh_delivered then u.kwh_received - u.kwh_delivered else 0 end)
        as kwh_export_interval_net,
    sum(u.kvarh) as kvarh,
    sum(u.volume) as volume,
    sum(u.estimated_quantity) as estimated_quantity,
    sum(u.edited_quantity) as edited_quantity,
    sum(u.total_quantity) as total_quantity,
    count(*) as intervals,
    sum(u.missing_intervals) as missing_intervals
from {{ ref('billing_ready_usage') }} as u
group by
    u.account_id, u.service_point_id, u.cycle_id, u.period_start, u.rate_code, u.segment_start,
    u.energy_period
