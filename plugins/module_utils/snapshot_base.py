# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every snapshot backend shares: the interface, checked commands, and facts about filesystems.

A backend is built from a plan: a JSON-able dict computed once (when the snapshot is taken) and stored in
the node lock, so that later module runs (archive, release) act on exactly what was taken.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import time


SBIN_DIRS = ('/usr/local/sbin', '/usr/sbin', '/sbin')
# Messages in English whatever the node's locale, since a few are matched (fsfreeze's "Invalid argument").
C_LOCALE = {'LC_ALL': 'C', 'LANG': 'C'}
# A spin of this length before the shared instant keeps sleep()'s wake-up jitter out of the skew.
SPIN_SECONDS = 0.003


class SnapshotError(Exception):
    """A step of a snapshot failed; `details` carries argv, rc, stdout and stderr of a failed command."""

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.details = details


def find_tool(name: str) -> str | None:
    """Absolute path of a command, also looking in the sbin directories a non-login PATH may lack."""
    search = os.pathsep.join([os.environ.get('PATH', os.defpath)] + list(SBIN_DIRS))
    return shutil.which(name, path=search)


class Commands:
    """Runs a backend's commands from argv lists and checks every exit status.

    run_command is AnsibleModule.run_command or a stand-in with the same (rc, stdout, stderr) result.
    """

    def __init__(self, run_command, locate=find_tool):
        self._run_command = run_command
        self._locate = locate

    def missing(self, tools) -> list[str]:
        """The tools among these that are not installed."""
        return [tool for tool in tools if self._locate(tool) is None]

    def resolve(self, argv: list) -> list:
        """argv with its command's absolute path, or SnapshotError if the command is not installed."""
        path = self._locate(argv[0])
        if path is None:
            raise SnapshotError('The %s command is not installed on this node.' % argv[0], argv=argv)
        return [path] + list(argv[1:])

    def attempt(self, argv: list) -> tuple[int, str, str]:
        """Run a command whose failure the caller handles; return rc, stdout, stderr."""
        return self._run_command(self.resolve(argv), environ_update=C_LOCALE)

    def run(self, argv: list, purpose: str, **options) -> str:
        """Run a command that must succeed; return its stdout or raise SnapshotError naming the purpose.
        options go to run_command (pass_fds)."""
        resolved = self.resolve(argv)
        rc, stdout, stderr = self._run_command(resolved, environ_update=C_LOCALE, **options)
        if rc != 0:
            reason = (stderr or stdout).strip().splitlines()
            raise SnapshotError('Cannot %s: %s exited with %d%s' % (purpose, argv[0], rc, (': ' + reason[-1]) if reason else '.'),
                                argv=resolved, rc=rc, stdout=stdout, stderr=stderr)
        return stdout


class Mount:
    """One line of /proc/self/mountinfo: the mount that holds a path."""

    def __init__(self, line: str):
        fields = line.split()
        separator = fields.index('-')
        self.device = fields[2]
        self.root = _unescape(fields[3])
        self.mountpoint = _unescape(fields[4])
        self.options = fields[5].split(',')
        self.fstype = fields[separator + 1]
        self.source = _unescape(fields[separator + 2])

    def inner_path(self, path: str) -> str:
        """Where path lies inside the filesystem, from its root (what a fresh mount of it shows)."""
        relative = os.path.relpath(path, self.mountpoint)
        return os.path.normpath(os.path.join(self.root, relative)).lstrip('/')


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    for escaped, plain in (('\\040', ' '), ('\\011', '\t'), ('\\012', '\n'), ('\\134', '\\')):
        field = field.replace(escaped, plain)
    return field


def mounts(mountinfo: str = '/proc/self/mountinfo') -> list[Mount]:
    with open(mountinfo, encoding='utf-8', errors='surrogateescape') as lines:
        return [Mount(line) for line in lines if line.strip()]


def mount_of(path: str, table: list[Mount] | None = None) -> Mount:
    """The mount holding path (the deepest mount point above it; the last one mounted there wins)."""
    real = os.path.realpath(path)
    best = None
    for mount in mounts() if table is None else table:
        point = mount.mountpoint
        if real == point or real.startswith(point.rstrip('/') + '/'):
            if best is None or len(point) >= len(best.mountpoint):
                best = mount
    if best is None:
        raise SnapshotError('No mount holds %s.' % path)
    return best


def mount_of_type(path: str, fstype: str, kind: str) -> Mount:
    """The mount holding path, or SnapshotError unless its filesystem is fstype (kind names it for people)."""
    mount = mount_of(path)
    if mount.fstype != fstype:
        raise SnapshotError('%s is on a %s filesystem (%s), not %s.' % (path, mount.fstype, mount.mountpoint, kind))
    return mount


def is_mount_point(path: str, table: list[Mount] | None = None) -> bool:
    real = os.path.realpath(path)
    return any(mount.mountpoint == real for mount in (mounts() if table is None else table))


def same_filesystem(first: str, second: str) -> bool:
    """Whether two paths live on one filesystem (one superblock: btrfs subvolumes and bind mounts included)."""
    return mount_of(first).device == mount_of(second).device


def tree_bytes(path: str) -> int:
    """Sum of the sizes of the regular files under path, each hard-linked file once."""
    inodes = set()
    total = 0
    for directory, dummy, names in os.walk(path):
        for name in names:
            status = os.lstat(os.path.join(directory, name))
            if stat.S_ISREG(status.st_mode) and (status.st_dev, status.st_ino) not in inodes:
                inodes.add((status.st_dev, status.st_ino))
                total += status.st_size
    return total


def snapshot_name(data_dir: str, set_id: str) -> str:
    """A name for this data directory's snapshot in this set, unique even when several data directories
    of one host share a volume."""
    return 'rethinkdb-%s-%s' % (set_id, hashlib.sha256(data_dir.encode()).hexdigest()[:8])


def copy_path(directory: str, data_dir: str, set_id: str) -> str:
    """Where a backend puts its snapshot or copy of data_dir: `<directory>/<data dir name>.snapshot-<set_id>`."""
    return os.path.join(directory, '%s.snapshot-%s' % (os.path.basename(data_dir), set_id))


def wait_until(instant: float) -> float:
    """Sleep until a wall-clock instant, spinning for the last few milliseconds; return ms late (>= 0)."""
    while True:
        remaining = instant - time.time()
        if remaining <= 0:
            break
        if remaining > SPIN_SECONDS:
            time.sleep(remaining - SPIN_SECONDS)
    return (time.time() - instant) * 1000


def elapsed_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)


class Backend:
    """One way to capture a data directory at an instant. Subclasses set `name` and `tools` and implement
    make_plan() (whose plan names the captured data directory as `read_path`), take() and release()."""

    name = ''
    tools: tuple = ()
    # Whether the capture makes a full copy of the data directory (in the staging directory).
    copies = False

    def __init__(self, plan: dict, commands: Commands):
        self.plan = plan
        self.commands = commands

    @classmethod
    def make_plan(cls, data_dir: str, set_id: str, options: dict, commands: Commands) -> dict:
        """Find what to snapshot and name what will be created; raise SnapshotError if this backend cannot
        serve data_dir. options are the module's parameters."""
        raise NotImplementedError

    def problems(self) -> list[str]:
        """Reasons, beyond those make_plan raises, why the snapshot would fail now ([] if none)."""
        return ['The %s command is not installed on this node.' % tool for tool in self.commands.missing(self.tools)]

    def prepare(self, at: float | None, progress) -> None:
        """Work done before the shared instant `at` (epoch seconds; None for now), so the capture is short."""

    def take(self, progress) -> dict:
        """Capture the data directory now. progress(**fields) records state in the node lock (never call it
        while the data directory's filesystem is frozen). Returns taken_at (epoch) and freeze_ms."""
        raise NotImplementedError

    def read_path(self) -> str:
        """The directory to archive: the data directory as captured."""
        return self.plan['read_path']

    def release(self, state: dict, dry_run: bool = False) -> list[str]:
        """Drop whatever the plan may have created, given the lock's state; safe to repeat and after a
        failure half-way. Returns what was (with dry_run: would be) done."""
        raise NotImplementedError


def copy_tree(commands: Commands, source: str, dest: str) -> None:
    """Copy a directory tree with `cp -a` (modes, owners, times, links), which dest must not exist for."""
    commands.run(['cp', '-a', '--', source, dest], 'copy %s to %s' % (source, dest))


def remove_copy(path: str, dry_run: bool) -> list[str]:
    """Remove a staging copy made by a backend, if there is one."""
    if not os.path.lexists(path):
        return []
    if not dry_run:
        shutil.rmtree(path)
    return ['remove the copy %s' % path]
