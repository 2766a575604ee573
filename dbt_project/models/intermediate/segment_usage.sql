{{ config(pre_hook=heavy_aggregate_settings()) }}
-- One pass over billing-ready usage: per segment and TOU energy/demand period, the channel
-- sums (delivered, received, reactive, volume in the tariff's unit), the estimated and
-- edited quantity, the present intervals of the primary channel, and the largest interval
-- demand (kW = kWh × 3600 / seconds), which is the demand whenever the tariff's window is
-- the data's interval. Small output: periods × segments, not intervals.
--
-- Two steps, so the per-interval work is numeric: `per_class` sums the intervals per segment,
-- TOU periods, channel, status and interval length (plain sums, positive and negative parts,
-- absolute values, counts, the largest value); the channel and status rules are applied to
-- those few rows afterwards. Same results as applying them per interval: every rule is a sum
-- of per-interval terms that depend only on the group's channel and status, and the largest
-- interval demand is the group's largest value × 3600 / its interval length (a positive
-- factor keeps the order; a net channel's largest positive value is its largest value when
-- that is positive).
with per_class as (
    select
        segment_id,
        energy_period,
        demand_period,
        channel,
        status,
        interval_seconds,
        sum(value) as value_sum,
        sum(case when value > 0 then value else 0 end) as positive_sum,
        sum(case when value < 0 then -value else 0 end) as negative_sum,
        sum(abs(value)) as abs_sum,
        sum(abs(coalesce(value, 0))) as abs_sum_or_zero,
        sum(billed_quantity) as billed_sum,
        cast(count(value) as integer) as present,  -- integer: the sums keep the type they had
        max(value) as value_max
    from {{ ref('billing_ready_usage') }}
    group by segment_id, energy_period, demand_period, channel, status, interval_seconds
)

select
    segment_id,
    energy_period,
    demand_period,
    sum(case when channel = 'kwh_delivered' then value_sum
             when channel = 'kwh_net' then positive_sum else 0 end) as kwh_delivered,
    sum(case when channel = 'kwh_received' then value_sum
             when channel = 'kwh_net' then negative_sum else 0 end) as kwh_received,
    sum(case when channel = 'kvarh' then value_sum else 0 end) as kvarh,
    sum(case when channel in ('water', 'gas') then billed_sum else 0 end) as volume,
    sum(case when status = 'estimated' and channel <> 'kvarh' then abs_sum else 0 end) as estimated_quantity,
    sum(case when status = 'edited' and channel <> 'kvarh' then abs_sum else 0 end) as edited_quantity,
    sum(case when channel <> 'kvarh' then abs_sum_or_zero else 0 end) as total_quantity,
    sum(case when channel in ('kwh_delivered', 'kwh_net', 'water', 'gas') then present else 0 end)
        as primary_present,
    max(case when channel = 'kwh_delivered' then value_max * 3600.0 / interval_seconds
             when channel = 'kwh_net' and value_max > 0 then value_max * 3600.0 / interval_seconds end)
        as interval_kw_max,
    min(interval_seconds) as min_interval_seconds,
    max(interval_seconds) as max_interval_seconds
from per_class
group by segment_id, energy_period, demand_period
