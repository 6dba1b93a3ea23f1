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
from .ops_datum import get_field, merge, object_target, predicate_func
from .protocol import ErrorType, Term
from .values import ArraySelection, Func, Ordering, Sequence, SingleSelection, Stream
from .writes import merge_write_results


def _field_func(field) -> Func:
    """The function a field name stands for (GET_FIELD_SHORTCUT): row('field'), an array's fields too."""
    field = as_string(field)

    def get(row):
        row = to_datum(row)
        if isinstance(row, list):
            result = []
            for item in row:
                if item is None:
                    continue
                value = object_target('get_field', item, nested=True)
                if field in value:
                    result.append(value[field])
            return result
        return get_field(row, field)
    return Func(None, native=get)


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
    if isinstance(sequence, ArraySelection):
        return ArraySelection(sequence[:count], sequence.table)
    if isinstance(sequence, list):
        return sequence[:count]
    return _derived(sequence, lambda batches: _limit_batches(batches, count), keep_table=True)


@handler(Term.SKIP)
def _skip(ctx, node, scope):
    sequence = as_sequence(arg(ctx, node, 0, scope))
    count = as_int(arg(ctx, node, 1, scope))
    if count < 0:
        raise errors.logic('Cannot use a negative left index on a stream.')
    if isinstance(sequence, ArraySelection):
        return ArraySelection(sequence[count:], sequence.table)
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
    if isinstance(target, (Sequence, ArraySelection)):
        return _slice_stream(target, start, end, left_open, right_closed)
    value = to_datum(target)
    if isinstance(value, str) or datum.ptype(value) == 'BINARY':
        return _slice_datum(value, start, end, left_open, right_closed)
    if not isinstance(value, list):
        raise errors.logic('Expected ARRAY, BINARY, or STRING, but found %s.' % datum.type_name(value))
    return _slice_list(value, start, end, left_open, right_closed)


def _slice_stream(sequence, start: int, end, left_open: bool, right_closed: bool):
    """slice() of a stream or selection: no negative indexes but an inclusive -1 (the real rules)."""
    if start < 0:
        raise errors.logic('Cannot use a negative left index on a stream.')
    first = start + (1 if left_open else 0)
    last = None
    if end is not None and end < -1:
        raise errors.logic('Cannot use a right index < -1 on a stream.')
    if end == -1 and not right_closed:
        raise errors.logic('Cannot slice to an open right index of -1 on a stream.')
    if end is not None and end != -1:
        last = end + (1 if right_closed else 0)
    if isinstance(sequence, ArraySelection):
        return ArraySelection(list(sequence)[first:last] if last is None or last > first else [], sequence.table)
    if last is None:
        return _derived(sequence, lambda batches: _skip_batches(batches, first), keep_table=True)
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
    if isinstance(sequence, (Sequence, ArraySelection)) and sequence.table is not None:
        return SingleSelection(sequence.table, item[sequence.table.primary_key], row=item)
    return item


def _nth(ctx: Context, sequence, index: int):
    if isinstance(sequence, list) and not isinstance(sequence, ArraySelection):
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


def _pluck_field(ctx: Context, target, field: str, name: str):
    """seq('field'): each element's field, skipping elements without it (or null); other non-objects are errors."""
    def fields(batch):
        result = []
        for item in batch:
            if item is None:
                continue
            value = object_target(name, item, nested=True)
            if field in value:
                result.append(value[field])
        return result
    return map_sequence(ctx, as_sequence(target), fields)


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
        return _pluck_field(ctx, target, key, 'bracket')
    return get_field(to_datum(target), key, 'bracket')


@handler(Term.GET_FIELD)
def _get_field(ctx, node, scope):
    target = arg(ctx, node, 0, scope)
    field = as_string(arg(ctx, node, 1, scope))
    if isinstance(target, dict) and field in target and datum.ptype(target) != 'BINARY':
        return target[field]
    if _is_sequence(target):
        return _pluck_field(ctx, target, field, 'get_field')
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
    """Sort rows by several orderings; a row missing a field sorts before all others (after them descending).

    Sort keys are computed once each. When one fails, the rows are sorted again the way the real server does
    (libstdc++'s stable_sort calling its comparator, lt_cmp_t), so the same error surfaces first, or none at all
    when the real server never asks for that key.
    """
    keys = _sort_keys(ctx, orderings)
    memo: list = [{} for _key in keys]

    def key_of(which: int, position: int):
        found = memo[which].get(position)
        if found is None:
            try:
                found = (True, call_datum(ctx, keys[which][0], [rows[position]]))
            except errors.ReqlError as error:
                if error.error_type != ErrorType.NON_EXISTENCE:
                    found = (False, error)
                else:
                    found = (True, MISSING)
            memo[which][position] = found
        return found

    failed = any(not key_of(which, position)[0] for which in range(len(keys)) for position in range(len(rows)))
    if failed:
        return [rows[position] for position in _libstdcxx_stable_sort(len(rows), _lt_cmp(keys, key_of))]
    order = list(range(len(rows)))
    for which in reversed(range(len(keys))):
        descending = keys[which][1]
        order.sort(key=lambda position, which=which: datum.sort_key(
            datum.MINVAL if key_of(which, position)[1] is MISSING else key_of(which, position)[1]),
            reverse=descending)
    return [rows[position] for position in order]


def _lt_cmp(keys: list, key_of):
    """The real lt_cmp_t over row positions: keys computed left then right, missing ones first."""
    def less(left: int, right: int) -> bool:
        for which, (_func, descending) in enumerate(keys):
            left_ok, left_value = key_of(which, left)
            if not left_ok:
                raise left_value
            right_ok, right_value = key_of(which, right)
            if not right_ok:
                raise right_value
            if left_value is MISSING and right_value is MISSING:
                continue
            if left_value is MISSING:
                return not descending
            if right_value is MISSING:
                return descending
            order = datum.compare(left_value, right_value)
            if order == 0:
                continue
            return (order < 0) != descending
        return False
    return less


def _libstdcxx_stable_sort(count: int, less) -> list:
    """Positions 0..count-1 sorted as libstdc++'s std::stable_sort (with its buffer) sorts them, comparisons in the
    same order: halves chunk-insertion-sorted by 7 and merged with a buffer, then merged together."""
    items = list(range(count))
    if count == 0:
        return items

    def insertion_sort(first: int, last: int) -> None:
        for i in range(first + 1, last):
            value = items[i]
            if less(value, items[first]):
                items[first + 1:i + 1] = items[first:i]
                items[first] = value
            else:
                j = i
                while less(value, items[j - 1]):
                    items[j] = items[j - 1]
                    j -= 1
                items[j] = value

    def move_merge(source: list, first1: int, last1: int, first2: int, last2: int) -> list:
        result = []
        while first1 != last1 and first2 != last2:
            if less(source[first2], source[first1]):
                result.append(source[first2])
                first2 += 1
            else:
                result.append(source[first1])
                first1 += 1
        return result + source[first1:last1] + source[first2:last2]

    def merge_sort_loop(source: list, step: int) -> list:
        result, first, last = [], 0, len(source)
        while last - first >= 2 * step:
            result += move_merge(source, first, first + step, first + step, first + 2 * step)
            first += 2 * step
        step = min(last - first, step)
        return result + move_merge(source, first, first + step, first + step, last)

    def merge_sort_with_buffer(first: int, last: int) -> None:
        length = last - first
        step = 7
        for chunk in range(first, last, step):
            insertion_sort(chunk, min(chunk + step, last))
        part = items[first:last]
        while step < length:
            part = merge_sort_loop(part, step)
            step *= 2
            part = merge_sort_loop(part, step)
            step *= 2
        items[first:last] = part

    middle = (count + 1) // 2
    merge_sort_with_buffer(0, middle)
    merge_sort_with_buffer(middle, count)
    left, right = items[:middle], items[middle:]
    if len(left) <= len(right):
        merged, i, j = [], 0, 0
        while i < len(left) and j < len(right):
            if less(right[j], left[i]):
                merged.append(right[j])
                j += 1
            else:
                merged.append(left[i])
                i += 1
        items[:] = merged + left[i:] + right[j:]
    else:
        # __move_merge_adaptive_backward: the right half in the buffer, merged from the back.
        result = items[:]
        last1, last2, out = middle - 1, len(right) - 1, count
        while True:
            if right and less(right[last2], left[last1]):
                out -= 1
                result[out] = left[last1]
                if last1 == 0:
                    result[out - last2 - 1:out] = right[:last2 + 1]
                    break
                last1 -= 1
            else:
                if not right:
                    break
                out -= 1
                result[out] = right[last2]
                if last2 == 0:
                    break
                last2 -= 1
        items[:] = result
    return items


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
        return _indexed_sort(ctx, target, values[1:])
    sequence = as_sequence(target)
    if len(values) == 1:
        raise errors.logic('Must specify something to order by.')
    rows = sort_rows(ctx, to_array(ctx, sequence), values[1:])
    table = getattr(sequence, 'table', None)
    return ArraySelection(rows, table) if table is not None else rows


def _indexed_sort(ctx: Context, ordered, orderings: list):
    """order_by(fields..., index=...): index order, rows with equal index values sorted by the fields (a stream)."""
    def batches():
        group: list = []
        group_key = None
        for key, row in ordered.keyed_rows():
            if group and key != group_key:
                yield sort_rows(ctx, group, orderings)
                group = []
            group_key = key
            group.append(row)
        if group:
            yield sort_rows(ctx, group, orderings)
    return Stream(batches, table=ordered.table)


@handler(Term.DISTINCT)
def _distinct(ctx, node, scope):
    target = arg(ctx, node, 0, scope)
    index = optarg(ctx, node, 'index', scope, MISSING)
    table_distinct = getattr(target, 'table_distinct', None)
    if table_distinct is not None:
        result = table_distinct(None if index is MISSING else as_string(index))
        if result is not None:
            return result
    if index is not MISSING:
        raise errors.logic('Can only perform an indexed distinct on a TABLE.')
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
    target = arg(ctx, node, 0, scope)
    count = as_int(arg(ctx, node, 1, scope))
    if count < 0:
        raise errors.logic('Number of items to sample must be non-negative, got `%d`.' % count)
    ctx.check_array(range(count))
    items = to_array(ctx, target)
    chosen = random.sample(items, min(count, len(items)))
    table = getattr(target, 'table', None)
    return ArraySelection(chosen, table) if table is not None else chosen
