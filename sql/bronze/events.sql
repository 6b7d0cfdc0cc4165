{{ config(
    materialized='external',
    alias='bronze_events',
    description='Event envelopes exactly as Firehose lands them: gzip NDJSON, one envelope per line.',
) }}
CREATE EXTERNAL TABLE IF NOT EXISTS `{{ model.database }}`.`{{ model.table }}` (
  `event` string,
  `v` int,
  `occurred_at` timestamp,
  `received_at` timestamp,
  `user_id` string,
  `anon_id` string,
  `session_id` string,
  `city` string,
  `device` struct<ua_hash:string,os:string,app_ver:string>,
  `context` struct<role:string,env:string>,
  `ids` map<string,string>,
  `money` struct<amount_cents:int,currency:string>,
  `payload` string COMMENT 'raw JSON, parsed in Silver'
)
PARTITIONED BY (`dt` string, `hour` string, `env` string, `event_name` string)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
-- How Athena reads each line (Trino's OpenX reader): keys in any case; a line that is not
-- JSON is a row of NULLs instead of a failed query; a value that does not fit its column
-- (an object where an int is declared) is NULL instead of a failed query. The local
-- engine reads the same way and copies every such line, with why, to bronze/_bad/ (a
-- value that does not fit: when a query reads its column, as only those are converted).
WITH SERDEPROPERTIES (
  'case.insensitive' = 'true',
  'ignore.malformed.json' = 'true',
  'use.null.for.invalid.data' = 'true'
)
LOCATION '{{ location("bronze/events/") }}'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '{{ var("bronze_first_day") }},NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'projection.env.type' = 'enum',
  'projection.env.values' = '{{ var("envs") | join(",") }}',
  'projection.event_name.type' = 'enum',
  'projection.event_name.values' = '{{ var("events") | join(",") }}',
  'storage.location.template' = '{{ location("bronze/events") }}/dt=${dt}/hour=${hour}/env=${env}/event=${event_name}'
)
