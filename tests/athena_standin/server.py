"""The Athena stand-in for strata's tests: moto's S3, Glue and Athena APIs on a free port,
with Athena statements actually executed (engine.py: DuckDB after sqlglot, over moto's S3
objects, reading Bronze through a port of Trino's OpenX JSON reader).

What it adds to moto, and why:
- StartQueryExecution validates like Athena: a query string over 262,144 bytes and a CTAS
  naming `external_location` in a workgroup with `EnforceWorkGroupConfiguration` are
  refused with InvalidRequestException; a repeated ClientRequestToken returns the first
  query's id instead of starting the statement again.
- A statement runs when moto's state machine first reports it finished (so a statement
  stopped before that never runs); GetQueryExecution / BatchGetQueryExecution report
  FAILED with an AthenaError (category, type, message) when it failed, and
  DataScannedInBytes and the engine time it took.
- GetQueryResults returns the real rows, header row first, paged (MaxResults <= 1000).
- GetQueryRuntimeStatistics reports the rows written or returned.
- BatchGetQueryExecution and Glue BatchDeleteTableVersion, which moto lacks.

Faults moto cannot make at the API level (throttling, ConcurrentModificationException) are
injected at the SDK boundary by the Rust tests, not here.

Usage: python server.py; prints the port on stdout and serves until stdin closes.
"""

import json
import logging
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine  # noqa: E402
from moto.athena import models as athena_models  # noqa: E402
from moto.athena.responses import AthenaResponse  # noqa: E402
from moto.glue.responses import GlueResponse  # noqa: E402
from moto.s3.responses import S3Response  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

MAX_QUERY_BYTES = 262_144
LOCK = threading.RLock()
# ClientRequestToken -> query id (Athena: the same token returns the same query).
TOKENS = {}


class Outcome:
    def __init__(self):
        self.result = None
        self.failure = None
        self.millis = 0


def _invalid(message):
    return json.dumps({"__type": "InvalidRequestException", "Message": message}), {"status": 400}


def start_query_execution(self):
    query = self._get_param("QueryString") or ""
    token = self._get_param("ClientRequestToken")
    workgroup = self._get_param("WorkGroup") or "primary"
    with LOCK:
        if token and token in TOKENS:
            return json.dumps({"QueryExecutionId": TOKENS[token]})
        if len(query.encode("utf-8")) > MAX_QUERY_BYTES:
            return _invalid("1 validation error detected: Value at 'queryString' failed to satisfy constraint: "
                            f"Member must have length less than or equal to {MAX_QUERY_BYTES}")
        wg = self.athena_backend.get_work_group(workgroup)
        if wg is None and workgroup != "primary":
            return _invalid("WorkGroup is not found.")
        config = (wg or {}).get("Configuration") or {}
        if config.get("EnforceWorkGroupConfiguration") and engine.is_ctas_with_location(query):
            return _invalid("The Create Table As Select query failed because it was submitted with an "
                            "'external_location' property to an Athena Workgroup that enforces a centralized "
                            "output location for all queries. Please remove the 'external_location' property "
                            "and resubmit the query.")
        response = _original_start(self)
        if isinstance(response, tuple):
            return response
        exec_id = json.loads(response)["QueryExecutionId"]
        if token:
            TOKENS[token] = exec_id
        return response


def _ensure_run(backend, execution):
    """Runs the statement the first time moto reports it SUCCEEDED (a stopped one never runs)."""
    with LOCK:
        outcome = getattr(execution, "standin", None)
        if outcome is not None or execution.status != "SUCCEEDED":
            return outcome
        outcome = Outcome()
        context = execution.context or {}
        results = (execution.config or {}).get("OutputLocation")
        wg = execution.workgroup
        if wg is not None:
            out = ((wg.configuration or {}).get("ResultConfiguration") or {}).get("OutputLocation")
            if out and (results is None or (wg.configuration or {}).get("EnforceWorkGroupConfiguration")):
                results = out
        start = time.monotonic()
        try:
            lake = engine.Lake(backend.account_id, backend.region_name)
            outcome.result = engine.execute(lake, execution.query, context.get("Database"), execution.id,
                                            results.rsplit("/", 1)[0] + "/" if results else None)
        except engine.Failed as e:
            outcome.failure = e
        except Exception as e:  # a bug of the stand-in: say so, do not pretend it is Athena's
            logging.exception("stand-in failure")
            outcome.failure = engine.Failed(f"STANDIN_INTERNAL_ERROR: {type(e).__name__}: {e}", 1, 9999)
        outcome.millis = engine.clock_ms(start)
        execution.standin = outcome
        return outcome


def _describe(backend, execution):
    outcome = _ensure_run(backend, execution)
    state = execution.status
    status = {"State": state, "SubmissionDateTime": execution.start_time, "CompletionDateTime": execution.end_time}
    stats = {"EngineExecutionTimeInMillis": 0, "DataScannedInBytes": 0, "TotalExecutionTimeInMillis": 0,
             "QueryQueueTimeInMillis": 0}
    statement_type = "DDL" if execution.query.lstrip().upper().startswith(("CREATE", "DROP", "ALTER")) else "DML"
    if outcome is not None:
        stats["EngineExecutionTimeInMillis"] = outcome.millis
        stats["TotalExecutionTimeInMillis"] = outcome.millis
        if outcome.failure is not None:
            f = outcome.failure
            status["State"] = "FAILED"
            status["StateChangeReason"] = f.message
            status["AthenaError"] = {"ErrorCategory": f.category, "ErrorType": f.error_type,
                                     "Retryable": f.retryable, "ErrorMessage": f.message}
        else:
            stats["DataScannedInBytes"] = outcome.result.scanned
            statement_type = outcome.result.statement_type
    return {
        "QueryExecutionId": execution.id,
        "Query": execution.query,
        "StatementType": statement_type,
        "ResultConfiguration": execution.config,
        "QueryExecutionContext": execution.context,
        "Status": status,
        "Statistics": stats,
        "WorkGroup": execution.workgroup.name if execution.workgroup else "primary",
    }


def get_query_execution(self):
    exec_id = self._get_param("QueryExecutionId")
    execution = self.athena_backend.executions.get(exec_id)
    if execution is None:
        return _invalid(f"QueryExecution {exec_id} was not found")
    execution.advance()
    return json.dumps({"QueryExecution": _describe(self.athena_backend, execution)})


def batch_get_query_execution(self):
    found, missing = [], []
    for exec_id in self._get_param("QueryExecutionIds") or []:
        execution = self.athena_backend.executions.get(exec_id)
        if execution is None:
            missing.append({"QueryExecutionId": exec_id, "ErrorCode": "InvalidRequestException",
                            "ErrorMessage": "QueryExecution not found"})
            continue
        execution.advance()
        found.append(_describe(self.athena_backend, execution))
    return json.dumps({"QueryExecutions": found, "UnprocessedQueryExecutionIds": missing})


def get_query_results(self):
    exec_id = self._get_param("QueryExecutionId")
    execution = self.athena_backend.executions.get(exec_id)
    if execution is None:
        return _invalid(f"QueryExecution {exec_id} was not found")
    outcome = _ensure_run(self.athena_backend, execution)
    if outcome is None or outcome.failure is not None:
        state = "FAILED" if outcome is not None else execution.status
        return _invalid(f"Query has not yet finished. Current state: {state}")
    result = outcome.result
    header = [] if result.statement_type == "DDL" or not result.columns else [[n for n, _ in result.columns]]
    rows = header + result.rows
    max_results = min(int(self._get_param("MaxResults") or 1000), 1000)
    offset = int(self._get_param("NextToken") or 0)
    page = rows[offset:offset + max_results]
    body = {
        "UpdateCount": 0,
        "ResultSet": {
            "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in r]} for r in page],
            "ResultSetMetadata": {"ColumnInfo": [
                {"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": n, "Label": n,
                 "Type": t.split("(")[0], "Precision": 0, "Scale": 0, "Nullable": "UNKNOWN", "CaseSensitive": False}
                for n, t in result.columns]},
        },
    }
    if offset + max_results < len(rows):
        body["NextToken"] = str(offset + max_results)
    return json.dumps(body)


def get_query_runtime_statistics(self):
    exec_id = self._get_param("QueryExecutionId")
    execution = self.athena_backend.executions.get(exec_id)
    if execution is None:
        return _invalid(f"QueryExecution {exec_id} was not found")
    outcome = _ensure_run(self.athena_backend, execution)
    rows = outcome.result.output_rows if outcome is not None and outcome.result is not None else 0
    scanned = outcome.result.scanned if outcome is not None and outcome.result is not None else 0
    return json.dumps({"QueryRuntimeStatistics": {
        "Rows": {"InputBytes": scanned, "InputRows": 0, "OutputBytes": 0, "OutputRows": rows},
        "Timeline": {"EngineExecutionTimeInMillis": outcome.millis if outcome else 0},
    }})


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


_original_start = AthenaResponse.start_query_execution
_original_put_object = S3Response.put_object
_original_delete_object = S3Response.delete_object
# S3 evaluates If-Match / If-None-Match and writes as one atomic step ("How to prevent
# object overwrites with conditional writes": of two conditional writes racing, one wins
# and the other gets 412 or 409). moto checks, then writes, on a threaded server: without
# this lock two racing writers could both pass the check.
S3_WRITE_LOCK = threading.Lock()


def put_object(self):
    with S3_WRITE_LOCK:
        return _original_put_object(self)


def delete_object(self):
    with S3_WRITE_LOCK:
        return _original_delete_object(self)


def main():
    AthenaResponse.start_query_execution = start_query_execution
    AthenaResponse.get_query_execution = get_query_execution
    AthenaResponse.batch_get_query_execution = batch_get_query_execution
    AthenaResponse.get_query_results = get_query_results
    AthenaResponse.get_query_runtime_statistics = get_query_runtime_statistics
    GlueResponse.batch_delete_table_version = batch_delete_table_version
    S3Response.put_object = put_object
    S3Response.delete_object = delete_object
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    try:
        sys.stdin.read()  # lives until the test closes stdin or kills it
    finally:
        server.stop()


if __name__ == "__main__":
    main()
