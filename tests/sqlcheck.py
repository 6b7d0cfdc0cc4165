"""Parses rendered Athena statements with sqlglot's athena dialect.

Input: a JSON file of [{"name": ..., "sql": ...}]; each "sql" holds one or more statements
separated by ";\n". Prints the number of statements parsed; exits 1 naming each failure.
"""
import json
import sys

import sqlglot
from sqlglot.errors import ParseError

failures = []
count = 0
for item in json.load(open(sys.argv[1])):
    for stmt in item["sql"].split(";\n"):
        body = "\n".join(l for l in stmt.splitlines() if not l.startswith("-- ")).strip()
        if not body:
            continue
        try:
            parsed = sqlglot.parse(body, read="athena", error_level=sqlglot.ErrorLevel.RAISE)
            if not parsed or parsed[0] is None:
                raise ParseError("nothing parsed")
            count += 1
        except ParseError as e:
            failures.append(f"{item['name']}: {e}\n{body}\n")
if failures:
    print("\n".join(failures))
    sys.exit(1)
print(count)
