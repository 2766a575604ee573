-- Per-interval netting (net billing): imports and exports after netting each interval, for
-- the segments whose tariff nets per interval. Only those segments are read.
with net_segments as (
    select * from {{ ref('bill_segments') }} where netting = 'per_interval'
),

usage_rows as (
    {{ segment_intervals('net_segments') }}
),

usage as (
    select
        u.segment_id,
        u.energy_period,
        u.interval_end,
        sum(case when u.channel = 'kwh_delivered' then u.value
                 when u.channel = 'kwh_net' and u.value > 0 then u.value else 0 end) as delivered,
        sum(case when u.channel = 'kwh_received' then u.value
                 when u.channel = 'kwh_net' and u.value < 0 then -u.value else 0 end) as received
    from usage_rows as u
    group by u.segment_id, u.energy_period, u.interval_end
)

select
    segment_id,
    energy_period,
    sum(case when delivered > received then delivered - received else 0 end) as kwh_import,
    sum(case when received > delivered then received - delivered else 0 end) as kwh_export
from usage
group by segment_id, energy_period
