# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scratch clusters: RethinkDB servers started for a restore rehearsal on ports of their own, under one
directory per cluster, and removed with everything they wrote. scratch_keeper.py holds what must also run
without the collection (finding and stopping the servers, the keeper); this file starts them."""

from __future__ import annotations

import inspect
import os
import re
import secrets
import socket
import sys
import time

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import scratch_keeper
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import write_json_atomic
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import ReqlError, connect_failure, error_text
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import Commands

try:
    from rethinkdb import RethinkDB
    from rethinkdb.errors import ReqlAuthError
except ImportError:
    # The modules check for the driver (ensure_driver) before they start servers.
    RethinkDB = None

    class ReqlAuthError(Exception):  # type: ignore[no-redef]
        """Stands in for the driver's authentication error so that except clauses still compile."""

NAME_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')
PASSWORD_FILE = 'admin-password'
LOG_FILE = 'server.log'
DATA_DIR = 'data'
LAUNCH_SECONDS = 60.0
LOG_LINES = 5


class ScratchError(Exception):
    """A scratch cluster cannot be made, started or read; the message says what to fix."""


def check_name(value: str, what: str) -> str:
    """A name that can be a directory name (scratch cluster, server), or ScratchError."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise ScratchError("%s '%s' is not a valid name: use letters, digits, '_', '.' and '-', starting with a letter or digit"
                           % (what, value))
    return value


class Scratch:
    """Where one scratch cluster keeps its files: <directory>/<name>/<server>/{data,server.pid,server.log}."""

    def __init__(self, directory: str, name: str):
        self.directory = os.path.abspath(directory)
        self.name = check_name(name, 'name')
        self.path = os.path.join(self.directory, self.name)
        self.run_file = os.path.join(self.path, scratch_keeper.RUN_FILE)
        self.password_file = os.path.join(self.path, PASSWORD_FILE)

    def server_dir(self, server: str) -> str:
        return os.path.join(self.path, check_name(server, 'server'))

    def data_dir(self, server: str) -> str:
        return os.path.join(self.server_dir(server), DATA_DIR)

    def pid_file(self, server: str) -> str:
        return os.path.join(self.server_dir(server), scratch_keeper.PID_FILE)

    def log_file(self, server: str) -> str:
        return os.path.join(self.server_dir(server), LOG_FILE)

    def record(self) -> dict | None:
        return scratch_keeper.read_record(self.run_file)

    def write_record(self, record: dict) -> None:
        write_json_atomic(self.run_file, record)

    def layout(self, servers: list) -> dict:
        """Each server's directory and data directory, by name."""
        return dict((server, dict(directory=self.server_dir(server), data_dir=self.data_dir(server))) for server in servers)


def create(scratch: Scratch, servers: list, run: dict, lifetime: int) -> dict:
    """Make the scratch cluster's directories (0700) and its record; the record of an existing one is kept."""
    existing = scratch.record()
    if existing is not None:
        if sorted(existing.get('servers', [])) != sorted(servers):
            raise ScratchError('Scratch cluster %s exists with servers %s, not %s: give another name.'
                               % (scratch.path, ', '.join(existing.get('servers', [])), ', '.join(servers)))
        return existing
    os.makedirs(scratch.directory, mode=0o700, exist_ok=True)
    os.mkdir(scratch.path, 0o700)
    for server in servers:
        os.mkdir(scratch.server_dir(server), 0o700)
    now = time.time()
    record = dict(name=scratch.name, path=scratch.path, servers=list(servers), run=run, created_at=round(now, 3),
                  expires_at=round(now + lifetime, 3), keeper=None, ports={})
    scratch.write_record(record)
    return record


def launch_keeper(commands: Commands, scratch: Scratch, record: dict) -> dict:
    """Start the keeper that removes the scratch cluster when its run is gone or its lifetime is over, and
    note it in the record."""
    program = inspect.getsource(scratch_keeper)
    started = commands.run([sys.executable, '-I', '-S', '-B', '-c', program, 'watch', scratch.path],
                           'start the keeper of scratch cluster %s' % scratch.path).strip()
    if not started.isdigit():
        raise ScratchError('The keeper of scratch cluster %s did not start (it printed %r).' % (scratch.path, started))
    pid = int(started)
    record = dict(record, keeper=dict(pid=pid, start_ticks=scratch_keeper.start_ticks(pid)))
    scratch.write_record(record)
    return record


def free_ports(count: int, host: str) -> list:
    """count distinct TCP ports free on host right now (the kernel's choice of unused ephemeral ports)."""
    sockets = []
    try:
        for dummy in range(count):
            listener = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(listener)
            listener.bind((host, 0))
        return [listener.getsockname()[1] for listener in sockets]
    finally:
        for listener in sockets:
            listener.close()


def server_argv(binary: list, scratch: Scratch, server: str, ports: dict, bind: str, cache_size: int | None, fresh: bool) -> list:
    """The argv that starts one server as a daemon on its own ports, joining every other server of the
    scratch cluster. A fresh server is given its name; a restored one has the name its data directory holds."""
    own = ports[server]
    argv = list(binary) + [
        '--directory', scratch.data_dir(server),
        '--bind', bind,
        '--driver-port', str(own['driver_port']),
        '--cluster-port', str(own['cluster_port']),
        '--no-http-admin',
        '--no-update-check',
        '--pid-file', scratch.pid_file(server),
        '--log-file', scratch.log_file(server),
        '--daemon',
    ]
    if fresh:
        argv += ['--server-name', server]
    if cache_size:
        argv += ['--cache-size', str(cache_size)]
    for other, other_ports in sorted(ports.items()):
        if other != server:
            argv += ['--join', '%s:%d' % (bind if ':' not in bind else '[%s]' % bind, other_ports['cluster_port'])]
    return argv


def log_tail(scratch: Scratch, server: str) -> str:
    """The last lines of a server's log, for a failure message."""
    for path in (scratch.log_file(server), os.path.join(scratch.data_dir(server), 'log_file')):
        try:
            with open(path, encoding='utf-8', errors='replace') as log:
                lines = [line.strip() for line in log.read().splitlines() if line.strip()]
        except OSError:
            continue
        return ' | '.join(lines[-LOG_LINES:])
    return 'no log'


def data_state(scratch: Scratch, servers: list) -> bool:
    """True when every server has a data directory (restored from a set), False when none has (fresh);
    ScratchError for a mix, which no rehearsal makes."""
    present = [server for server in servers if os.path.isdir(scratch.data_dir(server)) and os.listdir(scratch.data_dir(server))]
    if present and len(present) != len(servers):
        raise ScratchError('Servers %s have a data directory and %s none: stage every server\'s part, or none.'
                           % (', '.join(present), ', '.join(sorted(set(servers) - set(present)))))
    return bool(present)


def launch(commands: Commands, scratch: Scratch, servers: list, ports: dict, options: dict, fresh: bool) -> None:
    """Start every server as a daemon and wait until each has written its pid file."""
    for server in servers:
        argv = server_argv(options['binary'], scratch, server, ports, options['bind'], options['cache_size'], fresh)
        commands.run(argv, 'start scratch server %s' % server)
    deadline = time.monotonic() + LAUNCH_SECONDS
    while True:
        running = scratch_keeper.server_pids(scratch.path)
        if len(running) == len(servers):
            return
        if time.monotonic() >= deadline:
            missing = [server for server in servers if server not in running]
            raise ScratchError('Scratch servers %s did not start within %d seconds: %s.'
                               % (', '.join(missing), LAUNCH_SECONDS, '; '.join('%s: %s' % (server, log_tail(scratch, server)) for server in missing)))
        time.sleep(0.05)


def _connect(r, host: str, port: int, user: str, password: str):
    return r.connect(host=host, port=port, user=user, password=password, timeout=5)


def wait_connected(r, scratch: Scratch, servers: list, ports: dict, login: dict, deadline: float) -> dict:
    """Wait until every server answers, is the server its data says it is, and sees all the others connected;
    return the server ids by name. ScratchError naming the first server that is not, with its log's end."""
    expected = sorted(servers)
    ids = {}
    for server in servers:
        last_problem = 'no answer'
        while True:
            if server not in scratch_keeper.server_pids(scratch.path):
                raise ScratchError('Scratch server %s exited: %s.' % (server, log_tail(scratch, server)))
            try:
                with _connect(r, login['host'], ports[server]['driver_port'], login['user'], login['password']) as connection:
                    own = connection.server()
                    if own['name'] != server:
                        raise ScratchError('The data directory staged for server %s belongs to server %s: the set\'s parts and '
                                           'their server names do not match.' % (server, own['name']))
                    rows = list(r.db('rethinkdb').table('server_status').pluck('name', {'network': 'connected_to'}).run(connection))
                seen = dict((row['name'], row['network']['connected_to']) for row in rows)
                if sorted(seen) == expected and all(seen[name].get(other) for name in expected for other in expected if other != name):
                    ids[server] = own['id']
                    break
                last_problem = 'it sees %s' % ', '.join(sorted(seen))
            except ReqlAuthError as exc:
                raise ScratchError('Cannot log in to scratch server %s as %s: %s; give the password that user had in the backed-up '
                                   'cluster.' % (server, login['user'], connect_failure(exc)))
            except ReqlError as exc:
                last_problem = connect_failure(exc)
            except OSError as exc:
                last_problem = exc.strerror or str(exc)
            if time.monotonic() >= deadline:
                raise ScratchError('Scratch server %s is not ready with all of %s (%s): %s.'
                                   % (server, ', '.join(expected), last_problem, log_tail(scratch, server)))
            time.sleep(0.2)
    return ids


def set_password(r, login: dict, port: int) -> str:
    """Give the admin user of a fresh scratch cluster a random password, at once; return it."""
    password = secrets.token_urlsafe(24)
    try:
        with _connect(r, login['host'], port, 'admin', '') as connection:
            r.db('rethinkdb').table('users').get('admin').update(dict(password=password)).run(connection)
    except ReqlError as exc:
        raise ScratchError('Cannot set the admin password of the scratch cluster: %s.' % error_text(exc))
    return password


def write_password(scratch: Scratch, password: str) -> None:
    """The scratch cluster's admin password, for the modules that log in to it, readable by its owner only."""
    descriptor = os.open(scratch.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, 'w', encoding='utf-8') as stream:
        stream.write(password)


def start(commands: Commands, scratch: Scratch, servers: list, options: dict) -> dict:
    """Start the scratch cluster's servers on free ports, wait until they are all connected, and leave a password
    file for its admin; return what the modules need to log in, and each server's ports and pid."""
    r = RethinkDB()
    record = scratch.record()
    if record is None:
        raise ScratchError('There is no scratch cluster %s: make it first (state=present).' % scratch.path)
    if sorted(record.get('servers', [])) != sorted(servers):
        raise ScratchError('Scratch cluster %s has servers %s, not %s.' % (scratch.path, ', '.join(record['servers']), ', '.join(servers)))
    restored = data_state(scratch, servers)
    numbers = free_ports(2 * len(servers), options['bind'])
    ports = dict((server, dict(driver_port=numbers[2 * index], cluster_port=numbers[2 * index + 1])) for index, server in enumerate(servers))
    scratch.write_record(dict(record, ports=ports))
    launch(commands, scratch, servers, ports, options, fresh=not restored)
    login = dict(host=options['bind'], user=options['user'] if restored else 'admin', password=options['password'] if restored else '')
    ids = wait_connected(r, scratch, servers, ports, login, time.monotonic() + options['wait_timeout'])
    password = login['password'] if restored else set_password(r, login, ports[servers[0]]['driver_port'])
    write_password(scratch, password)
    pids = scratch_keeper.server_pids(scratch.path)
    return dict(
        restored=restored,
        servers=[dict(name=server, id=ids[server], pid=pids.get(server), data_dir=scratch.data_dir(server), log_file=scratch.log_file(server),
                      **ports[server]) for server in servers],
        login=dict(login_host=options['bind'], login_port=ports[servers[0]]['driver_port'], login_user=login['user'],
                   login_password_file=scratch.password_file),
    )


def listing(directory: str) -> list:
    """Every scratch cluster under directory, with its record and what of it still runs."""
    clusters = []
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return clusters
    now = time.time()
    for name in names:
        path = os.path.join(directory, name)
        if not os.path.isdir(path) or not NAME_RE.fullmatch(name):
            continue
        record = scratch_keeper.read_record(os.path.join(path, scratch_keeper.RUN_FILE)) or {}
        clusters.append(dict(name=name, path=path, recorded=record.get('path') == path, run=record.get('run'), servers=record.get('servers', []),
                             created_at=record.get('created_at'), expires_at=record.get('expires_at'),
                             expired=now >= record.get('expires_at', 0), ports=record.get('ports', {}),
                             running=sorted(scratch_keeper.server_pids(path)), keeper_running=scratch_keeper.is_process(record.get('keeper'))))
    return clusters
