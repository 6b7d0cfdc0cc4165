{{ config(
    materialized='incremental',
    partitioned_by=['dt', 'hour'],
    window='hour',
    lookback=1,
    schedule='*/5 * * * *',
    tags=['nrt'],
    reads='arrived',
    audits=[{'not_null': ['lbg_id', 'state', 'received_at']}],
    description='One row per booking (lbg.*) event: requested, confirmed, declined, cancelled, completed.',
) }}
-- Rows without a booking id or an arrival time are not bookings. A tick reads only the
-- Bronze objects that arrived since the published version (reads='arrived'): exact
-- duplicates are dropped within what one run reads; downstream counts are DISTINCT by
-- booking (see fact_payouts).
SELECT DISTINCT
    e.event_name AS event,
    replace(e.event_name, 'lbg.', '') AS state,
    json_extract_scalar(e.payload, '$.lbg_id') AS lbg_id,
    e.user_id AS user_id,
    e.session_id AS session_id,
    coalesce(e.city, json_extract_scalar(e.payload, '$.city')) AS city,
    coalesce(CAST(e.money.amount_cents AS BIGINT), TRY_CAST(json_extract_scalar(e.payload, '$.amount_cents') AS BIGINT)) AS amount_cents,
    coalesce(e.money.currency, json_extract_scalar(e.payload, '$.currency')) AS currency,
    e.occurred_at AS occurred_at,
    e.received_at AS received_at,
    e.dt AS dt,
    e.hour AS hour
FROM {{ source('bronze', 'events') }} AS e
WHERE {{ window_partitions(prefix='e') }}
  AND e.env = '{{ env }}'
  AND e.event_name IN ({{ var('events') | select('startingwith', 'lbg.') | list | sql_list }})
  AND json_extract_scalar(e.payload, '$.lbg_id') IS NOT NULL
  AND e.received_at IS NOT NULL
