"""moto server for strata's Athena tests, with the parts of AWS that moto leaves out.

moto does not run SQL. Athena's DDL also changes the Glue catalog, and strata reads what
its statements created, so this server adds those catalog effects (and nothing else):

- `CREATE EXTERNAL TABLE`: the Glue table it describes (columns, partition keys, SerDe,
  location, TBLPROPERTIES).
- CTAS (`CREATE TABLE .. WITH (..) AS SELECT`): a Glue table with the SELECT's output
  columns (type from a CAST, else string), the partition keys of `partitioned_by` and the
  `external_location`; its partitions and one object per partition come from the file
  given with `--ctas-partitions` (`{"<table prefix>": [["2025-11-06", "10"], ..]}`), as a
  test seeds moto's query results: a CTAS's output depends on data moto does not have.
- `DROP TABLE [IF EXISTS]`: removes the table.
- `BatchGetQueryExecution` and Glue `BatchDeleteTableVersion`, which moto lacks.

Failures (FAILED queries, throttling, `ConcurrentModificationException`) are not made
here: the Rust tests inject those at the SDK boundary.

Usage: python moto_athena.py [--ctas-partitions FILE]; prints the port on stdout.
"""

import argparse
import json
import logging
import os
import sys

import sqlglot
from sqlglot import exp
from moto.athena import models as athena_models
from moto.athena.responses import AthenaResponse
from moto.glue import models as glue_models
from moto.glue.responses import GlueResponse
from moto.s3 import models as s3_models
from moto.server import ThreadedMotoServer

CTAS_PARTITIONS = None


def _hive_type(kind):
    if kind is None:
        return "string"
    return kind.sql(dialect="hive").lower().replace("text", "string")


def _name(table):
    return table.name, table.db


def _props(create):
    out, partitioned, location = {}, [], None
    properties = create.args.get("properties")
    for p in properties.expressions if properties else []:
        if isinstance(p, exp.PartitionedByProperty):
            value = p.this
            if isinstance(value, exp.Schema):
                partitioned = [(c.name, _hive_type(c.args.get("kind"))) for c in value.expressions]
            else:
                partitioned = [(e.name, "string") for e in value.expressions]
        elif isinstance(p, exp.LocationProperty):
            location = p.this.name
        elif isinstance(p, exp.Property):
            key = p.name
            value = p.args.get("value")
            if isinstance(value, exp.Array):
                out[key] = [e.name for e in value.expressions]
            elif value is not None:
                out[key] = value.name
    return out, partitioned, location


def _glue(account_id, region):
    return glue_models.glue_backends[account_id][region]


def _s3(account_id):
    return s3_models.s3_backends[account_id]["aws"]


def _put(account_id, uri, body):
    bucket, _, key = uri[len("s3://"):].partition("/")
    _s3(account_id).put_object(bucket_name=bucket, key_name=key, value=body)


def _create_external(glue, db, name, create):
    schema = create.this
    columns = [
        {"Name": c.name, "Type": _hive_type(c.args.get("kind"))}
        for c in schema.expressions
        if isinstance(c, exp.ColumnDef)
    ]
    props, partitioned, location = _props(create)
    serde = {}
    properties = create.args.get("properties")
    for p in properties.expressions if properties else []:
        if isinstance(p, exp.RowFormatSerdeProperty):
            serde["SerializationLibrary"] = p.this.name
            params = p.args.get("serde_properties")
            if params is not None:
                serde["Parameters"] = {e.name: e.args["value"].name for e in params.expressions}
    table_props = {k: v for k, v in props.items() if isinstance(v, str)}
    table_props["EXTERNAL"] = "TRUE"
    glue.create_table(
        db,
        name,
        {
            "Name": name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": table_props,
            "PartitionKeys": [{"Name": n, "Type": t} for n, t in partitioned],
            "StorageDescriptor": {"Columns": columns, "Location": location or "", "SerdeInfo": serde},
        },
    )


def _create_ctas(account_id, glue, db, name, create):
    props, partitioned, _ = _props(create)
    select = create.expression
    columns = []
    for e in select.selects if select is not None else []:
        kind = None
        inner = e.this if isinstance(e, exp.Alias) else e
        if isinstance(inner, (exp.Cast, exp.TryCast)):
            kind = inner.args.get("to")
        columns.append((e.alias_or_name, _hive_type(kind)))
    keys = [n for n, _ in partitioned] or props.get("partitioned_by", [])
    location = props.get("external_location", "")
    if not location.endswith("/"):
        location += "/"
    glue.create_table(
        db,
        name,
        {
            "Name": name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
            "PartitionKeys": [{"Name": k, "Type": "string"} for k in keys],
            "StorageDescriptor": {
                "Columns": [{"Name": n, "Type": t} for n, t in columns if n not in keys],
                "Location": location,
                "SerdeInfo": {
                    "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                },
            },
        },
    )
    if not keys:
        _put(account_id, location + "part-00000.snappy.parquet", b"PAR1 emulated CTAS output PAR1")
        return
    seeded = {}
    if CTAS_PARTITIONS and os.path.exists(CTAS_PARTITIONS):
        with open(CTAS_PARTITIONS) as f:
            seeded = json.load(f)
    # "<table>" seeds every CTAS of that table's versions; "*<suffix>" one backfill window.
    values_list = next((v for key, v in seeded.items() if key.startswith("*") and name.endswith(key[1:])), None)
    if values_list is None:
        values_list = next((v for key, v in seeded.items() if name.startswith(key + "__")), [])
    table = glue.get_table(db, name)
    for values in values_list:
        sub = "/".join(f"{k}={v}" for k, v in zip(keys, values))
        table.create_partition(
            {
                "Values": values,
                "StorageDescriptor": {"Location": f"{location}{sub}/", "Columns": []},
            }
        )
        _put(account_id, f"{location}{sub}/part-00000.snappy.parquet", b"PAR1 emulated PAR1")


def _apply_ddl(backend, query, context):
    try:
        tree = sqlglot.parse_one(query, read="athena")
    except sqlglot.errors.ParseError:
        return
    glue = _glue(backend.account_id, backend.region_name)
    default_db = (context or {}).get("Database", "default")
    if isinstance(tree, exp.Create) and tree.kind == "TABLE":
        table = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        name, db = table.name, table.db or default_db
        if tree.expression is not None:
            _create_ctas(backend.account_id, glue, db, name, tree)
        else:
            _create_external(glue, db, name, tree)
    elif isinstance(tree, exp.Drop) and tree.kind == "TABLE":
        name, db = tree.this.name, tree.this.db or default_db
        try:
            glue.delete_table(db, name)
        except Exception:
            if not tree.args.get("exists"):
                raise


_original_start = athena_models.AthenaBackend.start_query_execution


def start_query_execution(self, query, context, config, workgroup, execution_parameters):
    exec_id = _original_start(self, query, context, config, workgroup, execution_parameters)
    _apply_ddl(self, query, context)
    return exec_id


def batch_get_query_execution(self):
    ids = self._get_param("QueryExecutionIds") or []
    found, missing = [], []
    for exec_id in ids:
        if exec_id not in self.athena_backend.executions:
            missing.append({"QueryExecutionId": exec_id, "ErrorCode": "InvalidRequestException",
                            "ErrorMessage": "QueryExecution not found"})
            continue
        execution = self.athena_backend.get_query_execution(exec_id)
        found.append(
            {
                "QueryExecutionId": exec_id,
                "Query": execution.query,
                "ResultConfiguration": execution.config,
                "QueryExecutionContext": execution.context,
                "Status": {
                    "State": execution.status,
                    "SubmissionDateTime": execution.start_time,
                    "CompletionDateTime": execution.end_time,
                },
                "Statistics": {
                    "EngineExecutionTimeInMillis": 0,
                    "DataScannedInBytes": 0,
                    "TotalExecutionTimeInMillis": 0,
                    "QueryQueueTimeInMillis": 0,
                },
                "WorkGroup": execution.workgroup.name if execution.workgroup else "primary",
            }
        )
    return json.dumps({"QueryExecutions": found, "UnprocessedQueryExecutionIds": missing})


def batch_delete_table_version(self):
    db = self.parameters.get("DatabaseName")
    name = self.parameters.get("TableName")
    errors = []
    for version in self.parameters.get("VersionIds", []):
        try:
            self.glue_backend.delete_table_version(db, name, version)
        except Exception as e:  # a version that is not there
            errors.append({"TableName": name, "VersionId": version,
                           "ErrorDetail": {"ErrorCode": "EntityNotFoundException", "ErrorMessage": str(e)}})
    return json.dumps({"Errors": errors})


def main():
    global CTAS_PARTITIONS
    parser = argparse.ArgumentParser()
    parser.add_argument("--ctas-partitions")
    args = parser.parse_args()
    CTAS_PARTITIONS = args.ctas_partitions
    athena_models.AthenaBackend.start_query_execution = start_query_execution
    AthenaResponse.batch_get_query_execution = batch_get_query_execution
    GlueResponse.batch_delete_table_version = batch_delete_table_version
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    # Lives until the test closes stdin or kills it.
    try:
        sys.stdin.read()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
