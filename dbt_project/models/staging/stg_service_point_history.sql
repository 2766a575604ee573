-- Effective-dated service point attributes (rate code, billing cycle, time zone, solar, status).
select
    service_point_id,
    valid_from,
    valid_to,
    billing_cycle as cycle_id,
    rate_code,
    timezone,
    commodity,
    has_solar,
    status
from {{ source('smartmdm', 'service_point_history') }}
