"""ReQL values in Python: type names, the total order across types, JSON text, printing, and order-preserving keys.

Datums are plain JSON-shaped Python values (None, bool, int/float, str, list, dict); pseudo-types (TIME, BINARY)
are dicts with a `$reql_type$` field, as on the wire. Datums are never mutated once built.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import struct

from . import errors

REQL_TYPE = '$reql_type$'
MAX_INTEGER = 2 ** 53
ARRAY_LIMIT = 100000
TRUNCATE_AT = 300


class Extremum:
    """r.minval and r.maxval: only usable as bounds and in comparisons."""

    def __init__(self, name: str, sort_name: str):
        self.name = name
        self.sort_name = sort_name

    def __repr__(self):
        return 'r.%s' % self.name.lower()


MINVAL = Extremum('MINVAL', '\x01MINVAL')
MAXVAL = Extremum('MAXVAL', '\xffMAXVAL')


def is_number(value) -> bool:
    """bool is an int in Python but never a number in ReQL."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number(value: float):
    """The canonical Python form of a ReQL number: integral doubles become ints, so JSON shows `1`, not `1.0`."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise errors.logic('Non-finite number: %s' % _float_text(value))
        if value.is_integer() and abs(value) <= MAX_INTEGER and not (value == 0 and math.copysign(1, value) < 0):
            return int(value)
        return value
    if abs(value) > MAX_INTEGER:
        return number(float(value))
    return value


def ptype(value) -> str | None:
    """The pseudo-type name of a dict datum, if it is one."""
    if isinstance(value, dict):
        return value.get(REQL_TYPE)
    return None


def type_name(value) -> str:
    """The name `typeOf` reports and error messages use."""
    if value is None:
        return 'NULL'
    if isinstance(value, bool):
        return 'BOOL'
    if isinstance(value, (int, float)):
        return 'NUMBER'
    if isinstance(value, str):
        return 'STRING'
    if isinstance(value, list):
        return 'ARRAY'
    if isinstance(value, dict):
        kind = value.get(REQL_TYPE)
        return 'PTYPE<%s>' % kind if kind is not None else 'OBJECT'
    if isinstance(value, Extremum):
        return value.name
    raise TypeError('not a datum: %r' % (value,))


def _sort_name(value) -> str:
    if isinstance(value, Extremum):
        return value.sort_name
    return type_name(value)


def compare(left, right) -> int:
    """-1, 0 or 1 by ReQL's total order: MINVAL < ARRAY < BOOL < NULL < NUMBER < OBJECT < PTYPE<..> < STRING < MAXVAL."""
    left_type, right_type = _sort_name(left), _sort_name(right)
    if left_type != right_type:
        return -1 if left_type < right_type else 1
    if left_type in ('NUMBER', 'STRING', 'BOOL'):
        return -1 if left < right else (1 if left > right else 0)
    if left_type == 'ARRAY':
        for left_item, right_item in zip(left, right):
            order = compare(left_item, right_item)
            if order:
                return order
        return (len(left) > len(right)) - (len(left) < len(right))
    if left_type == 'OBJECT':
        return _compare_objects(left, right)
    if left_type == 'PTYPE<TIME>':
        return compare(left['epoch_time'], right['epoch_time'])
    if left_type == 'PTYPE<BINARY>':
        left_bytes, right_bytes = binary_bytes(left), binary_bytes(right)
        return (left_bytes > right_bytes) - (left_bytes < right_bytes)
    if left_type.startswith('PTYPE<'):
        return _compare_objects(left, right)
    return 0


def _compare_objects(left: dict, right: dict) -> int:
    left_keys, right_keys = sorted(left), sorted(right)
    for left_key, right_key in zip(left_keys, right_keys):
        if left_key != right_key:
            return -1 if left_key < right_key else 1
        order = compare(left[left_key], right[right_key])
        if order:
            return order
    return (len(left_keys) > len(right_keys)) - (len(left_keys) < len(right_keys))


def equal(left, right) -> bool:
    """ReQL equality (1 == 1.0, times equal by instant)."""
    if type(left) is type(right) and isinstance(left, str):
        return left == right
    return compare(left, right) == 0


sort_key = functools.cmp_to_key(compare)


def sorted_datums(values: list, reverse: bool = False) -> list:
    """Sort by ReQL order, with a fast path for the common all-strings and all-numbers cases."""
    if values and all(isinstance(value, str) for value in values):
        return sorted(values, reverse=reverse)
    if values and all(is_number(value) for value in values):
        return sorted(values, reverse=reverse)
    return sorted(values, key=sort_key, reverse=reverse)


def binary_bytes(value: dict) -> bytes:
    """The bytes of a BINARY pseudo-type."""
    return base64.b64decode(value['data'])


def _base64(data: bytes) -> str:
    """Base64 as the real server writes it: CRLF after every 76 characters, except within the last 1-3 bytes."""
    if not data:
        return ''
    body_size = len(data) - ((len(data) - 1) % 3 + 1)
    body = base64.b64encode(data[:body_size]).decode('ascii')
    lines = []
    for start in range(0, len(body), 76):
        line = body[start:start + 76]
        lines.append(line + '\r\n' if len(line) == 76 else line)
    return ''.join(lines) + base64.b64encode(data[body_size:]).decode('ascii')


def make_binary(data: bytes) -> dict:
    """A BINARY pseudo-type datum."""
    return {REQL_TYPE: 'BINARY', 'data': _base64(data)}


def make_time(epoch_time: float, timezone: str = '+00:00') -> dict:
    """A TIME pseudo-type datum."""
    return {REQL_TYPE: 'TIME', 'epoch_time': number(round(epoch_time, 3)), 'timezone': timezone}


def _reject_extremum(value):
    if isinstance(value, Extremum):
        raise errors.logic('Cannot convert `r.%s` to JSON.' % value.name.lower())
    raise TypeError('not a datum: %r' % (value,))


def to_json(value) -> str:
    """Compact JSON text with sorted keys, as the real server writes objects."""
    return json.dumps(value, ensure_ascii=False, separators=(',', ':'), sort_keys=True, allow_nan=False,
                      default=_reject_extremum)


def _float_text(value: float) -> str:
    """A double the way rapidjson writes it (`1e21`, `1.5e-7`, `inf`)."""
    if math.isinf(value):
        return 'inf' if value > 0 else '-inf'
    if math.isnan(value):
        return 'nan'
    text = repr(value)
    if 'e' in text:
        mantissa, exponent = text.split('e')
        sign = '-' if exponent.startswith('-') else ''
        text = '%se%s%s' % (mantissa, sign, exponent.lstrip('+-').lstrip('0') or '0')
    return text


def _scalar_text(value) -> str:
    if isinstance(value, float):
        return _float_text(value)
    return json.dumps(value, ensure_ascii=False)


def print_datum(value, depth: int = 0) -> str:
    """The real server's `datum.print()`: rapidjson's pretty writer indenting with one tab (and a tab after `:`)."""
    if isinstance(value, Extremum):
        return 'r.%s' % value.name.lower()
    indent = '\t' * (depth + 1)
    if isinstance(value, list):
        if not value:
            return '[]'
        items = (indent + print_datum(item, depth + 1) for item in value)
        return '[\n' + ',\n'.join(items) + '\n' + '\t' * depth + ']'
    if isinstance(value, dict):
        if not value:
            return '{}'
        items = (indent + json.dumps(key, ensure_ascii=False) + ':\t' + print_datum(value[key], depth + 1)
                 for key in sorted(value))
        return '{\n' + ',\n'.join(items) + '\n' + '\t' * depth + '}'
    return _scalar_text(value)


def truncated(value) -> str:
    """`trunc_print()`: the printed datum cut to 300 characters."""
    text = print_datum(value)
    if len(text) > TRUNCATE_AT:
        text = text[:TRUNCATE_AT - 3] + '...'
    return text


# Order-preserving binary keys: memcmp order of the encodings is ReQL order of the values.
_TAG_MIN = b'\x01'
_TAG_ARRAY = b'\x10'
_TAG_BOOL = b'\x20'
_TAG_NULL = b'\x30'
_TAG_NUMBER = b'\x40'
_TAG_OBJECT = b'\x50'
_TAG_BINARY = b'\x60'
_TAG_TIME = b'\x70'
_TAG_STRING = b'\x80'
_TAG_MAX = b'\xff'
_END = b'\x00'


def _encode_number(value: float) -> bytes:
    packed = struct.pack('>d', float(value) + 0.0)
    if packed[0] & 0x80:
        return bytes(255 - byte for byte in packed)
    return bytes([packed[0] | 0x80]) + packed[1:]


def _escape(data: bytes) -> bytes:
    return data.replace(b'\x00', b'\x00\xff') + b'\x00\x00'


def encode_key(value) -> bytes:
    """The storage key of a datum (primary keys and secondary index values)."""
    if isinstance(value, str):
        return _TAG_STRING + _escape(value.encode('utf-8'))
    if isinstance(value, bool):
        return _TAG_BOOL + (b'\x01' if value else b'\x00')
    if isinstance(value, (int, float)):
        return _TAG_NUMBER + _encode_number(value)
    if isinstance(value, list):
        return _TAG_ARRAY + b''.join(encode_key(item) for item in value) + _END
    if value is None:
        return _TAG_NULL
    if value is MINVAL:
        return _TAG_MIN
    if value is MAXVAL:
        return _TAG_MAX
    kind = ptype(value)
    if kind == 'TIME':
        return _TAG_TIME + _encode_number(value['epoch_time'])
    if kind == 'BINARY':
        return _TAG_BINARY + _escape(binary_bytes(value))
    return _TAG_OBJECT + b''.join(encode_key(key) + encode_key(value[key]) for key in sorted(value)) + _END


MAX_PRIMARY_KEY_SIZE = 128


def check_key_bound(value, primary: bool) -> None:
    """Refuse a between() bound or get_all() key no index can hold (objects), with the real messages."""
    if isinstance(value, dict) and ptype(value) is None:
        if primary:
            raise errors.logic('Primary keys must be either a number, string, bool, pseudotype or array (got type '
                               'OBJECT):\n%s' % truncated(value))
        raise errors.logic('Secondary keys must be a number, string, bool, pseudotype, or array (got %s of type '
                           'OBJECT).' % print_datum(value))


def check_primary_key(value) -> None:
    """Refuse values the real server cannot store as a primary key, with its messages."""
    if value is None or (isinstance(value, dict) and ptype(value) is None) or isinstance(value, Extremum):
        message = ('Primary keys must be either a number, string, bool, pseudotype or array (got type %s):\n%s'
                   % (type_name(value), truncated(value)))
        raise errors.NonExistence(message) if value is None else errors.logic(message)
    if isinstance(value, str) and len(value.encode('utf-8')) + 1 > MAX_PRIMARY_KEY_SIZE:
        raise errors.logic('Primary key too long (max %d characters): %s' % (MAX_PRIMARY_KEY_SIZE - 1, print_datum(value)))
