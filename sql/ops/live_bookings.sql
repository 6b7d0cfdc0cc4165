{{ config(
    materialized='table',
    window='hour',
    lookback=1,
    schedule='*/5 * * * *',
    tags=['nrt'],
    audits=[{'unique': ['city']}],
    description='The last 60 minutes per city: searches, booking requests, confirmations and confirmed GMV.',
) }}
WITH recent_searches AS (
    SELECT coalesce(city, 'unknown') AS city, count(*) AS impressions, count(DISTINCT session_id) AS search_sessions
    FROM {{ ref('silver.fact_search_impressions') }}
    WHERE {{ window_partitions() }}
      AND occurred_at >= {{ window.end | ts }} - INTERVAL '60' MINUTE
      AND occurred_at < {{ window.end | ts }}
    GROUP BY coalesce(city, 'unknown')
),
recent_bookings AS (
    SELECT
        coalesce(city, 'unknown') AS city,
        count(DISTINCT CASE WHEN state = 'requested' THEN lbg_id END) AS requests,
        count(DISTINCT CASE WHEN state = 'confirmed' THEN lbg_id END) AS confirmations,
        coalesce(sum(CASE WHEN state = 'confirmed' THEN amount_cents END), 0) AS confirmed_cents
    FROM {{ ref('silver.fact_bookings') }}
    WHERE {{ window_partitions() }}
      AND occurred_at >= {{ window.end | ts }} - INTERVAL '60' MINUTE
      AND occurred_at < {{ window.end | ts }}
    GROUP BY coalesce(city, 'unknown')
)
SELECT
    coalesce(s.city, b.city) AS city,
    coalesce(s.impressions, 0) AS impressions,
    coalesce(s.search_sessions, 0) AS search_sessions,
    coalesce(b.requests, 0) AS requests,
    coalesce(b.confirmations, 0) AS confirmations,
    coalesce(b.confirmed_cents, 0) AS confirmed_cents,
    {{ window.end | ts }} AS as_of
FROM recent_searches AS s
FULL OUTER JOIN recent_bookings AS b ON s.city = b.city
