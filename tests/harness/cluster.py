"""Local RethinkDB clusters for tests, demos and benchmarks: N server processes on loopback ports.

The servers are the ReQL test server (tests/reql_server) by default, or real `rethinkdb` binaries when the
environment names one in RETHINKDB_BIN; both get the same flags. Everything a cluster creates (data directories,
pid files, logs, inventory, password file) lives under its root directory, unless the caller puts a node's data
directory elsewhere on purpose (snapshot tests put them on btrfs subvolumes or XFS mounts).

    with Cluster(tmp_path, size=3) as cluster:        # started, all servers connected to each other
        connection = cluster.connect()                 # driver connection to node1
        cluster.stop_node('node3'); cluster.start_node('node3')
        inventory_path = cluster.write_inventory()
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ansible_collections.bigchaindb.rethinkdb.tests.harness import stop_server

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_SERVER = REPO_ROOT / 'tests' / 'reql_server' / 'rethinkdb'
STOP_SCRIPT = REPO_ROOT / 'tests' / 'harness' / 'stop_server.py'
HOST = '127.0.0.1'
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def wait_for(check, timeout: float = 20.0, interval: float = 0.1):
    """Poll `check()` until it returns a truthy value (returned) or the timeout passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError('condition not reached within %.0f seconds; last value: %r' % (timeout, result))
        time.sleep(interval)


def server_binary() -> list:
    """argv prefix that runs a server: the RETHINKDB_BIN binary, or the test server under this Python."""
    binary = os.environ.get('RETHINKDB_BIN')
    if binary:
        return [binary]
    return [sys.executable, str(TEST_SERVER)]


def uses_real_server() -> bool:
    """Whether RETHINKDB_BIN selects real RethinkDB binaries."""
    return bool(os.environ.get('RETHINKDB_BIN'))


def free_ports(count: int, host: str = HOST) -> list:
    """`count` distinct TCP ports free on `host` right now."""
    sockets = []
    try:
        for _attempt in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class ClusterNode:
    """One server of a cluster: its name, ports, directories and how to start and stop it."""

    def __init__(self, cluster: Cluster, index: int, driver_port: int, cluster_port: int, data_dir: Path,
                 tags: list, cache_size: str | None = None):
        self.cluster = cluster
        self.index = index
        self.name = 'node%d' % index
        self.driver_port = driver_port
        self.cluster_port = cluster_port
        self.data_dir = Path(data_dir)
        self.tags = list(tags)
        self.cache_size = cache_size
        self.pid_file = cluster.root / 'run' / ('%s.pid' % self.name)
        self.log_file = cluster.root / 'logs' / ('%s.log' % self.name)

    def start_command(self) -> list:
        """argv that starts this server as a daemon (returns once it is launched).

        node1 joins no one, so a new cluster gets the `test` database like a first `rethinkdb` does; the other
        nodes join every other node, so any of them can come back alone.
        """
        command = server_binary() + [
            '--directory', str(self.data_dir),
            '--bind', self.cluster.host,
            '--driver-port', str(self.driver_port),
            '--cluster-port', str(self.cluster_port),
            '--no-http-admin',
            '--no-update-check',
            '--server-name', self.name,
            '--pid-file', str(self.pid_file),
            '--log-file', str(self.log_file),
            '--daemon',
        ]
        if self.cluster.password is not None:
            command += ['--initial-password', self.cluster.password]
        for tag in self.tags:
            command += ['--server-tag', tag]
        if self.cache_size is not None:
            command += ['--cache-size', str(self.cache_size)]
        if self.index > 1:
            for other in self.cluster.nodes:
                if other is not self:
                    command += ['--join', '%s:%d' % (self.cluster.host, other.cluster_port)]
        return command

    def stop_command(self) -> list:
        """argv that stops this server and waits until it has exited."""
        return [sys.executable, str(STOP_SCRIPT), str(self.pid_file), str(int(STOP_TIMEOUT))]

    def pid(self) -> int | None:
        """The running server's pid, or None."""
        pid = stop_server.read_pid(str(self.pid_file))
        if pid is not None and stop_server.process_alive(pid) and self._owns(pid):
            return pid
        return None

    def _owns(self, pid: int) -> bool:
        """Whether a pid is this node's server (its command line names our data directory)."""
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as handle:
                return str(self.data_dir).encode() in handle.read()
        except OSError:
            return False

    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.pid() is not None

    def start(self) -> None:
        """Launch the server (it daemonizes); does not wait for it to answer."""
        if self.running():
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.pop('RETHINKDB_DRIVER_PORT', None)
        completed = subprocess.run(self.start_command(), env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                   text=True, timeout=START_TIMEOUT, check=False)
        if completed.returncode != 0:
            raise RuntimeError('%s did not start (exit %d): %s%s' % (
                self.name, completed.returncode, completed.stderr.strip(), self.log_tail()))
        self._wait_launched()

    def _wait_launched(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the pid file names the daemon: a real `rethinkdb --daemon` returns before writing it, and
        a cluster that counted its servers by pid file then would wait for fewer servers than it started."""
        deadline = time.monotonic() + timeout
        while self.pid() is None:
            if time.monotonic() >= deadline:
                raise RuntimeError('%s wrote no pid file within %.0f seconds%s' % (self.name, timeout, self.log_tail()))
            time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the server and wait until it has exited."""
        if self.pid() is None:
            return
        if not stop_server.stop(str(self.pid_file), timeout):
            raise RuntimeError('%s did not stop within %.0f seconds' % (self.name, timeout))

    def kill(self) -> None:
        """SIGKILL the server if it runs (teardown of leftovers)."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            stop_server.wait_gone(pid, 10)

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log, for error messages."""
        for path in (self.log_file, self.data_dir / 'log_file'):
            try:
                text = path.read_text(errors='replace')
            except OSError:
                continue
            return '\n--- %s ---\n%s' % (path, '\n'.join(text.splitlines()[-lines:]))
        return ''


class Cluster:
    """N servers on loopback joined into one cluster, rooted at a directory of their own."""

    def __init__(self, root, size: int = 3, password: str | None = None, tags: dict | None = None,
                 data_dirs: dict | None = None, host: str = HOST, cache_sizes: dict | None = None):
        """`tags`, `data_dirs` and `cache_sizes` map node names ('node1'...) to server tags, data directory paths
        and `--cache-size` values (megabytes or 'auto'; the flag is left out for a node not named)."""
        self.root = Path(root).resolve()
        self.size = size
        self.password = password
        self.host = host
        self.root.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * size, host)
        tags = tags or {}
        data_dirs = data_dirs or {}
        cache_sizes = cache_sizes or {}
        self.nodes = []
        for index in range(1, size + 1):
            name = 'node%d' % index
            data_dir = Path(data_dirs.get(name, self.root / 'data' / name))
            self.nodes.append(ClusterNode(self, index, ports[2 * index - 2], ports[2 * index - 1], data_dir,
                                          tags.get(name, []), cache_sizes.get(name)))
        self._teardown_registered = False
        self.password_file = None
        if password is not None:
            self.password_file = self.root / 'password'
            self.password_file.write_text(password + '\n')
            self.password_file.chmod(0o600)

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.teardown()

    def node(self, name) -> ClusterNode:
        """A node by name ('node2') or 1-based index."""
        for node in self.nodes:
            if name in (node.name, node.index):
                return node
        raise KeyError(name)

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start every server and wait until each answers and sees all the others.

        The servers are also stopped when this Python process exits, should the caller not get to teardown().
        """
        if not self._teardown_registered:
            atexit.register(self.teardown)
            self._teardown_registered = True
        for node in self.nodes:
            node.start()
        self.wait_connected(timeout)

    def stop(self) -> None:
        """Stop every running server (each waited for)."""
        for node in self.nodes:
            node.stop()

    def start_node(self, name, wait: bool = True, timeout: float = START_TIMEOUT) -> ClusterNode:
        """Start one server; with `wait`, until the whole cluster is connected again."""
        node = self.node(name)
        node.start()
        if wait:
            self.wait_connected(timeout)
        return node

    def stop_node(self, name, timeout: float = STOP_TIMEOUT) -> ClusterNode:
        """Stop one server and wait until its process has exited."""
        node = self.node(name)
        node.stop(timeout)
        return node

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Stop all servers, then start them all again."""
        self.stop()
        self.start(timeout)

    def teardown(self) -> None:
        """Stop the servers, killing any that will not stop; safe to call after a failed test."""
        for node in self.nodes:
            try:
                node.stop(timeout=15)
            except RuntimeError:
                node.kill()

    def connect(self, name=1, timeout: float = 10.0, **options):
        """A driver connection to a node (with the cluster's password)."""
        from rethinkdb import RethinkDB
        node = self.node(name)
        return RethinkDB().connect(host=self.host, port=node.driver_port, password=self.password or '',
                                   timeout=timeout, **options)

    def running_nodes(self) -> list:
        """The nodes whose server runs."""
        return [node for node in self.nodes if node.running()]

    def wait_connected(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until every running server answers queries and knows every running server as table placement does.

        A real server places replicas on the servers its server_config_client knows, which can lag behind the rows
        of `server_status`; that client is also what fills `network.connected_to`. So each server must list all
        running servers in `server_status`, each of them connected to all the others.
        """
        from rethinkdb import RethinkDB
        from rethinkdb.errors import ReqlError
        r = RethinkDB()
        deadline = time.monotonic() + timeout
        expected = sorted(node.name for node in self.running_nodes())
        pending = list(self.running_nodes())
        last_error = 'no answer'
        while pending:
            node = pending[0]
            try:
                with self.connect(node.name, timeout=2) as connection:
                    rows = list(r.db('rethinkdb').table('server_status').pluck('name', {'network': 'connected_to'})
                                .run(connection))
                seen = {row['name']: row['network']['connected_to'] for row in rows}
                if sorted(seen) == expected and all(connected.get(other) is True for name, connected in seen.items()
                                                    for other in expected if other != name):
                    pending.pop(0)
                    continue
                last_error = '%s sees %s, not all of %s connected' % (node.name, seen, expected)
            except (ReqlError, OSError) as error:
                last_error = '%s: %s' % (node.name, error)
            if time.monotonic() >= deadline:
                raise RuntimeError('cluster not ready after %.0f seconds: %s%s' % (timeout, last_error, node.log_tail()))
            time.sleep(0.1)

    def inventory(self, group: str = 'rethinkdb') -> dict:
        """The Ansible inventory of the cluster (see `inventory()`)."""
        return inventory(self.nodes, group=group, password_file=self.password_file)

    def write_inventory(self, path=None, group: str = 'rethinkdb') -> Path:
        """Write the inventory as YAML (default: <root>/inventory.yml) and return its path."""
        import yaml
        path = Path(path) if path is not None else self.root / 'inventory.yml'
        path.write_text(yaml.safe_dump(self.inventory(group), default_flow_style=False, sort_keys=False))
        return path


def host_vars(node: ClusterNode) -> dict:
    """The inventory variables of one node."""
    return {
        'ansible_connection': 'local',
        'ansible_python_interpreter': sys.executable,
        'rethinkdb_server_name': node.name,
        'rethinkdb_data_dir': str(node.data_dir),
        'rethinkdb_driver_port': node.driver_port,
        'rethinkdb_cluster_port': node.cluster_port,
        'rethinkdb_start_command': node.start_command(),
        'rethinkdb_stop_command': node.stop_command(),
    }


def inventory(nodes: list, group: str = 'rethinkdb', password_file=None) -> dict:
    """An Ansible inventory: group `group` with one host per node and its variables."""
    group_vars = {}
    if password_file is not None:
        group_vars['rethinkdb_login_password_file'] = str(password_file)
    group_entry: dict = {'hosts': {node.name: host_vars(node) for node in nodes}}
    if group_vars:
        group_entry['vars'] = group_vars
    return {'all': {'children': {group: group_entry}}}
