-- Maximum average kW per segment and TOU demand period over the tariff's demand window
-- (demandwindow minutes) from delivered energy. When the window is the data's interval the
-- answer is the largest interval demand, already in segment_usage (the common case, no
-- second pass). Otherwise only those segments are read again, per interval: block windows
-- are aligned to the clock; rolling windows slide by one interval and need every interval of
-- the window present (any number of intervals per window). A window takes the demand period
-- of its last interval.
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

rolling as (
    -- each interval closes a window of the intervals ending within window_seconds before it
    -- (a range self-join on the few rolling segments; any number of intervals per window)
    select
        w.segment_id,
        max(w.demand_period) as demand_period,
        sum(p.kwh) * 3600.0 / max(w.window_seconds) as kw
    from usage as w
    inner join usage as p
        on p.segment_id = w.segment_id
        and p.interval_end <= w.interval_end
        and {{ epoch_s('w.interval_end') }} - {{ epoch_s('p.interval_end') }} < w.window_seconds
    where w.demand_method = 'rolling'
    group by w.segment_id, w.interval_end
    having count(*) = max(w.window_seconds) / max(w.interval_seconds)  -- every interval present
)

select segment_id, demand_period, kw from fast
union all
select segment_id, demand_period, max(kw) as kw from block group by segment_id, demand_period
union all
select segment_id, demand_period, max(kw) as kw from rolling group by segment_id, demand_period
