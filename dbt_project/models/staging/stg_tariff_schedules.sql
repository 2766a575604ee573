-- TOU schedules in long form: the period of each month, day type and clock hour.
select
    rate_code,
    effective_from,
    kind,
    month,
    daytype,
    hour,
    period
from {{ source('smartmdm', 'tariff_schedules') }}
