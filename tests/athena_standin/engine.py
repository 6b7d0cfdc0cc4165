"""Executes Athena statements for the stand-in: over moto's Glue catalog and S3 objects,
with DuckDB doing the relational work after sqlglot transpiles from the `athena` dialect.

What each statement does, and what it refuses, follows Athena (engine v3) as documented:

- `CREATE EXTERNAL TABLE`: a Glue table with the columns, partition keys, SerDe, location
  and TBLPROPERTIES of the DDL (`IF NOT EXISTS` honoured).
- CTAS (`CREATE TABLE .. WITH (..) AS SELECT`): runs the SELECT, writes Parquet under
  `external_location` (one directory per partition, `k=v/`), creates the Glue table and
  registers its partitions. Refused like Athena: a non-empty `external_location`
  (HIVE_PATH_ALREADY_EXISTS), partition columns that are not the last columns in order
  (HIVE_COLUMN_ORDER_MISMATCH), more than 100 partitions written by one statement
  (HIVE_TOO_MANY_OPEN_PARTITIONS). `external_location` in a workgroup that enforces its
  configuration is refused when the query starts (server.py), as is a query string over
  262,144 bytes.
- `INSERT INTO`: writes new files into the target's partitions, registering new ones.
- `SELECT`: the rows, for GetQueryResults.
- `DROP TABLE [IF EXISTS]`: the Glue table (never its data, as in Athena).

Reading tables:
- Views (Glue `VIRTUAL_VIEW` with a Presto view in `ViewOriginalText`) are decoded and
  inlined; the view's declared columns must match what its SQL produces (VIEW_IS_STALE),
  and its column types must parse as Trino parses them.
- Tables with the OpenX JSON SerDe are read through `openx.py` (Trino's OpenX reader and its
  SERDEPROPERTIES); Parquet tables through DuckDB. `.gz` objects are inflated (Trino picks
  the codec by file name).
- Partitions: partition projection and `storage.location.template` when
  `projection.enabled`, else Glue's partitions. Only files directly in a partition
  directory are read; names starting with `_` or `.` and empty objects are skipped.
- Pruning: a predicate of the query that constrains only a table's partition columns (or
  `"$path"`, which Trino applies when it creates splits) selects the files read, after
  sqlglot has inlined views and pushed predicates down. `DataScannedInBytes` is the size of
  the objects read (whole objects: Athena reads only the Parquet columns it needs, so for
  Parquet this is an upper bound).
"""

import datetime
import gzip
import os
import re
import tempfile
import time
import uuid

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.pushdown_predicates import pushdown_predicates
from sqlglot.optimizer.merge_subqueries import merge_subqueries
from sqlglot.optimizer.qualify import qualify

import openx
import trino

MAX_PARTITIONS_PER_STATEMENT = 100
PATH = "$path"


class Failed(Exception):
    """The query FAILED, with Athena's error category, type and message."""

    def __init__(self, message, category=2, error_type=1100, retryable=False):
        super().__init__(message)
        self.message, self.category, self.error_type, self.retryable = message, category, error_type, retryable


class Result:
    def __init__(self, columns=(), rows=(), scanned=0, output_rows=0, statement_type="DML"):
        self.columns = list(columns)  # [(name, trino type)]
        self.rows = list(rows)  # [[text or None]]
        self.scanned = scanned
        self.output_rows = output_rows
        self.statement_type = statement_type


def split_uri(uri):
    if not uri.startswith("s3://"):
        raise Failed(f"not an S3 location: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def dir_uri(uri):
    return uri if uri.endswith("/") else uri + "/"


# Hive's FileUtils.escapePathName: characters escaped in partition directory names.
_ESCAPE = set('"#%\'*/:=?\\\x7f{[]^')


def escape_path(value):
    return "".join(f"%{ord(c):02X}" if c in _ESCAPE or ord(c) < 0x20 else c for c in value)


class Lake:
    """moto's Glue catalog and S3 objects, read and written in process."""

    def __init__(self, account_id, region):
        from moto.glue import models as glue_models
        from moto.s3 import models as s3_models
        self.glue = glue_models.glue_backends[account_id][region]
        self.s3 = s3_models.s3_backends[account_id]["aws"]

    def table(self, db, name):
        try:
            return self.glue.get_table(db, name).as_dict()
        except Exception:
            return None

    def partitions(self, db, name):
        return [p.as_dict() for p in self.glue.get_table(db, name).partitions.values()]

    def objects(self, prefix_uri, recursive=False):
        """(uri, size) of the objects under a prefix (directly under it unless recursive)."""
        bucket, prefix = split_uri(prefix_uri)
        b = self.s3.get_bucket(bucket)
        out = []
        for key_name, key in list(b.keys.items()):
            if not key_name.startswith(prefix) or key_name.endswith("/"):
                continue
            rest = key_name[len(prefix):]
            if not recursive and "/" in rest:
                continue
            out.append((f"s3://{bucket}/{key_name}", key.size))
        return sorted(out)

    def read(self, uri):
        bucket, key = split_uri(uri)
        return self.s3.get_object(bucket, key).value

    def write(self, uri, body):
        bucket, key = split_uri(uri)
        self.s3.put_object(bucket_name=bucket, key_name=key, value=body)

    def create_table(self, db, table_input):
        self.glue.create_table(db, table_input["Name"], table_input)

    def drop_table(self, db, name):
        self.glue.delete_table(db, name)

    def add_partition(self, db, name, values, location):
        t = self.glue.get_table(db, name)
        if str(values) in t.partitions:
            return
        t.create_partition({"Values": values, "StorageDescriptor": {"Location": location, "Columns": []}})


# ---------------------------------------------------------------------------------------
# Table metadata


class TableMeta:
    """What the engine needs of a Glue table."""

    def __init__(self, db, name, glue):
        self.db, self.name, self.glue = db, name, glue
        sd = glue.get("StorageDescriptor") or {}
        self.columns = [(c["Name"].lower(), c["Type"]) for c in sd.get("Columns", [])]
        self.partition_keys = [(c["Name"].lower(), c.get("Type", "string")) for c in glue.get("PartitionKeys", [])]
        self.location = sd.get("Location") or ""
        serde = sd.get("SerdeInfo") or {}
        self.serde = serde.get("SerializationLibrary") or ""
        self.serde_params = serde.get("Parameters") or {}
        self.params = glue.get("Parameters") or {}
        self.is_view = glue.get("TableType") == "VIRTUAL_VIEW"

    @property
    def qualified(self):
        return f"awsdatacatalog.{self.db}.{self.name}"

    def kind(self):
        if "openx" in self.serde.lower() or "jsonserde" in self.serde.lower():
            return "json"
        if "parquet" in self.serde.lower() or self.params.get("classification") == "parquet":
            return "parquet"
        raise Failed(f"HIVE_UNSUPPORTED_FORMAT: the stand-in reads OpenX JSON and Parquet tables; "
                     f"{self.qualified} uses {self.serde or 'no SerDe'}")


def view_definition(meta):
    """The Presto view JSON of a Glue view (Trino ViewReaderUtil.decodeViewData)."""
    import base64
    import json
    text = meta.glue.get("ViewOriginalText") or ""
    prefix, suffix = "/* Presto View: ", " */"
    if not (text.startswith(prefix) and text.endswith(suffix)):
        raise Failed(f"HIVE_INVALID_VIEW_DATA: View data missing prefix: {text[:40]}", 2, 1107)
    return json.loads(base64.b64decode(text[len(prefix):-len(suffix)]))


# ---------------------------------------------------------------------------------------
# Partition projection (Athena "Partition projection"; Trino plugin/trino-hive/.../projection)

_NOW = re.compile(r"\s*NOW\s*(?:([+-])\s*([0-9]+)\s*(YEARS?|MONTHS?|WEEKS?|DAYS?|HOURS?|MINUTES?|SECONDS?)\s*)?$", re.I)


def _java_pattern(fmt):
    """A Java DateTimeFormatter pattern (the subset partition projection uses) as strftime."""
    out, i = [], 0
    codes = [("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")]
    while i < len(fmt):
        for java, py in codes:
            if fmt.startswith(java, i):
                out.append(py)
                i += len(java)
                break
        else:
            if fmt[i].isalpha():
                raise Failed(f"the stand-in does not handle the date format {fmt!r}")
            out.append(fmt[i].replace("%", "%%"))
            i += 1
    return "".join(out)


def _date_bound(text, fmt, now):
    m = _NOW.match(text)
    if not m:
        return datetime.datetime.strptime(text.strip(), fmt)
    t = now
    if m.group(1):
        n = int(m.group(2)) * (1 if m.group(1) == "+" else -1)
        unit = m.group(3).upper().rstrip("S")
        t = t + {"DAY": datetime.timedelta(days=n), "HOUR": datetime.timedelta(hours=n),
                 "MINUTE": datetime.timedelta(minutes=n), "SECOND": datetime.timedelta(seconds=n),
                 "WEEK": datetime.timedelta(weeks=n)}[unit]
    return t


def projected(meta, column, value, now):
    """Whether partition projection projects `value` for `column` (a value it would never
    produce is invisible to queries)."""
    p = meta.params
    kind = (p.get(f"projection.{column}.type") or "").lower()
    if kind == "enum":
        return value in p.get(f"projection.{column}.values", "").split(",")
    if kind == "integer":
        lo, hi = (int(x) for x in p[f"projection.{column}.range"].split(","))
        digits = int(p.get(f"projection.{column}.digits", "0") or 0)
        interval = int(p.get(f"projection.{column}.interval", "1"))
        try:
            n = int(value)
        except ValueError:
            return False
        return lo <= n <= hi and (n - lo) % interval == 0 and value == str(n).zfill(digits if n >= 0 else 0)
    if kind == "date":
        fmt = _java_pattern(p[f"projection.{column}.format"])
        start, end = p[f"projection.{column}.range"].split(",")
        try:
            t = datetime.datetime.strptime(value, fmt)
        except ValueError:
            return False
        if t.strftime(fmt) != value:
            return False
        return _date_bound(start, fmt, now) <= t <= _date_bound(end, fmt, now)
    if kind == "injected":
        return True
    raise Failed(f"HIVE_METASTORE_ERROR: Table {meta.db}.{meta.name} is configured for partition "
                 f"projection, but the following partition columns are missing projection "
                 f"configuration: [{column}]")


def candidate_files(lake, meta, now):
    """Every file a scan of the table could read: (uri, size, partition values)."""
    keys = [k for k, _ in meta.partition_keys]
    visible = lambda uri, size: size > 0 and not uri.rsplit("/", 1)[1].startswith(("_", "."))  # noqa: E731
    if not keys:
        return [(u, s, []) for u, s in lake.objects(dir_uri(meta.location)) if visible(u, s)]
    if meta.params.get("projection.enabled", "").lower() == "true":
        template = meta.params.get("storage.location.template") or (
            dir_uri(meta.location) + "/".join(f"{k}=${{{k}}}" for k in keys))
        template = template.rstrip("/")
        static = template[:template.index("${")] if "${" in template else template
        pattern = re.escape(template)
        for k in keys:
            pattern = pattern.replace(re.escape("${" + k + "}"), f"(?P<{k}>[^/]+)", 1)
            pattern = pattern.replace(re.escape("${" + k + "}"), f"(?P={k})")
        rx = re.compile(pattern + r"/([^/]+)$")
        out = []
        for uri, size in lake.objects(static, recursive=True):
            m = rx.match(uri)
            if not m or not visible(uri, size):
                continue
            values = [m.group(k) for k in keys]
            if all(projected(meta, k, v, now) for k, v in zip(keys, values)):
                out.append((uri, size, values))
        return out
    out = []
    for part in lake.partitions(meta.db, meta.name):
        loc = dir_uri(part["StorageDescriptor"]["Location"])
        out.extend((u, s, list(part["Values"])) for u, s in lake.objects(loc) if visible(u, s))
    return out


# ---------------------------------------------------------------------------------------
# A query: resolve names, inline views, prune, load, run


class Query:
    def __init__(self, lake, database, now=None):
        self.lake = lake
        self.database = database
        self.now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.con = duckdb.connect()
        trino.register(self.con)
        self.metas = {}  # (db, name) -> TableMeta of base tables read
        self.views = []  # (meta, definition, parsed sql)
        self.scanned = 0
        self.cache = tempfile.mkdtemp(prefix="standin-")

    def close(self):
        import shutil
        self.con.close()
        shutil.rmtree(self.cache, ignore_errors=True)

    def meta(self, db, name):
        glue = self.lake.table(db, name)
        if glue is None:
            raise Failed(f"TABLE_NOT_FOUND: line 1:1: Table 'awsdatacatalog.{db}.{name}' does not exist", 2, 1110)
        return TableMeta(db, name, glue)

    def inline(self, tree, default_db, depth=0):
        """Replaces views by their SQL (recursively) and qualifies table names with a
        database; returns the tree and the base tables it reads."""
        if depth > 10:
            raise Failed("VIEW_IS_RECURSIVE: a view refers to itself", 2, 1107)
        ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
        for table in list(tree.find_all(exp.Table)):
            if not table.name or isinstance(table.this, exp.Func):
                continue
            if not table.db and table.name.lower() in ctes:
                continue
            db = (table.db or default_db).lower()
            name = table.name.lower()
            meta = self.meta(db, name)
            if meta.is_view:
                definition = view_definition(meta)
                sql = definition["originalSql"]
                inner = sqlglot.parse_one(sql, read="athena")
                inner = self.inline(inner, (definition.get("schema") or db).lower(), depth + 1)
                self.views.append((meta, definition, inner.copy()))
                alias = table.alias or name
                table.replace(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(alias))))
            else:
                table.set("db", exp.to_identifier(db))
                table.set("catalog", None)
                self.metas[(db, name)] = meta
        return tree

    def schema(self):
        out = {}
        for (db, name), meta in self.metas.items():
            cols = {c: trino.hive_to_duckdb(t) for c, t in meta.columns}
            cols.update({k: trino.hive_to_duckdb(t) for k, t in meta.partition_keys})
            out.setdefault(db, {})[name] = cols
        return out

    def prepare(self, tree):
        """Inlines views, loads the base tables (pruned) into DuckDB; returns the
        statement as DuckDB SQL."""
        tree = self.inline(tree, self.database)
        schema = self.schema()
        try:
            tree = qualify(tree, schema=schema, dialect="athena", validate_qualify_columns=False,
                           quote_identifiers=True, identify=True)
        except sqlglot.errors.OptimizeError as e:
            raise Failed(f"SEMANTIC_ERROR: {e}", 2, 1100)
        predicates = self.pruning(tree.copy(), schema)
        for (db, name), meta in self.metas.items():
            self.load(meta, predicates.get((db, name)))
        for meta, definition, inner in self.views:
            self.check_view(meta, definition, inner, schema)
        return trino.rewrite(tree).sql(dialect="duckdb")

    def pruning(self, tree, schema):
        """Per base table, the predicates that select its partitions and files: one list per
        reference to it (None where a reference is not constrained)."""
        try:
            tree = pushdown_predicates(merge_subqueries(tree))
        except Exception:
            pass
        out = {}
        for table in tree.find_all(exp.Table):
            key = (table.db.lower(), table.name.lower())
            meta = self.metas.get(key)
            if meta is None:
                continue
            alias = table.alias_or_name
            prunable = {k for k, _ in meta.partition_keys} | {PATH}
            conjuncts = []
            select = table.find_ancestor(exp.Select)
            parent = table.parent
            if select is not None and select.args.get("where") is not None and isinstance(parent, exp.From):
                conjuncts.extend(select.args["where"].this.flatten() if isinstance(select.args["where"].this, exp.And)
                                 else [select.args["where"].this])
            if isinstance(parent, exp.Join) and parent.args.get("on") is not None and parent.side in ("", None, "LEFT"):
                on = parent.args["on"]
                conjuncts.extend(on.flatten() if isinstance(on, exp.And) else [on])
            if select is not None and isinstance(parent, exp.From):
                for join in select.args.get("joins") or []:
                    if join.side in ("", None) and join.kind in ("", None, "INNER", "CROSS") and join.args.get("on") is not None:
                        on = join.args["on"]
                        conjuncts.extend(on.flatten() if isinstance(on, exp.And) else [on])
            usable = []
            for c in conjuncts:
                cols = list(c.find_all(exp.Column))
                # "$path" is a hidden column (not in the schema, so left unqualified): it
                # belongs to the one table its SELECT reads.
                alone = not (select is not None and select.args.get("joins"))
                if (cols and not c.find(exp.Subquery, exp.Select)
                        and all((col.table == alias or (col.name == PATH and not col.table and alone))
                                and col.name in prunable for col in cols)):
                    usable.append(c)
            out.setdefault(key, []).append(exp.and_(*usable) if usable else None)
        return out

    def check_view(self, meta, definition, inner, schema):
        """A view's declared columns must parse as Trino types and match its SQL."""
        declared = []
        for col in definition.get("columns", []):
            try:
                declared.append((col["name"].lower(), trino.parse_trino_type(col["type"])))
            except ValueError:
                raise Failed(f"INVALID_VIEW: Unknown type '{col['type']}' for column '{col['name']}' "
                             f"in view: {meta.qualified}", 2, 1107)
        try:
            q = qualify(inner, schema=schema, dialect="athena", validate_qualify_columns=False,
                        quote_identifiers=True, identify=True)
            rel = self.con.sql(trino.rewrite(q).sql(dialect="duckdb"))
        except (duckdb.Error, sqlglot.errors.SqlglotError) as e:
            raise Failed(f"INVALID_VIEW: Failed analyzing stored view '{meta.qualified}': {e}", 2, 1107)
        actual = [(n.lower(), trino.parse_trino_type(trino.duckdb_type(t)[1])) for n, t in zip(rel.columns, rel.types)]
        if len(actual) != len(declared):
            raise Failed(f"VIEW_IS_STALE: line 1:1: View '{meta.qualified}' is stale or in invalid state: "
                         f"stored view column count ({len(declared)}) does not match column count derived "
                         f"from the view query analysis ({len(actual)})", 2, 1107)
        for i, ((dn, dt), (an, at)) in enumerate(zip(declared, actual)):
            if dn != an or not trino.same_type(dt, at):
                raise Failed(f"VIEW_IS_STALE: line 1:1: View '{meta.qualified}' is stale or in invalid state: "
                             f"column [{an}] of type {at} projected from query view at position {i} "
                             f"cannot be coerced to column [{dn}] of type {dt} stored in view definition",
                             2, 1107)

    def load(self, meta, predicates):
        """Creates "db"."name" in DuckDB with the rows of the files the predicates select."""
        candidates = candidate_files(self.lake, meta, self.now)
        chosen = set()
        for pred in predicates or [None]:
            selected = self.select_files(meta, candidates, pred)
            chosen |= selected
            self.scanned += sum(candidates[i][1] for i in selected)
        files = [candidates[i] for i in sorted(chosen)]
        self.con.execute(f'CREATE SCHEMA IF NOT EXISTS "{meta.db}"')
        cols = [(c, trino.hive_to_duckdb(t)) for c, t in meta.columns]
        cols += [(k, trino.hive_to_duckdb(t)) for k, t in meta.partition_keys]
        cols.append((PATH, "VARCHAR"))
        ddl = ", ".join(f'"{c}" {t}' for c, t in cols)
        self.con.execute(f'CREATE TABLE "{meta.db}"."{meta.name}" ({ddl})')
        if meta.kind() == "json":
            self.load_json(meta, files, cols)
        else:
            self.load_parquet(meta, files, cols)

    def select_files(self, meta, candidates, pred):
        if pred is None or not candidates:
            return set(range(len(candidates)))
        keys = [k for k, _ in meta.partition_keys]
        alias = "__cand"
        self.con.execute(f'CREATE OR REPLACE TEMP TABLE {alias} (__i INTEGER, '
                         + ", ".join(f'"{k}" VARCHAR' for k in keys + [PATH]) + ")")
        self.con.executemany(f"INSERT INTO {alias} VALUES ({', '.join('?' * (len(keys) + 2))})",
                             [[i, *values, uri] for i, (uri, _, values) in enumerate(candidates)])
        pred = pred.copy()
        for col in pred.find_all(exp.Column):
            col.set("table", exp.to_identifier(alias))
        try:
            sql = f"SELECT __i FROM {alias} WHERE {trino.rewrite(pred).sql(dialect='duckdb')}"
            return {r[0] for r in self.con.execute(sql).fetchall()}
        except duckdb.Error:
            return set(range(len(candidates)))

    def load_json(self, meta, files, cols):
        columns = [(c, openx.parse_hive_type(t)) for c, t in meta.columns]
        options = openx.Options.from_serde(meta.serde_params)
        rows = []
        for uri, _, values in files:
            data = self.lake.read(uri)
            if uri.endswith(".gz"):
                try:
                    data = gzip.decompress(data)
                except (OSError, EOFError) as e:
                    raise Failed(f"HIVE_CURSOR_ERROR: Failed to read file at {uri}: {e}", 2, 1100)
            for line in openx.split_lines(data):
                try:
                    row, _notes = openx.decode_line(line, columns, options)
                except openx.OpenXError as e:
                    raise Failed(f"HIVE_CURSOR_ERROR: Failed to read file at {uri}: {e}", 2, 1100)
                rows.append([to_duck(v, t) for v, (_, t) in zip(row, meta.columns)] + list(values) + [uri])
        if rows:
            self.con.executemany(f'INSERT INTO "{meta.db}"."{meta.name}" VALUES ({", ".join("?" * len(cols))})', rows)

    def load_parquet(self, meta, files, cols):
        for uri, _, values in files:
            local = os.path.join(self.cache, uuid.uuid4().hex + ".parquet")
            with open(local, "wb") as f:
                f.write(self.lake.read(uri))
            present = {r[0].lower() for r in self.con.execute(f"DESCRIBE SELECT * FROM read_parquet('{local}')").fetchall()}
            select = []
            for c, t in cols[:len(meta.columns)]:
                select.append(f'CAST("{c}" AS {t})' if c in present else f"CAST(NULL AS {t})")
            select += [f"CAST(? AS {t})" for _, t in cols[len(meta.columns):-1]] + ["?"]
            self.con.execute(f'INSERT INTO "{meta.db}"."{meta.name}" SELECT {", ".join(select)} '
                             f"FROM read_parquet('{local}')", list(values) + [uri])


def to_duck(value, hive):
    """A decoded OpenX value as DuckDB takes it for a column of Hive type `hive`."""
    if value is None:
        return None
    t = hive.strip()
    low = t.lower()
    if low.startswith("map<"):
        _, v = trino.split_top(t[4:-1])
        return {"key": [k for k, _ in value], "value": [to_duck(x, v) for _, x in value]}
    if low.startswith("array<"):
        return [to_duck(x, t[6:-1]) for x in value]
    if low.startswith("struct<"):
        fields = [f.partition(":") for f in trino.split_top(t[7:-1])]
        return {n.strip().strip("`").lower(): to_duck(value.get(n.strip().strip("`").lower()), ty)
                for n, _, ty in fields}
    return value


# ---------------------------------------------------------------------------------------
# Statements


def _props(create):
    """WITH (...) properties of a CTAS, and PARTITIONED BY / LOCATION of a DDL."""
    out, partitioned, location = {}, [], None
    properties = create.args.get("properties")
    for p in properties.expressions if properties else []:
        if isinstance(p, exp.PartitionedByProperty):
            value = p.this
            if isinstance(value, exp.Schema):
                partitioned = [(c.name, _ddl_type(c.args.get("kind"))) for c in value.expressions]
            else:
                partitioned = [(e.name, "string") for e in value.expressions]
        elif isinstance(p, exp.LocationProperty):
            location = p.this.name
        elif isinstance(p, exp.Property):
            value = p.args.get("value")
            if isinstance(value, exp.Array):
                out[p.name.lower()] = [e.name for e in value.expressions]
            elif value is not None:
                out[p.name.lower()] = value.name
    return out, partitioned, location


def _ddl_type(kind):
    if kind is None:
        return "string"
    return kind.sql(dialect="hive").lower().replace("text", "string")


def is_ctas_with_location(sql):
    try:
        tree = sqlglot.parse_one(sql, read="athena")
    except sqlglot.errors.ParseError:
        return False
    if isinstance(tree, exp.Create) and tree.expression is not None:
        props, _, _ = _props(tree)
        return "external_location" in props
    return False


def execute(lake, sql, database, query_id, results_location=None):
    """Runs one statement; returns a Result or raises Failed."""
    try:
        tree = sqlglot.parse_one(sql, read="athena")
    except sqlglot.errors.ParseError as e:
        raise Failed(f"SYNTAX_ERROR: {e}", 2, 1006)
    database = (database or "default").lower()
    if isinstance(tree, exp.Create) and (tree.kind or "").upper() == "TABLE":
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        db, name = (target.db or database).lower(), target.name.lower()
        if tree.expression is not None:
            return ctas(lake, tree, db, name, database, query_id, results_location)
        return create_external(lake, tree, db, name)
    if isinstance(tree, exp.Drop) and (tree.kind or "").upper() in ("TABLE", "VIEW"):
        db, name = (tree.this.db or database).lower(), tree.this.name.lower()
        if lake.table(db, name) is None:
            if tree.args.get("exists"):
                return Result(statement_type="DDL")
            raise Failed(f"TABLE_NOT_FOUND: Table awsdatacatalog.{db}.{name} does not exist", 2, 1110)
        lake.drop_table(db, name)
        return Result(statement_type="DDL")
    if isinstance(tree, exp.Insert):
        return insert(lake, tree, database, query_id)
    if isinstance(tree, exp.Query):
        return select(lake, tree, database)
    raise Failed(f"NOT_SUPPORTED: the stand-in does not run {type(tree).__name__} statements", 2, 1100)


def create_external(lake, create, db, name):
    if lake.table(db, name) is not None:
        if create.args.get("exists"):
            return Result(statement_type="DDL")
        raise Failed(f"AlreadyExistsException: Table {db}.{name} already exists", 2, 1100)
    schema = create.this
    columns = [{"Name": c.name.lower(), "Type": _ddl_type(c.args.get("kind"))}
               for c in schema.expressions if isinstance(c, exp.ColumnDef)]
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
    lake.create_table(db, {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": table_props,
        "PartitionKeys": [{"Name": n.lower(), "Type": t} for n, t in partitioned],
        "StorageDescriptor": {"Columns": columns, "Location": location or "", "SerdeInfo": serde},
    })
    return Result(statement_type="DDL")


def select(lake, tree, database):
    q = Query(lake, database)
    try:
        sql = q.prepare(tree)
        try:
            rel = q.con.sql(sql)
            names, types = rel.columns, rel.types
            data = rel.fetchall()
        except duckdb.Error as e:
            raise duck_failure(e)
        kinds = [trino.duckdb_type(t)[1] for t in types]
        rows = [[trino.text(v, k) for v, k in zip(r, kinds)] for r in data]
        return Result(list(zip(names, kinds)), rows, q.scanned, len(rows))
    finally:
        q.close()


def duck_failure(e):
    name = type(e).__name__
    if name == "ParserException":
        return Failed(f"SYNTAX_ERROR: {e}", 2, 1006)
    if name in ("BinderException", "CatalogException"):
        return Failed(f"SEMANTIC_ERROR: {e}", 2, 1100)
    if name in ("ConversionException", "InvalidInputException", "OutOfRangeException"):
        return Failed(f"INVALID_CAST_ARGUMENT: {e}", 2, 1100)
    return Failed(f"GENERIC_USER_ERROR: {e}", 2, 1100)


def _result_relation(q, sql):
    """The SELECT's result in DuckDB, with Trino's bigint where DuckDB widened to HUGEINT."""
    try:
        rel = q.con.sql(sql)
        casts = []
        for n, t in zip(rel.columns, rel.types):
            name = n.replace('"', '""')
            if t.id in ("hugeint", "ubigint", "uinteger"):
                casts.append(f'CAST("{name}" AS BIGINT) AS "{name}"')
            elif t.id == "null":
                casts.append(f'CAST("{name}" AS VARCHAR) AS "{name}"')
            else:
                casts.append(f'"{name}"')
        q.con.execute(f"CREATE TEMP TABLE __result AS SELECT {', '.join(casts)} FROM ({sql})")
        rel = q.con.sql("SELECT * FROM __result")
        return rel.columns, rel.types
    except duckdb.Error as e:
        raise duck_failure(e)


def _write_partitions(lake, q, names, types, part_cols, location, query_id):
    """Writes __result as Parquet under `location` (a directory per partition); returns
    [(values, partition location)] and the rows written."""
    data_cols = [n for n in names if n not in part_cols]
    if part_cols:
        groups = q.con.execute(f"SELECT DISTINCT {', '.join(_q(c) for c in part_cols)} FROM __result").fetchall()
        if len(groups) > MAX_PARTITIONS_PER_STATEMENT:
            raise Failed("HIVE_TOO_MANY_OPEN_PARTITIONS: Exceeded limit of 100 open writers for partitions/buckets",
                         2, 1100)
    else:
        groups = [()]
    written, total = [], 0
    for n, values in enumerate(groups):
        cond = " AND ".join(f"{_q(c)} IS NOT DISTINCT FROM ?" for c in part_cols) or "true"
        count = q.con.execute(f"SELECT count(*) FROM __result WHERE {cond}", list(values)).fetchone()[0]
        if count == 0:
            continue
        total += count
        texts = ["__HIVE_DEFAULT_PARTITION__" if v is None else trino.text(v) for v in values]
        sub = "".join(f"{c}={escape_path(v)}/" for c, v in zip(part_cols, texts))
        local = os.path.join(q.cache, f"out{n}.parquet")
        cols = ", ".join(_q(c) for c in data_cols)
        q.con.execute(f"COPY (SELECT {cols} FROM __result WHERE {cond}) TO '{local}' "
                      f"(FORMAT PARQUET, COMPRESSION 'snappy')", list(values))
        with open(local, "rb") as f:
            lake.write(f"{dir_uri(location)}{sub}{query_id}_{uuid.uuid4().hex[:8]}", f.read())
        written.append((texts, f"{dir_uri(location)}{sub}"))
    return written, total


def _q(name):
    return '"' + name.replace('"', '""') + '"'


def ctas(lake, tree, db, name, database, query_id, results_location):
    props, partitioned, _ = _props(tree)
    if lake.table(db, name) is not None:
        raise Failed(f"TABLE_ALREADY_EXISTS: line 1:1: Table 'awsdatacatalog.{db}.{name}' already exists", 2, 1100)
    fmt = props.get("format", "PARQUET").upper()
    if fmt != "PARQUET":
        raise Failed(f"NOT_SUPPORTED: the stand-in writes PARQUET only, not {fmt}")
    location = props.get("external_location")
    if location is None:
        location = f"{dir_uri(results_location or 's3://standin-results/')}tables/{query_id}/"
    location = dir_uri(location)
    if lake.objects(location, recursive=True):
        raise Failed(f"HIVE_PATH_ALREADY_EXISTS: Target directory for table '{db}.{name}' already exists: "
                     f"{location}. You may need to manually clean the data at location '{location}' before "
                     f"retrying. Athena will not delete data in your account.", 2, 1100)
    part_cols = [c.lower() for c in ([n for n, _ in partitioned] or props.get("partitioned_by", []))]
    q = Query(lake, database)
    try:
        sql = q.prepare(tree.expression)
        names, types = _result_relation(q, sql)
        names = [n.lower() for n in names]
        missing = [c for c in part_cols if c not in names]
        if missing:
            raise Failed(f"INVALID_TABLE_PROPERTY: Partition columns {missing} not present in schema", 2, 1103)
        if part_cols and names[-len(part_cols):] != part_cols:
            raise Failed("HIVE_COLUMN_ORDER_MISMATCH: Partition keys must be the last columns in the table and "
                         f"in the same order as the table properties: {part_cols}", 2, 1100)
        if part_cols and len(part_cols) == len(names):
            raise Failed("INVALID_TABLE_PROPERTY: Table contains only partition columns", 2, 1103)
        hive = {n: trino.duckdb_type(t)[0] for n, t in zip(names, types)}
        written, rows = _write_partitions(lake, q, names, types, part_cols, location, query_id)
        lake.create_table(db, {
            "Name": name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE", "has_encrypted_data": "false",
                           "parquet.compression": props.get("parquet_compression", "GZIP").upper()},
            "PartitionKeys": [{"Name": c, "Type": hive[c]} for c in part_cols],
            "StorageDescriptor": {
                "Columns": [{"Name": n, "Type": hive[n]} for n in names if n not in part_cols],
                "Location": location,
                "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
            },
        })
        for values, loc in written:
            if part_cols:
                lake.add_partition(db, name, values, loc)
        return Result(scanned=q.scanned, output_rows=rows, statement_type="DDL")
    finally:
        q.close()


def insert(lake, tree, database, query_id):
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    db, name = (target.db or database).lower(), target.name.lower()
    glue = lake.table(db, name)
    if glue is None:
        raise Failed(f"TABLE_NOT_FOUND: line 1:13: Table 'awsdatacatalog.{db}.{name}' does not exist", 2, 1110)
    meta = TableMeta(db, name, glue)
    if meta.is_view:
        raise Failed(f"NOT_SUPPORTED: Inserting into views is not supported: {meta.qualified}")
    target_cols = [c for c, _ in meta.columns] + [k for k, _ in meta.partition_keys]
    listed = ([c.name.lower() for c in tree.this.expressions] if isinstance(tree.this, exp.Schema) else target_cols)
    q = Query(lake, database)
    try:
        sql = q.prepare(tree.expression)
        names, types = _result_relation(q, sql)
        if len(names) != len(listed):
            raise Failed(f"SEMANTIC_ERROR: Insert query has {len(names)} columns, target table has {len(listed)}")
        renames = ", ".join(f'{_q(n)} AS {_q(c)}' for n, c in zip(names, listed))
        q.con.execute(f"CREATE TEMP TABLE __named AS SELECT {renames} FROM __result")
        q.con.execute("DROP TABLE __result")
        fill = [(_q(c) if c in listed else f"NULL AS {_q(c)}") for c in target_cols]
        q.con.execute(f"CREATE TEMP TABLE __result AS SELECT {', '.join(fill)} FROM __named")
        rel = q.con.sql("SELECT * FROM __result")
        part_cols = [k for k, _ in meta.partition_keys]
        written, rows = _write_partitions(lake, q, rel.columns, rel.types, part_cols, meta.location, query_id)
        for values, loc in written:
            if part_cols:
                lake.add_partition(db, name, values, loc)
        return Result(scanned=q.scanned, output_rows=rows, statement_type="DML")
    finally:
        q.close()


def clock_ms(start):
    return int((time.monotonic() - start) * 1000)
