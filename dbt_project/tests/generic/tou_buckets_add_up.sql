{# The TOU energy buckets of every segment add up to its total (within 1e-6 relative). #}
{% test tou_buckets_add_up(model) %}
with totals as (
    select account_id, service_point_id, cycle_id, period_start, segment_start, determinant,
        sum(case when tou_period is null then value else 0 end) as total,
        sum(case when tou_period is not null then value else 0 end) as buckets,
        sum(case when tou_period is not null then 1 else 0 end) as n_buckets
    from {{ model }}
    where determinant in ('kwh_delivered', 'volume') and source = 'interval'
    group by account_id, service_point_id, cycle_id, period_start, segment_start, determinant
)
select * from totals
where n_buckets > 0 and abs(total - buckets) > 1e-6 * greatest(abs(total), 1)
{% endtest %}
