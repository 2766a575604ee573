-- One row per account, service point, billing period and rate segment: the local days of
-- the period the account was responsible for the service point, split where the service
-- point's rate code (service_point_history) or its tariff version (tariffs) changes.
-- Move-out is exclusive: the move-out day belongs to the next occupant.
with periods as (
    select cycle_id, period_start, period_end
    from {{ ref('stg_billing_cycles') }}
    where {{ period_filter() }}
),

occupancy as (
    select
        a.account_id,
        a.service_point_id,
        p.cycle_id,
        p.period_start,
        p.period_end,
        h.rate_code,
        h.timezone,
        h.commodity,
        h.has_solar,
        greatest(p.period_start, a.move_in, h.valid_from) as seg_start,
        least(
            p.period_end,
            coalesce(a.move_out - 1, p.period_end),
            coalesce(h.valid_to - 1, p.period_end)
        ) as seg_end
    from periods as p
    inner join {{ ref('stg_service_point_history') }} as h
        on h.cycle_id = p.cycle_id
        and h.valid_from <= p.period_end
        and (h.valid_to is null or h.valid_to > p.period_start)
    inner join {{ ref('stg_accounts') }} as a
        on a.service_point_id = h.service_point_id
        and a.move_in <= p.period_end
        and (a.move_out is null or a.move_out > p.period_start)
    where h.status = 'active'
),

tariffed as (
    select
        o.*,
        t.effective_from as tariff_from,
        t.billing_unit,
        t.netting,
        t.demand_window_minutes,
        t.demand_method,
        greatest(o.seg_start, t.effective_from) as segment_start,
        least(o.seg_end, coalesce(t.effective_to - 1, o.seg_end)) as segment_end
    from occupancy as o
    inner join {{ ref('stg_tariffs') }} as t
        on t.rate_code = o.rate_code
        and t.effective_from <= o.seg_end
        and (t.effective_to is null or t.effective_to > o.seg_start)
    where o.seg_start <= o.seg_end
)

select
    -- integer keys so the big joins and aggregations downstream hash integers, not strings
    cast(row_number() over (order by account_id, service_point_id, cycle_id, period_start, segment_start)
        as bigint) as segment_id,
    cast(dense_rank() over (order by rate_code, tariff_from, timezone) as integer) as calendar_id,
    account_id,
    service_point_id,
    cycle_id,
    period_start,
    period_end,
    rate_code,
    tariff_from,
    timezone,
    commodity,
    has_solar,
    billing_unit,
    netting,
    demand_window_minutes,
    demand_method,
    segment_start,
    segment_end,
    segment_end - segment_start + 1 as segment_days,
    period_end - period_start + 1 as period_days,
    {{ local_midnight('segment_start', 'timezone') }} as window_start,
    {{ local_midnight('segment_end + 1', 'timezone') }} as window_end
from tariffed
where segment_start <= segment_end
