-- System-peak intervals for coincident-peak demand.
select
    interval_end,
    interval_seconds
from {{ source('smartmdm', 'system_peaks') }}
