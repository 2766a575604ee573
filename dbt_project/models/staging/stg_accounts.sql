-- Accounts responsible for a service point between move-in and move-out (exclusive).
select
    account_id,
    service_point_id,
    move_in,
    move_out
from {{ source('smartmdm', 'accounts') }}
