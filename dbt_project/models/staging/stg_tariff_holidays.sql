-- Holidays billed on the weekend schedule, per tariff version.
select
    rate_code,
    effective_from,
    holiday
from {{ source('smartmdm', 'tariff_holidays') }}
