"""The `rethinkdb [serve]` command line: the real flags, the real messages for bad ones, --daemon, the pid file,
the log file, and SIGTERM / SIGINT handling."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import sys
import time

from .node import Options
from .protocol import VERSION_STRING
from .server import Server

# Flags taking a value, by every name they have; the value is the Options field (None: accepted and ignored).
VALUE_FLAGS = {
    '--directory': 'directory', '-d': 'directory',
    '--bind': 'bind', '--bind-driver': 'bind', '--bind-cluster': 'bind', '--bind-http': None,
    '--driver-port': 'driver_port', '--cluster-port': 'cluster_port', '--http-port': 'http_port',
    '--port-offset': 'port_offset', '-o': 'port_offset',
    '--server-name': 'server_name', '-n': 'server_name',
    '--server-tag': 'server_tags', '-t': 'server_tags',
    '--join': 'join', '-j': 'join',
    '--pid-file': 'pid_file', '--log-file': 'log_file',
    '--initial-password': 'initial_password',
    '--canonical-address': 'canonical_addresses',
    '--cache-size': 'cache_size', '--io-threads': None, '--cores': None, '-c': None, '--runuser': None, '--rungroup': None,
    '--direct-io': None, '--join-delay': None, '--cluster-reconnect-timeout': None, '--web-static-directory': None,
}
UNSUPPORTED_FLAGS = ('--http-tls-key', '--http-tls-cert', '--driver-tls-key', '--driver-tls-cert', '--driver-tls-ca',
                     '--cluster-tls-key', '--cluster-tls-cert', '--cluster-tls-ca', '--tls-min-protocol',
                     '--tls-ciphers', '--tls-ecdh-curve', '--tls-dhparams', '--config-file')
BOOLEAN_FLAGS = {'--daemon': 'daemon', '--no-http-admin': 'no_http_admin', '--no-update-check': None,
                 '--no-default-bind': None}
REPEATABLE = {'bind', 'server_tags', 'join', 'canonical_addresses'}
INTEGER = {'driver_port', 'cluster_port', 'http_port', 'port_offset'}


class UsageError(Exception):
    """A bad command line, with the real server's message."""


def parse(argv: list) -> dict:
    """Flags into a dict of Options fields (plus daemon / pid_file / log_file)."""
    values: dict = {'bind': [], 'server_tags': [], 'join': [], 'canonical_addresses': []}
    arguments = list(argv)
    if arguments and arguments[0] == 'serve':
        arguments.pop(0)
    position = 0
    while position < len(arguments):
        flag = arguments[position]
        value = None
        if flag.startswith('--') and '=' in flag:
            flag, value = flag.split('=', 1)
        if flag in UNSUPPORTED_FLAGS:
            raise UsageError("Option '%s' is not supported by the ReQL test server (no TLS, no config file)." % flag)
        if flag in BOOLEAN_FLAGS:
            if BOOLEAN_FLAGS[flag]:
                values[BOOLEAN_FLAGS[flag]] = True
            position += 1
            continue
        if flag not in VALUE_FLAGS:
            if not flag.startswith('-'):
                raise UsageError("Unexpected positional parameter '%s' (did you forget the '--' before an option?)."
                                 % flag)
            raise UsageError("Unrecognized option '%s'." % flag)
        if value is None:
            if position + 1 >= len(arguments):
                raise UsageError("Option '%s' is missing its parameter." % flag)
            value = arguments[position + 1]
            position += 2
        else:
            position += 1
        field = VALUE_FLAGS[flag]
        if field is None:
            continue
        if field == 'cache_size':
            value = _cache_size(value)
        if field in INTEGER:
            try:
                value = int(value)
            except ValueError:
                raise UsageError("Option '%s' expects an integer, got '%s'." % (flag, value)) from None
        if field in REPEATABLE:
            values[field].append(value)
        elif field in values:
            raise UsageError("Option '%s' specified too many times." % flag)
        else:
            values[field] = value
    return values


def _cache_size(text: str):
    """`--cache-size`: 'auto' or a whole number of megabytes, as the real server takes it."""
    if text == 'auto':
        return text
    if not text.isdigit():
        raise UsageError("ERROR: cache-size should be a number or 'auto', got '%s'" % text)
    return int(text)


def options_from(values: dict, argv: list) -> Options:
    """Options with the real defaults (ports 28015 / 29015 / 8080 plus --port-offset)."""
    offset = values.get('port_offset', 0)
    http_port = None if values.get('no_http_admin') else values.get('http_port', 8080 + offset)
    return Options(
        directory=os.path.abspath(values.get('directory', 'rethinkdb_data')),
        bind=values['bind'] or ['127.0.0.1'],
        driver_port=values.get('driver_port', 28015 + offset),
        cluster_port=values.get('cluster_port', 29015 + offset),
        http_port=http_port,
        server_name=values.get('server_name'),
        server_tags=values['server_tags'],
        join=values['join'],
        initial_password=values.get('initial_password'),
        canonical_addresses=values['canonical_addresses'],
        cache_size=values.get('cache_size'),
        argv=[os.path.abspath(sys.argv[0])] + list(argv),
    )


def _configure_logging(path: str) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s: %(message)s'))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _daemonize() -> None:
    """Detach from the launching process: new session, second fork, stdio on /dev/null."""
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir('/')
    null = os.open(os.devnull, os.O_RDWR)
    for descriptor in (0, 1, 2):
        os.dup2(null, descriptor)
    os.close(null)


def main(argv: list | None = None) -> int:
    """Run the server until SIGTERM or SIGINT; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ('--version', '-v', 'version'):
        print(VERSION_STRING)
        return 0
    try:
        values = parse(argv)
    except UsageError as error:
        sys.stderr.write("Error in command line: %s\nRun 'rethinkdb help' for help on the command\n" % error)
        return 1
    if values.get('initial_password') == 'auto':
        values['initial_password'] = secrets.token_urlsafe(24)
        print('Generated random admin password: %s' % values['initial_password'])
    options = options_from(values, argv)
    os.makedirs(options.directory, exist_ok=True)
    pid_file = os.path.abspath(values['pid_file']) if values.get('pid_file') else None
    log_file = os.path.abspath(values.get('log_file') or os.path.join(options.directory, 'log_file'))
    ready_read, ready_write = os.pipe()
    if values.get('daemon'):
        if os.fork() > 0:
            os.close(ready_write)
            return _wait_ready(ready_read)
        os.close(ready_read)
        _daemonize()
    else:
        os.close(ready_read)
    _configure_logging(log_file)
    try:
        server = Server(options)
        server.start()
    except OSError as error:
        logging.getLogger('reql_server').error('Could not start: %s', error)
        sys.stderr.write('Could not bind to port: %s\n' % error)
        _signal_ready(ready_write, b'0')
        return 1
    if pid_file:
        with open(pid_file, 'w', encoding='ascii') as handle:
            handle.write('%d\n' % os.getpid())
    stop_requested = []

    def request_stop(_signum, _frame):
        stop_requested.append(True)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    _signal_ready(ready_write, b'1')
    while not stop_requested:
        time.sleep(0.05)
    server.stop()
    if pid_file and os.path.exists(pid_file):
        os.remove(pid_file)
    return 0


def _signal_ready(descriptor: int, status: bytes) -> None:
    with contextlib.suppress(OSError):
        os.write(descriptor, status)
        os.close(descriptor)


def _wait_ready(descriptor: int) -> int:
    """In the launching process of --daemon: exit 0 once the server listens, 1 if it failed."""
    status = b''
    try:
        status = os.read(descriptor, 1)
    finally:
        os.close(descriptor)
    return 0 if status == b'1' else 1
