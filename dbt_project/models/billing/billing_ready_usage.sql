-- Billing-ready usage: the current intervals of every meter installed at a service point
-- during a segment of the closed period, summed per service point and interval (a meter
-- exchange hands over without overlap), with the interval's TOU energy and demand periods.
-- Channels stay separate and non-negative (delivered, received); a net-only channel is split
-- by sign. Manual and AMR meters bill from their registers (register_usage). Volumes (water, gas) are converted once to the tariff's billing unit.
with usage as (
    select
        s.account_id,
        s.service_point_id,
        s.cycle_id,
        s.period_start,
        s.rate_code,
        s.segment_start,
        s.tariff_from,
        s.timezone,
        s.billing_unit,
        i.interval_end,
        i.interval_seconds,
        i.channel,
        i.value,
        i.status,
        m.unit
    from {{ ref('stg_current_intervals') }} as i
    inner join {{ source('smartmdm', 'meter_installs') }} as mi
        on mi.meter_id = i.meter_id
        and i.interval_end > mi.installed_at
        and (mi.removed_at is null or i.interval_end <= mi.removed_at)
    inner join {{ source('smartmdm', 'meters') }} as m
        on m.meter_id = i.meter_id and m.kind not in ('manual', 'amr')  -- those bill from registers
    inner join {{ ref('bill_segments') }} as s
        on s.service_point_id = mi.service_point_id
        and i.interval_end > s.window_start
        and i.interval_end <= s.window_end
)

select
    u.account_id,
    u.service_point_id,
    u.cycle_id,
    u.period_start,
    u.rate_code,
    u.segment_start,
    u.interval_end,
    u.interval_seconds,
    t.local_date,
    t.month,
    t.energy_period,
    t.demand_period,
    sum(case when u.channel = 'kwh_delivered' then u.value
             when u.channel = 'kwh_net' and u.value > 0 then u.value else 0 end) as kwh_delivered,
    sum(case when u.channel = 'kwh_received' then u.value
             when u.channel = 'kwh_net' and u.value < 0 then -u.value else 0 end) as kwh_received,
    sum(case when u.channel = 'kvarh' then u.value else 0 end) as kvarh,
    sum(case when u.channel in ('water', 'gas') then u.value * coalesce(c.factor, 1) else 0 end) as volume,
    sum(case when u.status = 'estimated' then abs(u.value) else 0 end) as estimated_quantity,
    sum(case when u.status = 'edited' then abs(u.value) else 0 end) as edited_quantity,
    sum(abs(coalesce(u.value, 0))) as total_quantity,
    count(*) as channel_intervals,
    sum(case when u.channel in ('kwh_delivered', 'kwh_net', 'water', 'gas') and u.value is not null
             then 1 else 0 end) as primary_present,
    sum(case when u.value is null then 1 else 0 end) as missing_intervals
from usage as u
inner join {{ ref('tou_slots') }} as t
    on t.rate_code = u.rate_code
    and t.tariff_from = u.tariff_from
    and t.timezone = u.timezone
    and t.slot_key = cast(floor(({{ epoch_s('u.interval_end') }} - u.interval_seconds) / 900) as bigint)
left join {{ ref('unit_conversions') }} as c
    on c.from_unit = u.unit and c.to_unit = u.billing_unit
group by
    u.account_id, u.service_point_id, u.cycle_id, u.period_start, u.rate_code, u.segment_start,
    u.interval_end, u.interval_seconds, t.local_date, t.month, t.energy_period, t.demand_period
