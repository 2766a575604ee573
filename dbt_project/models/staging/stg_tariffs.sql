-- Tariff versions per rate code: billing unit, netting and demand window.
select
    rate_code,
    effective_from,
    effective_to,
    billing_unit,
    netting,
    demand_window_minutes,
    demand_method
from {{ source('smartmdm', 'tariffs') }}
