"""Terms on datums: comparison, arithmetic, objects, arrays, strings, types, times, UUIDs and JSON."""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
import uuid

from . import datum, errors
from .evaluator import (
    all_args, arg, as_array, as_int, as_number, as_sequence, as_string, call_datum,
    datum_type_error, handler, map_sequence, optarg, to_array, to_datum, type_of,
)
from .terms import literal
from .protocol import Term
from .values import Database, Func, Sequence, Stream

UUID_NAMESPACE = uuid.UUID('91461c99-f89d-49d2-af96-d8e2e14e9b58')
LITERAL = 'LITERAL'


def uuid_from_hash(base: uuid.UUID, name: bytes) -> str:
    """RethinkDB's uuid_u::from_hash: a version 5 UUID of the base UUID's bytes followed by `name`."""
    digest = bytearray(hashlib.sha1(base.bytes + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


_COMPARATORS = {
    Term.EQ: lambda order: order == 0,
    Term.NE: lambda order: order != 0,
    Term.LT: lambda order: order < 0,
    Term.LE: lambda order: order <= 0,
    Term.GT: lambda order: order > 0,
    Term.GE: lambda order: order >= 0,
}


@handler(*_COMPARATORS)
def _compare(ctx, node, scope):
    values = [to_datum(value) for value in all_args(ctx, node, scope)]
    holds = _COMPARATORS[node.type]
    return all(holds(datum.compare(left, right)) for left, right in zip(values, values[1:]))


def _add(left, right):
    if datum.ptype(left) == 'TIME' or datum.ptype(right) == 'TIME':
        time_value, seconds = (left, right) if datum.ptype(left) == 'TIME' else (right, left)
        return datum.make_time(time_value['epoch_time'] + as_number(seconds), time_value['timezone'])
    if datum.is_number(left):
        return datum.number(left + as_number(right))
    if isinstance(left, str):
        return left + as_string(right)
    if isinstance(left, list):
        return left + as_array(right)
    raise datum_type_error('NUMBER', left)


def _sub(left, right):
    if datum.ptype(left) == 'TIME':
        if datum.ptype(right) == 'TIME':
            return datum.number(left['epoch_time'] - right['epoch_time'])
        return datum.make_time(left['epoch_time'] - as_number(right), left['timezone'])
    return datum.number(as_number(left) - as_number(right))


def _mul(left, right):
    if isinstance(left, list) or isinstance(right, list):
        array, copies = (left, right) if isinstance(left, list) else (right, left)
        copies = as_int(copies)
        if copies < 0:
            raise errors.logic('Cannot multiply an ARRAY by a negative number.')
        return array * copies
    return datum.number(as_number(left) * as_number(right))


def _div(left, right):
    left, right = as_number(left), as_number(right)
    if right == 0:
        raise errors.logic('Cannot divide by zero.')
    return datum.number(left / right)


_ARITHMETIC = {Term.ADD: _add, Term.SUB: _sub, Term.MUL: _mul, Term.DIV: _div}


@handler(*_ARITHMETIC)
def _arithmetic(ctx, node, scope):
    values = [to_datum(value) for value in all_args(ctx, node, scope)]
    operation = _ARITHMETIC[node.type]
    result = values[0]
    for value in values[1:]:
        result = operation(result, value)
    if isinstance(result, list):
        ctx.check_array(result)
    return result


@handler(Term.MOD)
def _mod(ctx, node, scope):
    left, right = as_int(arg(ctx, node, 0, scope)), as_int(arg(ctx, node, 1, scope))
    if right == 0:
        raise errors.logic('Cannot take a number modulo 0.')
    return int(math.fmod(left, right))


@handler(Term.FLOOR, Term.CEIL, Term.ROUND)
def _rounding(ctx, node, scope):
    value = as_number(arg(ctx, node, 0, scope))
    if node.type == Term.FLOOR:
        return datum.number(float(math.floor(value)))
    if node.type == Term.CEIL:
        return datum.number(float(math.ceil(value)))
    return datum.number(float(math.floor(value + 0.5) if value >= 0 else -math.floor(-value + 0.5)))


def object_target(name: str, value, nested: bool = False) -> dict:
    """The object pluck, without, merge, has_fields, get_field or bracket works on, or the real errors (`nested`:
    an element of a sequence the term maps over)."""
    value = to_datum(value)
    if isinstance(value, dict) and datum.ptype(value) != 'BINARY':
        if datum.REQL_TYPE in value:
            raise errors.logic('Cannot call `%s` on objects of type `%s`.' % (name, datum.type_name(value)))
        return value
    if nested and isinstance(value, list):
        raise errors.logic('Cannot perform %s on a sequence of sequences.' % name)
    message = 'Cannot perform %s on a non-object non-sequence `%s`.' % (name, datum.truncated(value))
    if value is None:
        raise errors.NonExistence(message)
    raise errors.logic(message)


def get_field(value, field: str, name: str = 'get_field', nested: bool = False):
    """obj('field'): a missing field is NON_EXISTENCE."""
    value = object_target(name, value, nested)
    if field not in value:
        raise errors.NonExistence('No attribute `%s` in object:\n%s' % (field, datum.print_datum(value)))
    return value[field]


def _keys_target(name: str, value) -> dict:
    value = to_datum(value)
    if not isinstance(value, dict) or datum.REQL_TYPE in value:
        raise errors.logic('Cannot call `%s` on objects of type `%s`.' % (name, datum.type_name(value)))
    return value


@handler(Term.KEYS)
def _keys(ctx, node, scope):
    return sorted(_keys_target('keys', arg(ctx, node, 0, scope)))


@handler(Term.VALUES)
def _values(ctx, node, scope):
    value = _keys_target('values', arg(ctx, node, 0, scope))
    return [value[key] for key in sorted(value)]


@handler(Term.OBJECT)
def _object(ctx, node, scope):
    values = [to_datum(value) for value in all_args(ctx, node, scope)]
    if len(values) % 2:
        raise errors.logic('OBJECT expects an even number of arguments (but found %d).' % len(values))
    result = {}
    for key, value in zip(values[::2], values[1::2]):
        key = as_string(key)
        if key in result:
            raise errors.logic('Duplicate key `%s` in object.  (got `%s` and `%s` as values)' % (
                key, datum.print_datum(result[key]), datum.print_datum(value)))
        result[key] = value
    return result


def _selector_paths(selectors: list) -> list:
    """Pathspecs (strings, arrays, nested objects) flattened into lists of field names."""
    paths = []
    for selector in selectors:
        if isinstance(selector, str):
            paths.append([selector])
        elif isinstance(selector, list):
            paths.extend(_selector_paths(selector))
        elif isinstance(selector, dict):
            for key, sub in selector.items():
                if sub is True:
                    paths.append([key])
                else:
                    paths.extend([key] + path for path in _selector_paths([sub]))
        else:
            raise errors.logic('Invalid path argument `%s`.' % datum.print_datum(selector))
    return paths


def _has_path(value, path: list) -> bool:
    for field in path:
        if not isinstance(value, dict) or field not in value:
            return False
        value = value[field]
    return value is not None


def pluck(value: dict, paths: list) -> dict:
    """The object with only the given paths."""
    result: dict = {}
    for path in paths:
        source, target = value, result
        for depth, field in enumerate(path):
            if not isinstance(source, dict) or field not in source:
                break
            if depth == len(path) - 1:
                target[field] = source[field]
            else:
                source = source[field]
                if isinstance(source, list):
                    target[field] = [pluck(item, [path[depth + 1:]]) for item in source if isinstance(item, dict)]
                    break
                target = target.setdefault(field, {})
    return result


def without(value: dict, paths: list) -> dict:
    """The object without the given paths."""
    result = dict(value)
    for path in paths:
        if len(path) == 1:
            result.pop(path[0], None)
        elif isinstance(result.get(path[0]), dict):
            result[path[0]] = without(result[path[0]], [path[1:]])
    return result


def _object_or_sequence(ctx, node, scope, name, object_function, keep_table=False):
    values = all_args(ctx, node, scope)
    target = values[0]
    selectors = [to_datum(value) for value in values[1:]]
    if isinstance(target, Sequence) or isinstance(to_datum(target), list):
        sequence = as_sequence(target)
        return map_sequence(ctx, sequence, lambda batch: [
            object_function(object_target(name, item, nested=True), selectors) for item in batch],
            keep_table=keep_table)
    return object_function(object_target(name, target), selectors)


@handler(Term.PLUCK)
def _pluck(ctx, node, scope):
    return _object_or_sequence(ctx, node, scope, 'pluck',
                               lambda value, selectors: pluck(value, _selector_paths(selectors)))


@handler(Term.WITHOUT)
def _without(ctx, node, scope):
    return _object_or_sequence(ctx, node, scope, 'without',
                               lambda value, selectors: without(value, _selector_paths(selectors)))


def _has_fields_in(item, paths: list) -> bool:
    """has_fields as a filter over a sequence: a null element is left out, other non-objects are errors."""
    if item is None:
        return False
    object_target('has_fields', item, nested=True)
    return all(_has_path(item, path) for path in paths)


@handler(Term.HAS_FIELDS)
def _has_fields(ctx, node, scope):
    values = all_args(ctx, node, scope)
    target = values[0]
    paths = _selector_paths([to_datum(value) for value in values[1:]])
    if isinstance(target, Sequence) or isinstance(to_datum(target), list):
        sequence = as_sequence(target)
        return map_sequence(ctx, sequence, lambda batch: [
            item for item in batch if _has_fields_in(item, paths)], keep_table=True)
    value = object_target('has_fields', target)
    return all(_has_path(value, path) for path in paths)


@handler(Term.WITH_FIELDS)
def _with_fields(ctx, node, scope):
    values = all_args(ctx, node, scope)
    paths = _selector_paths([to_datum(value) for value in values[1:]])
    return map_sequence(ctx, as_sequence(values[0]), lambda batch: [
        pluck(item, paths) for item in batch
        if isinstance(item, dict) and all(_has_path(item, path) for path in paths)])


def merge(left, right):
    """Deep merge of objects, honouring r.literal()."""
    if datum.ptype(right) == LITERAL:
        return right.get('value', _DELETED)
    if not isinstance(left, dict) or not isinstance(right, dict) or datum.ptype(right) or datum.ptype(left):
        return _strip_literals(right)
    result = dict(left)
    for key, value in right.items():
        merged = merge(left[key], value) if key in left else _strip_literals(value)
        if merged is _DELETED:
            result.pop(key, None)
        else:
            result[key] = merged
    return result


_DELETED = object()


def _strip_literals(value):
    if datum.ptype(value) == LITERAL:
        return value.get('value', _DELETED)
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            stripped = _strip_literals(item)
            if stripped is not _DELETED:
                result[key] = stripped
        return result
    return value


@handler(Term.MERGE)
def _merge(ctx, node, scope):
    values = all_args(ctx, node, scope)

    def merge_all(value, nested=False):
        value = object_target('merge', value, nested)
        for other in values[1:]:
            other = call_datum(ctx, other, [value]) if isinstance(other, Func) else to_datum(other)
            value = merge(value, other)
        return value
    target = values[0]
    if isinstance(target, Sequence) or isinstance(to_datum(target), list):
        return map_sequence(ctx, as_sequence(target), lambda batch: [merge_all(item, True) for item in batch])
    return merge_all(target)


@handler(Term.LITERAL)
def _literal(ctx, node, scope):
    if node.args:
        return {datum.REQL_TYPE: LITERAL, 'value': to_datum(arg(ctx, node, 0, scope))}
    return {datum.REQL_TYPE: LITERAL}


@handler(Term.APPEND)
def _append(ctx, node, scope):
    return ctx.check_array(as_array(arg(ctx, node, 0, scope)) + [to_datum(arg(ctx, node, 1, scope))])


@handler(Term.PREPEND)
def _prepend(ctx, node, scope):
    return ctx.check_array([to_datum(arg(ctx, node, 1, scope))] + as_array(arg(ctx, node, 0, scope)))


@handler(Term.DIFFERENCE)
def _difference(ctx, node, scope):
    removed = as_array(arg(ctx, node, 1, scope))
    return [item for item in as_array(arg(ctx, node, 0, scope)) if not any(datum.equal(item, other) for other in removed)]


def _distinct(values: list) -> list:
    result: list = []
    for value in values:
        if not any(datum.equal(value, seen) for seen in result):
            result.append(value)
    return result


@handler(Term.SET_INSERT)
def _set_insert(ctx, node, scope):
    return _distinct(as_array(arg(ctx, node, 0, scope)) + [to_datum(arg(ctx, node, 1, scope))])


@handler(Term.SET_UNION)
def _set_union(ctx, node, scope):
    return _distinct(as_array(arg(ctx, node, 0, scope)) + as_array(arg(ctx, node, 1, scope)))


@handler(Term.SET_INTERSECTION)
def _set_intersection(ctx, node, scope):
    right = as_array(arg(ctx, node, 1, scope))
    return _distinct([item for item in as_array(arg(ctx, node, 0, scope))
                      if any(datum.equal(item, other) for other in right)])


@handler(Term.SET_DIFFERENCE)
def _set_difference(ctx, node, scope):
    right = as_array(arg(ctx, node, 1, scope))
    return _distinct([item for item in as_array(arg(ctx, node, 0, scope))
                      if not any(datum.equal(item, other) for other in right)])


def _array_index(array: list, index: int, inclusive_end: bool = False) -> int:
    size = len(array) + (1 if inclusive_end else 0)
    position = index + len(array) if index < 0 else index
    if position < 0 or position >= size:
        raise errors.NonExistence('Index `%d` out of bounds for array of size: `%d`.' % (index, len(array)))
    return position


@handler(Term.INSERT_AT)
def _insert_at(ctx, node, scope):
    array = as_array(arg(ctx, node, 0, scope))
    position = _array_index(array, as_int(arg(ctx, node, 1, scope)), inclusive_end=True)
    return ctx.check_array(array[:position] + [to_datum(arg(ctx, node, 2, scope))] + array[position:])


@handler(Term.SPLICE_AT)
def _splice_at(ctx, node, scope):
    array = as_array(arg(ctx, node, 0, scope))
    position = _array_index(array, as_int(arg(ctx, node, 1, scope)), inclusive_end=True)
    return ctx.check_array(array[:position] + as_array(arg(ctx, node, 2, scope)) + array[position:])


@handler(Term.DELETE_AT)
def _delete_at(ctx, node, scope):
    array = as_array(arg(ctx, node, 0, scope))
    start = _array_index(array, as_int(arg(ctx, node, 1, scope)))
    end = start + 1
    if len(node.args) == 3:
        end = _array_index(array, as_int(arg(ctx, node, 2, scope)), inclusive_end=True)
    return array[:start] + array[end:]


@handler(Term.CHANGE_AT)
def _change_at(ctx, node, scope):
    array = as_array(arg(ctx, node, 0, scope))
    position = _array_index(array, as_int(arg(ctx, node, 1, scope)))
    return array[:position] + [to_datum(arg(ctx, node, 2, scope))] + array[position + 1:]


@handler(Term.TYPE_OF)
def _type_of(ctx, node, scope):
    return type_of(arg(ctx, node, 0, scope))


_COERCE_NAMES = {'NULL', 'BOOL', 'NUMBER', 'STRING', 'ARRAY', 'OBJECT', 'BINARY', 'TABLE', 'TABLE_SLICE',
                 'SELECTION<STREAM>', 'SELECTION<ARRAY>', 'SELECTION<OBJECT>', 'STREAM', 'DB', 'FUNCTION',
                 'PTYPE<TIME>', 'PTYPE<BINARY>', 'MINVAL', 'MAXVAL'}


@handler(Term.COERCE_TO)
def _coerce_to(ctx, node, scope):
    value = arg(ctx, node, 0, scope)
    target = as_string(arg(ctx, node, 1, scope)).upper()
    if target not in _COERCE_NAMES:
        raise errors.logic('Unknown Type: %s' % target)
    if isinstance(value, Sequence):
        if target == 'ARRAY':
            return to_array(ctx, value)
        if target == 'OBJECT':
            return _pairs_to_object(to_array(ctx, value))
        if target in (value.kind, 'STREAM', 'SEQUENCE'):
            return value
        raise errors.logic('Cannot coerce %s to %s.' % (value.kind, target))
    value = to_datum(value)
    source = datum.type_name(value)
    if target == source or (target == 'BINARY' and source == 'PTYPE<BINARY>'):
        return value
    if target == 'BOOL':
        return value is not None
    if target == 'STRING':
        if source == 'PTYPE<BINARY>':
            return datum.binary_bytes(value).decode('utf-8', errors='replace')
        return datum.to_json(value) if not isinstance(value, str) else value
    if target == 'BINARY' and source == 'STRING':
        return datum.make_binary(value.encode('utf-8'))
    if target == 'NUMBER' and source == 'STRING':
        try:
            return datum.number(float(value.strip()))
        except ValueError:
            raise errors.logic('Could not coerce `%s` to NUMBER.' % value) from None
    if target == 'ARRAY' and source == 'OBJECT':
        return [[key, value[key]] for key in sorted(value)]
    if target == 'OBJECT' and source == 'ARRAY':
        return _pairs_to_object(value)
    message = 'Cannot coerce %s to %s.' % (source, target)
    raise errors.NonExistence(message) if value is None else errors.logic(message)


def _pairs_to_object(pairs: list) -> dict:
    result = {}
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2:
            raise errors.logic('Expected array of size 2, but got size %d.' % (len(pair) if isinstance(pair, list) else 0))
        result[as_string(pair[0])] = pair[1]
    return result


@handler(Term.JSON)
def _json(ctx, node, scope):
    text = as_string(arg(ctx, node, 0, scope))
    try:
        return literal(json.loads(text))
    except ValueError as error:
        raise errors.logic('Failed to parse "%s" as JSON: %s' % (text, error)) from None


@handler(Term.TO_JSON_STRING)
def _to_json_string(ctx, node, scope):
    return datum.to_json(to_datum(arg(ctx, node, 0, scope)))


@handler(Term.UUID)
def _uuid(ctx, node, scope):
    if node.args:
        return uuid_from_hash(UUID_NAMESPACE, as_string(arg(ctx, node, 0, scope)).encode('utf-8'))
    return str(uuid.uuid4())


@handler(Term.BINARY)
def _binary(ctx, node, scope):
    value = to_datum(arg(ctx, node, 0, scope))
    if datum.ptype(value) == 'BINARY':
        return value
    return datum.make_binary(as_string(value).encode('utf-8'))


@handler(Term.NOW)
def _now(ctx, _node, _scope):
    return ctx.now


@handler(Term.EPOCH_TIME)
def _epoch_time(ctx, node, scope):
    return datum.make_time(as_number(arg(ctx, node, 0, scope)))


def as_time(value) -> dict:
    """A TIME pseudo-type, or the real error."""
    value = to_datum(value)
    if datum.ptype(value) != 'TIME':
        raise errors.logic('Not a TIME pseudotype: `%s`.' % datum.print_datum(value))
    return value


@handler(Term.TO_EPOCH_TIME)
def _to_epoch_time(ctx, node, scope):
    return as_time(arg(ctx, node, 0, scope))['epoch_time']


def _zone(offset: str) -> datetime.timezone:
    sign = -1 if offset.startswith('-') else 1
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    return datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))


@handler(Term.TO_ISO8601)
def _to_iso8601(ctx, node, scope):
    value = as_time(arg(ctx, node, 0, scope))
    moment = datetime.datetime.fromtimestamp(value['epoch_time'], _zone(value['timezone']))
    return moment.isoformat(timespec='milliseconds' if moment.microsecond else 'seconds')


_ISO8601 = re.compile(r'^(\d{4})-?(\d{2})-?(\d{2})(?:T(\d{2}):?(\d{2})(?::?(\d{2})(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$')


@handler(Term.ISO8601)
def _iso8601(ctx, node, scope):
    text = as_string(arg(ctx, node, 0, scope))
    match = _ISO8601.match(text)
    if not match:
        raise errors.logic('Invalid date string `%s`' % text)
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    default_zone = to_datum(optarg(ctx, node, 'default_timezone', scope, None))
    zone = zone or default_zone
    if zone is None:
        raise errors.logic('ISO 8601 string has no time zone, and no default time zone was provided.')
    offset = '+00:00' if zone == 'Z' else '%s:%s' % (zone[:3], zone[-2:])
    moment = datetime.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                               tzinfo=_zone(offset))
    return datum.make_time(moment.timestamp() + float(fraction or 0), offset)


@handler(Term.MATCH)
def _match(ctx, node, scope):
    text = as_string(arg(ctx, node, 0, scope))
    pattern = as_string(arg(ctx, node, 1, scope))
    try:
        found = re.search(pattern, text)
    except re.error as error:
        raise errors.logic('Error in regexp `%s` (portion `%s`): %s' % (pattern, pattern, error)) from None
    if not found:
        return None
    groups = [None if group is None else {'str': group, 'start': found.start(index + 1), 'end': found.end(index + 1)}
              for index, group in enumerate(found.groups())]
    return {'str': found.group(0), 'start': found.start(), 'end': found.end(), 'groups': groups}


@handler(Term.UPCASE, Term.DOWNCASE)
def _case(ctx, node, scope):
    text = as_string(arg(ctx, node, 0, scope))
    return text.upper() if node.type == Term.UPCASE else text.lower()


@handler(Term.SPLIT)
def _split(ctx, node, scope):
    values = [to_datum(value) for value in all_args(ctx, node, scope)]
    text = as_string(values[0])
    separator = values[1] if len(values) > 1 else None
    limit = as_int(values[2]) if len(values) > 2 else -1
    if separator is None:
        return text.split(None, limit) if limit >= 0 else text.split()
    separator = as_string(separator)
    if separator == '':
        return list(text)
    return text.split(separator, limit)


@handler(Term.CONTAINS)
def _contains(ctx, node, scope):
    values = all_args(ctx, node, scope)
    items = to_array(ctx, values[0])
    for wanted in values[1:]:
        if isinstance(wanted, Func):
            if not any(call_datum(ctx, wanted, [item]) not in (False, None) for item in items):
                return False
        elif not any(datum.equal(item, to_datum(wanted)) for item in items):
            return False
    return True


@handler(Term.INFO)
def _info(ctx, node, scope):
    value = arg(ctx, node, 0, scope)
    describe = getattr(value, 'info', None)
    if describe is not None and not isinstance(value, Stream):
        return describe()
    if isinstance(value, Database):
        return {'type': 'DB', 'name': value.name, 'id': value.id}
    if isinstance(value, Func):
        return {'type': 'FUNCTION', 'source_code': ''}
    if isinstance(value, Sequence):
        return {'type': value.kind}
    value = to_datum(value)
    info = {'type': datum.type_name(value), 'value': datum.to_json(value)}
    if datum.ptype(value) == 'BINARY':
        info['count'] = len(datum.binary_bytes(value))
    return info


def predicate_func(value) -> Func:
    """The function filter() uses for a non-function argument: an object matches rows with those fields."""
    if isinstance(value, dict) and datum.ptype(value) is None:
        def matches(row):
            row = to_datum(row)
            return isinstance(row, dict) and all(
                key in row and _matches(row[key], wanted) for key, wanted in value.items())
        return Func(None, native=matches)
    return Func(None, native=lambda *_args: value)


def _matches(actual, wanted) -> bool:
    if isinstance(wanted, dict) and datum.ptype(wanted) is None:
        return isinstance(actual, dict) and all(key in actual and _matches(actual[key], item) for key, item in wanted.items())
    return datum.equal(actual, wanted)
