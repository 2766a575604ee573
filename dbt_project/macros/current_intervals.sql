{#
  The current version of every interval in `rows` (a relation or CTE name holding interval
  versions: meter_id, channel, interval_end, version, …): its highest version. This is the
  dbt side of the store's one definition (smartmdm_pipelines/store/intervals.py);
  smartmdm_pipelines_tests/store/test_current_intervals.py proves both select the same rows on
  DuckDB and PostgreSQL.

  Most intervals have only version 1, so the current set is computed as version 1 minus the
  superseded keys plus the latest higher versions: one hash join against the small set of
  re-versioned keys instead of a window over every row.
#}
{% macro current_intervals(rows) -%}
    select w.*
    from {{ rows }} as w
    left join (
        select meter_id, channel, interval_end, max(version) as version
        from {{ rows }}
        where version > 1
        group by meter_id, channel, interval_end
    ) as l
        on l.meter_id = w.meter_id and l.channel = w.channel and l.interval_end = w.interval_end
    where w.version = coalesce(l.version, 1)
{%- endmacro %}
