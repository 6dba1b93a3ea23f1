# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rethinkdb-follower: the continuous backup of a RethinkDB cluster's append-only tables (docs/continuous-backup.md).

    PYTHONPATH=<where ansible_collections/ is> python3 rethinkdb_follower.py --config /etc/.../cluster.json

The follower role installs this program with the collection's module_utils it imports and runs it as a systemd
service (or, for hosts without systemd, with --daemon); the tests and the demo start it directly. Its settings come
from the configuration file alone, never from the command line, so that no secret is in argv. SIGTERM seals what
is open and stops it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.follower import ConfigError, follow, load_config
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import RepositoryError

PROGRAM = 'rethinkdb_follower.py'


class ToolRunner:
    """Runs a tool (`rethinkdb dump`, when the follower takes a base set) the way AnsibleModule.run_command does:
    an argv list, no shell, output captured."""

    @staticmethod
    def run_command(argv: list, environ_update: dict | None = None) -> tuple:
        environment = dict(os.environ, **(environ_update or {}))
        completed = subprocess.run(argv, env=environment, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
        return completed.returncode, completed.stdout, completed.stderr


def daemonize(pid_file: str, log_file: str) -> None:
    """Detach (setsid, double fork, stdio to the log) for hosts without systemd; the parent exits once the pid file
    names the daemon."""
    read_end, write_end = os.pipe()
    if os.fork():
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            started = pipe.read()
        if started != 'ok':
            sys.stderr.write('the follower did not start: see %s\n' % log_file)
            os._exit(1)
        os._exit(0)
    os.close(read_end)
    os.setsid()
    if os.fork():
        os._exit(0)
    output = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    with open(pid_file + '.tmp', 'w', encoding='utf-8') as stream:
        stream.write('%d\n' % os.getpid())
    os.replace(pid_file + '.tmp', pid_file)
    os.write(write_end, b'ok')
    os.close(write_end)


def running_pid(pid_file: str, config_path: str) -> int | None:
    """The pid of the daemon a pid file names, if it runs and is the follower of this configuration."""
    try:
        with open(pid_file, encoding='utf-8') as stream:
            pid = int(stream.read().strip())
        with open('/proc/%d/cmdline' % pid, 'rb') as stream:
            command = stream.read().split(b'\0')
    except (OSError, ValueError):
        return None
    named = any(part.endswith(PROGRAM.encode()) for part in command)
    return pid if named and os.fsencode(config_path) in command else None


def stop_daemon(pid_file: str, config_path: str, timeout: float = 120.0) -> bool:
    """SIGTERM the daemon (it seals what is open) and wait until it has exited; False if it did not in time."""
    pid = running_pid(pid_file, config_path)
    if pid is None:
        return True
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running_pid(pid_file, config_path) == pid:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def parse_arguments(argv: list | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='rethinkdb-follower', description='Continuous backup of append-only RethinkDB tables.')
    parser.add_argument('--config', required=True, help='the JSON configuration file')
    parser.add_argument('--check-config', action='store_true', help='check the configuration and exit')
    parser.add_argument('--daemon', action='store_true', help='detach (for hosts without systemd)')
    parser.add_argument('--running', action='store_true', help='with --pid-file: exit 0 if the daemon runs, 3 if not')
    parser.add_argument('--stop', action='store_true', help='with --pid-file: stop the daemon and wait until it has exited')
    parser.add_argument('--pid-file', help="with --daemon, --running or --stop: the daemon's pid file")
    parser.add_argument('--log-file', help='with --daemon, where the log goes')
    return parser.parse_args(argv)


def main(argv: list | None = None) -> int:
    arguments = parse_arguments(argv)
    config_path = os.path.abspath(arguments.config)
    if (arguments.running or arguments.stop or arguments.daemon) and not arguments.pid_file:
        sys.stderr.write('rethinkdb-follower: --daemon, --running and --stop need --pid-file\n')
        return 2
    if arguments.running:
        return 0 if running_pid(arguments.pid_file, config_path) else 3
    if arguments.stop:
        return 0 if stop_daemon(arguments.pid_file, config_path) else 1
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    logging.getLogger('botocore').setLevel(logging.WARNING)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        sys.stderr.write('rethinkdb-follower: %s\n' % exc)
        return 2
    if arguments.check_config:
        sys.stdout.write('configuration %s: cluster %s, repository %s, tables %s\n' % (
            config_path, config['cluster'], config['repository'], ', '.join(config['tables'])))
        return 0
    if arguments.daemon:
        if not arguments.log_file:
            sys.stderr.write('rethinkdb-follower: --daemon needs --log-file\n')
            return 2
        daemonize(arguments.pid_file, arguments.log_file)
    try:
        return follow(config, ToolRunner())
    except (ConfigError, RepositoryError) as exc:
        logging.getLogger('rethinkdb-follower').error('cannot start: %s', exc)
        return 2


if __name__ == '__main__':
    sys.exit(main())
