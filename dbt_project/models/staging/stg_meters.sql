-- Meters: kind (manual, amr, ami), unit, register dials and interval length.
select
    meter_id,
    kind,
    unit,
    dials,
    interval_seconds
from {{ source('smartmdm', 'meters') }}
