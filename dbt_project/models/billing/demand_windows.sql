-- Average kW per demand window of the tariff (demandwindow minutes) from delivered energy:
-- block windows are aligned to the clock; rolling windows slide by one interval and need
-- every interval of the window present. A window shorter than the data's interval is the
-- interval itself (kW = kWh × 3600 / seconds). The window takes the demand period of its
-- last interval.
with usage as (
    select
        u.*,
        s.demand_method,
        greatest(s.demand_window_minutes * 60, u.interval_seconds) as window_seconds
    from {{ ref('billing_ready_usage') }} as u
    inner join {{ ref('bill_segments') }} as s
        on s.account_id = u.account_id and s.service_point_id = u.service_point_id
        and s.cycle_id = u.cycle_id and s.period_start = u.period_start
        and s.segment_start = u.segment_start
),

block as (
    select
        account_id, service_point_id, cycle_id, period_start, rate_code, segment_start,
        max(interval_end) as window_end,
        max(month) as month,
        max(demand_period) as demand_period,
        sum(kwh_delivered) * 3600.0 / max(window_seconds) as kw,
        sum(kvarh) * 3600.0 / max(window_seconds) as kvar
    from usage
    where demand_method = 'block'
    group by
        account_id, service_point_id, cycle_id, period_start, rate_code, segment_start,
        cast(floor(({{ epoch_s('interval_end') }} - interval_seconds) / window_seconds) as bigint)
),

lagged as (
    select
        usage.*,
        cast(window_seconds / interval_seconds as integer) as n,
        lag(kwh_delivered, 1) over o as l1,
        lag(kwh_delivered, 2) over o as l2,
        lag(kwh_delivered, 3) over o as l3,
        lag(kwh_delivered, 4) over o as l4,
        lag(kwh_delivered, 5) over o as l5,
        lag(interval_end, 1) over o as e1,
        lag(interval_end, 2) over o as e2,
        lag(interval_end, 3) over o as e3,
        lag(interval_end, 4) over o as e4,
        lag(interval_end, 5) over o as e5
    from usage
    where demand_method = 'rolling'
    window
        o as (partition by account_id, service_point_id, cycle_id, period_start, segment_start order by interval_end)
),

rolling as (
    select
        account_id, service_point_id, cycle_id, period_start, rate_code, segment_start,
        interval_end as window_end,
        month,
        demand_period,
        (kwh_delivered
            + case when n >= 2 then l1 else 0 end
            + case when n >= 3 then l2 else 0 end
            + case when n >= 4 then l3 else 0 end
            + case when n >= 5 then l4 else 0 end
            + case when n >= 6 then l5 else 0 end) * 3600.0 / window_seconds as kw,
        cast(null as double precision) as kvar
    from lagged
    where n between 1 and 6
        and (n < 2 or {{ epoch_s('interval_end') }} - {{ epoch_s('e1') }} = interval_seconds)
        and (n < 3 or {{ epoch_s('interval_end') }} - {{ epoch_s('e2') }} = 2 * interval_seconds)
        and (n < 4 or {{ epoch_s('interval_end') }} - {{ epoch_s('e3') }} = 3 * interval_seconds)
        and (n < 5 or {{ epoch_s('interval_end') }} - {{ epoch_s('e4') }} = 4 * interval_seconds)
        and (n < 6 or {{ epoch_s('interval_end') }} - {{ epoch_s('e5') }} = 5 * interval_seconds)
)

select * from block
union all
select * from rolling
