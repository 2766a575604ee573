-- Billing periods of each read cycle.
select
    cycle_id,
    period_start,
    period_end
from {{ source('smartmdm', 'billing_cycles') }}
