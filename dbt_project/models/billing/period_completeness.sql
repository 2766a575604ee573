-- Completeness of each segment: current, non-missing intervals of the primary channel
-- (delivered energy, water, gas) against the intervals expected from the interval meters
-- installed during the segment. The close refuses below the configured threshold.
with expected as (
    select
        s.account_id, s.service_point_id, s.cycle_id, s.period_start, s.segment_start,
        sum(
            floor((
                {{ epoch_s('case when mi.removed_at is not null and mi.removed_at < s.window_end then mi.removed_at else s.window_end end') }}
                - {{ epoch_s('case when mi.installed_at > s.window_start then mi.installed_at else s.window_start end') }}
            ) / m.interval_seconds)
        ) as expected_intervals
    from {{ ref('bill_segments') }} as s
    inner join {{ source('smartmdm', 'meter_installs') }} as mi
        on mi.service_point_id = s.service_point_id
        and mi.installed_at < s.window_end
        and (mi.removed_at is null or mi.removed_at > s.window_start)
    inner join {{ source('smartmdm', 'meters') }} as m
        on m.meter_id = mi.meter_id and m.interval_seconds is not null and m.interval_seconds < 86400
        and m.kind not in ('manual', 'amr')
    group by s.account_id, s.service_point_id, s.cycle_id, s.period_start, s.segment_start
),

present as (
    select segment_id, sum(primary_present) as present_intervals
    from {{ ref('segment_usage') }}
    group by segment_id
)

select
    s.segment_id,
    s.account_id,
    s.service_point_id,
    s.cycle_id,
    s.period_start,
    s.segment_start,
    coalesce(e.expected_intervals, 0) as expected_intervals,
    coalesce(p.present_intervals, 0) as present_intervals
from {{ ref('bill_segments') }} as s
left join expected as e
    on e.account_id = s.account_id and e.service_point_id = s.service_point_id
    and e.cycle_id = s.cycle_id and e.period_start = s.period_start and e.segment_start = s.segment_start
left join present as p on p.segment_id = s.segment_id
