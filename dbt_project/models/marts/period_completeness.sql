-- Completeness of each segment: current, non-missing intervals of the primary channel
-- (delivered energy, water, gas) against the intervals expected from the interval meters
-- installed during the segment. The close refuses below the configured threshold.
with expected as (
    select segment_id, sum(floor(({{ epoch_s('t_to') }} - {{ epoch_s('t_from') }}) / interval_seconds)) as expected_intervals
    from {{ ref('segment_installs') }}
    where interval_seconds is not null and interval_seconds < 86400 and kind not in ('manual', 'amr')
    group by segment_id
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
left join expected as e on e.segment_id = s.segment_id
left join present as p on p.segment_id = s.segment_id
