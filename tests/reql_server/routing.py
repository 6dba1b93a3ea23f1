"""Reading and writing a user table from any server: pick the replica (the shard's primary, or any replica for
`read_mode: outdated`), run the operation there (locally or over the cluster), and the replica side of it.

Rows come back as JSON text and are decoded here, so a scan can also hand the text to the client unparsed.
"""

from __future__ import annotations

import concurrent.futures
import json

from . import datum, errors, terms
from .cluster import CALL_TIMEOUT, PeerLost
from .evaluator import Context, call, to_datum
from .replication import READY, layout, range_from_wire, range_to_wire, shard_for_key
from .storage import PAGE_ROWS, KeyRange
from .values import Func
from .writes import empty_result, insert_row, merge_write_results, replace_row, update_value

PRIMARY_READ_MODES = ('single', 'majority')


def _debug_key(point) -> str:
    """A split point as the real server prints shard boundaries (key_to_debug_str of its btree key)."""
    if point is None:
        return '""'
    if isinstance(point, str):
        raw = 'S' + point
    else:
        raw = 'N' + datum.to_json(point)
    return '"' + ''.join(character if character.isascii() and (character.isalnum() or character == '_')
                         else '\\x%02x' % ord(character) for character in raw) + '"'


def shard_name(shard) -> str:
    """`["", +inf)` and the like: a shard's key range in messages."""
    right = '+inf' if shard.split_right is None else _debug_key(shard.split_right)
    return '[%s, %s)' % (_debug_key(shard.split_left), right)


class TableAccess:
    """Operations on one user table's rows, routed to the right servers."""

    def __init__(self, node, table_id: str, table: dict, read_mode: str = 'single'):
        self.node = node
        self.table_id = table_id
        self.table = table
        self.read_mode = read_mode
        self.shards = layout(table)
        self.primary_key = table['primary_key']

    # -- choosing servers

    def _reader(self, shard) -> str:
        replicas = self.node.replicas
        if self.read_mode in PRIMARY_READ_MODES:
            primary = replicas.primary_of(self.table_id, self.table, shard)
            if primary is None:
                raise errors.op_failed('Cannot perform read: primary replica for shard %s not available'
                                       % shard_name(shard))
            return primary
        candidates = [server for server in shard.replicas if replicas.alive(server)]
        if not candidates:
            raise errors.op_failed('Cannot perform read: no replica is available')
        if self.node.server_id in candidates:
            return self.node.server_id
        ready = [server for server in candidates
                 if replicas.state_of(server, self.table_id, self.table, shard.index) == READY]
        return (ready or candidates)[0]

    def _check_primaries(self, shards) -> None:
        """Like the real router, before reading several shards: each needs a primary (in the modes asking one)."""
        if self.read_mode in PRIMARY_READ_MODES:
            for shard in shards:
                self._reader(shard)

    def _read(self, shard, params: dict):
        return self._start_read(shard, params)()

    def _start_read(self, shard, params: dict):
        """Start a read on the shard's server; returns a function giving its result (remote reads run meanwhile)."""
        server = self._reader(shard)
        params = dict(params, table=self.table_id, shard=shard.index, mode=self.read_mode)
        if server == self.node.server_id:
            return lambda: serve_read(self.node, params)
        future = self.node.mesh.call_async(server, 'read', params)

        def result():
            try:
                return future.result(CALL_TIMEOUT)
            except (PeerLost, concurrent.futures.TimeoutError):
                raise errors.op_failed('Cannot perform read: lost contact with primary replica') from None
        return result

    # -- reads

    def get(self, key):
        """The row with this primary key value, or None."""
        encoded = datum.encode_key(key)
        texts = self._read(shard_for_key(self.shards, encoded), {'op': 'get', 'keys': [encoded.hex()]})
        return json.loads(texts[0]) if texts[0] is not None else None

    def get_many(self, keys: list) -> list:
        """The rows with these primary keys (missing ones left out), in the order asked."""
        rows = []
        for key in keys:
            row = self.get(key)
            if row is not None:
                rows.append(row)
        return rows

    def shard_counts(self) -> list:
        """Rows per shard (info()'s doc_count_estimates)."""
        self._check_primaries(self.shards)
        return [self._read(shard, {'op': 'count'}) for shard in self.shards]

    def count(self) -> int:
        """Number of rows."""
        self._check_primaries(self.shards)
        return sum(self._read(shard, {'op': 'count'}) for shard in self.shards)

    def scan_raw(self, key_range: KeyRange, descending: bool = False):
        """Batches of JSON texts of the rows in a primary-key range, in key order."""
        shards = [shard for shard in self.shards if not shard.key_range.intersect(key_range).is_empty()]
        self._check_primaries(shards)
        if descending:
            shards.reverse()
        for shard in shards:
            current = shard.key_range.intersect(key_range)
            pending = self._start_read(shard, {'op': 'scan', 'range': range_to_wire(current), 'desc': descending})
            while True:
                page = pending()
                if len(page) == PAGE_ROWS:
                    last = bytes.fromhex(page[-1][0])
                    if descending:
                        current = KeyRange(current.lower, current.lower_open, last, True)
                    else:
                        current = KeyRange(last, True, current.upper, current.upper_open)
                    # Ask for the next page before handing this one out: a remote server works meanwhile.
                    pending = self._start_read(shard, {'op': 'scan', 'range': range_to_wire(current),
                                                       'desc': descending})
                if page:
                    yield [text for _key, text in page]
                if len(page) < PAGE_ROWS:
                    break

    def scan(self, key_range: KeyRange, descending: bool = False):
        """Batches of rows in a primary-key range, in key order."""
        for batch in self.scan_raw(key_range, descending):
            yield [json.loads(text) for text in batch]

    def scan_index_raw(self, index: str, index_range: KeyRange, descending: bool = False):
        """Batches of JSON texts of the rows whose index values lie in a range, in index order (shards merged)."""
        for batch in self._index_entries(index, index_range, descending):
            yield [text for _ikey, text in batch]

    def scan_index_keyed(self, index: str, index_range: KeyRange, descending: bool = False):
        """Batches of (encoded index value, row) in index order."""
        for batch in self._index_entries(index, index_range, descending):
            yield [(ikey, json.loads(text)) for ikey, text in batch]

    def _index_entries(self, index: str, index_range: KeyRange, descending: bool):
        self._check_primaries(self.shards)
        streams = [self._index_pages(shard, index, index_range, descending) for shard in self.shards]
        if len(streams) == 1:
            for page in streams[0]:
                yield [(ikey, text) for ikey, _key, text in page]
            return
        merged: list = []
        heads = [list(next(stream, [])) for stream in streams]
        while any(heads):
            best = None
            for position, head in enumerate(heads):
                if not head:
                    continue
                candidate = (head[0][0], head[0][1])
                if best is None or (candidate > best[0] if descending else candidate < best[0]):
                    best = (candidate, position)
            position = best[1]
            entry = heads[position].pop(0)
            merged.append((entry[0], entry[2]))
            if not heads[position]:
                heads[position] = list(next(streams[position], []))
            if len(merged) >= PAGE_ROWS:
                yield merged
                merged = []
        if merged:
            yield merged

    def _index_pages(self, shard, index: str, index_range: KeyRange, descending: bool):
        after = None
        while True:
            page = self._read(shard, {'op': 'scan_index', 'index': index, 'range': range_to_wire(index_range),
                                      'after': after, 'desc': descending})
            decoded = [(bytes.fromhex(ikey), bytes.fromhex(key), text) for ikey, key, text in page]
            if decoded:
                yield decoded
            if len(page) < PAGE_ROWS:
                return
            after = page[-1][:2]

    def scan_index(self, index: str, index_range: KeyRange, descending: bool = False):
        """Batches of rows by secondary index."""
        for batch in self.scan_index_raw(index, index_range, descending):
            yield [json.loads(text) for text in batch]

    # -- writes

    def _write(self, shard, request: dict) -> dict:
        primary = self.node.replicas.primary_of(self.table_id, self.table, shard)
        if primary is None:
            raise errors.op_failed('Cannot perform write: primary replica for shard %s not available' % shard_name(shard))
        request = dict(request, table=self.table_id, shard=shard.index)
        if primary == self.node.server_id:
            return serve_write(self.node, request)
        try:
            return self.node.mesh.call(primary, 'write', request)
        except PeerLost:
            raise errors.op_indeterminate('Cannot perform write: lost contact with primary replica') from None

    def _by_shard(self, items: list, key_of) -> list:
        if len(self.shards) == 1:
            return [(self.shards[0], list(enumerate(items)))]
        groups: dict = {}
        for position, item in enumerate(items):
            shard = shard_for_key(self.shards, datum.encode_key(key_of(item)))
            groups.setdefault(shard.index, []).append((position, item))
        return [(self.shards[index], group) for index, group in sorted(groups.items())]

    def _run_grouped(self, items: list, key_of, make_request) -> dict:
        """Send each shard its items; combine the statistics, keeping `changes` in the order of the items."""
        total = empty_result()
        ordered_changes: list = []
        wants_changes = False
        for shard, group in self._by_shard(items, key_of):
            result = self._write(shard, make_request([item for _position, item in group]))
            per_item = result.pop('per_item_changes', None)
            if per_item is not None:
                wants_changes = True
                ordered_changes.extend(zip([position for position, _item in group], per_item))
            total = merge_write_results(total, result)
        if wants_changes:
            ordered_changes.sort(key=lambda pair: pair[0])
            total['changes'] = [change for _position, changes in ordered_changes for change in changes]
        return total

    def insert(self, docs: list, conflict, return_changes, durability: str | None, now) -> dict:
        """Insert documents (with primary keys already present or generated)."""
        return self._run_grouped(docs, lambda doc: doc[self.primary_key], lambda group: {
            'op': 'insert', 'docs': group, 'conflict': conflict, 'return_changes': return_changes,
            'durability': durability, 'now': now})

    def modify(self, keys: list, how: dict, return_changes, durability: str | None, now) -> dict:
        """Update / replace / delete the rows with these keys; `how` says with what (see `_row_computer`)."""
        return self._run_grouped(keys, lambda key: key, lambda group: {
            'op': 'modify', 'keys': group, 'how': how, 'return_changes': return_changes, 'durability': durability,
            'now': now})


def func_payload(func: Func) -> dict:
    """A function as it travels to a shard's primary: its JSON, and the values it closes over."""
    scope = {}
    for name, value in func.scope.items():
        if isinstance(value, (dict, list, str, int, float, bool)) or value is None:
            scope[str(name)] = value
    return {'source': func.node.source, 'scope': scope}


def func_from_payload(payload: dict) -> Func:
    """The inverse of func_payload."""
    node = terms.compile_term(payload['source'])
    scope = {}
    for name, value in payload['scope'].items():
        scope[int(name) if name.lstrip('-').isdigit() else name] = value
    params = node.args[0].value
    return Func(params, node.args[1], scope, node=node, implicit=node.implicit)


# -- the replica side


def _table_and_shard(node, params: dict):
    table = node.metadata.get('table/' + params['table'])
    if table is None:
        raise errors.op_failed('Cannot perform read: Failed to retrieve the table configuration')
    shards = layout(table)
    if params['shard'] >= len(shards):
        raise errors.op_failed('Cannot perform read: primary replica for shard %s not available'
                               % shard_name(shards[-1]))
    return table, shards[params['shard']]


def _display_name(node, table: dict) -> str:
    return '%s.%s' % (node.database_name(table['db']), table['name'])


def serve_read(node, params: dict):
    """Run a read on this server's replica (checking it may serve the read mode)."""
    table, shard = _table_and_shard(node, params)
    table_id = params['table']
    replicas = node.replicas
    if params['mode'] in PRIMARY_READ_MODES:
        if replicas.primary_of(table_id, table, shard) != node.server_id:
            raise errors.op_failed('Cannot perform read: primary replica for shard %s not available' % shard_name(shard))
        if not replicas.quorum_connected(table_id, table, shard):
            raise errors.op_failed('Cannot perform read: The primary replica isn\'t connected to a quorum of replicas. '
                                   'The read was not performed, you can do an outdated read using '
                                   '`read_mode="outdated"`.')
    store = replicas.store(table_id)
    if store is None:
        raise errors.op_failed('Cannot perform read: This server does not have any data available for the given table.')
    operation = params['op']
    if operation == 'get':
        return [store.get(bytes.fromhex(key)) for key in params['keys']]
    if operation == 'count':
        return store.count(shard.key_range)
    if operation == 'scan':
        rows = store.scan(range_from_wire(params['range']).intersect(shard.key_range), params['desc'])
        return [[key.hex(), text] for key, text in rows]
    if operation == 'scan_index':
        index = params['index']
        definition = table.get('indexes', {}).get(index)
        if definition is None:
            raise errors.op_failed('Index `%s` was not found on table `%s`.' % (index, _display_name(node, table)))
        if not replicas.index_ready(table_id, index, definition):
            raise errors.op_failed('Index `%s` on table `%s` was accessed before its construction was finished.'
                                   % (index, _display_name(node, table)))
        after = params['after']
        rows = store.scan_index(index, range_from_wire(params['range']),
                                None if after is None else (bytes.fromhex(after[0]), bytes.fromhex(after[1])),
                                params['desc'], key_range=shard.key_range)
        return [[ikey.hex(), key.hex(), text] for ikey, key, text in rows]
    raise errors.internal('Unknown read operation %s.' % operation)


def _row_computer(node, how: dict, now):
    """A function old row -> new row for a modify request."""
    kind = how['kind']
    if kind == 'delete':
        return lambda old: None
    if 'values' in how:
        values = how['values']
        return lambda old, key: values[datum.to_json(key)]
    ctx = Context(node)
    ctx.now = now
    if 'func' in how:
        func = func_from_payload(how['func'])

        def produce(old):
            return to_datum(call(ctx, func, [old]))
    else:
        constant = how['value']

        def produce(_old):
            return constant
    if kind == 'update':
        return lambda old: update_value(old, produce(old) if old is not None else None)
    return produce


def serve_write(node, request: dict) -> dict:
    """Run a write as the shard's primary: compute the rows, version them, replicate, report statistics."""
    table, shard = _table_and_shard(node, request)
    table_id = request['table']
    replicas = node.replicas
    if replicas.primary_of(table_id, table, shard) != node.server_id:
        raise errors.op_failed('Cannot perform write: primary replica for shard %s not available' % shard_name(shard))
    if not replicas.quorum_connected(table_id, table, shard):
        raise errors.op_failed('Cannot perform write: The primary replica isn\'t connected to a quorum of replicas. '
                               'The write was not performed.')
    store = replicas.store(table_id)
    primary_key = table['primary_key']
    durability = request.get('durability') or table.get('durability', 'hard')
    return_changes = request['return_changes']
    total = empty_result()
    per_item = [] if return_changes else None
    first_error = None
    with replicas.write_lock(table_id):
        changed_rows = []
        if request['op'] == 'insert':
            resolve = _conflict_resolver(node, request, primary_key)
            items = [(doc[primary_key], doc) for doc in request['docs']]
        else:
            compute = _row_computer(node, request['how'], request['now'])
            items = [(key, None) for key in request['keys']]
        pending: dict = {}
        originals: dict = {}
        encoded_keys = [datum.encode_key(key) for key, _doc in items]
        stored = store.get_many(encoded_keys)
        for (key, doc), encoded in zip(items, encoded_keys):
            if encoded in pending:
                old_row = pending[encoded]
            else:
                text = stored.get(encoded)
                old_row = json.loads(text) if text is not None else None
                originals[encoded] = old_row
            if request['op'] == 'insert':
                new_row, stats = insert_row(primary_key, old_row, doc, request['conflict'], resolve, return_changes)
            elif 'values' in request['how']:
                new_row, stats = replace_row(primary_key, key, old_row, lambda old, key=key: compute(old, key),
                                             return_changes)
            else:
                new_row, stats = replace_row(primary_key, key, old_row, compute, return_changes)
            if new_row is not old_row and not (new_row is not None and old_row is not None
                                               and datum.equal(new_row, old_row)):
                pending[encoded] = new_row
                changed_rows.append(encoded)
            if per_item is not None:
                per_item.append(stats.pop('changes', []))
            for name, value in stats.items():
                if name == 'first_error':
                    first_error = first_error or value
                else:
                    total[name] += value
        if changed_rows:
            unique = list(dict.fromkeys(changed_rows))
            versions = replicas.clock.next_many(len(unique))
            rows = [(encoded, None if pending[encoded] is None else datum.to_json(pending[encoded]), version)
                    for encoded, version in zip(unique, versions)]
            try:
                replicas.replicate(table_id, table, shard, rows, durability == 'hard', pending)
            finally:
                node.feeds.publish(table_id, [(encoded, originals[encoded], pending[encoded]) for encoded in unique])
    if first_error is not None:
        total['first_error'] = first_error
    if per_item is not None:
        total['per_item_changes'] = per_item
    return total


def _conflict_resolver(node, request: dict, primary_key: str):
    conflict = request['conflict']
    if not isinstance(conflict, dict):
        return None
    ctx = Context(node)
    ctx.now = request['now']
    func = func_from_payload(conflict)
    return lambda old, new: to_datum(call(ctx, func, [primary_key, old, new]))
