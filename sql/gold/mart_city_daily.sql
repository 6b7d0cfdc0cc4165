{{ config(
    materialized='incremental',
    partitioned_by=['dt'],
    window='day',
    lookback=1,
    schedule='20 * * * *',
    audits=[{'unique': ['city', 'dt']}, {'not_null': ['city']}],
    description='Per city and day (UTC, by when it happened): bookings, GMV and payouts.',
) }}
-- Reads the Silver days of the window and attributes each event to the day it occurred,
-- so an event that arrives up to a day late still lands on its own day. Events without a
-- city count under 'unknown' on both sides of the join (NULL never equals NULL).
WITH bookings AS (
    SELECT
        coalesce(b.city, 'unknown') AS city,
        date_format(b.occurred_at, '%Y-%m-%d') AS day,
        b.lbg_id AS lbg_id,
        max_by(b.amount_cents, b.received_at) AS amount_cents,
        count_if(b.state = 'requested') > 0 AS requested,
        count_if(b.state = 'confirmed') > 0 AS confirmed,
        count_if(b.state = 'cancelled') > 0 AS cancelled
    FROM {{ ref('silver.fact_bookings') }} AS b
    WHERE {{ window_partitions(grain='day', prefix='b') }}
    GROUP BY coalesce(b.city, 'unknown'), date_format(b.occurred_at, '%Y-%m-%d'), b.lbg_id
),
payouts AS (
    SELECT
        p.city AS city,
        date_format(p.occurred_at, '%Y-%m-%d') AS day,
        count(DISTINCT p.leg_id) AS payouts_paid,
        sum(p.amount_cents) AS payouts_paid_cents
    FROM (
        SELECT DISTINCT coalesce(city, 'unknown') AS city, occurred_at, leg_id, amount_cents
        FROM {{ ref('silver.fact_payouts') }}
        WHERE {{ window_partitions(grain='day') }} AND status = 'paid'
    ) AS p
    GROUP BY p.city, date_format(p.occurred_at, '%Y-%m-%d')
),
booking_totals AS (
    SELECT
        city,
        day,
        count_if(requested) AS bookings_requested,
        count_if(confirmed) AS bookings_confirmed,
        count_if(cancelled) AS bookings_cancelled,
        coalesce(sum(CASE WHEN confirmed AND NOT cancelled THEN amount_cents END), 0) AS gmv_cents
    FROM bookings
    GROUP BY city, day
)
SELECT
    coalesce(t.city, p.city) AS city,
    coalesce(t.bookings_requested, 0) AS bookings_requested,
    coalesce(t.bookings_confirmed, 0) AS bookings_confirmed,
    coalesce(t.bookings_cancelled, 0) AS bookings_cancelled,
    coalesce(t.gmv_cents, 0) AS gmv_cents,
    coalesce(p.payouts_paid, 0) AS payouts_paid,
    coalesce(p.payouts_paid_cents, 0) AS payouts_paid_cents,
    coalesce(t.day, p.day) AS dt
FROM booking_totals AS t
FULL OUTER JOIN payouts AS p ON t.city = p.city AND t.day = p.day
WHERE coalesce(t.day, p.day) IN ({{ window_days() | sql_list }})
