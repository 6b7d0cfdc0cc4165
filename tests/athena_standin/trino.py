"""Trino semantics the stand-in needs beside DuckDB: types, result text, and the functions
whose DuckDB namesakes behave differently.

Every difference between DuckDB and Trino that the shipped models can reach is handled
here, explicitly, and listed in REWRITES. These are the places where the stand-in (not
strata) could be wrong; each cites the Trino source it follows (trinodb/trino master, read
in the martint/trino fork at 07dcfcc89f2546678afaa9b8a3749b0d4ccad590).
"""

import decimal
import math
import re

from sqlglot import exp

from openx import MAX_JSON_DEPTH

# What the stand-in changes in a statement before DuckDB runs it, and why.
REWRITES = [
    ("json_extract_scalar(json, path)",
     "a Python UDF following Trino's JsonExtract.ScalarValueJsonExtractor: streaming, the FIRST "
     "matching key wins, numbers keep their text (1.50 stays '1.50'), objects/arrays/null give "
     "NULL, unparseable JSON gives NULL (DuckDB's ->> renders objects as JSON text and numbers "
     "re-formatted)"),
    ("json_extract(json, path)",
     "the same walk, returning the value as compact JSON text; NULL for a value nested deeper "
     "than 1000 levels, as in strata (Jackson's StreamWriteConstraints fails Trino's query)"),
    ("TRY_CAST(varchar AS tinyint|smallint|integer|bigint)",
     "Trino trims the string and parses a decimal integer (VarcharOperators.castToBigint: "
     "Long.parseLong(s.trim())); DuckDB also accepts '12.9' (rounding to 13) and '1e3'"),
    ("integer / integer",
     "integer division, as in Trino (DuckDB's / is float division unless integer_division is set)"),
    ("sum(integer), count_if(...)",
     "DuckDB returns HUGEINT, Trino bigint: results are cast to BIGINT"),
    ("timestamps",
     "Trino reads Hive timestamps as timestamp(3) and prints 'YYYY-MM-DD HH:MM:SS.fff'; the "
     "stand-in keeps microseconds internally and prints milliseconds"),
]


# ---------------------------------------------------------------------------------------
# Types


def split_top(s, sep=","):
    """Splits on `sep` outside (), <> and double quotes."""
    out, depth, cur, quoted = [], 0, [], False
    for c in s:
        if c == '"':
            quoted = not quoted
        elif not quoted and c in "(<":
            depth += 1
        elif not quoted and c in ")>":
            depth -= 1
        elif not quoted and depth == 0 and c == sep:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(c)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def hive_to_duckdb(hive):
    """A Hive (Glue) type string as a DuckDB type."""
    t = hive.strip()
    low = t.lower()
    if low.startswith("array<"):
        return hive_to_duckdb(t[6:-1]) + "[]"
    if low.startswith("map<"):
        k, v = split_top(t[4:-1])
        return f"MAP({hive_to_duckdb(k)}, {hive_to_duckdb(v)})"
    if low.startswith("struct<"):
        fields = []
        for f in split_top(t[7:-1]):
            name, _, ty = f.partition(":")
            name = name.strip().strip("`").lower()
            fields.append(f'"{name}" {hive_to_duckdb(ty)}')
        return f"STRUCT({', '.join(fields)})"
    if low.startswith(("varchar", "char", "string")):
        return "VARCHAR"
    if low.startswith("decimal"):
        return low.upper()
    return {
        "boolean": "BOOLEAN", "tinyint": "TINYINT", "smallint": "SMALLINT", "int": "INTEGER",
        "integer": "INTEGER", "bigint": "BIGINT", "float": "FLOAT", "double": "DOUBLE",
        "date": "DATE", "timestamp": "TIMESTAMP", "binary": "BLOB",
    }[low]


_SCALARS = {
    "boolean": ("boolean", "boolean"), "tinyint": ("tinyint", "tinyint"),
    "smallint": ("smallint", "smallint"), "integer": ("int", "integer"),
    "bigint": ("bigint", "bigint"), "hugeint": ("bigint", "bigint"), "ubigint": ("bigint", "bigint"),
    "uinteger": ("bigint", "bigint"), "usmallint": ("int", "integer"), "utinyint": ("smallint", "smallint"),
    "float": ("float", "real"), "double": ("double", "double"), "date": ("date", "date"),
    "timestamp": ("timestamp", "timestamp(3)"), "timestamp_ms": ("timestamp", "timestamp(3)"),
    "timestamp_s": ("timestamp", "timestamp(3)"), "timestamp_ns": ("timestamp", "timestamp(3)"),
    "varchar": ("string", "varchar"), "blob": ("binary", "varbinary"),
    "timestamp with time zone": ("timestamp", "timestamp(3) with time zone"),
}


def duckdb_type(t):
    """(hive, trino) names of a DuckDBPyType."""
    kind = t.id
    if kind == "list":
        h, tr = duckdb_type(t.child)
        return f"array<{h}>", f"array({tr})"
    if kind == "map":
        kh, kt = duckdb_type(t.key)
        vh, vt = duckdb_type(t.value)
        return f"map<{kh},{vh}>", f"map({kt},{vt})"
    if kind == "struct":
        hs, ts = [], []
        for name, child in t.children:
            h, tr = duckdb_type(child)
            hs.append(f"{name}:{h}")
            ts.append(f'"{name}" {tr}')
        return f"struct<{','.join(hs)}>", f"row({','.join(ts)})"
    if kind == "decimal":
        p, s = t.children[0][1], t.children[1][1]
        return f"decimal({p},{s})", f"decimal({p},{s})"
    if kind == "null":
        return "string", "unknown"
    return _SCALARS[kind]


def hive_to_trino(hive):
    """A Hive type string as Trino names it (for view definitions and result metadata)."""
    t = hive.strip()
    low = t.lower()
    if low.startswith("array<"):
        return f"array({hive_to_trino(t[6:-1])})"
    if low.startswith("map<"):
        k, v = split_top(t[4:-1])
        return f"map({hive_to_trino(k)},{hive_to_trino(v)})"
    if low.startswith("struct<"):
        fields = []
        for f in split_top(t[7:-1]):
            name, _, ty = f.partition(":")
            fields.append(f'"{name.strip().strip("`").lower()}" {hive_to_trino(ty)}')
        return f"row({','.join(fields)})"
    if low.startswith("decimal"):
        return low.replace(" ", "")
    if low.startswith(("varchar", "char", "string")):
        return "varchar"
    return {"int": "integer", "float": "real", "binary": "varbinary", "timestamp": "timestamp(3)"}.get(low, low)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_TYPE_WORDS = {"time", "timestamp", "with", "zone", "row", "array", "map", "interval", "day", "second",
               "to", "year", "month", "varchar", "char", "decimal", "double", "precision"}


def parse_trino_type(text):
    """Parses a Trino type signature as a view's column type, the way Trino's
    TypeSignatureTranslator does when it reads a view: row field names must be quoted
    unless they are plain identifiers that are not type words. Returns a normalised
    string, or raises ValueError ("Unknown type ...")."""
    def norm(t):
        t = t.strip()
        low = t.lower()
        m = re.match(r"(array|map|row)\s*\((.*)\)$", t, re.I | re.S)
        if m:
            kind, args = m.group(1).lower(), split_top(m.group(2))
            if kind == "array" and len(args) == 1:
                return f"array({norm(args[0])})"
            if kind == "map" and len(args) == 2:
                return f"map({norm(args[0])},{norm(args[1])})"
            if kind == "row" and args:
                fields = []
                for f in args:
                    fm = re.match(r'"((?:[^"]|"")*)"\s+(.+)$', f, re.S)
                    if fm:
                        name, ty = fm.group(1).replace('""', '"'), fm.group(2)
                    else:
                        name, _, ty = f.partition(" ")
                        if not _IDENT.match(name) or name.lower() in _TYPE_WORDS:
                            raise ValueError(text)
                    fields.append(f'"{name.lower()}" {norm(ty)}')
                return f"row({','.join(fields)})"
            raise ValueError(text)
        if re.fullmatch(r"decimal\(\s*\d+\s*,\s*\d+\s*\)", low):
            return low.replace(" ", "")
        if re.fullmatch(r"varchar(\(\d+\))?|char\(\d+\)", low):
            return "varchar"
        if low == "timestamp":
            return "timestamp(3)"
        if low in ("boolean", "tinyint", "smallint", "integer", "bigint", "real", "double", "date",
                   "varbinary", "timestamp(3)", "timestamp(6)", "json", "uuid"):
            return low
        raise ValueError(text)
    return norm(text)


def same_type(declared, actual):
    """Whether a view's declared column type accepts what its query produces."""
    return declared == actual or {declared, actual} <= {"timestamp(3)", "timestamp(6)"}


# ---------------------------------------------------------------------------------------
# Result text, as GetQueryResults shows it


def java_double(x):
    """Java's Double.toString (JDK 19+: shortest digits that round-trip)."""
    if x != x:
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    _, digits, exponent = decimal.Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, digits)).rstrip("0") or "0"
    point = len(digits) + exponent  # position of the decimal point in digits
    if 1e-3 <= abs(x) < 1e7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}.0"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    mantissa = digits[0] + "." + (digits[1:] or "0")
    return f"{sign}{mantissa}E{point - 1}"


def text(value, kind=None):
    """A value as Athena prints it in query results (None stays None)."""
    import datetime
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if kind in ("real", "float"):
            return java_double(float(f"{value:.9g}"))
        return java_double(value)
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return " ".join(f"{b:02x}" for b in value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={nested(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(nested(v) for v in value) + "]"
    return str(value)


def nested(v):
    t = text(v)
    return "null" if t is None else t


# ---------------------------------------------------------------------------------------
# JSON functions (Trino's JsonExtract, JsonPathTokenizer)


class _JsonError(Exception):
    pass


def json_path_tokens(path):
    """Trino JsonPathTokenizer.java: `$`, then `.key`, `[key]`, `["quoted"]` segments."""
    if not path or path[0] != "$":
        raise ValueError(f"Invalid JSON path: '{path}'")
    i, out = 1, []
    unquoted = lambda c: c == "_" or c.isalnum()  # noqa: E731
    while i < len(path):
        if path[i] == ".":
            j = i + 1
            while j < len(path) and (path[j] == ":" or unquoted(path[j])):
                j += 1
            if j == i + 1:
                raise ValueError(f"Invalid JSON path: '{path}'")
            out.append(path[i + 1:j])
            i = j
        elif path[i] == "[":
            i += 1
            if i < len(path) and path[i] == '"':
                i += 1
                tok, escaped = [], False
                while i < len(path) and (escaped or path[i] != '"'):
                    if escaped:
                        if path[i] not in '"\\':
                            raise ValueError(f"Invalid JSON path: '{path}'")
                        tok.append(path[i])
                        escaped = False
                    elif path[i] == "\\":
                        escaped = True
                    else:
                        tok.append(path[i])
                    i += 1
                if i >= len(path):
                    raise ValueError(f"Invalid JSON path: '{path}'")
                i += 1
                token = "".join(tok)
            else:
                j = i
                while j < len(path) and unquoted(path[j]):
                    j += 1
                if j == i:
                    raise ValueError(f"Invalid JSON path: '{path}'")
                token, i = path[i:j], j
            if i >= len(path) or path[i] != "]":
                raise ValueError(f"Invalid JSON path: '{path}'")
            i += 1
            out.append(token)
        else:
            raise ValueError(f"Invalid JSON path: '{path}'")
    return out


class _Stream:
    """A pull parser over strict JSON text (Jackson's defaults), one token at a time."""

    _NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
    _WS = " \t\r\n"

    def __init__(self, s):
        self.s, self.i = s, 0
        self.stack = []  # 'o' / 'a' with state

    def _ws(self):
        while self.i < len(self.s) and self.s[self.i] in self._WS:
            self.i += 1

    def value(self):
        """Reads the token that starts a value: ('{'|'['|'str'|'num'|'lit', text)."""
        self._ws()
        if self.i >= len(self.s):
            raise _JsonError("end of input")
        c = self.s[self.i]
        if c in "{[":
            self.i += 1
            return (c, None)
        if c == '"':
            return ("str", self.string())
        m = self._NUMBER.match(self.s, self.i)
        if m and m.end() > self.i:
            self.i = m.end()
            return ("num", m.group(0))
        for word, v in (("true", "true"), ("false", "false"), ("null", None)):
            if self.s.startswith(word, self.i):
                self.i += len(word)
                return ("lit", v) if v is not None else ("null", None)
        raise _JsonError(f"unexpected {c!r}")

    def string(self):
        import json
        j = self.i + 1
        while True:
            k = self.s.find('"', j)
            if k < 0:
                raise _JsonError("unterminated string")
            backslashes = 0
            while self.s[k - 1 - backslashes] == "\\":
                backslashes += 1
            if backslashes % 2 == 0:
                break
            j = k + 1
        raw = self.s[self.i:k + 1]
        self.i = k + 1
        try:
            return json.loads(raw)
        except ValueError as e:
            raise _JsonError(str(e))

    def punct(self, options):
        self._ws()
        if self.i < len(self.s) and self.s[self.i] in options:
            self.i += 1
            return self.s[self.i - 1]
        raise _JsonError(f"expected one of {options}")

    def _member(self, opener):
        """The first token of a container's next value (in an object, after its field name)."""
        if opener == "{":
            self._ws()
            if not self.s.startswith('"', self.i):
                raise _JsonError("expected a field name")
            self.string()
            self.punct(":")
        return self.value()

    def skip(self, tok):
        """Skips the rest of the value `tok` starts, one token at a time with a stack of the open
        containers, as Jackson's skipChildren does: a document of any depth is skipped."""
        open_ = []
        while True:
            if tok[0] in "{[":
                self._ws()
                if self.s.startswith("}" if tok[0] == "{" else "]", self.i):
                    self.i += 1
                else:
                    open_.append(tok[0])
                    tok = self._member(tok[0])
                    continue
            while True:                      # a value ended: close the containers it ended
                if not open_:
                    return
                if self.punct("," + ("}" if open_[-1] == "{" else "]")) == ",":
                    tok = self._member(open_[-1])
                    break
                open_.pop()

    def copy(self, tok, depth=0):
        """The value starting with `tok` as compact JSON text (Jackson's generator). A value
        nested deeper than MAX_JSON_DEPTH is an error (NULL), as strata's json_extract has it
        (Jackson's StreamWriteConstraints.DEFAULT_MAX_DEPTH, 1000, fails Trino's query)."""
        import json
        kind, v = tok
        if kind == "str":
            return json.dumps(v, ensure_ascii=False)
        if kind in ("num", "lit"):
            return v
        if kind == "null":
            return "null"
        out = []
        close = "}" if kind == "{" else "]"
        if depth == MAX_JSON_DEPTH:
            raise _JsonError("nested too deep")
        self._ws()
        if self.s.startswith(close, self.i):
            self.i += 1
            return kind + close
        while True:
            if kind == "{":
                self._ws()
                if not self.s.startswith('"', self.i):
                    raise _JsonError("expected a field name")
                key = self.string()
                self.punct(":")
                out.append(json.dumps(key, ensure_ascii=False) + ":" + self.copy(self.value(), depth + 1))
            else:
                out.append(self.copy(self.value(), depth + 1))
            if self.punct("," + close) == close:
                return kind + ",".join(out) + close


def _walk(st, tok, tokens, scalar):
    if not tokens:
        kind, v = tok
        if scalar:
            return v if kind in ("str", "num", "lit") else None
        return st.copy(tok)
    key, rest = tokens[0], tokens[1:]
    if tok[0] == "{":
        st._ws()
        if st.s.startswith("}", st.i):
            return None
        while True:
            st._ws()
            if not st.s.startswith('"', st.i):
                raise _JsonError("expected a field name")
            name = st.string()
            st.punct(":")
            value = st.value()
            if name == key:
                return _walk(st, value, rest, scalar)
            st.skip(value)
            if st.punct(",}") == "}":
                return None
    if tok[0] == "[":
        try:
            index = int(key)
        except ValueError:
            index = -1
        st._ws()
        if st.s.startswith("]", st.i):
            return None
        n = 0
        while True:
            value = st.value()
            if n == index:
                return _walk(st, value, rest, scalar)
            st.skip(value)
            n += 1
            if st.punct(",]") == "]":
                return None
    raise _JsonError("Expected a JSON object or array")


def json_extract(json_text, path, scalar):
    """Trino json_extract_scalar (scalar=True) / json_extract over varchar text."""
    if json_text is None or path is None:
        return None
    tokens = json_path_tokens(path)
    st = _Stream(json_text)
    try:
        st._ws()
        if st.i >= len(st.s):
            return None
        return _walk(st, st.value(), tokens, scalar)
    except _JsonError:
        return None


_INT_RANGES = {
    "tinyint": (-(2 ** 7), 2 ** 7 - 1), "smallint": (-(2 ** 15), 2 ** 15 - 1),
    "integer": (-(2 ** 31), 2 ** 31 - 1), "bigint": (-(2 ** 63), 2 ** 63 - 1),
}
_JAVA_INT = re.compile(r"[+-]?[0-9]+")


def try_cast_varchar_int(value, kind):
    """TRY_CAST(varchar AS <integer type>): Long.parseLong(s.trim()) / Integer.parseInt etc.
    (Trino VarcharOperators.castToBigint / castToInteger / castToSmallint / castToTinyint)."""
    if value is None:
        return None
    s = value.strip(" \t\n\r\x0b\x0c\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x10\x11\x12\x13"
                    "\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f")
    if not _JAVA_INT.fullmatch(s):
        return None
    n = int(s)
    lo, hi = _INT_RANGES[kind]
    return n if lo <= n <= hi else None


def _try_cast(kind):
    def cast(s):
        return try_cast_varchar_int(s, kind)
    return cast


def register(con):
    """Registers the Trino functions the rewrites call on a DuckDB connection."""
    import duckdb
    from duckdb import sqltypes
    v = sqltypes.VARCHAR
    con.create_function("trino_json_extract_scalar", lambda j, p: json_extract(j, p, True), [v, v], v,
                        null_handling="special", exception_handling="return_null")
    con.create_function("trino_json_extract", lambda j, p: json_extract(j, p, False), [v, v], v,
                        null_handling="special", exception_handling="return_null")
    for kind, duck in (("tinyint", sqltypes.TINYINT), ("smallint", sqltypes.SMALLINT),
                       ("integer", sqltypes.INTEGER), ("bigint", sqltypes.BIGINT)):
        con.create_function(f"trino_try_cast_{kind}", _try_cast(kind), [v], duck, null_handling="special")
    con.execute("SET integer_division = true")
    con.execute("SET TimeZone = 'UTC'")


_INT_TYPES = {"tinyint": "tinyint", "smallint": "smallint", "int": "integer", "integer": "integer",
              "bigint": "bigint"}


def rewrite(tree):
    """Applies REWRITES to a parsed (athena dialect) statement, in place; returns it."""
    def visit(node):
        if isinstance(node, exp.JSONExtractScalar):
            return exp.Anonymous(this="trino_json_extract_scalar",
                                 expressions=[node.this, exp.Literal.string(node.expression.sql("athena").strip("'"))])
        if isinstance(node, exp.JSONExtract):
            return exp.Anonymous(this="trino_json_extract",
                                 expressions=[node.this, exp.Literal.string(node.expression.sql("athena").strip("'"))])
        if isinstance(node, exp.TryCast) and not node.meta.get("trino"):
            to = node.args["to"].sql("athena").lower()
            if to in _INT_TYPES:
                kind = _INT_TYPES[to]
                # Only strings take Trino's varchar cast; other types keep DuckDB's.
                inner = node.this
                fallback = node.copy()
                fallback.meta["trino"] = True
                return exp.Case(
                    ifs=[exp.If(
                        this=exp.EQ(this=exp.Anonymous(this="typeof", expressions=[inner.copy()]),
                                    expression=exp.Literal.string("VARCHAR")),
                        true=exp.Anonymous(this=f"trino_try_cast_{kind}",
                                           expressions=[exp.Cast(this=inner.copy(), to=exp.DataType.build("varchar"))]),
                    )],
                    default=fallback,
                )
        return node
    return tree.transform(visit)
