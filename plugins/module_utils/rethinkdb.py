# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection to a RethinkDB cluster and the helpers every module of the collection shares."""

from __future__ import annotations

import datetime
import math
import re
import time
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    from rethinkdb import RethinkDB
    from rethinkdb import errors as reql_errors
except ImportError:
    RETHINKDB_IMPORT_ERROR: str | None = traceback.format_exc()

    class ReqlError(Exception):  # type: ignore[no-redef]
        """Stands in for the driver's base error so that except clauses still compile."""
else:
    RETHINKDB_IMPORT_ERROR = None
    ReqlError = reql_errors.ReqlError

LOGIN_MUTUALLY_EXCLUSIVE = [('login_password', 'login_password_file')]

# Run options that keep ReQL pseudo-types as plain JSON, so results can be returned to Ansible.
RAW_FORMATS = {'time_format': 'raw', 'binary_format': 'raw'}

# The driver starts its connection errors with host:port, which our message already names (an IPv4 address holds
# dots, so the port ends it).
_DRIVER_CONNECT_PREFIX = re.compile(r'^Could not connect to \S+:\d+[,.]\s*(Error:\s*)?')


def rethinkdb_common_argument_spec() -> dict:
    """The login options of every module; each module adds its own with update()."""
    return dict(
        login_host=dict(type='str', default='localhost'),
        login_port=dict(type='int', default=28015),
        login_user=dict(type='str', default='admin'),
        login_password=dict(type='str', no_log=True),
        login_password_file=dict(type='path', no_log=False),
        tls_ca_file=dict(type='path'),
        connect_timeout=dict(type='float', default=20),
    )


def ensure_driver(module) -> None:
    """Fail the way Ansible modules do when the Python driver is not installed."""
    if RETHINKDB_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib('rethinkdb'), exception=RETHINKDB_IMPORT_ERROR)


def login_password(module) -> str:
    """The password from login_password or login_password_file ('' for none)."""
    params = module.params
    if params['login_password_file']:
        try:
            with open(params['login_password_file'], encoding='utf-8') as password_file:
                password = password_file.read()
        except OSError as exc:
            module.fail_json(msg='Cannot read login_password_file %s: %s.' % (params['login_password_file'], exc.strerror))
        # Like rethinkdb's own --password-file: one trailing newline is not part of the password.
        return password[:-1] if password.endswith('\n') else password
    return params['login_password'] or ''


def endpoint(module) -> str:
    """host:port of the server the module talks to, for messages."""
    return '%s:%d' % (module.params['login_host'], module.params['login_port'])


def connect_arguments(module) -> dict:
    """The driver's r.connect() arguments for the module's login options, the password read."""
    params = module.params
    connect_args = dict(
        host=params['login_host'],
        port=params['login_port'],
        user=params['login_user'],
        password=login_password(module),
        timeout=params['connect_timeout'],
    )
    if params['tls_ca_file']:
        connect_args['ssl'] = {'ca_certs': params['tls_ca_file']}
    return connect_args


def connect_failure(exc: Exception) -> str:
    """Why a connection failed, without the address the driver puts first."""
    return _DRIVER_CONNECT_PREFIX.sub('', error_text(exc))


def connect(module):
    """Return (r, connection) for the module's login options, or fail with a one-line reason."""
    ensure_driver(module)
    r = RethinkDB()
    try:
        connection = r.connect(**connect_arguments(module))
    except (ReqlError, OSError) as exc:
        module.fail_json(msg='Cannot connect to RethinkDB at %s as %s: %s.' % (endpoint(module), module.params['login_user'], connect_failure(exc)))
    return r, connection


def close(connection) -> None:
    """Close a connection without asking the server anything: after a lost connection the driver's own
    close(), which waits for the server's replies to pending queries, raises instead of closing."""
    connection.close(noreply_wait=False)


def query_failure(module, action: str, exc: Exception) -> str:
    """The one-line message of a query that failed: what was done, on which server, the reason, and for a lost
    connection what to do."""
    message = '%s at %s failed: %s' % (action, endpoint(module), error_text(exc))
    if RETHINKDB_IMPORT_ERROR is None and isinstance(exc, reql_errors.ReqlDriverError):
        message += '; the connection to the server was lost: check that it runs, then run the task again'
    return message + '.'


def error_text(exc: Exception) -> str:
    """The server's or driver's message without the query echo and trailing punctuation."""
    message = getattr(exc, 'message', None) or str(exc)
    return message.strip().splitlines()[0].rstrip('.')


def plain(value):
    """Turn raw ReQL pseudo-types (TIME, BINARY) into JSON that Ansible can return."""
    if isinstance(value, dict):
        if value.get('$reql_type$') == 'TIME':
            offset = value.get('timezone', '+00:00')
            hours, minutes = int(offset[1:3]), int(offset[4:6])
            sign = -1 if offset[0] == '-' else 1
            zone = datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))
            return datetime.datetime.fromtimestamp(value['epoch_time'], zone).isoformat()
        return dict((key, plain(item)) for key, item in value.items())
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def system_rows(r, connection, table: str) -> list:
    """Every row of a table of the system database `rethinkdb`, as plain JSON."""
    return plain(list(r.db('rethinkdb').table(table).run(connection, **RAW_FORMATS)))


def split_table_name(name: str) -> tuple[str, str]:
    """'db.table' to (db, table); raise ValueError on anything else."""
    db, dot, table = name.partition('.')
    if not dot or not db or not table or '.' in table:
        raise ValueError("'%s' is not a table name of the form database.table" % name)
    return db, table


class NotReadyError(Exception):
    """Tables did not reach a readiness within the time allowed; `waiting` maps them to replica states."""

    def __init__(self, wait_for: str, timeout: int, waiting: dict, waited: float):
        self.waiting = waiting
        self.waited = waited
        super().__init__('Tables not %s after %d seconds: %s' % (wait_for, timeout, describe_waiting(waiting) or 'all ready now, try again'))


def wait_ready(r, connection, tables: list, wait_for: str, timeout: int) -> float:
    """Wait until every (db, table) has the readiness wait_for, within one overall timeout.

    Returns the seconds waited; raises NotReadyError on timeout and ReqlError on anything else.
    """
    started = time.monotonic()
    deadline = started + timeout
    for db, name in tables:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            # RethinkDB takes whole seconds.
            r.db(db).table(name).wait(wait_for=wait_for, timeout=max(1, math.ceil(remaining))).run(connection)
        except (TimeoutError, ReqlError) as exc:
            if isinstance(exc, ReqlError) and not error_text(exc).startswith('Timed out'):
                raise
            statuses = system_rows(r, connection, 'table_status')
            raise NotReadyError(wait_for, timeout, not_ready(statuses, tables, wait_for), round(time.monotonic() - started, 3)) from None
    return round(time.monotonic() - started, 3)


def not_ready(statuses: list, tables: list, wait_for: str) -> dict:
    """Replica states of the (db, table)s that lack the readiness flag, by 'db.table'."""
    wanted = set(tables)
    return dict(('%s.%s' % (status['db'], status['name']), replica_states(status))
                for status in statuses
                if (status['db'], status['name']) in wanted and not status['status'][wait_for])


def describe_waiting(waiting: dict) -> str:
    """'db.table (node3 disconnected)' for each table, for a one-line message."""
    parts = []
    for name, states in sorted(waiting.items()):
        unready = sorted(set('%s %s' % (item['server'], item['state']) for item in states if item['state'] != 'ready'))
        parts.append('%s (%s)' % (name, ', '.join(unready) or 'no replica ready'))
    return '; '.join(parts)


def replica_states(status: dict) -> list:
    """Flatten a table_status row's shards into [{shard, server, state}]."""
    return [dict(shard=number, server=replica['server'], state=replica['state'])
            for number, shard in enumerate(status.get('shards') or [], start=1)
            for replica in shard['replicas']]
