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
WITH SERDEPROPERTIES ('case.insensitive' = 'true', 'ignore.malformed.json' = 'true')
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
