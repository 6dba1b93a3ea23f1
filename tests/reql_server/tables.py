"""User tables as values: r.table() and its slices (ranges and orders by an index), and changes to a table's
configuration, which need a majority of the servers hosting it (its Raft quorum in the real server)."""

from __future__ import annotations

import uuid

from . import datum, errors
from .evaluator import Context, call_datum, type_error
from .routing import func_from_payload
from .status import reachable
from .storage import KeyRange
from .values import Sequence, Stream

UNREACHABLE = ('The server(s) hosting table `%s.%s` are currently unreachable. %s If you do not expect the server(s) '
               'to recover, you can use `emergency_repair` to restore availability of the table. '
               '<http://rethinkdb.com/api/javascript/reconfigure/#emergency-repair-mode>')


class Table(Sequence):
    """r.table(): a stream of the table's rows, and the handle for writes, gets and indexes."""

    kind = 'TABLE'
    val_type = 'TABLE'

    def __init__(self, ctx: Context, db, table_id: str, meta: dict, read_mode: str):
        self.ctx = ctx
        self.db = db
        self.id = table_id
        self.meta = meta
        self.name = meta['name']
        self.primary_key = meta['primary_key']
        self.read_mode = read_mode
        self.access = ctx.node.table_access(table_id, read_mode)
        self.table = self

    @property
    def display_name(self) -> str:
        """db.table, as messages name it."""
        return '%s.%s' % (self.db.name, self.name)

    def get(self, key):
        """The row with this primary key, or None."""
        return self.access.get(key)

    def batches(self):
        return self.access.scan(KeyRange())

    def raw_batches(self):
        return self.access.scan_raw(KeyRange())

    def count(self) -> int:
        """Number of rows."""
        return self.access.count()

    def slice(self) -> TableSlice:
        """The whole table as a slice."""
        return TableSlice(self, None, None, datum.MINVAL, datum.MAXVAL, 'closed', 'open', False, False)

    def order_by_index(self, index: str, descending: bool) -> TableSlice:
        """table.order_by(index=...)."""
        return self.slice().order_by_index(index, descending)

    def between(self, lower, upper, index: str | None, left_bound: str, right_bound: str) -> TableSlice:
        """table.between(...)."""
        return self.slice().between(lower, upper, index, left_bound, right_bound)

    def table_distinct(self, index: str | None):
        """table.distinct(index=...)."""
        return self.slice().table_distinct(index)

    def index_values(self, index: str, rows) -> list:
        """The values a secondary index holds for rows, each once, in index order."""
        definition = self.access.table['indexes'][index]
        func = func_from_payload({'source': definition['function'], 'scope': {}})
        values: dict = {}
        for row in rows:
            try:
                value = call_datum(self.ctx, func, [row])
            except errors.ReqlError:
                continue
            for item in (value if definition.get('multi') and isinstance(value, list) else [value]):
                values.setdefault(datum.to_json(item), item)
        return datum.sorted_datums(list(values.values()))

    def check_index(self, index: str) -> None:
        """The real error for an index the table does not have."""
        if index != self.primary_key and index not in self.access.table.get('indexes', {}):
            raise errors.op_failed('Index `%s` was not found on table `%s`.' % (index, self.display_name))

    def info(self) -> dict:
        """table.info()."""
        meta = current_meta(self.ctx, self, '')
        counts = self.access.shard_counts()
        return {
            'db': {'id': self.db.id, 'name': self.db.name, 'type': 'DB'},
            'doc_count_estimates': counts,
            'id': self.id,
            'indexes': sorted(meta.get('indexes', {})),
            'name': self.name,
            'primary_key': self.primary_key,
            'type': 'TABLE',
        }


class TableSlice(Sequence):
    """A range of a table by an index (between / order_by(index=)), readable in order and writable."""

    kind = 'TABLE_SLICE'
    val_type = 'TABLE_SLICE'

    def __init__(self, table: Table, index, between_index, lower, upper, left_bound, right_bound, descending, ordered):
        self.table = table
        self.index = index
        self.between_index = between_index
        self.lower = lower
        self.upper = upper
        self.left_bound = left_bound
        self.right_bound = right_bound
        self.descending = descending
        self.ordered = ordered

    def _copy(self, **changes) -> TableSlice:
        fields = dict(index=self.index, between_index=self.between_index, lower=self.lower, upper=self.upper,
                      left_bound=self.left_bound, right_bound=self.right_bound, descending=self.descending,
                      ordered=self.ordered)
        fields.update(changes)
        return TableSlice(self.table, **fields)

    def order_by_index(self, index: str, descending: bool) -> TableSlice:
        if self.between_index is not None and self.between_index != index:
            raise errors.logic('Cannot order by index `%s` after calling BETWEEN on index `%s`.'
                               % (index, self.between_index))
        if self.ordered:
            raise errors.logic('Cannot perform multiple indexed ORDER_BYs on the same table.')
        self.table.check_index(index)
        return self._copy(index=index, descending=descending, ordered=True)

    def between(self, lower, upper, index, left_bound: str, right_bound: str) -> TableSlice:
        if self.between_index is not None:
            raise errors.logic('Cannot perform multiple BETWEENs on the same table.')
        index = index or self.table.primary_key
        if self.index is not None and self.index != index:
            raise errors.logic('Cannot order by index `%s` after calling BETWEEN on index `%s`.' % (self.index, index))
        self.table.check_index(index)
        order = datum.compare(lower, upper)
        if not (order > 0 or (order == 0 and 'open' in (left_bound, right_bound))):
            # Like the real datum_range_t: an empty range is never turned into keys, so it cannot fail.
            for bound in (lower, upper):
                datum.check_key_bound(bound, index == self.table.primary_key)
        return self._copy(index=index, between_index=index, lower=lower, upper=upper, left_bound=left_bound,
                          right_bound=right_bound)

    def _range(self) -> KeyRange:
        lower = None if self.lower is datum.MINVAL else datum.encode_key(self.lower)
        upper = None if self.upper is datum.MAXVAL else datum.encode_key(self.upper)
        return KeyRange(lower, self.left_bound == 'open', upper, self.right_bound != 'closed')

    def _is_primary(self) -> bool:
        return self.index in (None, self.table.primary_key)

    def batches(self):
        if self._is_primary():
            return self.table.access.scan(self._range(), self.descending)
        return self.table.access.scan_index(self.index, self._range(), self.descending)

    def raw_batches(self):
        if self._is_primary():
            return self.table.access.scan_raw(self._range(), self.descending)
        return self.table.access.scan_index_raw(self.index, self._range(), self.descending)

    def count(self) -> int:
        """Number of rows in the slice."""
        return sum(len(batch) for batch in self.raw_batches())

    def keyed_rows(self):
        """(index key, row) in the slice's order; with the primary index every row has a key of its own."""
        if self._is_primary():
            position = 0
            for batch in self.batches():
                for row in batch:
                    position += 1
                    yield position, row
            return
        for batch in self.table.access.scan_index_keyed(self.index, self._range(), self.descending):
            yield from batch

    def table_distinct(self, index: str | None):
        """distinct() of a table or a slice of one: a stream in index order (None: not an indexed distinct)."""
        primary_key = self.table.primary_key
        wanted = index or primary_key
        if index is not None and index == primary_key:
            return Stream(lambda: ([row[primary_key] for row in batch] for batch in self.batches()))
        if self.index is not None and self.index != wanted:
            return None
        self.table.check_index(wanted)
        ordered = self if self.ordered else self._copy(index=wanted, descending=False, ordered=True)
        if index is None:
            return Stream(ordered.batches)

        def values():
            found = self.table.index_values(wanted, ordered)
            yield list(reversed(found)) if ordered.descending else found
        return Stream(values)


def as_table(value) -> Table:
    """A table value (user or system), or the real type error."""
    if getattr(value, 'val_type', None) != 'TABLE':
        raise type_error('TABLE', value)
    return value


def current_meta(ctx: Context, table: Table, unreachable_message: str | None = None) -> dict:
    """The table's metadata; with a message, fail as the real server does when no server hosting it is reachable."""
    meta = ctx.node.metadata.get('table/' + table.id)
    if meta is None:
        raise errors.op_failed('Table `%s` does not exist.' % table.display_name)
    if unreachable_message is not None and not reachable(ctx.node, meta):
        raise unreachable(table.db.name, table.name, unreachable_message)
    return meta


def unreachable(db_name: str, name: str, no_message: str) -> errors.ReqlError:
    """The real error when the servers of a table cannot be reached (CATCH_OP_ERRORS)."""
    return errors.op_failed(UNREACHABLE % (db_name, name, no_message))


def change_table(ctx, table, no_message: str, mutate, shown_name: str | None = None) -> dict:
    """Change a table's metadata when a majority of the servers hosting it is reachable (its Raft quorum).

    `shown_name` replaces the table name in the unreachable message (the real server names the index there).
    """
    meta = ctx.node.metadata.get('table/' + table.id)
    if meta is None:
        raise errors.op_failed('Table `%s` does not exist.' % table.display_name)
    voters = {server for shard in meta['shards'] for server in shard['replicas']
              if server not in shard.get('nonvoting_replicas', ())}
    alive = sum(1 for server in voters if ctx.node.replicas.alive(server))
    if alive * 2 <= len(voters):
        raise unreachable(table.db.name, shown_name or table.name, no_message)
    new_meta = mutate(meta)
    ctx.node.change('table/' + table.id, new_meta, base_version=ctx.node.metadata.version('table/' + table.id))
    return new_meta


def uuid_split_points(num_shards: int) -> list:
    """The real server's split points for a new table (keys assumed to be UUIDs)."""
    points = []
    for index in range(1, num_shards):
        value = (0xFFFFFFFFFFFFFFFF // num_shards) * index
        points.append(str(uuid.UUID(bytes=value.to_bytes(8, 'big') + bytes(8))))
    return points


def split_points_for(node, table_id: str, meta: dict, num_shards: int) -> list:
    """The split points of a table given a new shard count, as the real calculate_split_points_intelligently
    chooses them: the same count keeps them; more shards split the rows evenly (UUID points for a table with too
    few rows); fewer shards keep old split points spread evenly (the real server interpolates between them)."""
    old = meta.get('split_points', [])
    old_shards = len(old) + 1
    if num_shards == old_shards:
        return old
    if num_shards > old_shards:
        return distribution_points(node, table_id, meta['primary_key'], num_shards)
    return [old[round(index * old_shards / num_shards) - 1] for index in range(1, num_shards)]


def distribution_points(node, table_id: str, primary_key: str, num_shards: int) -> list:
    """Split points dividing the table's keys into `num_shards` equal parts (UUID points with too few rows)."""
    if num_shards == 1:
        return []
    # Like the real distribution read, outdated: a table in the middle of a reconfiguration still answers.
    access = node.table_access(table_id, 'outdated')
    keys = [row[primary_key] for batch in access.scan(KeyRange()) for row in batch]
    if len(keys) < 2 * num_shards:
        return uuid_split_points(num_shards)
    points = [keys[len(keys) * index // num_shards] for index in range(1, num_shards)]
    if len({datum.to_json(point) for point in points}) != len(points):
        return uuid_split_points(num_shards)
    return points
