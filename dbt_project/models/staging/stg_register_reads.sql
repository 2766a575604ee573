-- Scalar register reads of manual, AMR and AMI meters.
select
    meter_id,
    channel,
    read_at,
    value
from {{ source('smartmdm', 'register_reads') }}
