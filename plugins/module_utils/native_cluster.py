# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the native dump and restore engine needs of the cluster: connections to the server best placed for a
table (its primary replica, or any replica for outdated reads) instead of only the login server, documents
decoded by orjson, and errors that name the server and say what to do.

A query sent to another server than the one holding the data is forwarded by that server: reading from the
replica itself saves the forwarding, and spreads the work over the servers when a table's shards are on
several.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import ORJSON_IMPORT_ERROR, orjson
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import ReqlError, ensure_driver, error_text, login_password

try:
    from rethinkdb import RethinkDB
except ImportError:
    RethinkDB = None

# Run options that keep times and binaries as the JSON the server sends, as the tools' dump writes them.
RAW = {'time_format': 'raw', 'binary_format': 'raw'}
# How long the engine waits for a server other than the login server before it uses the login server.
PLACEMENT_TIMEOUT = 5.0


class NativeError(Exception):
    """A native dump or restore failed: the message is one line that names the server and what to do."""


class OrjsonDecoder:
    """The driver's JSON decoder replaced by orjson: documents come back as the server sent them (times and
    binaries raw), several times faster than the driver's own decoding."""

    def __init__(self, global_optargs=None):
        self.global_optargs = global_optargs

    @staticmethod
    def decode(text):
        return orjson.loads(text)


class OrjsonEncoder:
    """The driver's query encoder replaced by orjson: the text of a batch of documents, one string of megabytes
    inside an insert, is escaped in C at several times the speed of the driver's encoder. Query terms are
    encoded as the driver encodes them (their build())."""

    @staticmethod
    def encode(message) -> str:
        return orjson.dumps(message, default=_built).decode('utf-8')


def _built(term):
    return term.build()


class Address:
    """Where a server of the cluster answers queries."""

    def __init__(self, server: str, host: str, port: int):
        self.server = server
        self.host = host
        self.port = port

    def __str__(self) -> str:
        where = '%s:%d' % (self.host, self.port)
        return '%s (%s)' % (self.server, where) if self.server else where


class Connector:
    """Opens connections with the module's login: to the login server, or to a named server of the cluster
    at the addresses it announces, checked to be that server; the login server when none answers."""

    def __init__(self, open_connection: Callable, login_host: str, login_port: int):
        """open_connection(host, port, timeout) returns a driver connection or raises ReqlError or OSError."""
        self._open = open_connection
        self.login = Address('', login_host, login_port)
        self._addresses: dict = {}
        self._unreachable: set = set()
        self._lock = threading.Lock()

    def learn(self, connection, r) -> None:
        """Read the login server's name and every server's addresses from the cluster."""
        self.login.server = connection.server()['name']
        for row in r.db('rethinkdb').table('server_status').run(connection, **RAW):
            hosts = [entry['host'] for entry in row['network'].get('canonical_addresses') or ()]
            port = row['network']['reql_port']
            self._addresses[row['name']] = [Address(row['name'], host, port) for host in hosts if isinstance(port, int)]

    def connect_login(self):
        """A connection to the login server; ReqlError or OSError as the driver raises them."""
        return self._open(self.login.host, self.login.port, None)

    def connect(self, server: str | None) -> tuple:
        """(connection, Address) to `server` when it answers under that name, else to the login server."""
        if server and server != self.login.server and server not in self._unreachable:
            for address in self._addresses.get(server, ()):
                try:
                    connection = self._open(address.host, address.port, PLACEMENT_TIMEOUT)
                except (ReqlError, OSError, socket.timeout):
                    continue
                with contextlib.suppress(ReqlError):
                    if connection.server()['name'] == server:
                        return connection, address
                connection.close(noreply_wait=False)
            with self._lock:
                self._unreachable.add(server)
        return self.connect_login(), self.login


def best_servers(status: dict, read_mode: str) -> list:
    """The servers a table is best read from or written to, from its table_status row: each shard's primary
    replica, and for outdated reads every ready replica. [] when the table has none available."""
    servers = []
    for shard in status.get('shards') or ():
        names = list(shard.get('primary_replicas') or ())
        if read_mode == 'outdated':
            names += [replica['server'] for replica in shard['replicas'] if replica['state'] == 'ready']
        servers.extend(name for name in names if name not in servers)
    return servers


def lost(action: str, address: Address, exc: Exception, advice: str, wanted: str | None = None) -> NativeError:
    """A NativeError for a query that failed on a server: one line, its server (and the server it was meant
    for, when that one did not answer), the driver's reason."""
    reason = error_text(exc) if isinstance(exc, ReqlError) else (getattr(exc, 'strerror', None) or str(exc) or type(exc).__name__)
    absent = ' (%s, which holds it, does not answer)' % wanted if wanted and wanted != address.server else ''
    return NativeError('%s on server %s failed: %s%s; %s.' % (action, address, reason.rstrip('.'), absent, advice))


def module_connector(module) -> tuple:
    """(r, Connector) with the module's login options, or fail the way modules do when a library is missing."""
    ensure_driver(module)
    if ORJSON_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib('orjson'), exception=ORJSON_IMPORT_ERROR)
    params = module.params
    password = login_password(module)
    r = RethinkDB()

    def open_connection(host: str, port: int, timeout: float | None):
        connect_args = dict(host=host, port=port, user=params['login_user'], password=password,
                            timeout=min(timeout, params['connect_timeout']) if timeout else params['connect_timeout'])
        if params['tls_ca_file']:
            connect_args['ssl'] = {'ca_certs': params['tls_ca_file']}
        return r.connect(**connect_args)

    return r, Connector(open_connection, params['login_host'], params['login_port'])
