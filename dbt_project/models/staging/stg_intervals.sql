-- Interval versions (every VEE result, estimate and edit is a version): the columns billing reads.
select
    meter_id,
    channel,
    interval_end,
    version,
    interval_seconds,
    value,
    status,
    read_day,
    register_value
from {{ source('smartmdm', 'intervals') }}
