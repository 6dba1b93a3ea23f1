"""A lab of RethinkDB nodes reached over SSH, for integration tests (root only): a controller network namespace
and N node namespaces on a bridge, each node with its own `sshd` and its own server.

    with Lab(size=3) as lab:                          # namespaces, sshd, servers up, cluster connected
        inventory = lab.write_inventory(rethinkdb_backup_root='/srv/backups')
        subprocess.run(lab.controller_argv() + ['ansible-playbook', '-i', str(inventory), 'site.yml'])
        with lab.connect('node2') as connection: ...  # driver connection made inside node2's namespace
        lab.partition('node3'); lab.heal('node3')     # its link down and up
        lab.stop_sshd('node1'); lab.start_sshd('node1')
        lab.stop_server('node2'); lab.start_server('node2')
        lab.run('node1', ['ls', '-l', str(lab.node('node1').data_dir)])   # a command on the node, as root
    assert not lab.leftovers()

Layout. The controller namespace holds a bridge with 10.231.0.1/24; node N's namespace holds `eth0` with
10.231.0.(10+N)/24, a veth whose other end is a port of that bridge. Nothing is added to the machine's own
namespace, so the same addresses serve every lab at once; the namespaces' names carry the run's id. A node
runs `sshd` (Debian's openssh-server) on port 22 of its address with a host key, config and authorized key
file of the lab's own (the machine's /etc/ssh is not used), and a RethinkDB server (the ReQL test server, or
RETHINKDB_BIN) on its default ports 28015 / 29015, bound to loopback and its address, so that a login to
localhost:28015 on the node reaches that node's server. `ansible-playbook` runs inside the controller
namespace (`controller_argv()`), with an inventory whose hosts are reached over SSH as the lab user with
`become: true`.

Users (created once, kept, shared by every lab; creation is serialized by a lock file, so concurrent runs do not
collide): `rdblab` logs in over SSH with the lab's key and may run anything through sudo without a password;
`rdblab-db` runs the servers and owns their data, pid and log directories (mode 0750), so a task has to
`become` to touch them, as on a real fleet. Passwordless sudo, because the account is shared by runs that
happen at the same time, and a password on it would be one every run knows (no secret), or one that each run
changes under the others; the account has no password and no key of its own, and only a lab's sshd, which
exists only while a test runs and only inside the lab's namespaces, lets anyone in.

The hosts run modules with the node Python of tools/bootstrap (.build/node-venv: Debian's python3 and the
modules' requirements), not the controller's virtual environment, as on machines of their own.

Commands and mounts: namespaces are entered with `nsenter --net` only (tests/harness/netns), so every process
shares the machine's mount namespace and a node's data directory may live on its own btrfs loop filesystem
(`data_fs='btrfs'`: a subvolume `rethinkdb` on it, the data directory `rethinkdb/default` inside, like
cluster-wide snapshot tests use). The servers share the machine's hostname; the inventory names the nodes.

Teardown (also after a failure, and at exit): servers stopped, every process left in the lab's namespaces
ended, namespaces (and with them the bridge and veths) deleted, loop filesystems unmounted and detached,
the lab's directory removed.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import secrets
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from ansible_collections.bigchaindb.rethinkdb.tests.harness import loopfs, netns, stop_server
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import REPO_ROOT, STOP_SCRIPT, TEST_SERVER, uses_real_server

SSH_USER = 'rdblab'
SERVICE_USER = 'rdblab-db'
SUDOERS_FILE = Path('/etc/sudoers.d/rethinkdb-lab')
LAB_LOCK = Path('/run/lock/rethinkdb-lab.lock')
REGISTRY = Path('/run/rethinkdb-lab')
SSHD = '/usr/sbin/sshd'
SFTP_SERVER = '/usr/lib/openssh/sftp-server'
NODE_PYTHON = REPO_ROOT / '.build' / 'node-venv' / 'bin' / 'python'
SUBNET_PREFIX = '10.231.0.'
PREFIX_LENGTH = 24
CONTROLLER_ADDRESS = SUBNET_PREFIX + '1'
BRIDGE = 'br0'
DRIVER_PORT = 28015
CLUSTER_PORT = 29015
SSH_PORT = 22
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
TOOLS = ('ip', 'ss', 'nsenter', 'setpriv', 'ssh', 'ssh-keygen', 'sudo', 'visudo', 'useradd', SSHD)


def unavailable(data_fs: str | None = None) -> str | None:
    """Why a lab cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return 'needs root (network namespaces, sshd, users)'
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return 'needs %s (openssh-server, sudo, iproute2: run tools/bootstrap as root)' % ', '.join(missing)
    if not os.access(NODE_PYTHON, os.X_OK):
        return 'needs the node Python %s (run tools/bootstrap as root)' % NODE_PYTHON.relative_to(REPO_ROOT)
    for path in (NODE_PYTHON.parent.parent, TEST_SERVER, Path(os.environ.get('RETHINKDB_BIN') or TEST_SERVER)):
        closed = _closed_ancestor(path)
        if closed:
            return 'the lab users cannot reach %s: %s is not readable and searchable by others' % (path, closed)
    if data_fs:
        return loopfs.unavailable(data_fs)
    return None


def _closed_ancestor(path: Path) -> Path | None:
    """The first directory on the way to `path` that other users cannot search, or None."""
    for directory in reversed(Path(path).resolve().parents):
        if not os.stat(directory).st_mode & stat.S_IXOTH:
            return directory
    return None


def _run(argv: list, **options) -> subprocess.CompletedProcess:
    """Run a set-up command; fail with its own message."""
    completed = subprocess.run(argv, capture_output=True, text=True, check=False, **options)
    if completed.returncode != 0:
        raise RuntimeError('%s exited %d: %s' % (shlex.join(argv), completed.returncode,
                                                 (completed.stderr or completed.stdout).strip()))
    return completed


@contextlib.contextmanager
def _lab_lock():
    """Serialize user and sudoers set-up, and the sweep of dead labs, between labs started at the same moment."""
    LAB_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LAB_LOCK, 'a', encoding='ascii') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _user_exists(name: str) -> bool:
    return subprocess.run(['getent', 'passwd', name], capture_output=True, check=False).returncode == 0


def ensure_users() -> None:
    """The SSH user (passwordless sudo) and the service user, created if missing; idempotent."""
    with _lab_lock():
        if not _user_exists(SERVICE_USER):
            _run(['useradd', '--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent',
                  '--shell', '/usr/sbin/nologin', SERVICE_USER])
        if not _user_exists(SSH_USER):
            # '*': no password to log in with, yet not a locked account (sshd refuses those to any key).
            _run(['useradd', '--create-home', '--user-group', '--shell', '/bin/sh', '--password', '*', SSH_USER])
        rule = '%s ALL=(ALL:ALL) NOPASSWD: ALL\n' % SSH_USER
        if not SUDOERS_FILE.exists() or SUDOERS_FILE.read_text() != rule:
            staged = SUDOERS_FILE.with_name('.' + SUDOERS_FILE.name + '.new')  # sudo skips names with a dot
            staged.write_text(rule)
            staged.chmod(0o440)
            _run(['visudo', '--check', '--quiet', '--file', str(staged)])
            os.replace(staged, SUDOERS_FILE)


def _process_start(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (with the pid, it names one process), or None."""
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as handle:
            return handle.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _register(lab: Lab) -> Path:
    """Note the lab, and the process that owns it, where a later lab finds it should this process die."""
    entry = REGISTRY / (lab.run_id + '.json')
    with _lab_lock():
        REGISTRY.mkdir(mode=0o700, exist_ok=True)
        entry.write_text(json.dumps({'pid': os.getpid(), 'start': _process_start(os.getpid()),
                                     'root': str(lab.root), 'namespaces': lab.namespaces()}))
    return entry


def sweep_dead_labs() -> list:
    """Take down what labs of processes that died without a teardown (SIGKILL, a CI time-out) left behind:
    their namespaces and the processes in them, mounts, loop devices and directories. Returns their roots."""
    swept = []
    with _lab_lock():
        for entry in sorted(REGISTRY.glob('*.json')) if REGISTRY.is_dir() else []:
            owner = json.loads(entry.read_text())
            if _process_start(owner['pid']) == owner['start']:
                continue
            for name in owner['namespaces']:
                netns.delete(name)
            _release_filesystems(Path(owner['root']))
            shutil.rmtree(owner['root'], ignore_errors=True)
            entry.unlink()
            swept.append(owner['root'])
    return swept


def _release_filesystems(root: Path) -> None:
    """Unmount everything mounted under root (deepest first) and detach the loop devices of images in it."""
    with open('/proc/self/mountinfo', encoding='utf-8') as mountinfo:
        mountpoints = [line.split()[4] for line in mountinfo if line.split()[4].startswith(str(root) + '/')]
    for mountpoint in sorted(mountpoints, key=len, reverse=True):
        loopfs.unmount(Path(mountpoint))
    for device, back_file in _loop_devices():
        if back_file.startswith(str(root) + '/'):
            subprocess.run(['losetup', '--detach', device], capture_output=True, check=False)


def _loop_devices() -> list:
    """(device, backing file) of every loop device."""
    listing = subprocess.run(['losetup', '--list', '--noheadings', '--raw', '--output', 'NAME,BACK-FILE'],
                             capture_output=True, text=True, check=False).stdout
    return [tuple(line.split(' ', 1)) for line in listing.splitlines() if ' ' in line]


def _owned_by_service_user(path: Path, mode: int = 0o750) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.chown(path, SERVICE_USER, SERVICE_USER)
    path.chmod(mode)
    return path


class LabNode:
    """One node: its namespace, address, sshd and server, and the commands that start and stop the server."""

    def __init__(self, lab: Lab, index: int, tags: list):
        self.lab = lab
        self.index = index
        self.name = 'node%d' % index
        self.netns = '%s-%s' % (lab.name, self.name)
        self.address = SUBNET_PREFIX + str(10 + index)
        self.veth = self.name  # the bridge port in the controller namespace
        self.dir = lab.root / self.name
        self.sshd_dir = self.dir / 'sshd'
        self.run_dir = self.dir / 'run'
        self.log_dir = self.dir / 'log'
        self.data_parent = self.dir / 'rethinkdb'
        self.tags = list(tags)
        self.sshd: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        """The server's --directory (created by the server itself, as the service user)."""
        return self.data_parent / 'default'

    @property
    def pid_file(self) -> Path:
        return self.run_dir / 'rethinkdb.pid'

    @property
    def log_file(self) -> Path:
        return self.log_dir / 'rethinkdb.log'

    @property
    def host_key(self) -> Path:
        return self.sshd_dir / 'ssh_host_ed25519_key'

    def server_argv(self) -> list:
        """The server run on the node: RETHINKDB_BIN, or the ReQL test server under the node Python."""
        if uses_real_server():
            return [os.environ['RETHINKDB_BIN']]
        return [str(self.lab.node_python), '-B', str(TEST_SERVER)]

    def start_command(self) -> list:
        """argv (run as root on the node) that starts the server as the service user, as a daemon.

        node1 joins no one, so a new cluster gets the `test` database; the others join every other node, so any
        of them can come back alone.
        """
        command = ['setpriv', '--reuid=' + SERVICE_USER, '--regid=' + SERVICE_USER, '--init-groups', '--']
        command += self.server_argv() + [
            '--directory', str(self.data_dir),
            '--bind', '127.0.0.1',
            '--bind', self.address,
            '--canonical-address', '%s:%d' % (self.address, CLUSTER_PORT),
            '--driver-port', str(DRIVER_PORT),
            '--cluster-port', str(CLUSTER_PORT),
            '--no-http-admin',
            '--no-update-check',
            '--server-name', self.name,
            '--pid-file', str(self.pid_file),
            '--log-file', str(self.log_file),
            '--daemon',
        ]
        if self.lab.password is not None:
            command += ['--initial-password', self.lab.password]
        for tag in self.tags:
            command += ['--server-tag', tag]
        if self.index > 1:
            for other in self.lab.nodes:
                if other is not self:
                    command += ['--join', '%s:%d' % (other.address, CLUSTER_PORT)]
        return command

    def stop_command(self) -> list:
        """argv (run as root on the node) that stops the server and waits until it has exited."""
        return [str(self.lab.node_python), '-B', str(STOP_SCRIPT), str(self.pid_file), str(int(STOP_TIMEOUT))]

    def pid(self) -> int | None:
        """The running server's pid, or None."""
        pid = stop_server.read_pid(str(self.pid_file))
        if pid is None or not stop_server.process_alive(pid):
            return None
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as handle:
                return pid if str(self.data_dir).encode() in handle.read() else None
        except OSError:
            return None

    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.pid() is not None

    def host_vars(self) -> dict:
        """The inventory variables of this node: SSH as the lab user with become, and what cluster.py gives."""
        lab = self.lab
        ssh_args = ['-o', 'UserKnownHostsFile=%s' % lab.known_hosts, '-o', 'IdentitiesOnly=yes',
                    '-o', 'ConnectTimeout=5', '-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=2']
        return {
            'ansible_connection': 'ssh',
            'ansible_host': self.address,
            'ansible_port': SSH_PORT,
            'ansible_user': SSH_USER,
            'ansible_become': True,
            'ansible_ssh_private_key_file': str(lab.private_key),
            'ansible_ssh_common_args': shlex.join(ssh_args),
            'ansible_control_path_dir': str(lab.control_path_dir),
            'ansible_python_interpreter': str(lab.node_python),
            'rethinkdb_server_name': self.name,
            'rethinkdb_data_dir': str(self.data_dir),
            'rethinkdb_driver_port': DRIVER_PORT,
            'rethinkdb_cluster_port': CLUSTER_PORT,
            'rethinkdb_start_command': self.start_command(),
            'rethinkdb_stop_command': self.stop_command(),
        }

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log, for error messages."""
        try:
            text = self.log_file.read_text(errors='replace')
        except OSError:
            return ''
        return '\n--- %s ---\n%s' % (self.log_file, '\n'.join(text.splitlines()[-lines:]))


class Lab:
    """A controller namespace and N node namespaces on a bridge, each node with sshd and a RethinkDB server."""

    def __init__(self, size: int = 3, data_fs: str | None = None, fs_megabytes: int = 300,
                 password: str | None = None, tags: dict | None = None, parent=None, node_python=None):
        """`data_fs`: None (plain directories) or 'btrfs' (a loop filesystem per node); `tags` maps node names
        to server tags; `parent` is where the lab's directory is made (default: the system's temp directory)."""
        self.run_id = secrets.token_hex(4)
        self.name = 'rdblab-' + self.run_id
        self.controller_netns = self.name + '-ctl'
        self.controller_address = CONTROLLER_ADDRESS
        self.size = size
        self.data_fs = data_fs
        self.fs_megabytes = fs_megabytes
        self.password = password
        self.node_python = Path(node_python or NODE_PYTHON)
        self.root = Path(tempfile.mkdtemp(prefix='rethinkdb-lab-%s-' % self.run_id, dir=parent)).resolve()
        self.root.chmod(0o755)
        self.ssh_dir = self.root / 'ssh'
        self.private_key = self.ssh_dir / 'id_ed25519'
        self.known_hosts = self.ssh_dir / 'known_hosts'
        self.control_path_dir = self.ssh_dir / 'control'
        self.authorized_keys = self.root / 'authorized_keys'
        self.password_file = self.root / 'password' if password is not None else None
        tags = tags or {}
        self.nodes = [LabNode(self, index, tags.get('node%d' % index, [])) for index in range(1, size + 1)]
        self.s3_urls: list = []
        self._mounts = contextlib.ExitStack()
        self._namespace_inodes: list = []
        self._registry_entry: Path | None = None
        self._torn_down = False
        atexit.register(self.teardown)

    def __enter__(self) -> Lab:
        try:
            self.launch()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.teardown()

    def namespaces(self) -> list:
        """The names of the lab's network namespaces: the controller's, then the nodes'."""
        return [self.controller_netns] + [node.netns for node in self.nodes]

    def node(self, name) -> LabNode:
        """A node by name ('node2'), 1-based index, or itself."""
        for node in self.nodes:
            if name in (node.name, node.index, node):
                return node
        raise KeyError(name)

    # -- set-up

    def launch(self) -> None:
        """Users, keys, directories, namespaces and links, sshd and servers; returns once the cluster is whole."""
        sweep_dead_labs()
        ensure_users()
        self._registry_entry = _register(self)
        Path('/run/sshd').mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self._make_keys()
        self._make_network()
        for node in self.nodes:
            self._prepare_node(node)
            self.start_sshd(node)
        self._write_known_hosts()
        for node in self.nodes:
            self.start_server(node, wait=False)
        self.wait_connected()

    def _make_keys(self) -> None:
        self.ssh_dir.mkdir(mode=0o700)
        self.control_path_dir.mkdir(mode=0o700)
        _run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', self.name, '-f', str(self.private_key)])
        shutil.copyfile(self.private_key.with_suffix('.pub'), self.authorized_keys)
        self.authorized_keys.chmod(0o644)
        if self.password_file is not None:
            descriptor = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, 'w', encoding='utf-8') as handle:
                handle.write(self.password + '\n')

    def _make_network(self) -> None:
        for name in self.namespaces():
            netns.create(name)
            self._namespace_inodes.append(netns.inode(name))
        netns.ip(self.controller_netns, 'link', 'add', BRIDGE, 'type', 'bridge', 'forward_delay', '0')
        netns.ip(self.controller_netns, 'addr', 'add', '%s/%d' % (self.controller_address, PREFIX_LENGTH),
                 'dev', BRIDGE)
        netns.ip(self.controller_netns, 'link', 'set', BRIDGE, 'up')
        for node in self.nodes:
            netns.ip(node.netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', node.veth,
                     'netns', self.controller_netns)
            netns.ip(self.controller_netns, 'link', 'set', node.veth, 'master', BRIDGE, 'up')
            netns.ip(node.netns, 'addr', 'add', '%s/%d' % (node.address, PREFIX_LENGTH), 'dev', 'eth0')
            netns.ip(node.netns, 'link', 'set', 'eth0', 'up')

    def _prepare_node(self, node: LabNode) -> None:
        node.dir.mkdir(mode=0o755)
        node.sshd_dir.mkdir(mode=0o700)
        _run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', node.name, '-f', str(node.host_key)])
        (node.sshd_dir / 'sshd_config').write_text(self._sshd_config(node))
        _owned_by_service_user(node.run_dir, 0o755)
        _owned_by_service_user(node.log_dir)
        if self.data_fs:
            mountpoint = self._mounts.enter_context(
                loopfs.loop_filesystem(node.dir / self.data_fs, self.data_fs, self.fs_megabytes))
            node.data_parent = mountpoint / 'rethinkdb'
            if self.data_fs == 'btrfs':
                _run(['btrfs', 'subvolume', 'create', str(node.data_parent)])
        _owned_by_service_user(node.data_parent)

    def _sshd_config(self, node: LabNode) -> str:
        # StrictModes is off because the authorized keys file lives under the system temp directory, which is
        # world-writable (sticky); the file itself is root's and read-only to others.
        options = [
            ('ListenAddress', '%s:%d' % (node.address, SSH_PORT)),
            ('HostKey', node.host_key),
            ('PidFile', node.sshd_dir / 'sshd.pid'),
            ('AuthorizedKeysFile', self.authorized_keys),
            ('AllowUsers', SSH_USER),
            ('PermitRootLogin', 'no'),
            ('PubkeyAuthentication', 'yes'),
            ('PasswordAuthentication', 'no'),
            ('KbdInteractiveAuthentication', 'no'),
            ('UsePAM', 'no'),
            ('StrictModes', 'no'),
            ('PrintMotd', 'no'),
            ('MaxSessions', '50'),
            ('MaxStartups', '50:30:100'),
            ('Subsystem', 'sftp %s' % SFTP_SERVER),
        ]
        return ''.join('%s %s\n' % (key, value) for key, value in options)

    def _write_known_hosts(self) -> None:
        lines = []
        for node in self.nodes:
            key_type, key = node.host_key.with_suffix('.pub').read_text().split()[:2]
            lines.append('%s %s %s\n' % (node.address, key_type, key))
        self.known_hosts.write_text(''.join(lines))

    # -- inventory and commands

    def inventory(self, group: str = 'rethinkdb', **group_vars) -> dict:
        """The Ansible inventory: group `group` with one SSH host per node, and these extra group variables."""
        variables = dict(group_vars)
        if self.password_file is not None:
            variables.setdefault('rethinkdb_login_password_file', str(self.password_file))
        entry: dict = {'hosts': {node.name: node.host_vars() for node in self.nodes}}
        if variables:
            entry['vars'] = variables
        return {'all': {'children': {group: entry}}}

    def write_inventory(self, path=None, group: str = 'rethinkdb', **group_vars) -> Path:
        """Write the inventory as YAML (default: <lab>/inventory.yml) and return its path."""
        import yaml
        path = Path(path) if path is not None else self.root / 'inventory.yml'
        path.write_text(yaml.safe_dump(self.inventory(group, **group_vars), default_flow_style=False,
                                       sort_keys=False))
        return path

    def controller_argv(self) -> list:
        """argv prefix that runs a command (ansible-playbook) inside the controller namespace."""
        return netns.enter_argv(self.controller_netns)

    def run(self, node, argv: list, user: str | None = None, check: bool = True, timeout: float = 120,
            **options) -> subprocess.CompletedProcess:
        """Run a command inside a node's namespace, as root or as `user`; text output captured."""
        prefix = netns.enter_argv(self.node(node).netns)
        if user is not None:
            prefix += ['setpriv', '--reuid=' + user, '--regid=' + user, '--init-groups', '--']
        return self._command(prefix + list(argv), check, timeout, **options)

    def run_controller(self, argv: list, check: bool = True, timeout: float = 600,
                       **options) -> subprocess.CompletedProcess:
        """Run a command inside the controller namespace, as root."""
        return self._command(self.controller_argv() + list(argv), check, timeout, **options)

    def ssh(self, node, argv: list, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command on a node over SSH as the lab user, from the controller namespace."""
        node = self.node(node)
        command = ['ssh', '-i', str(self.private_key), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
                   '-o', 'StrictHostKeyChecking=yes', '-o', 'UserKnownHostsFile=%s' % self.known_hosts,
                   '-o', 'ConnectTimeout=5', '-p', str(SSH_PORT), '%s@%s' % (SSH_USER, node.address),
                   '--', shlex.join(argv)]
        return self.run_controller(command, check=check, timeout=timeout)

    @staticmethod
    def _command(argv: list, check: bool, timeout: float, **options) -> subprocess.CompletedProcess:
        options.setdefault('stdin', subprocess.DEVNULL)
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **options)
        if check and completed.returncode != 0:
            raise AssertionError('%s exited %d\nstdout: %s\nstderr: %s' % (
                shlex.join(argv), completed.returncode, completed.stdout[-2000:], completed.stderr[-2000:]))
        return completed

    def call_in(self, where, function, *arguments, **keywords):
        """Run a Python function inside a node's namespace (or 'controller') and return its result."""
        name = self.controller_netns if where == 'controller' else self.node(where).netns
        return netns.call_in(name, function, *arguments, **keywords)

    def connect(self, node=1, timeout: float = 10.0, **options):
        """A driver connection to a node's own server, made inside its namespace (localhost:28015).

        Use it from any thread; do not call its reconnect(), which would dial from the caller's namespace.
        """
        from rethinkdb import RethinkDB
        return self.call_in(node, RethinkDB().connect, host='127.0.0.1', port=DRIVER_PORT,
                            password=self.password or '', timeout=timeout, **options)

    def reachable(self, node, port: int = SSH_PORT, timeout: float = 2.0) -> bool:
        """Whether the controller opens a TCP connection to the node's address on `port`."""
        def probe() -> bool:
            try:
                socket.create_connection((self.node(node).address, port), timeout=timeout).close()
                return True
            except OSError:
                return False
        return self.call_in('controller', probe)

    def serve_s3(self, store) -> str:
        """Offer an S3Store (tests/harness/s3server) on the controller's bridge address; returns the URL the
        nodes and the controller use. Closed when the lab goes away; the store's stop()/start() apply to it."""
        url = store.serve(self.controller_address, netns_name=self.controller_netns)
        self.s3_urls.append((store, url))
        return url

    # -- servers

    def start_server(self, node, wait: bool = True, timeout: float = START_TIMEOUT) -> LabNode:
        """Start a node's server with its start command (as root inside its namespace); with `wait`, until the
        whole cluster is connected again."""
        node = self.node(node)
        if not node.running():
            completed = self.run(node, node.start_command(), check=False, timeout=START_TIMEOUT)
            if completed.returncode != 0:
                raise RuntimeError('%s did not start (exit %d): %s%s' % (
                    node.name, completed.returncode, completed.stderr.strip(), node.log_tail()))
        if wait:
            self.wait_connected(timeout)
        return node

    def stop_server(self, node) -> LabNode:
        """Stop a node's server with its stop command and wait until it has exited."""
        node = self.node(node)
        completed = self.run(node, node.stop_command(), check=False, timeout=STOP_TIMEOUT + 10)
        if completed.returncode != 0:
            raise RuntimeError('%s did not stop: %s' % (node.name, completed.stderr.strip()))
        return node

    def running_nodes(self) -> list:
        """The nodes whose server runs."""
        return [node for node in self.nodes if node.running()]

    def wait_connected(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until every running server answers on its node and lists all running servers as connected."""
        from rethinkdb import RethinkDB
        from rethinkdb.errors import ReqlError
        r = RethinkDB()
        deadline = time.monotonic() + timeout
        pending = self.running_nodes()
        expected = len(pending)
        last_error = 'no answer'
        while pending:
            node = pending[0]
            try:
                with self.connect(node, timeout=2) as connection:
                    seen = r.db('rethinkdb').table('server_status').count().run(connection)
                if seen >= expected:
                    pending.pop(0)
                    continue
                last_error = '%s sees %d of %d servers' % (node.name, seen, expected)
            except (ReqlError, OSError) as error:
                last_error = '%s: %s' % (node.name, error)
            if time.monotonic() >= deadline:
                raise RuntimeError('lab cluster not ready after %.0f seconds: %s%s' % (
                    timeout, last_error, node.log_tail()))
            time.sleep(0.2)

    # -- faults

    def partition(self, node, reset_connections: bool = True) -> None:
        """Cut a node off: its bridge port goes down, so it reaches no one and no one reaches it.

        A link that goes dark ends no TCP connection by itself: only a peer that sends heartbeats (the real
        server does) or waits out TCP's retransmissions notices. With `reset_connections`, the TCP connections
        between the node and the rest of the lab are also aborted on both sides (`ss --kill`), as a firewall
        that rejects with resets would, so every process sees the partition at once.
        """
        node = self.node(node)
        netns.ip(self.controller_netns, 'link', 'set', node.veth, 'down')
        if reset_connections:
            lab_subnet = '%s0/%d' % (SUBNET_PREFIX, PREFIX_LENGTH)
            self.run(node, ['ss', '--kill', '--tcp', 'dst', lab_subnet, 'and', 'not', 'dst', node.address])
            for other in [other for other in self.nodes if other is not node]:
                self.run(other, ['ss', '--kill', '--tcp', 'dst', node.address])
            self.run_controller(['ss', '--kill', '--tcp', 'dst', node.address])

    def heal(self, node) -> None:
        """Bring a partitioned node's link back up."""
        netns.ip(self.controller_netns, 'link', 'set', self.node(node).veth, 'up')

    def start_sshd(self, node) -> None:
        """Start a node's sshd (in the foreground of a process the lab keeps); returns once it listens."""
        node = self.node(node)
        if node.sshd is not None and node.sshd.poll() is None:
            return
        with open(node.sshd_dir / 'sshd.log', 'ab') as log:
            node.sshd = subprocess.Popen(
                netns.enter_argv(node.netns) + [SSHD, '-D', '-e', '-f', str(node.sshd_dir / 'sshd_config')],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.call_in(node, _listening, node.address, SSH_PORT):
            if node.sshd.poll() is not None or time.monotonic() >= deadline:
                raise RuntimeError('sshd of %s did not start:\n%s' % (
                    node.name, (node.sshd_dir / 'sshd.log').read_text(errors='replace')[-2000:]))
            time.sleep(0.05)

    def stop_sshd(self, node, end_sessions: bool = True) -> None:
        """Stop a node's sshd; with `end_sessions`, also every SSH session open to it (Ansible's persistent
        connections among them), so that the node cannot be reached over SSH at all until start_sshd()."""
        node = self.node(node)
        if node.sshd is not None:
            node.sshd.terminate()
            try:
                node.sshd.wait(10)
            except subprocess.TimeoutExpired:
                node.sshd.kill()
                node.sshd.wait(10)
            node.sshd = None
        if end_sessions:
            for pid in netns.pids_in(node.netns):
                try:
                    if os.readlink('/proc/%d/exe' % pid) == SSHD:
                        os.kill(pid, 15)
                except OSError:
                    continue

    # -- teardown

    def teardown(self) -> None:
        """Take everything down; safe to call twice and after a failed set-up."""
        if self._torn_down:
            return
        self._torn_down = True
        atexit.unregister(self.teardown)
        try:
            for store, url in self.s3_urls:
                store.unserve(url)
            for node in self.nodes:
                if node.running():
                    self.run(node, node.stop_command(), check=False, timeout=STOP_TIMEOUT + 10)
            for name in reversed(self.namespaces()):
                netns.delete(name)
            for node in self.nodes:
                if node.sshd is not None:
                    node.sshd.wait(10)
        finally:
            try:
                self._mounts.close()
            finally:
                shutil.rmtree(self.root, ignore_errors=True)
                if self._registry_entry is not None:
                    self._registry_entry.unlink(missing_ok=True)

    def leftovers(self) -> list:
        """What of the lab still exists (empty after a clean teardown): namespaces, processes in them, mounts,
        loop devices and the lab's directory."""
        found = ['namespace %s' % name for name in self.namespaces() if netns.exists(name)]
        wanted = set(inode for inode in self._namespace_inodes if inode is not None)
        for entry in os.listdir('/proc'):
            try:
                if entry.isdigit() and os.stat('/proc/%s/ns/net' % entry).st_ino in wanted:
                    found.append('process %s in a lab namespace' % entry)
            except OSError:
                continue
        with open('/proc/self/mountinfo', encoding='utf-8') as mountinfo:
            found += ['mount %s' % line.split()[4] for line in mountinfo
                      if line.split()[4].startswith(str(self.root))]
        found += ['loop device %s (%s)' % (device, back_file) for device, back_file in _loop_devices()
                  if back_file.startswith(str(self.root) + '/')]
        if self.root.exists():
            found.append('directory %s' % self.root)
        if self._registry_entry is not None and self._registry_entry.exists():
            found.append('registry entry %s' % self._registry_entry)
        return found


def _listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port (from the calling namespace)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False
