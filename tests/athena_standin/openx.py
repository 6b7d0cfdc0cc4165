"""Python port of Trino's Hive OpenX JSON line reader (org.openx.data.jsonserde.JsonSerDe).

Ported from trinodb/trino (martint/trino mirror @ 07dcfcc89f2546678afaa9b8a3749b0d4ccad590); "File.java:a-b"
in the comments is lib/trino-hive-formats/src/main/java/io/trino/hive/formats/line/openxjson/File.java, or
.../hive/formats/{HiveFormatUtils,DistinctMapKeys}.java, .../formats/line/text/TextLineReader.java and
lib/trino-plugin-toolkit/.../plugin/base/type/ShortTimestampEncoder.java, at that commit.  Where Trino relies on
the JDK (java.time, BigDecimal, Float/Double parsing, Base64, UTF-8 decoding) JDK 25 behaviour is reproduced.
Internally strings are "Java strings": one character per UTF-16 code unit, so positions and escapes behave
as in Java; `_jstr`/`_pystr` convert at the edges (a lone surrogate leaves as '?', as String.getBytes does).
Dates and timestamps outside Python's years 1-9999, and unsupported timestamp.formats patterns, raise
NotImplementedError.  The one addition to Trino is Athena's use.null.for.invalid.data (see Options).
"""
from __future__ import annotations

import codecs
import datetime as _dt
import decimal
import math
import re
import sys
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

__all__ = ["OpenXError", "HiveType", "parse_hive_type", "Options", "decode_line", "split_lines"]

class OpenXError(Exception):
    """Raised exactly where Trino's reader throws, i.e. where the Athena query would fail."""

class _NumberFormat(Exception):
    """NumberFormatException / ArithmeticException / DateTimeParseException, which the decoders catch."""

class _Throw(Exception):
    """What a decoder lets escape: invalidJson(...), checkArgument, Base64's IllegalArgumentException."""
    def __init__(self, java_message, note):
        super().__init__(java_message)
        self.java_message, self.note = java_message, note

class _InvalidJson(Exception):  # Trino InvalidJsonException.java:21-24
    def __init__(self, reason, position, json):
        super().__init__(f"{reason} at character {position} of JSON: {_pystr(json)}")
        self.reason, self.position = reason, position

# ---------------------------------------------------------------------------- Java strings and numbers
_SUPPLEMENTARY = re.compile("[\U00010000-\U0010ffff]")
_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_TRIM = "".join(map(chr, range(33)))        # String.trim() strips every char <= U+0020
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1

def _jstr(s):  # Python str -> Java string: supplementary characters become surrogate pairs
    return _SUPPLEMENTARY.sub(lambda m: chr(0xD7C0 + (ord(m[0]) >> 10)) + chr(0xDC00 + (ord(m[0]) & 0x3FF)), s)

def _combine(s):  # surrogate pairs -> supplementary characters
    return _PAIR.sub(lambda m: chr(0x10000 + (ord(m[0][0]) - 0xD800) * 1024 + ord(m[0][1]) - 0xDC00), s)

def _pystr(s):
    """Java string -> Python str as Slices.utf8Slice sees it: a lone surrogate becomes '?'."""
    return _SURROGATE.sub("?", _combine(s))

def _simple_case(c, upper):  # Character.toUpperCase/toLowerCase map one char to one char
    m = c.upper() if upper else c.lower()
    return m if len(m) == 1 else c

def _equals_ignore_case(a, b):  # java.lang.String.equalsIgnoreCase (compares code points since JDK 16)
    def same(x, y):
        ux, uy = _simple_case(x, True), _simple_case(y, True)
        return x == y or ux == uy or _simple_case(ux, False) == _simple_case(uy, False)
    return len(a) == len(b) and all(map(same, _combine(a), _combine(b)))

def _digit(c, radix):  # java.lang.Character.digit(char, int): Unicode decimal digits, ASCII and fullwidth Latin letters
    o = ord(c)
    if 65 <= o <= 90 or 97 <= o <= 122: v = (o & ~0x20) - 55
    elif 0xFF21 <= o <= 0xFF3A or 0xFF41 <= o <= 0xFF5A: v = (o & ~0x20) - 0xFF21 + 10
    else: v = unicodedata.decimal(c, -1)
    return v if 0 <= v < radix else -1

def _exact(v):  # Math.addExact / Math.multiplyExact on long
    if not -(1 << 63) <= v < (1 << 63): raise _NumberFormat("long overflow")
    return v

def _parse_long_radix(s, radix=10, bits=64):  # java.lang.Long.parseLong(String, int) / Integer.parseInt(String, int)
    body = s[1:] if s[:1] in ("-", "+") else s
    limit, v = 1 << (bits - 1), 0
    if not body: raise _NumberFormat(s)
    for c in body:
        d = _digit(c, radix)
        if d < 0 or v > limit: raise _NumberFormat(s)
        v = v * radix + d
    v = -v if s[0] == "-" else v
    if not -limit <= v < limit: raise _NumberFormat(s)
    return v

_BIG_DECIMAL = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?")   # \d is Unicode Nd: Character.isDigit

def _big_decimal(s):  # java.math.BigDecimal(String): sign, digits with one optional '.', exponent; int scale
    m = _BIG_DECIMAL.fullmatch(s)
    if m is None or not (m.group(2) or m.group(3)): raise _NumberFormat(s)
    sign, whole, fraction, exponent = m.groups()
    digits = "".join(str(unicodedata.decimal(c)) for c in whole + (fraction or ""))
    exponent = "".join(str(unicodedata.decimal(c)) if c.isdigit() else c for c in exponent or "0")
    if len(exponent.lstrip("+-").lstrip("0")) > 10: raise _NumberFormat("Too many nonzero exponent digits.")
    scale = len(fraction or "") - int(exponent)
    if not _INT_MIN <= int(exponent) <= _INT_MAX or not _INT_MIN <= scale <= _INT_MAX:
        raise _NumberFormat("Exponent overflow.")
    return decimal.Decimal((sign == "-", tuple(map(int, digits)), -scale))

_FAILED = object()

def _try(function, *args):  # function(*args), or _FAILED where it throws what Java's caller catches
    try:
        return function(*args)
    except _NumberFormat:
        return _FAILED

def _truncate_to_long(d):  # BigDecimal.setScale(0, RoundingMode.DOWN).longValueExact()
    if d.adjusted() > 19: raise _NumberFormat("Overflow")
    return 0 if d.adjusted() < 0 else _exact(int(d))

# Trino OpenXJsonDeserializer.java:933-968 (parseDecimalHexOctalLong, isHex, isOctal: note the '8' quirk)
def _parse_decimal_hex_octal_long(s):
    if len(s) >= 3 and s[0] == "0" and s[1] in "xX" and s[2] in "0123456789abcdefABCDEF":
        return _parse_long_radix(s[2:], 16)
    if len(s) >= 2 and s[0] == "0" and "0" <= s[1] <= "8": return _parse_long_radix(s[1:], 8)
    return _parse_long_radix(s)

# Trino OpenXJsonDeserializer.java:920-931 (parseLong)
def _parse_long(s):
    n = _try(_parse_decimal_hex_octal_long, s)
    return _truncate_to_long(_big_decimal(s)) if n is _FAILED else n

_FLOAT = re.compile(r"([+-]?)(?:(Infinity)|(NaN)|(?:0[xX]([0-9a-fA-F.]*)[pP]([+-]?[0-9]+)"
                    r"|([0-9.]*)(?:[eE]([+-]?[0-9]+))?)[fFdD]?)")

def _round_binary(negative, num, den, p, emin, emax):
    """num/den > 0 rounded half-even to an IEEE 754 binary float with a p-bit significand."""
    e = num.bit_length() - den.bit_length()
    if (num << max(-e, 0)) < (den << max(e, 0)): e -= 1  # now 2**e <= num/den < 2**(e+1)
    k = max(e, emin) - (p - 1)                            # exponent of the unit in the last place
    m, r = divmod(num << max(-k, 0), den << max(k, 0))
    m += 2 * r > den << max(k, 0) or (2 * r == den << max(k, 0) and m & 1)
    v = math.inf if m.bit_length() + k > emax + 1 else math.ldexp(m, k)
    return -v if negative else v

def _parse_float(s, single):  # JDK 25 FloatingDecimal.readJavaFormatString (Float.parseFloat, Double.parseDouble)
    m = _FLOAT.fullmatch(s.strip(_TRIM))
    if m is None: raise _NumberFormat(s)
    sign, infinity, nan, hex_mantissa, hex_exponent, mantissa, exponent = m.groups()
    negative = sign == "-"
    signed_inf, signed_zero = (-math.inf, -0.0) if negative else (math.inf, 0.0)
    if infinity or nan: return signed_inf if infinity else math.nan
    mantissa = mantissa if hex_mantissa is None else hex_mantissa
    if mantissa.count(".") > 1 or mantissa in ("", "."): raise _NumberFormat(s)
    whole, _, fraction = mantissa.partition(".")
    if not (whole + fraction).strip("0"): return signed_zero
    exponent = (exponent if hex_mantissa is None else hex_exponent) or "0"
    e = int(exponent) if len(exponent.lstrip("+-0")) <= 12 else (-1 if exponent[0] == "-" else 1) * 10 ** 12
    p, emin, emax = (24, -126, 127) if single else (53, -1022, 1023)
    if hex_mantissa is not None:
        num, e2 = int(whole + fraction, 16), e - 4 * len(fraction)
        top = e2 + num.bit_length()                      # 2**(top-1) <= value < 2**top
        if top > emax + 2 or top < emin - p - 1: return signed_inf if top > 0 else signed_zero
        return _round_binary(negative, num << max(e2, 0), 1 << max(-e2, 0), p, emin, emax)
    if not single: return float(f"{sign}{whole or '0'}.{fraction or '0'}e{e}")  # Python's float() rounds correctly too
    d = decimal.Decimal(f"{whole}{fraction}E{e - len(fraction)}")
    if d.adjusted() > 39 or d.adjusted() < -47: return signed_inf if d.adjusted() > 0 else signed_zero
    q = Fraction(d)
    return _round_binary(negative, q.numerator, q.denominator, p, emin, emax)

# ---------------------------------------------------------------------------- JsonReader
class _JStr(NamedTuple):  # Trino JsonString.java:16-23: a quoted string or an unquoted literal, kept as text
    value: str
    quoted: bool

class _FieldName:  # Trino OpenXJsonDeserializer.java:975-1053 (FieldName): equality and hash on the mapped name
    __slots__ = ("original", "mapped", "ci", "_hash", "can_match_dotted", "is_dotted")
    def __init__(self, original, case_insensitive, dots, mappings):
        self.original, self.ci, self.mapped = original, case_insensitive, mappings.get(original, original)
        self._hash = hash(_combine(self.mapped).lower() if case_insensitive else self.mapped)
        self.can_match_dotted, self.is_dotted = dots and "_" in original, dots and "." in original
    def matches_dotted(self, dotted):  # originalValueMatchesDottedFieldName
        if not self.can_match_dotted or not dotted.is_dotted: return False
        underscored = dotted.original.replace(".", "_")
        return _equals_ignore_case(self.original, underscored) if self.ci else self.original == underscored
    def __eq__(self, o):
        return isinstance(o, _FieldName) and (
            _equals_ignore_case(self.mapped, o.mapped) if self.ci else self.mapped == o.mapped)
    def __hash__(self):
        return self._hash
    def __str__(self):
        return self.original

_LITERAL = re.compile(r"[^ \r\n\t\f{}\[\]/\\:,=;#]*")
_QUOTE_OR_ESCAPE = {q: re.compile("[" + q + "\\\\]") for q in "'\""}
_ESCAPES = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", "a": "\x07", "v": "\t"}  # '\011' quirk

# strata's bound on nesting (src/local/bronze/decode.rs, MAX_JSON_DEPTH): Trino's JsonReader recurses once
# per level without a bound (JsonReader.java:77-191), so a deep enough line throws StackOverflowError, which
# ignore.malformed.json does not catch (OpenXJsonDeserializer.java:150-180) and the query fails; strata reads a
# line nested deeper than Jackson's default maximum depth (jackson-core StreamReadConstraints.DEFAULT_MAX_DEPTH,
# 1000) as malformed instead. The port does the same, in the same two places: _nesting_exceeds before reading,
# and _JsonReader.next_value while reading.
MAX_JSON_DEPTH = 1000
# The reader and the writer below recurse once or twice per level: room for the deepest line read.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 5 * MAX_JSON_DEPTH))
_TOO_DEEP = f"objects and arrays nested deeper than {MAX_JSON_DEPTH} levels"
_LITERAL_END = frozenset(" \r\n\t\f{}[]/\\:,=;#")   # JsonReader.literalToken

def _nesting_exceeds(text, limit):
    """Whether _JsonReader would open more than `limit` objects and arrays at once reading `text` (trimmed, starting
    with '{' or '['): its own tokens in one pass, as strata's decode.rs nesting_exceeds follows them. Brackets in
    strings, comments or after the first value do not count; a quote inside an unquoted literal opens no string;
    where the reader fails first, the depth reached before that counts."""
    depth, i, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        i += 1
        if c in "\t \n\r,;:": continue
        if c == "=":                                               # '=' or '=>'
            if text[i:i + 1] == ">": i += 1
        elif c == "#" or (c == "/" and text[i:i + 1] == "/"):       # end of line comment
            while i < n:
                i += 1
                if text[i - 1] in "\r\n": break
        elif c == "/" and text[i:i + 1] == "*":                    # c-style comment
            end = text.find("*/", i + 1)
            if end == -1: return False
            i = end + 2
        elif c in "{[":
            depth += 1
            if depth > limit: return True
        elif c in "}]":
            depth -= 1
            if depth <= 0: return False
        elif c in "\"'":                                          # a quoted string; a backslash escapes one character
            while True:
                m = _QUOTE_OR_ESCAPE[c].search(text, i)
                if m is None: return False
                i = m.end()
                if m.group() == c: break
                i += 1
        elif c in _LITERAL_END: return False                       # a lone '/', '\\' or form feed: the reader fails
        else:
            while i < n and text[i] not in _LITERAL_END: i += 1    # an unquoted literal
    return False

class _JsonReader:  # Trino JsonReader.java:48-75: a lenient parser producing None, _JStr, dict or list
    def __init__(self, json, key_map):
        self.json, self.key_map, self.pos, self.depth = json, key_map, 0, 0
    def fail(self, reason):
        raise _InvalidJson(reason, self.pos, self.json)
    def next_value(self):  # JsonReader.java:77-96; past MAX_JSON_DEPTH levels malformed (strata's bound)
        c = self.seek_next_token()
        if c is None: self.fail("End of input")
        if c in "{[":
            if self.depth == MAX_JSON_DEPTH: self.fail(_TOO_DEEP)
            self.depth += 1
            value = self.read_object() if c == "{" else self.read_array()
            self.depth -= 1
            return value
        if c in "\"'": return self.read_quoted(c)
        self.pos -= 1
        return self.read_literal()
    def read_object(self):  # JsonReader.java:98-148
        first = self.seek_next_token()
        if first == "}": return {}
        if first is not None: self.pos -= 1
        obj = {}
        while True:
            name = self.next_value()
            if name is None: self.fail("Field name is null literal")
            if not isinstance(name, _JStr):
                self.fail(f"Names must be strings, but {_java_to_string(name)} is of type {_simple_name(name)}")
            separator = self.seek_next_token()                # ':', '=' or '=>'
            if separator not in (":", "="): self.fail("Expected ':' after field " + name.value)
            if separator == "=" and self.json[self.pos:self.pos + 1] == ">": self.pos += 1
            key = self.key_map(name.value)
            obj.pop(key, None)                 # the last duplicate wins, in the position of its last occurrence
            obj[key] = self.next_value()
            c = self.seek_next_token()
            if c == "}": return obj
            if c not in (",", ";"): self.fail("Unterminated object")
    def read_array(self):  # JsonReader.java:150-191
        array, trailing_separator = [], False
        while True:
            c = self.seek_next_token()
            if c is None: self.fail("Unterminated array")
            if c == "]": return array + [None] if trailing_separator else array
            if c in ",;":                      # a separator without a value first is an implicit null
                array.append(None)
            else:
                self.pos -= 1
                array.append(self.next_value())
                c = self.seek_next_token()
                if c == "]": return array
                if c not in (",", ";"): self.fail("Unterminated array")
            trailing_separator = True
    def read_quoted(self, quote):  # JsonReader.java:193-225 (readQuotedString)
        json, parts, start = self.json, [], self.pos
        while True:
            m = _QUOTE_OR_ESCAPE[quote].search(json, self.pos)
            self.pos = len(json) if m is None else m.end()
            if m is None: self.fail("Unterminated string")
            parts.append(json[start:self.pos - 1])
            if m.group() == quote: return _JStr("".join(parts), True)
            if self.pos == len(json): self.fail("Unterminated escape sequence")
            parts.append(self.decode_escape_character())
            start = self.pos
    def decode_escape_character(self):  # JsonReader.java:227-268
        escaped = self.json[self.pos]
        self.pos += 1
        if escaped != "u": return _ESCAPES.get(escaped, escaped)      # any other character stands for itself
        if self.pos + 4 > len(self.json): self.fail("Unterminated escape sequence")
        hex_digits = self.json[self.pos:self.pos + 4]
        self.pos += 4
        try:
            return chr(_parse_long_radix(hex_digits, 16, 32) & 0xFFFF)   # (char) Integer.parseInt(hex, 16)
        except _NumberFormat:
            self.fail("Invalid escape sequence: " + hex_digits)
    def read_literal(self):  # JsonReader.java:273-302 (readLiteral, literalToken)
        literal = _LITERAL.match(self.json, self.pos).group()
        self.pos += len(literal)
        if not literal: self.fail("Expected literal value")
        return None if _equals_ignore_case(literal, "null") else _JStr(literal, False)
    def seek_next_token(self):  # JsonReader.java:307-358 (seekNextToken, skipEndOfLineComment); None at the end
        json, n = self.json, len(self.json)
        while self.pos < n:
            c = json[self.pos]
            self.pos += 1
            if c in "\t \n\r": continue
            if c == "/" and json[self.pos:self.pos + 1] == "*":           # c-style comment
                end = json.find("*/", self.pos + 1)
                if end == -1:
                    self.pos += 1
                    self.fail("Unterminated c-style comment")
                self.pos = end + 2
            elif c == "#" or (c == "/" and json[self.pos:self.pos + 1] == "/"):
                while self.pos < n:                                       # end of line comment
                    self.pos += 1
                    if json[self.pos - 1] in "\r\n": break
            else: return c
        return None

def _read_json(json, key_map=lambda name: name):  # Trino JsonReader.java:60-64 (readJson); raises _InvalidJson
    return _JsonReader(json, key_map).next_value()

def _simple_name(v):  # getClass().getSimpleName() of JsonReader's values (emptyMap, unmodifiableMap/List)
    if isinstance(v, _JStr): return "JsonString"
    return ("UnmodifiableMap" if v else "EmptyMap") if isinstance(v, dict) else "UnmodifiableRandomAccessList"

def _java_to_string(v):  # toString() of JsonString (its value), AbstractMap and AbstractCollection
    if v is None or isinstance(v, _JStr): return "null" if v is None else v.value
    if isinstance(v, dict): return "{" + ", ".join(f"{k}={_java_to_string(x)}" for k, x in v.items()) + "}"
    return "[" + ", ".join(map(_java_to_string, v)) + "]"

# ---------------------------------------------------------------------------- JsonWriter
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\t": "\\t", "\b": "\\b", "\n": "\\n", "\r": "\\r", "\f": "\\f"}
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\/]')

def _json_string(s):  # Trino JsonWriter.java:175-215 (writeJsonString); '/' is escaped only after '<'
    if not _NEEDS_ESCAPE.search(s): return '"' + s + '"'
    out = []
    for i, c in enumerate(s):
        if c in _JSON_ESCAPES: out.append(_JSON_ESCAPES[c])
        elif c == "/": out.append("\\/" if s[i - 1:i] == "<" else "/")
        else: out.append("\\u%04x" % ord(c) if c <= "\x1f" else c)
    return '"' + "".join(out) + '"'

def _canonicalize_unquoted(value):  # Trino JsonWriter.java:149-173 (canonicalizeUnquotedString); None if no number
    for boolean in ("true", "false"):
        if _equals_ignore_case(value, boolean): return boolean
    if (n := _try(_parse_decimal_hex_octal_long, value)) is not _FAILED: return str(n)
    if (d := _try(_big_decimal, value)) is _FAILED: return None
    return str(d.copy_abs() if d.is_zero() else d)       # BigDecimal.toString() is to-scientific-string too

def _canonicalize_json_string(js):  # Trino JsonWriter.java:48-57 (canonicalizeJsonString)
    canonical = None if js.quoted else _canonicalize_unquoted(js.value)
    return js.value if canonical is None else canonical

def _write_json(v):  # Trino JsonWriter.java:30-46, 103-147 (writeJsonObject/Array, value), compact
    if isinstance(v, list): return "[" + ",".join(map(_write_json, v)) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(_json_string(str(k)) + ":" + _write_json(e) for k, e in v.items()) + "}"
    if v is None: return "null"
    canonical = None if v.quoted else _canonicalize_unquoted(v.value)
    return _json_string(v.value) if canonical is None else canonical

# ---------------------------------------------------------------------------- java.time parsing (a subset)
# A formatter is a list of elements porting java.time.format.DateTimeFormatterBuilder printer-parsers:
# ["v", field, minWidth, maxWidth, sign ("N" NORMAL, "X" EXCEEDS_PAD, "P" NOT_NEGATIVE), subsequentWidth, multiplier]
# NumberPrinterParser (a fixed-width "S..." alike); ("l", text) literal; ("f", min, max) NanosPrinterParser with '.';
# ("z", colon) appendOffset("+HHMM" or "+HH:MM", "Z"); ("o", elements) optional section.  Fields: Y year,
# E year-of-era, M month, D day, h hour, m minute, s second, n nano, off offset seconds.

def _v(field, min_width, max_width, sign):
    return ["v", field, min_width, max_width, sign, 0, 1]

def _set_field(fields, name, value, pos):  # DateTimeParseContext.setParsedField: a conflicting value fails
    return -1 if fields.setdefault(name, value) != value else pos

def _parse_number(e, text, pos, strict, fields):  # JDK 25 NumberPrinterParser.parse: the new position or -1
    _, name, min_width, max_width, sign, subsequent, multiplier = e
    fixed = subsequent == -1 or (subsequent > 0 and min_width == max_width and sign == "P")
    negative = positive = False
    if text[pos:pos + 1] in ("+", "-"):
        positive, negative = text[pos] == "+", text[pos] == "-"
        if not {"N": negative or not strict, "X": True, "P": not strict and min_width != max_width}[sign]: return -1
        pos += 1
    eff_min = min_width if strict or fixed else 1
    eff_max = (max_width if strict or fixed else 9) + max(subsequent, 0)
    if pos == len(text) or pos + eff_min > len(text): return -1
    for pass_ in (0, 1):
        p, total = pos, 0
        while p < min(pos + eff_max, len(text)) and "0" <= text[p] <= "9":
            total, p = total * 10 + ord(text[p]) - 48, p + 1
        if p < pos + eff_min: return -1
        if subsequent <= 0 or pass_: break
        eff_max = max(eff_min, p - pos - subsequent)     # re-parse leaving room for the adjacent fixed fields
    if negative and total == 0 and strict: return -1                                        # minus zero
    if not negative and sign == "X" and strict and (p - pos <= min_width if positive else p - pos > min_width):
        return -1                                        # '+' exactly when minWidth is exceeded
    if total > (1 << 63) - (not negative): total, p = total // 10, p - 1  # BigInteger beyond a long: one digit less
    return _set_field(fields, name, (-total if negative else total) * multiplier, p)

def _parse_fraction(e, text, pos, strict, fields):  # JDK 25 NanosPrinterParser.parse with a decimal point
    eff_min, eff_max = e[1:] if strict else (0, 9)
    if text[pos:pos + 1] != ".": return -1 if eff_min > 0 else pos
    p, pos, total = pos + 1, pos + 1, 0
    while p < min(pos + eff_max, len(text)) and "0" <= text[p] <= "9":
        total, p = total * 10 + ord(text[p]) - 48, p + 1
    if p < pos + eff_min: return -1
    return _set_field(fields, "n", total * 10 ** (9 - (p - pos)), p)

def _parse_offset(colon, text, pos, fields):  # JDK OffsetIdPrinterParser.parse, lenient: +HH[[:]mm[[:]ss]] or Z
    if text[pos:pos + 1] in ("Z", "z"): return _set_field(fields, "off", 0, pos + 1)
    if text[pos:pos + 1] not in ("+", "-"): return -1
    p, values = pos + 1, []
    while len(values) < 3:                               # parseHour, then parseOptionalMinuteSecond
        q = p + (colon and len(values) > 0)
        if (q > p and text[p:q] != ":") or not re.fullmatch("[0-5][0-9]", text[q:q + 2]): break
        p = q + 2
        values.append(int(text[q:q + 2]))
    if not values or values[0] > 23: return -1  # an hour > 23 throws DateTimeException: parse fails
    seconds = sum(v * f for v, f in zip(values, (3600, 60, 1)))
    return _set_field(fields, "off", -seconds if text[pos] == "-" else seconds, p)

def _parse_elements(elements, text, pos, strict, case_insensitive, fields):  # JDK CompositePrinterParser.parse
    for e in elements:
        if e[0] == "o":                                  # an optional section restores the fields if it fails
            saved = dict(fields)
            p = _parse_elements(e[1], text, pos, strict, case_insensitive, fields)
            if p < 0:
                fields.clear()
                fields.update(saved)
            pos = max(p, pos)
        elif e[0] == "l":
            segment = text[pos:pos + len(e[1])]
            if segment != e[1] and not (case_insensitive and len(segment) == len(e[1]) and (
                    segment.upper() == e[1].upper() or segment.lower() == e[1].lower())):
                return -1
            pos += len(e[1])
        elif e[0] == "z": pos = _parse_offset(e[1], text, pos, fields)
        else: pos = (_parse_number if e[0] == "v" else _parse_fraction)(e, text, pos, strict, fields)
        if pos < 0: return -1
    return pos

def _parse_fully(elements, text, strict, case_insensitive):
    fields = {}
    return fields if _parse_elements(elements, text, 0, strict, case_insensitive, fields) == len(text) else None

_MAX_YEAR, _MIN_EPOCH_DAY, _MAX_EPOCH_DAY = 999_999_999, -365243219162, 365241780471

def _epoch_day(y, m, d):  # LocalDate.toEpochDay (proleptic Gregorian, any year)
    y -= m <= 2
    era, yoe = divmod(y, 400)
    doe = yoe * 365 + yoe // 4 - yoe // 100 + (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + doe - 719468

def _plus_days(epoch_day, days):  # LocalDate.plusDays: LocalDate.ofEpochDay range check
    if not _MIN_EPOCH_DAY <= epoch_day + days <= _MAX_EPOCH_DAY: raise _NumberFormat("Invalid value for EpochDay")
    return epoch_day + days

def _lenient_date(y, m, d):  # JDK IsoChronology.resolveYMD, LENIENT: LocalDate.of(y,1,1).plusMonths(m-1).plusDays(d-1)
    months = y * 12 + m - 1
    if not -_MAX_YEAR <= y <= _MAX_YEAR or not -_MAX_YEAR <= months // 12 <= _MAX_YEAR:
        raise _NumberFormat("Invalid value for Year")
    return _plus_days(_epoch_day(months // 12, months % 12 + 1, 1), d - 1)

def _smart_date(f):  # JDK IsoChronology.resolveYearOfEra + resolveYMD, SMART: day clamped to the month's length
    y, m, d = f.get("E", 0), f.get("M", 0), f.get("D", 0)
    if not 1 <= y <= _MAX_YEAR or not 1 <= m <= 12 or not 1 <= d <= 31:
        raise _NumberFormat("Unable to obtain LocalDate")
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    return _epoch_day(y, m, min(d, [31, 28 + leap, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]))

def _resolve_time(f, lenient):  # Parsed.resolveTimeLenient + Parsed.resolveTime: returns (excess days, nano of day)
    h, mi, s, n = (f.get(k) for k in "hmsn")      # no hour, or a gap before a given field: no LocalTime
    if h is None or (mi is None and (s, n) != (None, None)) or (mi is not None and s is None and n is not None):
        raise _NumberFormat("Unable to obtain LocalTime")
    mi, s, n = mi or 0, s or 0, n or 0
    if lenient:
        total = _exact(_exact(h * 3_600_000_000_000) + _exact(mi * 60_000_000_000))
        return divmod(_exact(_exact(total + _exact(s * 1_000_000_000)) + n), 86_400_000_000_000)
    if not 0 <= mi <= 59 or not 0 <= n <= 999_999_999: raise _NumberFormat("Invalid time")
    if (h, mi, s, n) == (24, 0, 0, 0): return 1, 0  # SMART accepts 24:00 as the end of the day
    if not 0 <= h <= 23 or not 0 <= s <= 59: raise _NumberFormat("Invalid time")
    return 0, ((h * 60 + mi) * 60 + s) * 1_000_000_000 + n

def _local_date_time(f, lenient):  # JDK LocalDateTime.from(Parsed): (epoch second, nano of second) as UTC
    epoch_day = _lenient_date(f["Y"], f["M"], f["D"]) if lenient else _smart_date(f)
    excess_days, nano_of_day = _resolve_time(f, lenient)
    epoch_day = _plus_days(epoch_day, excess_days) if excess_days else epoch_day
    return epoch_day * 86400 + nano_of_day // 1_000_000_000, nano_of_day % 1_000_000_000

# Trino OpenXJsonDeserializer.java:444-447 (DateDecoder.PARSE_FORMATTER: strict parse, LENIENT resolver)
_PARSE_DATE = [_v("Y", 1, 4, "N"), ("l", "-"), _v("M", 1, 2, "N"), ("l", "-"), _v("D", 1, 2, "N")]
# Trino HiveFormatUtils.java:92-112 (DEFAULT_TIMESTAMP_PARSER: lenient, case-insensitive)
_DEFAULT_TIMESTAMP = [_v("Y", 1, 10, "N")] + _PARSE_DATE[1:] + [
    ("o", [("l", " "), _v("h", 1, 2, "N"), ("l", ":"), _v("m", 1, 2, "N"), ("l", ":"), _v("s", 1, 2, "N"),
           ("o", [("f", 1, 9)])])]
# Trino HiveFormatUtils.java:114-119 (ISO_TIMESTAMP_PARSER = JDK ISO_LOCAL_DATE_TIME, lenient, case-insensitive)
_ISO_TIMESTAMP = [_v("Y", 4, 10, "X"), ("l", "-"), _v("M", 2, 2, "P"), ("l", "-"), _v("D", 2, 2, "P"), ("l", "T"),
                  _v("h", 2, 2, "P"), ("l", ":"), _v("m", 2, 2, "P"),
                  ("o", [("l", ":"), _v("s", 2, 2, "P"), ("o", [("f", 0, 9)])])]
# Trino OpenXJsonDeserializer.java:594-612 (ZONED_DATE_TIME_PARSER_NO_COLON, _WITH_COLON)
_ZONED = [_ISO_TIMESTAMP + [("o", [("z", colon)])] for colon in (False, True)]
# Trino OpenXJsonDeserializer.java:614 (HAS_TZ_OFFSET; Java's '.' does not match line terminators)
_HAS_TZ_OFFSET = re.compile("[^\n\r\u0085\u2028\u2029]+[+-][0-9]{2}:?[0-9]{2}")
_PATTERN_FIELDS = {"M": "M", "d": "D", "H": "h", "m": "m", "s": "s"}

def _compile_pattern(pattern):
    # DateTimeFormatter.ofPattern (DateTimeFormatterBuilder.appendPattern) for y M d H m s S and literals; adjacent
    # values get subsequentWidth as in DateTimeFormatterBuilder.appendValue(NumberPrinterParser) (JDK 25: 684-710)
    elements, active, i = [], None, 0
    while i < len(pattern):
        c, start = pattern[i], i
        if c.isascii() and c.isalpha():
            while i < len(pattern) and pattern[i] == c:
                i += 1
            count = i - start
            if c == "S" and count <= 9: e = ["v", "n", count, count, "P", 0, 10 ** (9 - count)]
            elif c == "y" and count != 2 and count <= 19: e = _v("E", count, 19, "X" if count >= 4 else "N")
            elif c in _PATTERN_FIELDS and count <= 2:
                e = _v(_PATTERN_FIELDS[c], 1, 19, "N") if count == 1 else _v(_PATTERN_FIELDS[c], 2, 2, "P")
            else: raise NotImplementedError(f"timestamp.formats: {c * count!r} is not supported in {pattern!r}")
            if active is not None and e[2] == e[3] and e[4] == "P":
                elements[active][5] += e[3]              # the active parser leaves room for this fixed one
                e[5] = -1
            else:
                if active is not None: elements[active][5] = -1             # withFixedWidth()
                active = len(elements)
            elements.append(e)
            continue
        active = None
        if c == "'":                                     # quoted literal; '' is a quote
            i += 1
            while i < len(pattern) and (pattern[i] != "'" or pattern[i + 1:i + 2] == "'"):
                i += 2 if pattern[i] == "'" else 1
            if i >= len(pattern): raise OpenXError("Pattern ends with an incomplete string literal: " + pattern)
            elements.append(("l", pattern[start + 1:i].replace("''", "'") or "'"))
        elif c in "[]{}#": raise NotImplementedError(f"timestamp.formats: {c!r} is not supported in {pattern!r}")
        else: elements.append(("l", c))
        i += 1
    return elements

def _parse_timestamp(value, formats):  # Trino OpenXJsonDeserializer.java:535-590 (TimestampDecoder.parseTimestamp)
    for elements in formats:                     # DateTimeFormatter.ofPattern(..).withZone(UTC): strict, SMART
        fields = _parse_fully(elements, value, True, False)
        if fields is not None and (result := _try(_local_date_time, fields, False)) is not _FAILED: return result
    if value.find(":") > 0:
        if value.endswith(("z", "Z")) or _HAS_TZ_OFFSET.fullmatch(value):
            for elements in _ZONED:
                fields = _parse_fully(elements, value, False, True)      # ZonedDateTime.from needs the offset
                if fields is None or "off" not in fields or (result := _try(_local_date_time, fields, True)) is _FAILED:
                    continue
                seconds, nanos = result[0] - fields["off"], result[1]   # withZoneSameInstant(UTC), range checked
                if not _MIN_EPOCH_DAY <= seconds // 86400 <= _MAX_EPOCH_DAY:
                    raise OpenXError("Invalid value for Year (valid values -999999999 - 999999999)")
                return seconds, nanos
        # Trino HiveFormatUtils.java:238-256 (parseHiveTimestamp): trimmed, default parser then ISO
        for elements in (_DEFAULT_TIMESTAMP, _ISO_TIMESTAMP):
            fields = _parse_fully(elements, value.strip(_TRIM), False, True)
            if fields is not None and (result := _try(_local_date_time, fields, True)) is not _FAILED: return result
        raise _NumberFormat("Text could not be parsed")
    if value.strip("-+.0123456789"): raise _NumberFormat("Invalid timestamp")
    if "." in value:                             # decimal seconds, truncated to millis
        d = _big_decimal(value).as_tuple()
        millis = _truncate_to_long(decimal.Decimal((d.sign, d.digits, d.exponent + 3)))
    else:                                        # integral millis from 13 characters on, else seconds
        millis = _parse_long_radix(value) * (1 if len(value) >= 13 else 1000)
    return millis // 1000, millis % 1000 * 1_000_000           # OpenXJsonDeserializer.java:616-622 (ofEpochMilli)

# ---------------------------------------------------------------------------- Hive types and options
_SCALAR_TYPES = set("string boolean tinyint smallint int bigint float double date timestamp binary".split())
_TYPE_TOKEN = re.compile(r"\s*(?:`((?:[^`]|``)*)`|([<>(),:])|([^\s<>(),:`]+)|(\S))")

@dataclass(frozen=True)
class HiveType:
    """A Hive column type; struct field names are lowercase, as Hive stores them."""
    kind: str        # string varchar char boolean tinyint smallint int bigint float double decimal date timestamp
    length: int | None = None          # binary array map struct
    precision: int | None = None
    scale: int | None = None
    element: HiveType | None = None
    key: HiveType | None = None
    value: HiveType | None = None
    fields: tuple = ()                 # ((name, HiveType), ...)

    def __str__(self):
        return {"varchar": f"varchar({self.length})", "char": f"char({self.length})", "array": f"array<{self.element}>",
                "decimal": f"decimal({self.precision},{self.scale})", "map": f"map<{self.key},{self.value}>",
                "struct": "struct<" + ",".join(f"{n}:{t}" for n, t in self.fields) + ">"}.get(self.kind, self.kind)

def parse_hive_type(text: str) -> HiveType:
    """Parse a Hive type as written in Glue or DDL, e.g. 'map<string,array<struct<`a b`:int>>>'."""
    def fail(problem):
        raise ValueError(f"invalid Hive type {text!r}: {problem}")
    tokens = []                                 # punctuation as str, names as ("", name)
    for m in _TYPE_TOKEN.finditer(text.rstrip()):
        if m[4]: fail(f"unexpected {m[4]!r}")
        tokens.append(m[2] or ("", m[1].replace("``", "`") if m[1] is not None else m[3]))
    tokens.append(None)

    def take(expected=None):
        token = tokens.pop(0)
        if not (token == expected if expected else isinstance(token, tuple)):
            fail(f"expected {expected or 'a name'} at {token[1] if isinstance(token, tuple) else token!r}")
        return token if expected else token[1]

    def number():
        if not (n := take()).isdigit(): fail(f"{n!r} is not a number")
        return int(n)

    def parse():
        name = take().lower()
        name = "int" if name == "integer" else name
        if name in _SCALAR_TYPES: return HiveType(name)
        if name in ("varchar", "char", "decimal"):
            args = []
            if name != "decimal" or tokens[0] == "(":
                args = [take("(") and number()]
                if name == "decimal" and tokens[0] == ",": args.append(take(",") and number())
                take(")")
            if name != "decimal":
                if not 1 <= args[0] <= (65535 if name == "varchar" else 255): fail(f"bad length {args[0]}")
                return HiveType(name, length=args[0])
            p, s = (args + [0])[:2] if args else (10, 0)        # a bare "decimal" is decimal(10,0) in Hive
            if not (1 <= p <= 38 and 0 <= s <= p): fail(f"bad precision or scale {p},{s}")
            return HiveType("decimal", precision=p, scale=s)
        if name not in ("array", "map", "struct"): fail(f"unsupported type {name!r}")
        take("<")
        if name == "array": t = HiveType("array", element=parse())
        elif name == "map": t = HiveType("map", key=parse(), value=take(",") and parse())
        else:
            fields = [(take().lower(), take(":") and parse())]
            while tokens[0] == ",": fields.append((take(",") and take().lower(), take(":") and parse()))
            t = HiveType("struct", fields=tuple(fields))
        take(">")
        return t

    result = parse()
    if tokens != [None]: fail(f"unexpected {tokens[0]!r}")
    return result

class Options:
    """OpenX JSON SerDe properties (Trino OpenXJsonOptions) plus Athena's use.null.for.invalid.data: where Trino
    throws while decoding a value (invalidJson / checkArgument in a decoder: an object for a BIGINT, a non-blank
    string for a MAP or ROW, bad base64, ...) that value is NULL instead and the rest of the row is kept."""
    def __init__(self, *, ignore_malformed_json=False, case_insensitive=True, dots_in_keys=False,
                 field_mappings=None, timestamp_formats=(), use_null_for_invalid_data=False):
        self.ignore_malformed_json, self.case_insensitive = ignore_malformed_json, case_insensitive
        self.dots_in_keys, self.use_null_for_invalid_data = dots_in_keys, use_null_for_invalid_data
        self.field_mappings = dict(field_mappings or {})        # Hive field name -> JSON key
        self.timestamp_formats = list(timestamp_formats)
        self._formats = [_compile_pattern(p) for p in self.timestamp_formats]   # built (and failing) up front
        self._field_names = {}

    @classmethod
    def from_serde(cls, params: dict[str, str]) -> Options:  # Trino OpenXJsonOptions.java:123-160 (fromSchema)
        def flag(key, default=""):
            return _equals_ignore_case("true", params.get(key, default) or "")
        ci = flag("case.insensitive", "true")
        formats = params.get("timestamp.formats")
        mappings = {k[8:]: v.lower() if ci else v for k, v in params.items() if k.startswith("mapping.")}
        return cls(ignore_malformed_json=flag("ignore.malformed.json"), case_insensitive=ci, field_mappings=mappings,
                   dots_in_keys=flag("dots.in.keys"), use_null_for_invalid_data=flag("use.null.for.invalid.data"),
                   timestamp_formats=formats.split(",") if formats is not None else ())
    def _json_key(self, name):  # Trino OpenXJsonDeserializer.java:161: JSON keys are FieldNames without mappings
        return _FieldName(name, self.case_insensitive, self.dots_in_keys, {})
    def _field_name(self, hive_name):
        # Trino OpenXJsonDeserializer.java:810-814: Hive field names are lowercased, then mapped
        if hive_name not in self._field_names:
            mappings = {_jstr(k): _jstr(v) for k, v in self.field_mappings.items()}
            self._field_names[hive_name] = _FieldName(
                _jstr(hive_name.lower()), self.case_insensitive, self.dots_in_keys, mappings)
        return self._field_names[hive_name]

# ---------------------------------------------------------------------------- decoders
class _Ctx:
    def __init__(self, opts, notes):
        self.opts, self.notes, self.unrepresentable = opts, notes, []
    def note(self, path, message):
        self.notes.append(f"column {path}: {message}")

_TRINO_NAMES = {"bigint": "a BIGINT", "int": "an INTEGER", "smallint": "a SMALLINT", "tinyint": "a TINYINT",
                "float": "a REAL", "double": "a DOUBLE", "date": "a DATE", "timestamp": "a timestamp(3)",
                "binary": "a VARBINARY"}

def _type_name(t, article=False):
    name = t.kind if t.kind in ("array", "map", "struct") else str(t)
    return ("an " if name[0] in "aeiou" else "a ") + name if article else name

def _cannot(v, t):  # note for a value of the wrong JSON kind
    kind = "an object" if isinstance(v, dict) else "an array" if isinstance(v, list) else \
        "a string" if v.quoted else "an unquoted value"
    return f"{kind} can not be coerced to {_type_name(t, True)}"

def _show(s):
    s = _pystr(s)
    return "'" + (s if len(s) <= 60 else s[:57] + "...") + "'"

def _scalar_text(v, t):  # the `jsonValue instanceof JsonString` checks of the scalar decoders
    if not isinstance(v, _JStr):
        trino = _TRINO_NAMES.get(t.kind) or "a " + str(t)
        raise _Throw(f"Invalid JSON: {_simple_name(v)} can not be coerced to {trino}", _cannot(v, t))
    return v.value

def _unparseable(ctx, path, text, t, reason=None):
    ctx.note(path, f"cannot read {_show(text)} as {_type_name(t)}" + (f" ({reason})" if reason else ""))

def _decode_boolean(v, t, ctx, path):  # Trino OpenXJsonDeserializer.java:262-275 (BooleanDecoder)
    return isinstance(v, _JStr) and _equals_ignore_case(v.value, "true")    # Boolean.parseBoolean(toString())

def _decode_integral(v, t, ctx, path):  # Trino OpenXJsonDeserializer.java:277-364 (Bigint...TinyintDecoder)
    text = _scalar_text(v, t)
    if (n := _try(_parse_long, text)) is _FAILED: return _unparseable(ctx, path, text, t)
    limit = 1 << ({"bigint": 64, "int": 32, "smallint": 16, "tinyint": 8}[t.kind] - 1)
    return n if -limit <= n < limit else _unparseable(ctx, path, text, t, "out of range")

_DECIMAL_CONTEXT = decimal.Context(prec=400, rounding=decimal.ROUND_HALF_UP, Emax=decimal.MAX_EMAX,
                                   Emin=decimal.MIN_EMIN)

def _decode_decimal(v, t, ctx, path):  # Trino OpenXJsonDeserializer.java:366-399 (DecimalDecoder)
    text = _scalar_text(v, t)
    if (d := _try(_big_decimal, text)) is _FAILED: return _unparseable(ctx, path, text, t)
    if d.adjusted() <= t.precision:
        d = d.quantize(decimal.Decimal((0, (1,), -t.scale)), context=_DECIMAL_CONTEXT)   # HiveFormatUtils.java:180-183
        if len(d.as_tuple().digits) <= t.precision:            # Decimals.overflows: precision() > p
            return d.copy_abs() if d.is_zero() else d
    return _unparseable(ctx, path, text, t, "out of range")

def _decode_floating(v, t, ctx, path):  # Trino OpenXJsonDeserializer.java:401-437 (RealDecoder, DoubleDecoder)
    text = _scalar_text(v, t)
    f = _try(_parse_float, text, t.kind == "float")
    return _unparseable(ctx, path, text, t) if f is _FAILED else f

def _parse_hive_date(value):  # Trino OpenXJsonDeserializer.java:480-501 (DateDecoder.parseHiveDate): epoch day
    text, fields = value.strip(_TRIM), {}
    pos = _parse_elements(_PARSE_DATE, text, 0, True, False, fields)
    if pos < 0 or "0" <= text[pos:pos + 1] <= "9":     # what follows the date may not start with a digit
        raise _NumberFormat("Text could not be parsed to date")
    return _lenient_date(fields["Y"], fields["M"], fields["D"])

def _decode_date(v, t, ctx, path):  # Trino OpenXJsonDeserializer.java:449-470 (DateDecoder): y-M-d, else days
    text = _scalar_text(v, t)
    for parse in (_parse_hive_date, _parse_decimal_hex_octal_long):
        if (days := _try(parse, text)) is _FAILED or not _INT_MIN <= days <= _INT_MAX: continue   # toIntExact
        if 1 <= days + 719163 <= 3652059: return _dt.date.fromordinal(days + 719163)
        ctx.unrepresentable.append(f"column {path}: DATE {days} days after 1970-01-01 is outside datetime.date")
        return None
    return _unparseable(ctx, path, text, t)

def _decode_timestamp(v, t, ctx, path):  # Trino OpenXJsonDeserializer.java:518-531 (TimestampDecoder)
    def to_micros(text):  # as timestamp(3): ShortTimestampEncoder.java:44-54
        seconds, nanos = _parse_timestamp(text, ctx.opts._formats)
        return _exact(_exact(seconds * 1_000_000) + (nanos + 500_000) // 1_000_000 * 1000)  # Timestamps.round
    text = _scalar_text(v, t)
    if (micros := _try(to_micros, text)) is _FAILED: return _unparseable(ctx, path, text, t)
    if -62135596800_000_000 <= micros <= 253402300799_999_999:
        return _dt.datetime(1970, 1, 1) + _dt.timedelta(microseconds=micros)
    ctx.unrepresentable.append(f"column {path}: TIMESTAMP {micros} us after 1970-01-01 is outside datetime")

_BASE64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}

def _base64_decode(s):  # java.util.Base64.getDecoder().decode(String) (JDK 25 Decoder.decodedOutLength + decode0)
    def fail(message):
        raise _Throw(message, f"cannot read {_show(s)} as binary ({message})")
    src = [c if c < "\u0100" else "?" for c in _combine(s)]   # String.getBytes(ISO_8859_1): '?' per code point
    out, bits, shift, sp = bytearray(), 0, 18, 0
    if len(src) == 1: fail("Input byte[] should at least have 2 bytes for base64 bytes")
    while sp < len(src):
        c, sp = src[sp], sp + 1
        if c == "=":
            if (shift == 6 and src[sp:sp + 1] != ["="]) or shift == 18:
                fail("Input byte array has wrong 4-byte ending unit")
            sp += shift == 6
            break
        if c not in _BASE64:
            b = ord(c) - 256 if ord(c) >= 128 else ord(c)      # Integer.toString(signed byte, 16)
            fail("Illegal base64 character " + ("-" if b < 0 else "") + format(abs(b), "x"))
        bits, shift = bits | _BASE64[c] << shift, shift - 6
        if shift < 0: out, bits, shift = out + bits.to_bytes(3, "big"), 0, 18
    if shift == 12: fail("Last unit does not have enough valid bits")
    out += bits.to_bytes(3, "big")[:(18 - shift) // 8]       # what a 2 or 3 character final unit holds
    if sp < len(src): fail(f"Input byte array has incorrect ending byte at {sp}")
    return bytes(out)

def _decode_binary(v, t, ctx, path):  # Trino OpenXJsonDeserializer.java:625-642 (VarbinaryDecoder)
    text = _scalar_text(v, t)
    if not v.quoted:
        raise _Throw("Invalid JSON: Unquoted JSON string is not allowed for VARBINARY: JsonString", _cannot(v, t))
    return _base64_decode(text)

def _decode_string(v, t, ctx, path):  # Trino OpenXJsonDeserializer.java:644-698 (VarcharDecoder, CharDecoder)
    s = _pystr(_write_json(v) if isinstance(v, (dict, list)) else _canonicalize_json_string(v))
    if t.kind == "varchar": return s[:t.length]  # Varchars.truncateToLength (code points)
    return s[:t.length].rstrip(" ").ljust(t.length) if t.kind == "char" else s  # CHAR as shown: Chars.padSpaces

def _decode_array(v, t, ctx, path):  # Trino OpenXJsonDeserializer.java:700-731 (ArrayDecoder)
    if isinstance(v, _JStr) and v.value == "":
        ctx.note(path, "empty string read as NULL array")
        return None
    return [_decode(e, t.element, ctx, f"{path}[{i}]") for i, e in enumerate(v if isinstance(v, list) else [v])]

def _canonical_key(k):  # key identity for DistinctMapKeys; NaN equals nothing (DoubleType.equalOperator)
    if isinstance(k, float) and k != k: return object()
    return tuple(map(_canonical_key, k.values() if isinstance(k, dict) else k)) if isinstance(k, (dict, list)) else k

def _has_null(k):
    return k is None or isinstance(k, (dict, list)) and any(map(_has_null, k.values() if isinstance(k, dict) else k))

def _decode_map(v, t, ctx, path):  # Trino OpenXJsonDeserializer.java:753-797 (MapDecoder)
    if isinstance(v, _JStr):
        if v.value.strip(_TRIM): raise _Throw("Invalid JSON: Primitive can not be coerced to a MAP", _cannot(v, t))
        ctx.note(path, "blank string read as NULL map")
        return None
    if not isinstance(v, dict):
        raise _Throw(f"{_simple_name(v)} can not be coerced to a MAP", _cannot(v, t))
    names = list(v)       # field names are decoded as quoted JSON strings, even when they were unquoted
    keys = [_decode(_JStr(str(n), True), t.key, ctx, f"{path} key {_show(str(n))}") for n in names]
    last = {}                                                  # DistinctMapKeys.java:46-111: the last entry wins
    for i, k in enumerate(keys):
        if k is not None:                                      # entries with a null key are dropped
            if _canonical_key(k) in last and _has_null(k): raise OpenXError("map key cannot be null or contain nulls")
            last[_canonical_key(k)] = i
    keep = set(last.values())
    return [(keys[i], _decode(v[n], t.value, ctx, f"{path}[{keys[i]!r}]")) for i, n in enumerate(names) if i in keep]

def _row_values(v, fields, ctx, labels):  # Trino OpenXJsonDeserializer.java:863-917 (decodeValueFromMap/List)
    out = [None] * len(fields)
    if isinstance(v, dict):
        for i, (name, t) in enumerate(fields):
            field_name = ctx.opts._field_name(name)
            value = v.get(field_name)
            if field_name not in v and ctx.opts.dots_in_keys:  # first key equal after replacing '.' with '_'
                value = next((v[k] for k in v if field_name.matches_dotted(k)), None)
            out[i] = _decode(value, t, ctx, labels[i])
    else:
        for ordinal, value in enumerate(v[:len(fields)]):      # array elements go to fields by ordinal
            out[ordinal] = _decode(value, fields[ordinal][1], ctx, labels[ordinal])
    return out

def _decode_struct(v, t, ctx, path):  # Trino OpenXJsonDeserializer.java:834-861 (RowDecoder.decodeValue)
    names = [name for name, _ in t.fields]
    if isinstance(v, _JStr):
        if v.value.strip(_TRIM): raise _Throw("Invalid JSON: Primitive can not be coerced to a ROW", _cannot(v, t))
        return dict.fromkeys(names)                           # a blank string is a row of NULL fields
    return dict(zip(names, _row_values(v, t.fields, ctx, [f"{path}.{n}" for n in names])))

_DECODERS = {"boolean": _decode_boolean, "bigint": _decode_integral, "int": _decode_integral,
             "smallint": _decode_integral, "tinyint": _decode_integral, "decimal": _decode_decimal,
             "float": _decode_floating, "double": _decode_floating, "date": _decode_date,
             "timestamp": _decode_timestamp, "binary": _decode_binary, "string": _decode_string,
             "varchar": _decode_string, "char": _decode_string, "array": _decode_array, "map": _decode_map,
             "struct": _decode_struct}

def _decode(v, t, ctx, path):  # Trino OpenXJsonDeserializer.java:247-254 (Decoder.decode) + use.null.for.invalid.data
    if v is None: return None
    try:
        return _DECODERS[t.kind](v, t, ctx, path)
    except _Throw as e:
        if not ctx.opts.use_null_for_invalid_data: raise OpenXError(e.java_message) from None
        ctx.note(path, e.note)
        return None

# ---------------------------------------------------------------------------- lines
def decode_line(line: str, columns: list[tuple[str, HiveType]], options: Options) -> tuple[list, list[str]]:
    """Decode one line (without its terminator) into one value per column, plus notes on NULLs it made."""
    # Trino OpenXJsonDeserializer.java:113-142 (constructor) and 151-180 (deserialize)
    columns = [(name, parse_hive_type(t) if isinstance(t, str) else t) for name, t in columns]
    text, notes, node = _jstr(line).strip(_TRIM), [], None
    if text.startswith(("[", "{")):                           # only object and array lines are parsed
        try:
            if len(text) > MAX_JSON_DEPTH and _nesting_exceeds(text, MAX_JSON_DEPTH): raise _InvalidJson(_TOO_DEEP, 0, text)
            node = _read_json(text, options._json_key)
        except _InvalidJson as e:
            if not options.ignore_malformed_json: raise OpenXError(str(e)) from None
            notes.append(f"malformed JSON: {e.reason} at {e.position}")
    else: notes.append("not a JSON object or array")
    if node is None: return [None] * len(columns), notes
    ctx = _Ctx(options, notes)
    row = _row_values(node, [(n.lower(), t) for n, t in columns], ctx, [n for n, _ in columns])
    if ctx.unrepresentable:                                   # raised last, so that Trino's failures come first
        raise NotImplementedError("; ".join(ctx.unrepresentable))
    return row, notes

def _java_utf8_replace(err):
    # java.lang.String.decodeUTF8_UTF16 (JDK 25) with replacement: as Python's 'replace', except that an
    # encoded surrogate (ED A0..BF, plus a third byte if it is a continuation byte) is a single U+FFFD
    data, start = err.object, err.start
    if data[start] == 0xED and start + 1 < len(data) and 0xA0 <= data[start + 1] <= 0xBF:
        return "\ufffd", start + 2 + (start + 2 < len(data) and 0x80 <= data[start + 2] <= 0xBF)
    return "\ufffd", err.end

codecs.register_error("openx-java-utf8", _java_utf8_replace)
_LINE_TERMINATOR = re.compile(rb"\r\n|\r|\n")

def split_lines(data: bytes) -> list[str]:
    """Split a text file into lines as Trino's TextLineReader does, decoding each as new String(bytes, UTF_8)."""
    # Trino TextLineReader.java:95 (skip a UTF-8 BOM), 153-193 (readLine), 243-271 (\n, \r and \r\n terminate)
    lines = _LINE_TERMINATOR.split(data[3:] if data.startswith(b"\xef\xbb\xbf") else data)
    if lines[-1] == b"": lines.pop()  # a final unterminated line counts if not empty
    return [line.decode("utf-8", "openx-java-utf8") for line in lines]
