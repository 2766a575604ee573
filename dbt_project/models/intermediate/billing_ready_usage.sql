{{ config(materialized='view') }}
-- Billing-ready usage: every current interval of every meter installed at a service point
-- during a segment of the closed period, with the segment it bills in and its TOU energy and
-- demand periods (a meter exchange hands over without overlap). Channels stay separate and
-- non-negative; a net-only channel is split by sign downstream. Manual and AMR meters bill
-- from their registers (register_usage). A view: segment_usage reads it in one pass.
{{ segment_intervals(ref('bill_segments'), every_segment=true) }}
