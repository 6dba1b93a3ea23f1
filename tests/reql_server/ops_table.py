"""User tables: r.table, get, get_all, between, order_by(index=), the writes, secondary indexes and write hooks."""

from __future__ import annotations

import uuid

from . import blobs, datum, errors, terms
from .blobs import write_hook_datum
from .evaluator import (
    MISSING, Context, all_args, arg, as_bool, as_database, as_int, as_string, call_datum, check_name, handler,
    optarg, to_datum, type_error,
)
from .feeds import DEFAULT_QUEUE_SIZE, Feed, FeedOptions, check_queue_size, check_squash
from .jsprint import function_text
from .protocol import Term
from .replication import layout
from .routing import func_payload
from .status import reachable
from .storage import KeyRange
from .system_tables import system_table
from .tables import Table, as_table, change_table, current_meta
from .values import Func, Sequence, SingleSelection, Stream
from .writes import empty_result, merge_write_results, update_value

WRITE_BATCH = 200
INDEXES_UNAVAILABLE = 'Failed to retrieve all secondary indexes.'
CONFIG_UNAVAILABLE = ('Unexpected exception: The attempt to read or modify the table\'s configuration failed because '
                      'none of the servers were accessible.  If it was an attempt to modify, the modification did not '
                      'take place.')


def _table_optargs(ctx, node, scope) -> str:
    read_mode = optarg(ctx, node, 'read_mode', scope, None) or ctx.global_optarg('read_mode')
    if 'use_outdated' in node.optargs:
        raise errors.logic('The `use_outdated` optarg is no longer supported.  Use the `read_mode` optarg instead.')
    if read_mode is None:
        return 'single'
    read_mode = as_string(read_mode)
    if read_mode not in ('single', 'majority', 'outdated', '_debug_direct'):
        raise errors.logic('Read mode `%s` unrecognized (options are "majority", "single", and "outdated").' % read_mode)
    return 'outdated' if read_mode == '_debug_direct' else read_mode


@handler(Term.TABLE)
def _table(ctx, node, scope):
    values = all_args(ctx, node, scope)
    db = as_database(values[0]) if len(values) == 2 else ctx.default_db()
    name = check_name(as_string(values[-1]), 'Table')
    read_mode = _table_optargs(ctx, node, scope)
    identifier_format = optarg(ctx, node, 'identifier_format', scope, None)
    if identifier_format is not None and as_string(identifier_format) not in ('name', 'uuid'):
        raise errors.logic('Identifier format `%s` unrecognized (options are "name" and "uuid").' % identifier_format)
    if db.name == 'rethinkdb':
        return system_table(ctx, name, identifier_format or 'name')
    table_id, meta = ctx.node.find_table(db, name)
    return Table(ctx, db, table_id, meta, read_mode)


@handler(Term.GET)
def _get(ctx, node, scope):
    table = as_table(arg(ctx, node, 0, scope))
    key = to_datum(arg(ctx, node, 1, scope))
    datum.check_primary_key(key)
    return SingleSelection(table, key)


@handler(Term.GET_ALL)
def _get_all(ctx, node, scope):
    values = all_args(ctx, node, scope)
    table = as_table(values[0])
    keys = [to_datum(value) for value in values[1:]]
    for key in keys:
        if key is None:
            raise errors.NonExistence('Keys cannot be NULL.')
    index = optarg(ctx, node, 'index', scope, None)
    index = as_string(index) if index is not None else table.primary_key
    for key in keys:
        datum.check_key_bound(key, index == table.primary_key)
    if index == table.primary_key:
        return Stream(lambda: iter([table.access.get_many(keys)]) if keys else iter([]), table=table)
    table.check_index(index)

    def batches():
        for key in keys:
            encoded = datum.encode_key(key)
            yield from table.access.scan_index(index, KeyRange(encoded, False, encoded, False))
    return Stream(batches, table=table)


def _bound(ctx, node, name, scope) -> str:
    value = optarg(ctx, node, name, scope, None)
    if value is None:
        return 'closed' if name == 'left_bound' else 'open'
    value = as_string(value)
    if value not in ('open', 'closed'):
        raise errors.logic('Expected `open` or `closed` for optarg `%s` (got `%s`).' % (name, value))
    return value


@handler(Term.BETWEEN)
def _between(ctx, node, scope):
    target = arg(ctx, node, 0, scope)
    lower = to_datum(arg(ctx, node, 1, scope))
    upper = to_datum(arg(ctx, node, 2, scope))
    if lower is None or upper is None:
        raise errors.logic('Cannot use `null` in BETWEEN, use `r.minval` or `r.maxval` to denote unboundedness.')
    index = optarg(ctx, node, 'index', scope, None)
    between = getattr(target, 'between', None)
    if between is None:
        raise type_error('TABLE_SLICE', target)
    return between(lower, upper, as_string(index) if index is not None else None,
                   _bound(ctx, node, 'left_bound', scope), _bound(ctx, node, 'right_bound', scope))


# -- writes

def _durability(ctx, node, scope):
    value = optarg(ctx, node, 'durability', scope, None)
    if value is None:
        value = ctx.global_optarg('durability')
    if value is None:
        return None
    value = as_string(value)
    if value not in ('hard', 'soft'):
        raise errors.logic('Durability option `%s` unrecognized (options are "hard" and "soft").' % value)
    return value


def _return_changes(ctx, node, scope):
    if 'return_vals' in node.optargs:
        raise errors.logic('Error: encountered obsolete optarg `return_vals`.  Use `return_changes` instead.')
    value = to_datum(optarg(ctx, node, 'return_changes', scope, False))
    if isinstance(value, str):
        if value != 'always':
            raise errors.logic('Invalid return_changes value `%s` (options are `true`, `false`, and `\'always\'`.)'
                               % value)
        return 'always'
    return as_bool(value)


def _write_table(value):
    table = getattr(value, 'table', None)
    if not isinstance(table, Table):
        if getattr(table, 'is_system', False):
            return table
        raise type_error('SELECTION', value)
    return table


@handler(Term.INSERT)
def _insert(ctx, node, scope):
    target = arg(ctx, node, 0, scope)
    if getattr(target, 'is_system', False):
        return target.insert(ctx, node, scope)
    table = as_table(target)
    _check_config_readable(ctx, table)
    payload = arg(ctx, node, 1, scope)
    return_changes = _return_changes(ctx, node, scope)
    durability = _durability(ctx, node, scope)
    conflict = optarg(ctx, node, 'conflict', scope, 'error')
    if isinstance(conflict, Func):
        if conflict.node is None or not terms.is_deterministic(conflict.node.args[1]):
            raise errors.logic('The conflict function passed to `insert` must be deterministic.')
        if conflict.arity not in (0, 3):
            raise errors.logic('The conflict function passed to `insert` should expect 3 arguments.')
        conflict = func_payload(conflict)
    else:
        conflict = as_string(conflict)
        if conflict not in ('error', 'replace', 'update'):
            raise errors.logic('Conflict option `%s` unrecognized (options are "error", "replace" and "update").'
                               % conflict)
    if isinstance(payload, Sequence):
        docs = [doc for batch in payload.batches() for doc in batch]
    else:
        payload = to_datum(payload)
        docs = payload if isinstance(payload, list) else [payload]
    total = empty_result()
    generated = []
    valid = []
    for doc in docs:
        if not isinstance(doc, dict) or datum.ptype(doc) is not None:
            total = merge_write_results(total, {'errors': 1, 'first_error': 'Expected type OBJECT but found %s.'
                                                % datum.type_name(doc)})
            continue
        if table.primary_key not in doc:
            key = str(uuid.uuid4())
            doc = dict(doc, **{table.primary_key: key})
            generated.append(key)
        try:
            datum.check_primary_key(doc[table.primary_key])
        except errors.ReqlError as error:
            total = merge_write_results(total, {'errors': 1, 'first_error': error.message})
            continue
        valid.append(doc)
    for start in range(0, len(valid), WRITE_BATCH):
        result = table.access.insert(valid[start:start + WRITE_BATCH], conflict, return_changes, durability, ctx.now)
        total = merge_write_results(total, result)
    if return_changes and 'changes' not in total:
        total['changes'] = []
    if generated:
        total['generated_keys'] = generated
    return total


def _check_config_readable(ctx: Context, table: Table) -> None:
    """Writes read the table's config (for its write hook) first: with no server of the table reachable that fails,
    and the real server reports it as an unexpected (INTERNAL) error."""
    meta = ctx.node.metadata.get('table/' + table.id)
    if meta is not None and not reachable(ctx.node, meta):
        raise errors.internal(CONFIG_UNAVAILABLE)


def _write_keys(ctx: Context, target, table) -> list:
    if isinstance(target, SingleSelection):
        return [target.key]
    return [row[table.primary_key] for batch in target.batches() for row in batch]


def _modify(ctx, node, scope, kind: str):
    target = arg(ctx, node, 0, scope)
    table = _write_table(target)
    if getattr(table, 'is_system', False):
        return table.modify(ctx, node, scope, kind, target)
    _check_config_readable(ctx, table)
    return_changes = _return_changes(ctx, node, scope)
    durability = _durability(ctx, node, scope)
    non_atomic = as_bool(optarg(ctx, node, 'non_atomic', scope, False))
    how = {'kind': kind}
    func = None
    if kind != 'delete':
        deterministic = terms.is_deterministic(node.args[1])
        if not deterministic and not non_atomic:
            raise errors.logic('Could not prove argument deterministic.  Maybe you want to use the non_atomic flag?')
        change = arg(ctx, node, 1, scope)
        if isinstance(change, Func):
            if deterministic:
                how['func'] = func_payload(change)
            else:
                func = change
        else:
            how['value'] = to_datum(change)
    keys = _write_keys(ctx, target, table)
    total = empty_result()
    for start in range(0, len(keys), WRITE_BATCH):
        chunk = keys[start:start + WRITE_BATCH]
        chunk_how = how
        if func is not None:
            chunk_how = {'kind': 'replace', 'values': _evaluate_locally(ctx, table, func, chunk, kind)}
        total = merge_write_results(total, table.access.modify(chunk, chunk_how, return_changes, durability, ctx.now))
    if return_changes and 'changes' not in total:
        total['changes'] = []
    return total


def _evaluate_locally(ctx: Context, table: Table, func: Func, keys: list, kind: str) -> dict:
    """New rows for non-deterministic functions (non_atomic), computed here."""
    values = {}
    for key in keys:
        old = table.get(key)
        new = call_datum(ctx, func, [old])
        values[datum.to_json(key)] = update_value(old, new) if kind == 'update' else new
    return values


@handler(Term.UPDATE)
def _update(ctx, node, scope):
    return _modify(ctx, node, scope, 'update')


@handler(Term.REPLACE)
def _replace(ctx, node, scope):
    return _modify(ctx, node, scope, 'replace')


@handler(Term.DELETE)
def _delete(ctx, node, scope):
    return _modify(ctx, node, scope, 'delete')


@handler(Term.SYNC)
def _sync(ctx, node, scope):
    as_table(arg(ctx, node, 0, scope))
    return {'synced': 1}


# -- secondary indexes and write hooks

def index_status_row(name: str, definition: dict, ready: bool) -> dict:
    """One element of index_status(): the real fields."""
    row = {
        'index': name,
        'ready': ready,
        'outdated': False,
        'multi': definition.get('multi', False),
        'geo': definition.get('geo', False),
        'function': datum.make_binary(blobs.index_blob(definition)),
        'query': 'indexCreate(\'%s\', %s%s)' % (
            name, function_text(definition['function']), _index_options_text(definition)),
    }
    if not ready:
        row['progress'] = 0
    return row


def _index_options_text(definition: dict) -> str:
    options = [text for flag, text in (('multi', 'multi: true'), ('geo', 'geo: true')) if definition.get(flag)]
    return ', {%s}' % ', '.join(options) if options else ''


SINDEXCREATE_VAR = -19


def _field_function(field: str) -> list:
    """index_create(name) alone: the real server's function `r.var(x)[name]` (GET_FIELD of its internal var)."""
    return [Term.FUNC, [[Term.MAKE_ARRAY, [SINDEXCREATE_VAR]], [Term.GET_FIELD, [[Term.VAR, [SINDEXCREATE_VAR]], field]]]]


@handler(Term.INDEX_CREATE)
def _index_create(ctx, node, scope):
    table = as_table(arg(ctx, node, 0, scope))
    name = as_string(arg(ctx, node, 1, scope))
    if name == table.primary_key:
        raise errors.logic('Index name conflict: `%s` is the name of the primary key.' % name)
    definition = {'multi': False, 'geo': False}
    if len(node.args) == 3:
        spec = arg(ctx, node, 2, scope)
        if isinstance(spec, Func):
            if spec.node is None:
                raise type_error('FUNCTION', spec)
            if spec.scope:
                raise errors.logic('Index functions cannot capture variables in this test server.')
            definition['function'] = spec.node.source
        elif datum.ptype(to_datum(spec)) == 'BINARY':
            definition.update(blobs.index_definition(datum.binary_bytes(to_datum(spec))))
        else:
            raise type_error('FUNCTION', spec)
    else:
        definition['function'] = _field_function(name)
    if not terms.is_deterministic(terms.compile_term(definition['function'])):
        raise errors.logic('Could not prove function deterministic.  Index functions must be deterministic.')
    multi = optarg(ctx, node, 'multi', scope, MISSING)
    if multi is not MISSING:
        definition['multi'] = as_bool(multi)
    geo = optarg(ctx, node, 'geo', scope, MISSING)
    if geo is not MISSING:
        definition['geo'] = as_bool(geo)
    change_table(ctx, table, 'The secondary index was not created.',
                 lambda meta: _add_index(meta, table, name, definition), shown_name=name)
    return {'created': 1}


def _add_index(meta: dict, table: Table, name: str, definition: dict) -> dict:
    if name in meta.get('indexes', {}):
        raise errors.op_failed('Index `%s` already exists on table `%s`.' % (name, table.display_name))
    return dict(meta, indexes=dict(meta.get('indexes', {}), **{name: definition}))


@handler(Term.INDEX_DROP)
def _index_drop(ctx, node, scope):
    table = as_table(arg(ctx, node, 0, scope))
    name = as_string(arg(ctx, node, 1, scope))

    def drop(meta):
        if name not in meta.get('indexes', {}):
            raise errors.op_failed('Index `%s` does not exist on table `%s`.' % (name, table.display_name))
        indexes = dict(meta['indexes'])
        del indexes[name]
        return dict(meta, indexes=indexes)
    change_table(ctx, table, 'The secondary index was not dropped.', drop, shown_name=name)
    return {'dropped': 1}


@handler(Term.INDEX_RENAME)
def _index_rename(ctx, node, scope):
    table = as_table(arg(ctx, node, 0, scope))
    old_name = as_string(arg(ctx, node, 1, scope))
    new_name = as_string(arg(ctx, node, 2, scope))
    for name in (old_name, new_name):
        if name == table.primary_key:
            raise errors.logic('Index name conflict: `%s` is the name of the primary key.' % name)
    overwrite = as_bool(optarg(ctx, node, 'overwrite', scope, False))

    def rename(meta):
        indexes = dict(meta.get('indexes', {}))
        if old_name not in indexes or (new_name in indexes and not overwrite and new_name != old_name):
            if overwrite:
                raise errors.op_failed('Index `%s` does not exist on table `%s`.' % (old_name, table.display_name))
            raise errors.op_failed('Index `%s` does not exist or index `%s` already exists on table `%s`.'
                                   % (old_name, new_name, table.display_name))
        indexes[new_name] = indexes.pop(old_name)
        return dict(meta, indexes=indexes)
    if old_name != new_name:
        change_table(ctx, table, 'The secondary index was not renamed.', rename, shown_name=old_name)
    return {'renamed': 0 if old_name == new_name else 1}


@handler(Term.INDEX_LIST)
def _index_list(ctx, node, scope):
    table = as_table(arg(ctx, node, 0, scope))
    return sorted(current_meta(ctx, table, INDEXES_UNAVAILABLE).get('indexes', {}))


def _index_statuses(ctx: Context, table: Table, names: list) -> list:
    meta = current_meta(ctx, table, INDEXES_UNAVAILABLE)
    indexes = meta.get('indexes', {})
    for name in names:
        if name not in indexes:
            raise errors.op_failed('Index `%s` was not found on table `%s`.' % (name, table.display_name))
    rows = []
    for name in sorted(indexes):
        if names and name not in names:
            continue
        definition = indexes[name]
        ready = True
        for shard in layout(meta):
            for server in (server for server in shard.replicas if ctx.node.replicas.alive(server)):
                request = {'table': table.id, 'index': name, 'definition': definition}
                answer = ctx.node.peer_call(server, 'index_ready', request)
                ready = ready and bool(answer)
        rows.append(index_status_row(name, definition, ready))
    return rows


@handler(Term.INDEX_STATUS)
def _index_status(ctx, node, scope):
    values = all_args(ctx, node, scope)
    table = as_table(values[0])
    return _index_statuses(ctx, table, [as_string(value) for value in values[1:]])


@handler(Term.INDEX_WAIT)
def _index_wait(ctx, node, scope):
    values = all_args(ctx, node, scope)
    table = as_table(values[0])
    names = [as_string(value) for value in values[1:]]
    pause = 0.02
    while True:
        rows = _index_statuses(ctx, table, names)
        if all(row['ready'] for row in rows):
            return rows
        ctx.node.pause(pause)
        pause = min(pause * 2, 0.5)


@handler(Term.SET_WRITE_HOOK)
def _set_write_hook(ctx, node, scope):
    table = as_table(arg(ctx, node, 0, scope))
    spec = arg(ctx, node, 1, scope)
    old_hook = current_meta(ctx, table).get('write_hook')
    if isinstance(spec, Func):
        if spec.node is None or spec.arity != 3:
            raise errors.logic('Write hook functions must expect 3 arguments.')
        if not terms.is_deterministic(spec.node.args[1]):
            raise errors.logic('Could not prove function deterministic.  Write hook functions must be deterministic.')
        source = spec.node.source
    else:
        spec = to_datum(spec)
        if spec is None:
            source = None
        elif datum.ptype(spec) == 'BINARY':
            source = blobs.hook_function(datum.binary_bytes(spec))
        else:
            raise type_error('FUNCTION', spec)
    change_table(ctx, table, 'The write hook was not set.',
                 lambda meta: dict(meta, write_hook=None if source is None else {'function': source}))
    if source is None:
        return {'deleted': 1}
    return {'replaced': 1} if old_hook else {'created': 1}


@handler(Term.GET_WRITE_HOOK)
def _get_write_hook(ctx, node, scope):
    table = as_table(arg(ctx, node, 0, scope))
    hook = current_meta(ctx, table).get('write_hook')
    return write_hook_datum(hook['function']) if hook else None


@handler(Term.CHANGES)
def _changes(ctx, node, scope):
    """table.changes() and table.get(key).changes(): a feed, which starts following the table when it is the
    query's result (so a feed used any other way follows nothing)."""
    squash = check_squash(to_datum(optarg(ctx, node, 'squash', scope, False)))
    flags = {name: as_bool(optarg(ctx, node, name, scope, False))
             for name in ('include_initial', 'include_states', 'include_types', 'include_offsets')}
    queue_size = optarg(ctx, node, 'changefeed_queue_size', scope, None)
    if queue_size is None:
        queue_size = ctx.global_optarg('changefeed_queue_size')
    queue_size = DEFAULT_QUEUE_SIZE if queue_size is None else check_queue_size(as_int(queue_size))
    options = FeedOptions(squash, flags['include_initial'], flags['include_states'], flags['include_types'],
                          queue_size)
    source = arg(ctx, node, 0, scope)
    if isinstance(source, Table):
        kind, feed = 'range', Feed(ctx.node.feeds, source, options)
    elif isinstance(source, SingleSelection) and isinstance(source.table, Table):
        kind, feed = 'point', Feed(ctx.node.feeds, source.table, options, point_key=source.key)
    else:
        raise errors.logic('The ReQL test server has changefeeds on a table or on `get` of one row only.')
    if flags['include_offsets']:
        raise errors.logic('Cannot include offsets for %s subs.' % kind)
    return feed
