"""The `rethinkdb` system database: rows computed from the cluster state, and the writes the real one accepts
(renaming and retagging servers, reconfiguring tables through `table_config`, renaming databases, users)."""

from __future__ import annotations

import uuid

from . import auth, datum, errors
from .evaluator import Context, arg, call_datum, optarg, to_datum
from .node import SYSTEM_DB, SYSTEM_DB_ID
from .ops_datum import merge, uuid_from_hash
from .status import availability_issue, config_error_row, config_row, reachable, status_row
from .storage import KeyRange
from .tables import Table, change_table, split_points_for
from .values import Database, Func, Sequence, SingleSelection, Stream
from .writes import empty_result, merge_write_results

SYSTEM_TABLES = ('cluster_config', 'current_issues', 'db_config', 'jobs', 'logs', 'permissions', 'server_config',
                 'server_status', 'stats', 'table_config', 'table_status', 'users')
SYSTEM_TABLE_BASE = uuid.UUID('0eabef01-6deb-4069-9a2d-448db057ab1e')
ADMIN_PERMISSIONS = {'config': True, 'connect': True, 'read': True, 'write': True}


def _cache_size_datum(megabytes):
    """A cache size as the real server reports it: 'auto', or a number (whole megabytes come out as integers)."""
    return megabytes if megabytes == 'auto' else datum.number(megabytes)


def _cache_size_setting(value):
    """A written `cache_size_mb`: 'auto' or megabytes, checked as the real server does (it keeps whole bytes)."""
    if value == 'auto':
        return value
    if not datum.is_number(value):
        raise errors.op_failed('In `cache_size_mb`: Expected a number or \'auto\', got %s' % datum.print_datum(value))
    if value * 2 ** 20 > 2 ** 63 - 1:
        raise errors.op_failed('In `cache_size_mb`: Value is too big.')
    if value < 0:
        raise errors.op_failed('In `cache_size_mb`: Cache size cannot be negative.')
    return int(value * 2 ** 20) / 2 ** 20


def _time(seconds: float) -> dict:
    return datum.make_time(seconds)


class SystemTable(Sequence):
    """One table of the `rethinkdb` database."""

    kind = 'TABLE'
    val_type = 'TABLE'
    is_system = True
    primary_key = 'id'

    def __init__(self, ctx: Context, name: str, identifier_format: str):
        self.ctx = ctx
        self.node = ctx.node
        self.name = name
        self.identifier_format = identifier_format
        self.table = self
        self.db = Database(SYSTEM_DB, SYSTEM_DB_ID)

    @property
    def display_name(self) -> str:
        """rethinkdb.<name>."""
        return 'rethinkdb.' + self.name

    def rows(self) -> list:
        """The table's rows, in primary key order."""
        rows = getattr(self, '_rows_' + self.name)()
        return sorted(rows, key=lambda row: datum.sort_key(row['id']))

    def batches(self):
        yield self.rows()

    def count(self) -> int:
        """Number of rows."""
        return len(self.rows())

    def get(self, key):
        """The row with this id, or None."""
        for row in self.rows():
            if datum.equal(row['id'], key):
                return row
        return None

    def order_by_index(self, index: str, descending: bool):
        """order_by(index='id')."""
        self._check_index(index)
        rows = self.rows()
        return Stream(lambda: iter([list(reversed(rows)) if descending else rows]), table=self)

    def between(self, lower, upper, index, left_bound: str, right_bound: str):
        """between() on the id."""
        self._check_index(index or 'id')
        low = None if lower is datum.MINVAL else datum.encode_key(lower)
        high = None if upper is datum.MAXVAL else datum.encode_key(upper)
        key_range = KeyRange(low, left_bound == 'open', high, right_bound != 'closed')
        rows = [row for row in self.rows() if key_range.contains(datum.encode_key(row['id']))]
        return Stream(lambda: iter([rows]), table=self)

    def _check_index(self, index: str) -> None:
        if index != 'id':
            raise errors.op_failed('Index `%s` was not found on table `%s`.' % (index, self.display_name))

    def info(self) -> dict:
        """table.info() of a system table."""
        return {'db': {'id': SYSTEM_DB_ID, 'name': SYSTEM_DB, 'type': 'DB'}, 'doc_count_estimates': [self.count()],
                'id': uuid_from_hash(SYSTEM_TABLE_BASE, self.name.encode('utf-8')), 'indexes': [], 'name': self.name,
                'primary_key': 'id', 'type': 'TABLE'}

    # -- rows

    def _label(self, server_id: str):
        return server_id if self.identifier_format == 'uuid' else self.node.server_name(server_id)

    def _rows_server_config(self) -> list:
        return [{'cache_size_mb': _cache_size_datum(info.get('cache_size_mb', 'auto')), 'id': server_id,
                 'name': info['name'], 'tags': sorted(info['tags'])}
                for server_id, info in self.node.servers().items()]

    def _rows_server_status(self) -> list:
        servers = self.node.servers()
        rows = []
        for server_id, info in servers.items():
            status = self.node.peer_status(server_id)
            if server_id == self.node.server_id:
                peers = self.node.mesh.connected()
            else:
                peers = set(self.node.peer_call(server_id, 'connections', {}) or [])
            connected_to = {self._label(other): other in peers for other in servers if other != server_id}
            connected_at = self.node.mesh.connected_at.get(server_id, status.get('time_started', 0))
            http_port = status.get('http_admin_port')
            rows.append({
                'id': server_id,
                'name': info['name'],
                'network': {
                    'canonical_addresses': status.get('canonical_addresses', []),
                    'cluster_port': status.get('cluster_port'),
                    'connected_to': connected_to,
                    'hostname': status.get('hostname'),
                    'http_admin_port': http_port if http_port else '<no http admin>',
                    'reql_port': status.get('reql_port'),
                    'time_connected': _time(connected_at if server_id != self.node.server_id else
                                            status.get('time_started', 0)),
                },
                'process': {
                    'argv': status.get('argv', []),
                    'cache_size_mb': _cache_size_datum(status.get('cache_size_mb', 100)
                                                       if info.get('cache_size_mb', 'auto') == 'auto'
                                                       else info['cache_size_mb']),
                    'pid': status.get('pid'),
                    'time_started': _time(status.get('time_started', 0)),
                    'version': status.get('version'),
                },
            })
        return rows

    def _tables(self) -> list:
        return sorted(self.node.metadata.items('table'))

    def _rows_table_config(self) -> list:
        return [config_row(self.node, table_id, table, self.identifier_format) if reachable(self.node, table)
                else config_error_row(self.node, table_id, table, self.identifier_format)
                for table_id, table in self._tables()]

    def _rows_table_status(self) -> list:
        return [status_row(self.node, table_id, table, self.identifier_format) for table_id, table in self._tables()]

    def _rows_db_config(self) -> list:
        return [{'id': db_id, 'name': name} for db_id, name in self.node.databases().items()]

    def _rows_current_issues(self) -> list:
        issues = [availability_issue(self.node, table_id, table, self.identifier_format)
                  for table_id, table in self._tables()]
        return [issue for issue in issues if issue is not None]

    def _rows_users(self) -> list:
        return [{'id': name, 'password': not user['password']['empty']} for name, user in self.node.metadata.items('user')]

    def _rows_permissions(self) -> list:
        rows = [{'id': ['admin'], 'permissions': dict(ADMIN_PERMISSIONS), 'user': 'admin'},
                {'database': SYSTEM_DB, 'id': ['admin', SYSTEM_DB_ID],
                 'permissions': {'config': True, 'read': True, 'write': True}, 'user': 'admin'}]
        for name, user in self.node.metadata.items('user'):
            if name == 'admin':
                continue
            for scope, permissions in sorted(user.get('permissions', {}).items()):
                if scope == 'global':
                    rows.append({'id': [name], 'permissions': permissions, 'user': name})
                else:
                    database = scope if self.identifier_format == 'uuid' else self.node.database_name(scope)
                    rows.append({'database': database, 'id': [name, scope], 'permissions': permissions,
                                 'user': name})
        return rows

    @staticmethod
    def _rows_cluster_config() -> list:
        return [{'heartbeat_timeout_secs': 10, 'id': 'heartbeat'}]

    @staticmethod
    def _rows_jobs() -> list:
        return []

    @staticmethod
    def _rows_stats() -> list:
        return []

    @staticmethod
    def _rows_logs() -> list:
        return []

    # -- writes

    def insert(self, ctx, node, scope) -> dict:
        """insert() into a system table (users only)."""
        payload = to_datum(arg(ctx, node, 1, scope))
        conflict = to_datum(optarg(ctx, node, 'conflict', scope, 'error'))
        total = empty_result()
        for row in payload if isinstance(payload, list) else [payload]:
            old = self.get(row.get('id')) if isinstance(row, dict) and 'id' in row else None
            if old is not None and conflict == 'error':
                total = merge_write_results(total, {'errors': 1, 'first_error': 'Duplicate primary key `id`:\n%s\n%s' % (
                    datum.print_datum(old), datum.print_datum(row))})
                continue
            new = merge(old, row) if old is not None and conflict == 'update' else row
            total = merge_write_results(total, self._write_row(row.get('id') if isinstance(row, dict) else None,
                                                               old, new))
        return total

    def modify(self, ctx, node, scope, kind: str, target) -> dict:
        """update / replace / delete rows of a system table."""
        change = None if kind == 'delete' else arg(ctx, node, 1, scope)
        if isinstance(target, SingleSelection):
            olds = [(target.key, target.row)]
        else:
            olds = [(row['id'], row) for batch in target.batches() for row in batch]
        total = empty_result()
        for key, old in olds:
            if kind == 'delete':
                new = None
            else:
                value = call_datum(ctx, change, [old]) if isinstance(change, Func) else to_datum(change)
                if kind == 'update':
                    new = None if old is None else merge(old, value) if value is not None else old
                else:
                    new = value
            total = merge_write_results(total, self._write_row(key, old, new))
        return total

    def _write_row(self, key, old, new) -> dict:
        if old is None and new is None:
            return {'skipped': 1}
        if old is not None and new is not None and datum.equal(old, new):
            return {'unchanged': 1}
        if new is not None and (not isinstance(new, dict) or not datum.equal(new.get('id'), key)):
            return {'errors': 1, 'first_error': 'Primary key `id` cannot be changed (`%s` -> `%s`).' % (
                datum.print_datum(old), datum.print_datum(new))}
        writer = getattr(self, '_write_' + self.name, None)
        try:
            if writer is None:
                raise errors.op_failed('It\'s illegal to write to the `rethinkdb.%s` table.' % self.name)
            writer(key, old, new)
        except errors.ReqlError as error:
            return {'errors': 1, 'first_error': error.message}
        if old is None:
            return {'inserted': 1}
        return {'deleted': 1} if new is None else {'replaced': 1}

    def _write_server_config(self, key, old, new) -> None:
        if old is None:
            raise errors.op_failed('It\'s illegal to insert new rows into the `rethinkdb.server_config` system table.')
        if new is None:
            raise errors.op_failed('It\'s illegal to delete rows from the `rethinkdb.server_config` system table.')
        with _wrong_format('The row you\'re trying to put into `rethinkdb.server_config` has the wrong format. '):
            name = new.get('name')
            if not isinstance(name, str):
                raise errors.op_failed('In `name`: Expected a string, got %s.' % datum.print_datum(name))
            tags = new.get('tags', [])
            if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
                raise errors.op_failed('In `tags`: Expected an array, got %s.' % datum.print_datum(tags))
            cache_size = _cache_size_setting(new.get('cache_size_mb', old['cache_size_mb']))
        if name != old['name'] and any(info['name'] == name for info in self.node.servers().values()):
            raise errors.op_failed('Cannot rename server `%s` to `%s` because server `%s` already exists.'
                                   % (old['name'], name, name))
        self.node.peer_call(key, 'set_server_config', {'name': name, 'tags': sorted(set(tags)),
                                                       'cache_size_mb': cache_size})

    def _write_db_config(self, key, old, new) -> None:
        if new is None:
            if old is not None:
                self.node.change('db/' + key, delete=True)
                for table_id in self.node.tables_of(key):
                    self.node.change('table/' + table_id, delete=True)
            return
        with _wrong_format('The change you\'re trying to make to `rethinkdb.db_config` has the wrong format. '):
            name = new.get('name')
            if not isinstance(name, str):
                raise errors.op_failed('In `name`: Expected a string, got %s.' % datum.print_datum(name))
        if name in self.node.databases().values() and (old is None or old['name'] != name):
            raise errors.op_failed('Database `%s` already exists.' % name)
        self.node.change('db/' + key, {'name': name})

    def _write_users(self, key, old, new) -> None:
        if new is None:
            if key == 'admin':
                raise errors.op_failed('The user `admin` can\'t be deleted.')
            self.node.change('user/' + key, delete=True)
            return
        password = new.get('password', False)
        record = self.node.metadata.get('user/' + str(key)) or {'permissions': {}}
        if password is False:
            stored = auth.make_password('')
        elif isinstance(password, str):
            stored = auth.make_password(password)
        elif isinstance(password, dict):
            stored = auth.make_password(password.get('password', ''), int(password.get('iterations', 4096)))
        elif password is True and old is not None:
            stored = record['password']
        else:
            raise errors.op_failed('Expected a string or `false` for `password`, got %s.' % datum.print_datum(password))
        self.node.change('user/' + str(key), dict(record, password=stored))

    def _write_table_config(self, key, old, new) -> None:
        if old is None or new is None:
            raise errors.op_failed('It\'s illegal to %s rows %s the `rethinkdb.table_config` table; use `table_create` '
                                   'and `table_drop`.' % (('insert new', 'into') if old is None else ('delete', 'from')))
        meta = self.node.metadata.get('table/' + key)
        with _wrong_format('The change you\'re trying to make to `rethinkdb.table_config` has the wrong format. '):
            changes = self._table_config_changes(meta, new)
        if new['primary_key'] != meta['primary_key']:
            raise errors.op_failed('It\'s illegal to change a table\'s primary key')
        changes['split_points'] = split_points_for(self.node, key, meta, len(changes['shards']))
        table = Table(self.ctx, Database(self.node.database_name(meta['db']), meta['db']), key, meta,
                      'single')
        change_table(self.ctx, table, 'The table\'s configuration was not changed.',
                     lambda current: dict(current, **changes))

    def _table_config_changes(self, meta: dict, new: dict) -> dict:
        """The metadata fields a new table_config row sets, or the real format errors."""
        for field in ('primary_key', 'indexes', 'write_hook', 'name', 'db', 'shards', 'write_acks', 'durability'):
            if field not in new:
                raise errors.op_failed('Expected a field named `%s`.' % field)
        if sorted(new['indexes']) != sorted(meta.get('indexes', {})):
            raise errors.op_failed('The `indexes` field is read-only and can\'t be used to create or drop indexes.')
        if new['durability'] not in ('soft', 'hard'):
            raise errors.op_failed('In `durability`: Expected "soft" or "hard", got: %s'
                                   % datum.print_datum(new['durability']))
        if new['write_acks'] not in ('single', 'majority'):
            raise errors.op_failed('In `write_acks`: Expected "single" or "majority", got: %s'
                                   % datum.print_datum(new['write_acks']))
        if not isinstance(new['shards'], list) or not new['shards']:
            raise errors.op_failed('In `shards`: You must specify at least one shard.')
        shards = [self._shard_from_row(shard) for shard in new['shards']]
        return {'shards': shards, 'name': new['name'], 'db': self._db_id(new['db']),
                'durability': new['durability'], 'write_acks': new['write_acks']}

    def _db_id(self, value) -> str:
        if self.identifier_format == 'uuid':
            return value
        matches = [db_id for db_id, name in self.node.databases().items() if name == value]
        if not matches:
            raise errors.op_failed('Database `%s` does not exist.' % value)
        return matches[0]

    def _server_id(self, value, field: str) -> str:
        servers = self.node.servers()
        if self.identifier_format == 'uuid':
            if value in servers:
                return value
            raise errors.op_failed('In `shards`: In `%s`: There is no server with UUID `%s`.' % (field, value))
        matches = [server_id for server_id, info in servers.items() if info['name'] == value]
        if not matches:
            raise errors.op_failed('In `shards`: In `%s`: Server `%s` does not exist or is not connected.'
                                   % (field, value))
        return matches[0]

    def _shard_from_row(self, row) -> dict:
        if not isinstance(row, dict) or not isinstance(row.get('replicas'), list):
            raise errors.op_failed('In `shards`: Expected a field named `replicas`.')
        replicas = [self._server_id(value, 'replicas') for value in row['replicas']]
        if not replicas:
            raise errors.op_failed('In `shards`: You must specify at least one replica for each shard.')
        if len(set(replicas)) != len(replicas):
            raise errors.op_failed('In `shards`: In `replicas`: Server is listed more than once.')
        nonvoting = [self._server_id(value, 'nonvoting_replicas') for value in row.get('nonvoting_replicas', [])]
        if any(server not in replicas for server in nonvoting):
            raise errors.op_failed('In `shards`: Every server listed in the `nonvoting_replicas` field must also appear '
                                   'in `replicas`.')
        primary = self._server_id(row.get('primary_replica'), 'primary_replica')
        if primary not in replicas:
            raise errors.op_failed('In `shards`: The server listed in the `primary_replica` field (`%s`) must also '
                                   'appear in `replicas`.' % self.node.server_name(primary))
        if primary in nonvoting:
            raise errors.op_failed('In `shards`: The primary replica (`%s`) must not be a nonvoting replica.'
                                   % self.node.server_name(primary))
        return {'primary_replica': primary, 'replicas': sorted(replicas), 'nonvoting_replicas': sorted(nonvoting)}


class _wrong_format:  # pylint: disable=invalid-name
    """Prefix the errors raised inside with the real server's 'has the wrong format' sentence."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def __enter__(self):
        return self

    def __exit__(self, kind, error, _traceback):
        if isinstance(error, errors.ReqlError):
            error.message = self.prefix + error.message
            error.args = (error.message,)
        return False


def system_table(ctx: Context, name: str, identifier_format: str = 'name') -> SystemTable:
    """r.db('rethinkdb').table(name)."""
    if name not in SYSTEM_TABLES:
        raise errors.op_failed('Table `rethinkdb.%s` does not exist.' % name)
    return SystemTable(ctx, name, identifier_format)
