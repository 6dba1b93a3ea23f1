"""One server: its identity and data directory, the cluster metadata, its replicas, its peers, and the lookups the
term evaluators use (databases, tables, connected servers, index functions)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from . import auth, datum, errors, terms
from .cluster import Mesh, PeerLost
from .evaluator import Context, call, to_datum
from .feeds import FeedHub
from .metadata import ClusterMetadata
from .protocol import SERVER_VERSION, VERSION_STRING, Term
from .replication import ReplicaManager
from .routing import TableAccess, serve_read, serve_write
from .storage import MetadataStore
from .values import Database, Func

LOG = logging.getLogger('reql_server.node')
SYSTEM_DB = 'rethinkdb'
# The real server's id of `rethinkdb`: from_hash(39a24924-14ec-4deb-99f1-742eda7aba5e, "rethinkdb").
SYSTEM_DB_ID = 'b99b9572-8e53-5fef-9a2b-5e6aba3edf1c'
PROPAGATION_TIMEOUT = 5.0
DEFAULT_ADMIN_VERSION = [0, '']


class Options:
    """What the command line gave the server."""

    def __init__(self, **values):
        self.directory = values.get('directory', 'rethinkdb_data')
        self.bind = values.get('bind') or ['127.0.0.1']
        self.driver_port = values.get('driver_port', 28015)
        self.cluster_port = values.get('cluster_port', 29015)
        self.http_port = values.get('http_port')
        self.server_name = values.get('server_name')
        self.server_tags = values.get('server_tags') or []
        self.join = values.get('join') or []
        self.initial_password = values.get('initial_password')
        self.canonical_addresses = values.get('canonical_addresses') or []
        # `--cache-size`: None when not given (the stored setting stays), 'auto', or megabytes.
        self.cache_size = values.get('cache_size')
        self.argv = values.get('argv') or []


def default_cache_size_mb() -> float:
    """The cache size the real server picks for 'auto': half of the available memory less 1 GiB, at least 100 MB."""
    try:
        with open('/proc/meminfo', encoding='ascii') as meminfo:
            available_kb = next(int(line.split()[1]) for line in meminfo if line.startswith('MemAvailable:'))
    except (OSError, StopIteration, ValueError):
        return 100
    cache_bytes = max((available_kb * 1024 - 2 ** 30) // 2, 100 * 2 ** 20)
    return cache_bytes / 2 ** 20


def actual_cache_size_mb(setting) -> float:
    """The cache size a server runs with: its `cache_size_mb` setting, or the default for 'auto'."""
    return default_cache_size_mb() if setting == 'auto' else setting


def _default_server_name() -> str:
    host = ''.join(character if character.isalnum() else '_' for character in socket.gethostname())
    return '%s_%s' % (host or 'server', uuid.uuid4().hex[:3])


class Node:
    """Everything one server process knows and does."""

    def __init__(self, options: Options):
        self.options = options
        self.directory = options.directory
        os.makedirs(self.directory, exist_ok=True)
        self.time_started = time.time()
        self._store = MetadataStore(self.directory)
        stored = self._store.load()
        fresh = 'server_id' not in stored
        self.server_id = stored.get('server_id') or str(uuid.uuid4())
        if fresh:
            self._store.save({'server_id': self.server_id})
        self.metadata = ClusterMetadata(self._store, self.server_id, stored)
        self._directory: dict = {}
        self._peer_status: dict = {}
        self._lock = threading.RLock()
        self._index_functions: dict = {}
        self.stopping = threading.Event()
        bind_hosts = ['0.0.0.0'] if 'all' in options.bind else options.bind
        self.mesh = Mesh(self, bind_hosts, options.cluster_port, [self._address(item) for item in options.join])
        self.replicas = ReplicaManager(self)
        self.feeds = FeedHub(self)
        self._initialise(fresh)

    @staticmethod
    def _address(text: str) -> tuple:
        host, _colon, port = text.rpartition(':')
        return (host or text, int(port) if port else 29015)

    def _initialise(self, fresh: bool) -> None:
        server = self.metadata.get('server/' + self.server_id)
        name = self.options.server_name or (server['name'] if server else _default_server_name())
        tags = sorted(set(['default'] + list(self.options.server_tags))) if (self.options.server_tags or not server) \
            else server['tags']
        stored_cache_size = server.get('cache_size_mb', 'auto') if server else 'auto'
        cache_size = stored_cache_size if self.options.cache_size is None else self.options.cache_size
        if server is None or (server['name'], server['tags'], stored_cache_size) != (name, tags, cache_size):
            self.metadata.put('server/' + self.server_id, {'name': name, 'tags': tags, 'cache_size_mb': cache_size})
        if self.metadata.version('user/admin') is None:
            self.metadata.merge({'user/admin': {'v': DEFAULT_ADMIN_VERSION, 'deleted': False,
                                                'value': {'password': auth.make_password(''), 'permissions': {}}}})
        if fresh and not self.options.join:
            self.metadata.put('db/' + str(uuid.uuid4()), {'name': 'test'})
        if self.options.initial_password:
            admin = self.metadata.get('user/admin')
            if admin is None or admin['password']['empty']:
                self.metadata.put('user/admin', {'password': auth.make_password(self.options.initial_password),
                                                 'permissions': {}})

    # -- lifecycle

    def start(self) -> None:
        """Listen on the cluster port, connect to peers, open replicas."""
        self.mesh.listen()
        self.mesh.start()
        self.replicas.start()

    def stop(self) -> None:
        """Stop talking to peers and close every file."""
        self.mesh.stop()
        self.replicas.stop()
        self._store.close()

    @property
    def name(self) -> str:
        """This server's name."""
        return self.metadata.get('server/' + self.server_id)['name']

    def pause(self, seconds: float) -> None:
        """Sleep between polls of a waiting query; a stopping server ends the wait with the real error."""
        if self.stopping.wait(seconds):
            raise errors.op_indeterminate('Server is shutting down.')

    # -- peers

    def status_info(self) -> dict:
        """This server's static process and network facts, for `server_status` on any server."""
        return {
            'hostname': socket.gethostname(),
            'pid': os.getpid(),
            'time_started': self.time_started,
            'argv': self.options.argv,
            'reql_port': self.options.driver_port,
            'cluster_port': self.mesh.port,
            'http_admin_port': self.options.http_port,
            'canonical_addresses': self.canonical_addresses(),
            'version': VERSION_STRING,
            'cache_size_mb': actual_cache_size_mb(self.metadata.get('server/' + self.server_id)
                                                  .get('cache_size_mb', 'auto')),
            'server_version': SERVER_VERSION,
        }

    def canonical_addresses(self) -> list:
        """The addresses peers may reach this server at."""
        if self.options.canonical_addresses:
            return [{'host': self._address(text)[0], 'port': self.mesh.port} for text in self.options.canonical_addresses]
        hosts = self.mesh.bind_hosts if '0.0.0.0' not in self.mesh.bind_hosts else ['127.0.0.1']
        if hosts == ['127.0.0.1']:
            hosts = ['127.0.0.1', '::1']
        return [{'host': host, 'port': self.mesh.port} for host in hosts]

    def hello_message(self) -> dict:
        """What this server tells a peer when they connect."""
        return {'t': 'hello', 'id': self.server_id, 'port': self.mesh.port, 'peers': self.mesh.known_addresses(),
                'host': self.canonical_addresses()[0]['host'], 'metadata': self.metadata.entries(),
                'states': self.replicas.my_states(), 'status': self.status_info()}

    def on_peer_hello(self, peer_id: str, message: dict, _newly_connected: bool) -> None:
        """A peer connected: take its metadata and replica states."""
        with self._lock:
            self._directory[peer_id] = message.get('states', {})
            self._peer_status[peer_id] = message.get('status', {})
        self.metadata.merge(message.get('metadata', {}))
        self.replicas.poke()

    def on_peer_message(self, peer_id: str, message: dict) -> None:
        """A broadcast from a peer."""
        if message['t'] == 'states':
            with self._lock:
                self._directory[peer_id] = message['states']
        elif message['t'] == 'meta':
            self.metadata.merge(message['entries'])
        elif message['t'].startswith('feed_'):
            self.feeds.on_message(peer_id, message)
            return
        self.replicas.poke()

    def on_peer_lost(self, peer_id: str) -> None:
        """A peer's last connection closed."""
        with self._lock:
            self._directory.pop(peer_id, None)
        self.replicas.forget_primary(peer_id)
        self.feeds.peer_lost(peer_id)

    def directory_entry(self, server_id: str, table_id: str) -> dict | None:
        """A peer's published state of its replica of a table."""
        with self._lock:
            return self._directory.get(server_id, {}).get(table_id)

    def publish_states(self) -> None:
        """Tell the peers our replica states changed."""
        self.mesh.broadcast({'t': 'states', 'states': self.replicas.my_states()})

    def handle_peer_call(self, method: str, params: dict, peer_id: str | None):
        """Answer a request from a peer."""
        if method == 'read':
            return serve_read(self, params)
        if method == 'write':
            return serve_write(self, params)
        if method == 'apply':
            return self.replicas.apply_from_primary(params['table'], params['rows'], params['hard'])
        if method == 'rows_since':
            return self.replicas.rows_since(params['table'], params['range'], params['since'], params['after'])
        if method == 'synced_version':
            return self.replicas.synced_version(params['table'])
        if method == 'acting_primary':
            return self.replicas.acting_primary(params['table'], params['layout'], params['shard'])
        if method == 'meta':
            self.metadata.merge(params['entries'])
            self.replicas.reconcile()
            return True
        if method == 'connections':
            return sorted(self.mesh.connected())
        if method == 'index_ready':
            return self.replicas.index_ready(params['table'], params['index'], params['definition'])
        if method == 'feed_follow':
            return self.feeds.follow(params['table'], peer_id, params['feed'], params['ranges'])
        if method == 'set_server_config':
            return self.set_own_config(params['name'], params['tags'], params['cache_size_mb'])
        raise errors.internal('Unknown cluster request %s.' % method)

    def peer_status(self, server_id: str) -> dict:
        """The status facts a peer sent when it connected."""
        if server_id == self.server_id:
            return self.status_info()
        with self._lock:
            return dict(self._peer_status.get(server_id, {}))

    # -- metadata changes

    def change(self, key: str, value=None, delete: bool = False, base_version=None) -> None:
        """Change a metadata entry here, and wait (briefly) until the connected peers have it."""
        if delete:
            entries = self.metadata.delete(key)
        else:
            entries = self.metadata.put(key, value, base_version)
        futures = [self.mesh.call_async(peer, 'meta', {'entries': entries}) for peer in self.mesh.connected()]
        deadline = time.time() + PROPAGATION_TIMEOUT
        for future in futures:
            try:
                future.result(max(0.0, deadline - time.time()))
            except Exception:  # pylint: disable=broad-except
                continue
        self.replicas.reconcile()

    def set_own_config(self, name: str, tags: list, cache_size_mb) -> bool:
        """Rename / retag / resize this server (server_config writes are sent to the server itself)."""
        current = self.metadata.get('server/' + self.server_id)
        self.change('server/' + self.server_id, dict(current, name=name, tags=tags, cache_size_mb=cache_size_mb))
        return True

    # -- lookups for terms

    def servers(self) -> dict:
        """{id: {'name', 'tags'}} of this server and the connected ones."""
        result = {}
        for server_id in [self.server_id] + sorted(self.mesh.connected()):
            entry = self.metadata.get('server/' + server_id)
            if entry is not None:
                result[server_id] = entry
        return result

    def server_name(self, server_id: str) -> str:
        """A server's name (known even while it is away)."""
        entry = self.metadata.get('server/' + server_id)
        return entry['name'] if entry else '__deleted_server__'

    def databases(self) -> dict:
        """{id: name} of the user databases."""
        return {db_id: value['name'] for db_id, value in self.metadata.items('db')}

    def database_name(self, db_id: str) -> str:
        """A database's name, or the real placeholder for a deleted one."""
        db = self.metadata.get('db/' + db_id)
        return db['name'] if db else '__deleted_database__'

    def find_database(self, name: str) -> Database:
        """A database by name, or the real errors."""
        if name == SYSTEM_DB:
            return Database(SYSTEM_DB, SYSTEM_DB_ID)
        matches = [db_id for db_id, db_name in self.databases().items() if db_name == name]
        if not matches:
            raise errors.op_failed('Database `%s` does not exist.' % name)
        if len(matches) > 1:
            raise errors.op_failed('Database `%s` is ambiguous; there are multiple databases with that name.' % name)
        return Database(name, matches[0])

    def tables_of(self, db_id: str) -> dict:
        """{id: table} of one database."""
        return {table_id: table for table_id, table in self.metadata.items('table') if table['db'] == db_id}

    def find_table(self, db: Database, name: str) -> tuple:
        """(id, table) by database and name, or the real errors."""
        matches = [(table_id, table) for table_id, table in self.tables_of(db.id).items() if table['name'] == name]
        if not matches:
            raise errors.op_failed('Table `%s.%s` does not exist.' % (db.name, name))
        if len(matches) > 1:
            raise errors.op_failed('Table `%s.%s` is ambiguous; there are multiple tables with that name.'
                                   % (db.name, name))
        return matches[0]

    def table_access(self, table_id: str, read_mode: str = 'single') -> TableAccess:
        """Row operations on a table, routed through the cluster."""
        table = self.metadata.get('table/' + table_id)
        if table is None:
            raise errors.op_failed('Cannot perform read: Failed to retrieve the table configuration')
        return TableAccess(self, table_id, table, read_mode)

    def find_user(self, name: str) -> dict | None:
        """Stored credentials for the handshake."""
        user = self.metadata.get('user/' + name)
        return user['password'] if user else None

    def index_function(self, table_id: str, name: str, definition: dict):
        """row -> [encoded index keys] for an index definition (compiled once)."""
        cache_key = (table_id, name, datum.to_json(definition))
        function = self._index_functions.get(cache_key)
        if function is None:
            function = _index_keys_function(self, definition)
            self._index_functions[cache_key] = function
        return function

    def peer_call(self, server_id: str, method: str, params: dict, timeout: float = 10.0):
        """A request to a peer, or to this server itself."""
        if server_id == self.server_id:
            return self.handle_peer_call(method, params, None)
        try:
            return self.mesh.call(server_id, method, params, timeout)
        except PeerLost:
            return None


def _index_keys_function(node: Node, definition: dict):
    """A Python function computing a row's index keys: a fast path for field paths, the evaluator otherwise."""
    function_node = terms.compile_term(definition['function'])
    params = function_node.args[0].value
    body = function_node.args[1]
    getter = _field_path_getter(body, params[0] if params else None)
    multi = definition.get('multi', False)
    if getter is None:
        func = Func(params, body, {}, node=function_node, implicit=function_node.implicit)
        ctx = Context(node)

        def getter(row):
            return to_datum(call(ctx, func, [row]))

    def keys(row) -> list:
        try:
            value = getter(row)
        except (errors.ReqlError, _Missing):
            return []
        values = value if multi and isinstance(value, list) else [value]
        found = []
        for item in values:
            if item is None or (isinstance(item, dict) and datum.ptype(item) is None):
                continue
            encoded = datum.encode_key(item)
            if encoded not in found:
                found.append(encoded)
        return found
    return keys


class _Missing(Exception):
    """A field path that does not resolve (the row is then not indexed)."""


def _field_path_getter(body, param):
    """row -> value for bodies made of field accesses on the parameter and arrays of them; None otherwise."""
    if body.is_datum:
        return lambda row: body.value
    if body.type == Term.VAR and body.args[0].is_datum and body.args[0].value == param:
        return lambda row: row
    if body.type == Term.IMPLICIT_VAR:
        return lambda row: row
    if body.type in (Term.BRACKET, Term.GET_FIELD) and body.args[1].is_datum and isinstance(body.args[1].value, str):
        inner = _field_path_getter(body.args[0], param)
        if inner is None:
            return None
        field = body.args[1].value

        def get(row):
            value = inner(row)
            if isinstance(value, dict):
                if field not in value:
                    raise _Missing()
                return value[field]
            if isinstance(value, list):
                return [item[field] for item in value if isinstance(item, dict) and field in item]
            raise _Missing()
        return get
    if body.type == Term.MAKE_ARRAY:
        parts = [_field_path_getter(part, param) for part in body.args]
        if any(part is None for part in parts):
            return None
        return lambda row: [part(row) for part in parts]
    return None
