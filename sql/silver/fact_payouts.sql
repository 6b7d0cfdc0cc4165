{{ config(
    materialized='incremental',
    partitioned_by=['dt', 'hour'],
    window='hour',
    lookback=1,
    schedule='*/5 * * * *',
    tags=['nrt'],
    reads='arrived',
    audits=[
        {'not_null': ['leg_id', 'status', 'received_at']},
        {'accepted_values': {'column': 'status', 'values': ['queued', 'paid', 'failed']}},
    ],
    description='One row per payout event (payout.queued, payout.paid, payout.failed), payload parsed.',
) }}
-- A tick reads only the Bronze objects of the window that arrived since the published
-- version (reads='arrived') and keeps its rows; exact duplicates within what one run reads
-- (Firehose delivers at least once) are dropped here, a copy delivered again in a later
-- object stays and is counted once by the DISTINCT counts downstream. Rows
-- without a leg or an arrival time (unreadable lines read as NULLs, producers that left
-- them out) are not payouts: the Bronze line stays, and bronze_quality counts them.
-- The event name is the Firehose partition's, which is what routed the record.
SELECT DISTINCT
    e.event_name AS event,
    replace(e.event_name, 'payout.', '') AS status,
    json_extract_scalar(e.payload, '$.leg_id') AS leg_id,
    TRY_CAST(json_extract_scalar(e.payload, '$.amount_cents') AS BIGINT) AS amount_cents,
    json_extract_scalar(e.payload, '$.provider_ref') AS provider_ref,
    json_extract_scalar(e.payload, '$.reason') AS failure_reason,
    coalesce(e.money.currency, json_extract_scalar(e.payload, '$.currency')) AS currency,
    coalesce(e.city, json_extract_scalar(e.payload, '$.city')) AS city,
    e.occurred_at AS occurred_at,
    e.received_at AS received_at,
    e.dt AS dt,
    e.hour AS hour
FROM {{ source('bronze', 'events') }} AS e
WHERE {{ window_partitions(prefix='e') }}
  AND e.env = '{{ env }}'
  AND e.event_name IN ('payout.queued', 'payout.paid', 'payout.failed')
  AND json_extract_scalar(e.payload, '$.leg_id') IS NOT NULL
  AND e.received_at IS NOT NULL
