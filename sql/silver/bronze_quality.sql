{{ config(
    materialized='incremental',
    partitioned_by=['dt', 'hour'],
    window='hour',
    lookback=2,
    schedule='10 * * * *',
    description='Per Bronze hour and event: the records that arrived, and those Silver cannot use: lines Athena reads as a row of NULLs (not JSON, truncated), records without an arrival or event time.',
) }}
-- Bronze's health, the same on both engines. Athena does not say which lines it read as
-- NULLs, so this counts them: one more read of each Bronze hour, hourly (Silver reads
-- each hour every 5 minutes). The local engine also copies each such line, with why, to
-- bronze/_bad/.
SELECT
    e.event_name AS event_name,
    count(*) AS records,
    count_if(e.event IS NULL AND e.occurred_at IS NULL AND e.received_at IS NULL AND e.payload IS NULL) AS unreadable,
    count_if(e.received_at IS NULL) AS without_received_at,
    count_if(e.occurred_at IS NULL) AS without_occurred_at,
    e.dt AS dt,
    e.hour AS hour
FROM {{ source('bronze', 'events') }} AS e
WHERE {{ window_partitions(prefix='e') }}
  AND e.env = '{{ env }}'
GROUP BY e.event_name, e.dt, e.hour
