-- Maximum average kW per segment and TOU demand period over the tariff's demand window
-- (demandwindow minutes) from delivered energy. When the window is the data's interval the
-- answer is the largest interval demand, already in segment_usage (the common case, no
-- second pass). Otherwise only those segments are read again, per interval: block windows
-- are aligned to the clock; rolling windows slide by one interval and need every interval of
-- the window present. A window takes the demand period of its last interval.
with sizes as (
    select
        u.segment_id,
        max(s.demand_window_minutes) * 60 as window_seconds,
        max(s.demand_method) as demand_method,
        min(u.min_interval_seconds) as min_seconds,
        max(u.max_interval_seconds) as max_seconds
    from {{ ref('segment_usage') }} as u
    inner join {{ ref('bill_segments') }} as s on s.segment_id = u.segment_id
    group by u.segment_id
),

fast as (
    select u.segment_id, u.demand_period, max(u.interval_kw_max) as kw
    from {{ ref('segment_usage') }} as u
    inner join sizes as z on z.segment_id = u.segment_id
    where z.window_seconds <= z.min_seconds and z.min_seconds = z.max_seconds
    group by u.segment_id, u.demand_period
),

slow_segments as (
    select s.*
    from {{ ref('bill_segments') }} as s
    inner join sizes as z
        on z.segment_id = s.segment_id and not (z.window_seconds <= z.min_seconds and z.min_seconds = z.max_seconds)
),

usage_rows as (
    {{ segment_intervals('slow_segments') }}
),

usage as (
    select
        u.segment_id,
        u.interval_end,
        max(u.interval_seconds) as interval_seconds,
        max(u.demand_period) as demand_period,
        sum(case when u.channel = 'kwh_delivered' then u.value
                 when u.channel = 'kwh_net' and u.value > 0 then u.value else 0 end) as kwh,
        max(z.demand_method) as demand_method,
        max(greatest(z.window_seconds, u.interval_seconds)) as window_seconds
    from usage_rows as u
    inner join sizes as z on z.segment_id = u.segment_id
    group by u.segment_id, u.interval_end
),

block as (
    select
        segment_id,
        max(demand_period) as demand_period,
        sum(kwh) * 3600.0 / max(window_seconds) as kw
    from usage
    where demand_method = 'block'
    group by segment_id, cast(floor(({{ epoch_s('interval_end') }} - interval_seconds) / window_seconds) as bigint)
),

lagged as (
    select
        usage.*,
        cast(window_seconds / interval_seconds as integer) as n,
        lag(kwh, 1) over o as l1,
        lag(kwh, 2) over o as l2,
        lag(kwh, 3) over o as l3,
        lag(kwh, 4) over o as l4,
        lag(kwh, 5) over o as l5,
        lag(interval_end, 1) over o as e1,
        lag(interval_end, 2) over o as e2,
        lag(interval_end, 3) over o as e3,
        lag(interval_end, 4) over o as e4,
        lag(interval_end, 5) over o as e5
    from usage
    where demand_method = 'rolling'
    window o as (partition by segment_id order by interval_end)
),

rolling as (
    select
        segment_id,
        demand_period,
        (kwh
            + case when n >= 2 then l1 else 0 end
            + case when n >= 3 then l2 else 0 end
            + case when n >= 4 then l3 else 0 end
            + case when n >= 5 then l4 else 0 end
            + case when n >= 6 then l5 else 0 end) * 3600.0 / window_seconds as kw
    from lagged
    where n between 1 and 6
        and (n < 2 or {{ epoch_s('interval_end') }} - {{ epoch_s('e1') }} = interval_seconds)
        and (n < 3 or {{ epoch_s('interval_end') }} - {{ epoch_s('e2') }} = 2 * interval_seconds)
        and (n < 4 or {{ epoch_s('interval_end') }} - {{ epoch_s('e3') }} = 3 * interval_seconds)
        and (n < 5 or {{ epoch_s('interval_end') }} - {{ epoch_s('e4') }} = 4 * interval_seconds)
        and (n < 6 or {{ epoch_s('interval_end') }} - {{ epoch_s('e5') }} = 5 * interval_seconds)
)

select segment_id, demand_period, kw from fast
union all
select segment_id, demand_period, max(kw) as kw from block group by segment_id, demand_period
union all
select segment_id, demand_period, max(kw) as kw from rolling group by segment_id, demand_period
