"""Terms on sequences (arrays, streams and table selections): map, filter, order_by, limit, aggregates...

Arrays in give arrays out, limited by `array_limit`; streams stay lazy, and selections of a table stay selections
where the real server keeps them so (filter, limit, skip, slice, nth), so writes can follow.
"""

from __future__ import annotations

import itertools
import random

from . import datum, errors
from .evaluator import (
    Context, all_args, arg, as_func, as_int, as_number, as_sequence, as_string, call, call_datum, constant_func,
    handler, map_sequence, optarg, to_array, to_datum, truthy, MISSING,
)
from .ops_datum import get_field, merge, predicate_func
from .protocol import ErrorType, Term
from .values import ArraySelection, Func, Ordering, Sequence, SingleSelection, Stream
from .writes import merge_write_results


def _field_func(field) -> Func:
    field = as_string(field)
    return Func(None, native=lambda row: get_field(to_datum(row), field))


def _mapper(value) -> Func:
    return as_func(value, constant_func)


def _limit_batches(batches, count: int):
    if count <= 0:
        return
    for batch in batches:
        if len(batch) >= count:
            yield batch[:count]
            return
        count -= len(batch)
        yield batch


def _skip_batches(batches, count: int):
    for batch in batches:
        if count >= len(batch):
            count -= len(batch)
            continue
        yield batch[count:]
        count = 0


def _derived(sequence, transform, keep_table: bool):
    """A stream whose batches (and raw batches, when the transform does not look at rows) come from `sequence`."""
    raw = None
    if sequence.raw_batches() is not None:
        def raw():
            return transform(sequence.raw_batches())
    return Stream(lambda: transform(sequence.batches()), table=sequence.table if keep_table else None, raw_factory=raw)


@handler(Term.MAP)
def _map(ctx, node, scope):
    values = all_args(ctx, node, scope)
    func = _mapper(values[-1])
    sequences = [as_sequence(value) for value in values[:-1]]
    if len(sequences) == 1:
        return map_sequence(ctx, sequences[0], lambda batch: [call_datum(ctx, func, [item]) for item in batch])
    if all(isinstance(sequence, list) for sequence in sequences):
        return ctx.check_array([call_datum(ctx, func, list(items)) for items in zip(*sequences)])

    def batches():
        iterators = [iter(sequence) for sequence in sequences]
        while True:
            batch = []
            for items in itertools.islice(zip(*iterators), 1000):
                batch.append(call_datum(ctx, func, list(items)))
            if not batch:
                return
            yield batch
    return Stream(batches)


@handler(Term.CONCAT_MAP)
def _concat_map(ctx, node, scope):
    sequence = as_sequence(arg(ctx, node, 0, scope))
    func = _mapper(arg(ctx, node, 1, scope))

    def expand(batch):
        result = []
        for item in batch:
            result.extend(to_array(ctx, call(ctx, func, [item])))
        return result
    return map_sequence(ctx, sequence, expand)


@handler(Term.FILTER)
def _filter(ctx, node, scope):
    sequence = as_sequence(arg(ctx, node, 0, scope))
    predicate = arg(ctx, node, 1, scope)
    func = predicate if isinstance(predicate, Func) else predicate_func(to_datum(predicate))
    has_default = 'default' in node.optargs

    def keep(item) -> bool:
        try:
            return truthy(call(ctx, func, [item]))
        except errors.ReqlError as error:
            if error.error_type != ErrorType.NON_EXISTENCE:
                raise
            if not has_default:
                return False
            if node.optargs['default'].type == Term.ERROR and not node.optargs['default'].args:
                raise
            fallback = optarg(ctx, node, 'default', scope)
            if isinstance(fallback, Func):
                return truthy(call(ctx, fallback, [item]))
            return truthy(fallback)
    return map_sequence(ctx, sequence, lambda batch: [item for item in batch if keep(item)], keep_table=True)


@handler(Term.LIMIT)
def _limit(ctx, node, scope):
    sequence = as_sequence(arg(ctx, node, 0, scope))
    count = as_int(arg(ctx, node, 1, scope))
    if count < 0:
        raise errors.logic('LIMIT takes a non-negative argument (got %d)' % count)
    if isinstance(sequence, list):
        return sequence[:count]
    return _derived(sequence, lambda batches: _limit_batches(batches, count), keep_table=True)


@handler(Term.SKIP)
def _skip(ctx, node, scope):
    sequence = as_sequence(arg(ctx, node, 0, scope))
    count = as_int(arg(ctx, node, 1, scope))
    if count < 0:
        raise errors.logic('Cannot use a negative left index on a stream.')
    if isinstance(sequence, list):
        return sequence[count:]
    return _derived(sequence, lambda batches: _skip_batches(batches, count), keep_table=True)


@handler(Term.SLICE)
def _slice(ctx, node, scope):
    target = arg(ctx, node, 0, scope)
    start = as_int(arg(ctx, node, 1, scope))
    end = as_int(arg(ctx, node, 2, scope)) if len(node.args) > 2 else None
    left_open = as_string(optarg(ctx, node, 'left_bound', scope, 'closed')) == 'open'
    right_closed = as_string(optarg(ctx, node, 'right_bound', scope, 'open')) == 'closed'
    value = to_datum(target) if not isinstance(target, Sequence) else None
    if isinstance(value, str) or datum.ptype(value) == 'BINARY':
        return _slice_datum(value, start, end, left_open, right_closed)
    sequence = as_sequence(target)
    if isinstance(sequence, list) or start < 0 or (end is not None and end < 0):
        items = to_array(ctx, sequence)
        return _slice_list(items, start, end, left_open, right_closed)
    first = start + (1 if left_open else 0)
    if end is None:
        return _derived(sequence, lambda batches: _skip_batches(batches, first), keep_table=True)
    last = end + (1 if right_closed else 0)
    return _derived(sequence, lambda batches: _limit_batches(_skip_batches(batches, first), last - first),
                    keep_table=True)


def _bounds(size: int, start: int, end, left_open: bool, right_closed: bool):
    start = start + size if start < 0 else start
    end = size if end is None else (end + size if end < 0 else end)
    return start + (1 if left_open else 0), end + (1 if right_closed else 0)


def _slice_list(items: list, start: int, end, left_open: bool, right_closed: bool) -> list:
    first, last = _bounds(len(items), start, end, left_open, right_closed)
    return items[max(first, 0):max(last, 0)]


def _slice_datum(value, start, end, left_open, right_closed):
    if isinstance(value, str):
        first, last = _bounds(len(value), start, end, left_open, right_closed)
        return value[max(first, 0):max(last, 0)]
    data = datum.binary_bytes(value)
    first, last = _bounds(len(data), start, end, left_open, right_closed)
    return datum.make_binary(data[max(first, 0):max(last, 0)])


def nth_value(ctx: Context, target, index: int):
    """seq.nth(index): a single selection when the sequence is a table selection."""
    sequence = as_sequence(target)
    item = _nth(ctx, sequence, index)
    if isinstance(sequence, Sequence) and sequence.table is not None:
        return SingleSelection(sequence.table, item[sequence.table.primary_key], row=item)
    return item


def _nth(ctx: Context, sequence, index: int):
    if isinstance(sequence, list):
        if index < -len(sequence) or index >= len(sequence):
            raise errors.NonExistence('Index out of bounds: %d' % index)
        return sequence[index]
    if index < -1:
        raise errors.logic('Cannot use an index < -1 (%d) on a stream.' % index)
    if index == -1:
        items = to_array(ctx, sequence)
        if not items:
            raise errors.NonExistence('Index out of bounds: %d' % index)
        return items[-1]
    position = 0
    for batch in sequence.batches():
        if index < position + len(batch):
            return batch[index - position]
        position += len(batch)
    raise errors.NonExistence('Index out of bounds: %d' % index)


@handler(Term.NTH)
def _nth_term(ctx, node, scope):
    return nth_value(ctx, arg(ctx, node, 0, scope), as_int(arg(ctx, node, 1, scope)))


def _is_sequence(value) -> bool:
    return isinstance(value, (list, Sequence)) or (
        isinstance(value, SingleSelection) and isinstance(value.row, list))


def _pluck_field(ctx: Context, target, field: str):
    """seq('field'): each element's field, skipping elements without it."""
    return map_sequence(ctx, as_sequence(target), lambda batch: [
        item[field] for item in batch if isinstance(item, dict) and field in item])


@handler(Term.BRACKET)
def _bracket(ctx, node, scope):
    target = arg(ctx, node, 0, scope)
    key = to_datum(arg(ctx, node, 1, scope))
    if isinstance(target, dict) and isinstance(key, str) and key in target and datum.ptype(target) != 'BINARY':
        return target[key]
    if datum.is_number(key):
        return nth_value(ctx, target, as_int(key))
    if not isinstance(key, str):
        raise errors.logic('Expected NUMBER or STRING as second argument to `bracket` but found %s.'
                           % datum.type_name(key))
    if _is_sequence(target):
        return _pluck_field(ctx, target, key)
    return get_field(to_datum(target), key)


@handler(Term.GET_FIELD)
def _get_field(ctx, node, scope):
    target = arg(ctx, node, 0, scope)
    field = as_string(arg(ctx, node, 1, scope))
    if isinstance(target, dict) and field in target and datum.ptype(target) != 'BINARY':
        return target[field]
    if _is_sequence(target):
        return _pluck_field(ctx, target, field)
    return get_field(to_datum(target), field)


def _sort_keys(ctx: Context, orderings: list):
    """Functions computing each ordering's key, and their directions."""
    keys = []
    for ordering in orderings:
        descending = False
        if isinstance(ordering, Ordering):
            descending, ordering = ordering.descending, ordering.key
        if isinstance(ordering, Func):
            func = ordering
        else:
            func = _field_func(ordering)
        keys.append((func, descending))
    return keys


def sort_rows(ctx: Context, rows: list, orderings: list) -> list:
    """Sort rows by several orderings, rows missing a field last (as the real server does)."""
    for func, descending in reversed(_sort_keys(ctx, orderings)):
        decorated = []
        for row in rows:
            try:
                decorated.append((call_datum(ctx, func, [row]), row))
            except errors.ReqlError as error:
                if error.error_type != ErrorType.NON_EXISTENCE:
                    raise
                decorated.append((datum.MAXVAL, row))
        decorated.sort(key=lambda pair: datum.sort_key(pair[0]), reverse=descending)
        rows = [row for _key, row in decorated]
    return rows


@handler(Term.ORDER_BY)
def _order_by(ctx, node, scope):
    values = all_args(ctx, node, scope)
    target = values[0]
    index = optarg(ctx, node, 'index', scope, MISSING)
    if index is not MISSING:
        descending = isinstance(index, Ordering) and index.descending
        index_name = as_string(index.key if isinstance(index, Ordering) else index)
        order_by_index = getattr(target, 'order_by_index', None)
        if order_by_index is None:
            raise errors.logic('Indexed order_by can only be performed on a TABLE or TABLE_SLICE. Make sure order_by '
                               'comes before any transformations (such as map) or filters.')
        target = order_by_index(index_name, descending)
        if len(values) == 1:
            return target
    sequence = as_sequence(target)
    if len(values) == 1:
        raise errors.logic('Must specify something to order by.')
    rows = sort_rows(ctx, to_array(ctx, sequence), values[1:])
    table = getattr(sequence, 'table', None)
    return ArraySelection(rows, table) if table is not None else rows


@handler(Term.DISTINCT)
def _distinct(ctx, node, scope):
    target = arg(ctx, node, 0, scope)
    index = optarg(ctx, node, 'index', scope, MISSING)
    if index is not MISSING:
        distinct_index = getattr(target, 'distinct_index', None)
        if distinct_index is None:
            raise errors.logic('Expected type TABLE but found %s.' % getattr(target, 'kind', 'DATUM'))
        return distinct_index(as_string(index))
    items = datum.sorted_datums(to_array(ctx, target))
    result = []
    for item in items:
        if not result or not datum.equal(result[-1], item):
            result.append(item)
    return result


@handler(Term.COUNT)
def _count(ctx, node, scope):
    target = arg(ctx, node, 0, scope)
    if len(node.args) == 1:
        if isinstance(target, Sequence) and hasattr(target, 'count'):
            return target.count()
        value = target if isinstance(target, Sequence) else to_datum(target)
        if isinstance(value, str):
            return len(value)
        if isinstance(value, dict) and datum.ptype(value) is None:
            return len(value)
        if datum.ptype(value) == 'BINARY':
            return len(datum.binary_bytes(value))
        return sum(len(batch) for batch in as_sequence(value).batches()) if isinstance(value, Sequence) else len(
            as_sequence(value))
    wanted = arg(ctx, node, 1, scope)
    if isinstance(wanted, Func):
        return sum(1 for item in _iterate(target) if truthy(call(ctx, wanted, [item])))
    wanted = to_datum(wanted)
    return sum(1 for item in _iterate(target) if datum.equal(item, wanted))


def _iterate(target):
    sequence = as_sequence(target)
    return iter(sequence)


def _values_of(ctx: Context, node, scope, name: str):
    """The values an aggregate works on: the elements, or a field / function of each (skipping missing fields)."""
    target = arg(ctx, node, 0, scope)
    if len(node.args) == 1:
        return [(item, item) for item in _iterate(target)]
    selector = arg(ctx, node, 1, scope)
    func = selector if isinstance(selector, Func) else _field_func(selector)
    pairs = []
    for item in _iterate(target):
        try:
            pairs.append((item, call_datum(ctx, func, [item])))
        except errors.ReqlError as error:
            if error.error_type != ErrorType.NON_EXISTENCE or isinstance(selector, Func) and name == 'sum':
                raise
    return pairs


@handler(Term.SUM)
def _sum(ctx, node, scope):
    total = 0
    for _item, value in _values_of(ctx, node, scope, 'sum'):
        total += as_number(value)
    return datum.number(total)


@handler(Term.AVG)
def _avg(ctx, node, scope):
    values = [as_number(value) for _item, value in _values_of(ctx, node, scope, 'avg')]
    if not values:
        raise errors.NonExistence('Cannot take the average of an empty stream.  (If you passed `avg` a field name, it '
                                  'may be that no elements of the stream had that field.)')
    return datum.number(sum(values) / len(values))


def _extreme(ctx, node, scope, name: str, pick_greater: bool):
    index = optarg(ctx, node, 'index', scope, MISSING)
    if index is not MISSING:
        target = arg(ctx, node, 0, scope)
        order_by_index = getattr(target, 'order_by_index', None)
        if order_by_index is None:
            raise errors.logic('Expected type TABLE but found %s.' % getattr(target, 'kind', 'DATUM'))
        for item in order_by_index(as_string(index), pick_greater):
            return item
        pairs = []
    else:
        pairs = _values_of(ctx, node, scope, name)
    if not pairs:
        raise errors.NonExistence('Cannot take the %s of an empty stream.  (If you passed `%s` a field name, it may be '
                                  'that no elements of the stream had that field.)' % (name, name))
    best_item, best_value = pairs[0]
    for item, value in pairs[1:]:
        order = datum.compare(value, best_value)
        if (order > 0) if pick_greater else (order < 0):
            best_item, best_value = item, value
    return best_item


@handler(Term.MIN)
def _min(ctx, node, scope):
    return _extreme(ctx, node, scope, 'min', False)


@handler(Term.MAX)
def _max(ctx, node, scope):
    return _extreme(ctx, node, scope, 'max', True)


@handler(Term.IS_EMPTY)
def _is_empty(ctx, node, scope):
    for batch in _batches(as_sequence(arg(ctx, node, 0, scope))):
        if batch:
            return False
    return True


def _batches(sequence):
    if isinstance(sequence, list):
        return iter([sequence])
    return sequence.batches()


@handler(Term.UNION)
def _union(ctx, node, scope):
    sequences = [as_sequence(value) for value in all_args(ctx, node, scope)]
    if all(isinstance(sequence, list) for sequence in sequences):
        return ctx.check_array([item for sequence in sequences for item in sequence])
    return Stream(lambda: itertools.chain.from_iterable(_batches(sequence) for sequence in sequences))


@handler(Term.REDUCE)
def _reduce(ctx, node, scope):
    items = _iterate(arg(ctx, node, 0, scope))
    func = as_func(arg(ctx, node, 1, scope))
    try:
        result = next(items)
    except StopIteration:
        raise errors.NonExistence('Cannot reduce over an empty stream.') from None
    for item in items:
        result = call_datum(ctx, func, [result, item])
    return result


@handler(Term.FOR_EACH)
def _for_each(ctx, node, scope):
    sequence = as_sequence(arg(ctx, node, 0, scope))
    func = as_func(arg(ctx, node, 1, scope))
    total: dict = {}
    for item in sequence:
        result = to_datum(call(ctx, func, [item]))
        results = result if isinstance(result, list) else [result]
        for single in results:
            if not isinstance(single, dict):
                raise errors.logic('FOR_EACH expects one or more basic write queries.')
            total = merge_write_results(total, single)
    return total


@handler(Term.RANGE)
def _range(ctx, node, scope):
    bounds = [as_int(value) for value in all_args(ctx, node, scope)]
    if not bounds:
        numbers = itertools.count()
    elif len(bounds) == 1:
        numbers = iter(range(bounds[0]))
    else:
        numbers = iter(range(bounds[0], bounds[1]))

    def batches():
        while True:
            batch = list(itertools.islice(numbers, 1000))
            if not batch:
                return
            yield batch
    return Stream(batches)


@handler(Term.ZIP)
def _zip(ctx, node, scope):

    def join(batch):
        result = []
        for item in batch:
            if not isinstance(item, dict) or 'left' not in item:
                raise errors.logic('ZIP can only be called on the result of a join.')
            result.append(merge(item['left'], item['right']) if 'right' in item else item['left'])
        return result
    return map_sequence(ctx, as_sequence(arg(ctx, node, 0, scope)), join)


@handler(Term.SAMPLE)
def _sample(ctx, node, scope):
    items = to_array(ctx, arg(ctx, node, 0, scope))
    count = as_int(arg(ctx, node, 1, scope))
    if count < 0:
        raise errors.logic('Number of items to sample must be non-negative, got `%d`.' % count)
    return random.sample(items, min(count, len(items)))
