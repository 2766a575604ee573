{{ config(pre_hook=heavy_aggregate_settings()) }}
-- One pass over billing-ready usage: per segment and TOU energy/demand period, the channel
-- sums (delivered, received, reactive, volume in the tariff's unit), the estimated and
-- edited quantity, the present intervals of the primary channel, and the largest interval
-- demand (kW = kWh × 3600 / seconds), which is the demand whenever the tariff's window is
-- the data's interval. Small output: periods × segments, not intervals.
select
    segment_id,
    energy_period,
    demand_period,
    sum(case when channel = 'kwh_delivered' then value
             when channel = 'kwh_net' and value > 0 then value else 0 end) as kwh_delivered,
    sum(case when channel = 'kwh_received' then value
             when channel = 'kwh_net' and value < 0 then -value else 0 end) as kwh_received,
    sum(case when channel = 'kvarh' then value else 0 end) as kvarh,
    sum(case when channel in ('water', 'gas') then billed_quantity else 0 end) as volume,
    sum(case when status = 'estimated' and channel <> 'kvarh' then abs(value) else 0 end) as estimated_quantity,
    sum(case when status = 'edited' and channel <> 'kvarh' then abs(value) else 0 end) as edited_quantity,
    sum(case when channel <> 'kvarh' then abs(coalesce(value, 0)) else 0 end) as total_quantity,
    sum(case when channel in ('kwh_delivered', 'kwh_net', 'water', 'gas') and value is not null
             then 1 else 0 end) as primary_present,
    max(case when channel = 'kwh_delivered' then value * 3600.0 / interval_seconds
             when channel = 'kwh_net' and value > 0 then value * 3600.0 / interval_seconds end)
        as interval_kw_max,
    min(interval_seconds) as min_interval_seconds,
    max(interval_seconds) as max_interval_seconds
from {{ ref('billing_ready_usage') }}
group by segment_id, energy_period, demand_period
