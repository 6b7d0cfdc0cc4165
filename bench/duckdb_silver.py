"""fact_payouts and fact_search_impressions on DuckDB: the same SELECTs as sql/silver/,
over the same Bronze files (read_json on the Firehose layout), written as snappy Parquet
partitioned by dt and hour. Prints one JSON object: seconds and rows per model.

usage: duckdb_silver.py LAKE OUT THREADS ENV
"""

import json
import sys
import time

import duckdb

lake, out, threads, env = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

# The Bronze DDL's columns (sql/bronze/events.sql); payload is kept as JSON text.
COLUMNS = {
    "event": "VARCHAR",
    "v": "INTEGER",
    "occurred_at": "TIMESTAMP",
    "received_at": "TIMESTAMP",
    "user_id": "VARCHAR",
    "anon_id": "VARCHAR",
    "session_id": "VARCHAR",
    "city": "VARCHAR",
    "device": "STRUCT(ua_hash VARCHAR, os VARCHAR, app_ver VARCHAR)",
    "context": "STRUCT(role VARCHAR, env VARCHAR)",
    "ids": "MAP(VARCHAR, VARCHAR)",
    "money": "STRUCT(amount_cents INTEGER, currency VARCHAR)",
    "payload": "JSON",
}


def bronze(events_glob):
    # Partition pruning is the glob; dt and hour come from the path. Lines that do not
    # parse come back as NULL rows with ignore_errors: they carry no received_at.
    return f"""(
        SELECT *,
            regexp_extract(filename, '/dt=([^/]+)/', 1) AS dt,
            regexp_extract(filename, '/hour=([^/]+)/', 1) AS hour
        FROM read_json('{lake}/bronze/events/dt=*/hour=*/env={env}/event={events_glob}/*.json.gz',
            format = 'newline_delimited', columns = {COLUMNS!r}, ignore_errors = true,
            filename = true, hive_partitioning = false, compression = 'gzip')
        WHERE received_at IS NOT NULL
    ) AS e"""


MODELS = {
    "silver.fact_payouts": f"""
        SELECT DISTINCT
            e.event AS event,
            replace(e.event, 'payout.', '') AS status,
            json_extract_string(e.payload, '$.leg_id') AS leg_id,
            TRY_CAST(json_extract_string(e.payload, '$.amount_cents') AS BIGINT) AS amount_cents,
            json_extract_string(e.payload, '$.provider_ref') AS provider_ref,
            json_extract_string(e.payload, '$.reason') AS failure_reason,
            e.money.currency AS currency,
            e.city AS city,
            e.occurred_at AS occurred_at,
            e.received_at AS received_at,
            e.dt AS dt,
            e.hour AS hour
        FROM {bronze('payout.*')}
        WHERE e.event IN ('payout.queued', 'payout.paid', 'payout.failed')""",
    "silver.fact_search_impressions": f"""
        SELECT DISTINCT
            e.received_at AS received_at,
            e.occurred_at AS occurred_at,
            coalesce(e.user_id, e.anon_id) AS actor_key,
            e.session_id AS session_id,
            e.city AS city,
            json_extract_string(e.payload, '$.query_hash') AS query_hash,
            TRY_CAST(json_extract_string(e.payload, '$.result_pos') AS INTEGER) AS result_pos,
            json_extract_string(e.payload, '$.listing_id') AS listing_id,
            e.dt AS dt,
            e.hour AS hour
        FROM {bronze('search.impression')}""",
}

con = duckdb.connect()
con.execute(f"SET threads = {threads}")
con.execute("SET preserve_insertion_order = false")
con.execute(f"SET temp_directory = '{out}/.tmp'")
result = {"version": duckdb.__version__, "threads": threads, "models": {}}
t0 = time.perf_counter()
for name, sql in MODELS.items():
    t = time.perf_counter()
    target = f"{out}/{name.split('.')[1]}"
    rows = con.execute(
        f"COPY ({sql}) TO '{target}' (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (dt, hour), OVERWRITE_OR_IGNORE)"
    ).fetchone()[0]
    result["models"][name] = {"rows": rows, "secs": time.perf_counter() - t}
result["secs"] = time.perf_counter() - t0
print(json.dumps(result))
