{{ config(
    materialized='incremental',
    partitioned_by=['dt'],
    window='day',
    lookback=1,
    schedule='20 * * * *',
    audits=[{'unique': ['city', 'dt']}],
    description='Per city and day: search sessions to booking requests to confirmed bookings.',
) }}
WITH searches AS (
    SELECT
        coalesce(city, 'unknown') AS city,
        date_format(occurred_at, '%Y-%m-%d') AS day,
        count(*) AS impressions,
        count(DISTINCT actor_key) AS searchers,
        count(DISTINCT session_id) AS search_sessions
    FROM {{ ref('silver.fact_search_impressions') }}
    WHERE {{ window_partitions(grain='day') }}
    GROUP BY coalesce(city, 'unknown'), date_format(occurred_at, '%Y-%m-%d')
),
bookings AS (
    SELECT
        coalesce(city, 'unknown') AS city,
        date_format(occurred_at, '%Y-%m-%d') AS day,
        count(DISTINCT CASE WHEN state = 'requested' THEN session_id END) AS request_sessions,
        count(DISTINCT CASE WHEN state = 'confirmed' THEN session_id END) AS confirmed_sessions
    FROM {{ ref('silver.fact_bookings') }}
    WHERE {{ window_partitions(grain='day') }}
    GROUP BY coalesce(city, 'unknown'), date_format(occurred_at, '%Y-%m-%d')
)
SELECT
    coalesce(s.city, b.city) AS city,
    coalesce(s.impressions, 0) AS impressions,
    coalesce(s.searchers, 0) AS searchers,
    coalesce(s.search_sessions, 0) AS search_sessions,
    coalesce(b.request_sessions, 0) AS request_sessions,
    coalesce(b.confirmed_sessions, 0) AS confirmed_sessions,
    CAST(coalesce(b.confirmed_sessions, 0) AS DOUBLE) / nullif(s.search_sessions, 0) AS search_to_booking_rate,
    coalesce(s.day, b.day) AS dt
FROM searches AS s
FULL OUTER JOIN bookings AS b ON s.city = b.city AND s.day = b.day
WHERE coalesce(s.day, b.day) IN ({{ window_days() | sql_list }})
