{{ config(
    materialized='table',
    window='hour',
    lookback=24,
    schedule='*/5 * * * *',
    tags=['nrt'],
    audits=[{'unique': ['city']}, {'sql': 'SELECT * FROM {{ this }} WHERE backlog < 0 OR backlog > queued'}],
    description='Payout legs queued in the last 24 hours, and how many are still neither paid nor failed, per city.',
) }}
-- The plan's ops view, built from Silver Parquet instead of rescanning a day of Bronze JSON.
-- A leg is in the backlog when it was queued in the last 24 hours and has not settled.
WITH legs AS (
    SELECT
        coalesce(city, 'unknown') AS city,
        leg_id,
        count_if(status = 'queued') > 0 AS queued,
        count_if(status = 'paid') > 0 AS paid,
        count_if(status = 'failed') > 0 AS failed,
        min(CASE WHEN status = 'queued' THEN occurred_at END) AS queued_at,
        max_by(amount_cents, received_at) AS amount_cents
    FROM {{ ref('silver.fact_payouts') }}
    WHERE {{ window_partitions() }}
      AND received_at >= {{ window.end | ts }} - INTERVAL '24' HOUR
      AND received_at < {{ window.end | ts }}
    GROUP BY coalesce(city, 'unknown'), leg_id
)
SELECT
    city,
    count_if(queued) AS queued,
    count_if(paid) AS paid,
    count_if(failed) AS failed,
    count_if(queued AND NOT paid AND NOT failed) AS backlog,
    coalesce(sum(CASE WHEN queued AND NOT paid AND NOT failed THEN amount_cents END), 0) AS backlog_cents,
    min(CASE WHEN queued AND NOT paid AND NOT failed THEN queued_at END) AS oldest_queued_at,
    {{ window.end | ts }} AS as_of
FROM legs
GROUP BY city
