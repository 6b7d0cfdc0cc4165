"""Reads a file the way Athena reads a Bronze table (openx.py, the port of Trino's OpenX
reader) and prints one JSON object per line: {"row": [...]} or {"error": "..."} where the
query would fail. The Rust tests compare the local engine's Bronze reader with it.

Usage: python openx_dump.py SPEC.json, where SPEC is
  {"columns": [[name, hive type], ...], "serde": {property: value}, "file": path}
(the file is raw NDJSON, not compressed); {"unrepresentable": "..."} for a line whose date
or timestamp Python cannot hold. Values: numbers, strings and booleans as JSON;
timestamps as epoch milliseconds; dates as days since the epoch; decimals as strings;
NaN and infinities as strings; maps as [[key, value], ...]; structs as objects.
"""

import datetime
import decimal
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import openx  # noqa: E402

EPOCH = datetime.datetime(1970, 1, 1)


def plain(v, t):
    if v is None:
        return None
    kind = t.lower()
    if isinstance(v, bool):
        return v
    if isinstance(v, datetime.datetime):
        return (v - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(v, datetime.date):
        return (v - EPOCH.date()).days
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        return ("Infinity" if v > 0 else "-Infinity") if math.isinf(v) else v
    if kind.startswith("map<"):
        _, vt = split_top(t[4:-1])
        return [[k, plain(x, vt)] for k, x in v]
    if kind.startswith("array<"):
        return [plain(x, t[6:-1]) for x in v]
    if kind.startswith("struct<"):
        fields = [f.partition(":") for f in split_top(t[7:-1])]
        return {n.strip().strip("`").lower(): plain(v.get(n.strip().strip("`").lower()), ty) for n, _, ty in fields}
    return v


def split_top(s):
    out, depth, cur = [], 0, ""
    for c in s:
        if c in "<(":
            depth += 1
        elif c in ">)":
            depth -= 1
        if c == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
    out.append(cur.strip())
    return out


def main():
    spec = json.load(open(sys.argv[1]))
    columns = [(n, openx.parse_hive_type(t)) for n, t in spec["columns"]]
    options = openx.Options.from_serde(spec.get("serde", {}))
    with open(spec["file"], "rb") as f:
        lines = openx.split_lines(f.read())
    out = sys.stdout
    for line in lines:
        try:
            row, _ = openx.decode_line(line, columns, options)
            out.write(json.dumps({"row": [plain(v, t) for v, (_, t) in zip(row, spec["columns"])]}))
        except openx.OpenXError as e:
            out.write(json.dumps({"error": str(e)}))
        except NotImplementedError as e:  # a date Python's datetime cannot hold
            out.write(json.dumps({"unrepresentable": str(e)}))
        out.write("\n")


if __name__ == "__main__":
    main()
