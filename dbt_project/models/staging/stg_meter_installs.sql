-- Which meter served which service point when, with its multiplier and install/removal registers.
select
    meter_id,
    service_point_id,
    installed_at,
    removed_at,
    multiplier,
    start_register,
    end_register
from {{ source('smartmdm', 'meter_installs') }}
