"""Filesystems on loop devices (root only) for the snapshot tests, the demo and the benchmarks: btrfs to
snapshot, XFS to freeze, ext4 beside them; always torn down, whatever happened while they were mounted."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

TOOLS = {
    'btrfs': ('losetup', 'mount', 'umount', 'mkfs.btrfs', 'btrfs'),
    'xfs': ('losetup', 'mount', 'umount', 'mkfs.xfs', 'fsfreeze'),
    'ext4': ('losetup', 'mount', 'umount', 'mkfs.ext4'),
}
# mkfs's "overwrite an existing filesystem" flag.
FORCE_FLAG = {'btrfs': '-f', 'xfs': '-f', 'ext4': '-F'}


def unavailable(fstype: str) -> str | None:
    """Why a loop filesystem of this type cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return 'needs root (loop devices, mount)'
    missing = [tool for tool in TOOLS[fstype] if shutil.which(tool) is None]
    return 'needs %s, not installed' % ', '.join(missing) if missing else None


def _undo(argv: list) -> bool:
    """Run one clean-up command; say so on stderr when it fails, and return whether it worked."""
    completed = subprocess.run(argv, capture_output=True, text=True, check=False, env=dict(os.environ, LC_ALL='C'))
    if completed.returncode != 0:
        sys.stderr.write('loopfs: clean-up %s failed: %s\n' % (' '.join(argv), completed.stderr.strip()))
    return completed.returncode == 0


def thaw(mountpoint: Path) -> None:
    """Thaw a filesystem that may be frozen (the usual answer, that it was not, is not an error)."""
    subprocess.run(['fsfreeze', '--unfreeze', str(mountpoint)], capture_output=True, check=False)


def unmount(mountpoint: Path) -> None:
    """Thaw (a freeze a failure left behind) and unmount, lazily if something still holds the filesystem."""
    thaw(mountpoint)
    if not _undo(['umount', str(mountpoint)]):
        _undo(['umount', '--lazy', str(mountpoint)])


@contextlib.contextmanager
def loop_filesystem(mountpoint: Path, fstype: str, megabytes: int):
    """A new filesystem in a sparse image beside `mountpoint`, on a loop device, mounted there.

    Yields the mount point; afterwards it is thawed, unmounted, the loop device detached and the image removed.
    """
    mountpoint = Path(mountpoint)
    image = mountpoint.with_name(mountpoint.name + '.img')
    mountpoint.mkdir(parents=True)
    with open(image, 'wb') as stream:
        stream.truncate(megabytes << 20)
    try:
        subprocess.run(['mkfs.' + fstype, '-q', FORCE_FLAG[fstype], str(image)], check=True, stdout=subprocess.DEVNULL)
        device = subprocess.run(['losetup', '--find', '--show', str(image)], check=True, capture_output=True, text=True).stdout.strip()
        try:
            subprocess.run(['mount', device, str(mountpoint)], check=True)
            try:
                yield mountpoint
            finally:
                unmount(mountpoint)
        finally:
            _undo(['losetup', '--detach', device])
    finally:
        image.unlink()


@contextlib.contextmanager
def tmpfs(mountpoint: Path, megabytes: int):
    """A tmpfs of this size mounted at mountpoint (root only); always unmounted."""
    mountpoint = Path(mountpoint)
    mountpoint.mkdir(parents=True, exist_ok=True)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%dk' % int(megabytes * 1024), 'tmpfs', str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        unmount(mountpoint)


def btrfs_subvolumes(mountpoint: Path, names: list) -> dict:
    """Create one btrfs subvolume per name under mountpoint; return name -> path."""
    paths = {}
    for name in names:
        path = Path(mountpoint) / name
        subprocess.run(['btrfs', 'subvolume', 'create', str(path)], check=True, stdout=subprocess.DEVNULL)
        paths[name] = path
    return paths
