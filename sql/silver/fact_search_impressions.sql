{{ config(
    materialized='incremental',
    partitioned_by=['dt', 'hour'],
    window='hour',
    lookback=1,
    schedule='*/5 * * * *',
    tags=['nrt'],
    reads='arrived',
    audits=[{'not_null': ['actor_key', 'received_at']}],
    description='Search impressions: who saw which result at which position for which query.',
) }}
-- The plan's example, in Trino SQL: json_extract_scalar and TRY_CAST instead of ->> and
-- ::int, and the partition columns last. A tick reads only the Bronze objects that arrived
-- since the published version (reads='arrived'); exact duplicates are dropped within what
-- one run reads, and gold.mart_search_funnel counts sessions and searchers DISTINCT.
SELECT DISTINCT
    e.received_at AS received_at,
    e.occurred_at AS occurred_at,
    coalesce(e.user_id, e.anon_id) AS actor_key,
    e.session_id AS session_id,
    coalesce(e.city, json_extract_scalar(e.payload, '$.city')) AS city,
    json_extract_scalar(e.payload, '$.query_hash') AS query_hash,
    TRY_CAST(json_extract_scalar(e.payload, '$.result_pos') AS INTEGER) AS result_pos,
    json_extract_scalar(e.payload, '$.listing_id') AS listing_id,
    e.dt AS dt,
    e.hour AS hour
FROM {{ source('bronze', 'events') }} AS e
WHERE {{ window_partitions(prefix='e') }}
  AND e.env = '{{ env }}'
  AND e.event_name = 'search.impression'
  AND coalesce(e.user_id, e.anon_id) IS NOT NULL
  AND e.received_at IS NOT NULL
