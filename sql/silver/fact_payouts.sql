{{ config(
    materialized='incremental',
    partitioned_by=['dt', 'hour'],
    window='hour',
    lookback=1,
    schedule='*/5 * * * *',
    tags=['nrt'],
    audits=[
        {'not_null': ['leg_id', 'status', 'received_at']},
        {'accepted_values': {'column': 'status', 'values': ['queued', 'paid', 'failed']}},
    ],
    description='One row per payout event (payout.queued, payout.paid, payout.failed), payload parsed.',
) }}
-- Reads only the Bronze hours of the run's window; exact duplicates (Firehose delivers
-- at least once) are dropped here, later copies by downstream DISTINCT counts.
SELECT DISTINCT
    e.event AS event,
    replace(e.event, 'payout.', '') AS status,
    json_extract_scalar(e.payload, '$.leg_id') AS leg_id,
    TRY_CAST(json_extract_scalar(e.payload, '$.amount_cents') AS BIGINT) AS amount_cents,
    json_extract_scalar(e.payload, '$.provider_ref') AS provider_ref,
    json_extract_scalar(e.payload, '$.reason') AS failure_reason,
    e.money.currency AS currency,
    e.city AS city,
    e.occurred_at AS occurred_at,
    e.received_at AS received_at,
    e.dt AS dt,
    e.hour AS hour
FROM {{ source('bronze', 'events') }} AS e
WHERE {{ window_partitions(prefix='e') }}
  AND e.env = '{{ env }}'
  AND e.event_name IN ('payout.queued', 'payout.paid', 'payout.failed')
