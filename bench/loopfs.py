"""Filesystems on loop devices for the snapshot figures (btrfs subvolumes, an XFS to freeze): root only, and
always torn down, whatever happened while they were mounted."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.procs import run

TOOLS = {
    'btrfs': ('losetup', 'mount', 'umount', 'mkfs.btrfs', 'btrfs'),
    'xfs': ('losetup', 'mount', 'umount', 'mkfs.xfs', 'fsfreeze'),
}
# What fsfreeze --unfreeze says of a filesystem that is not frozen.
NOT_FROZEN = 'Invalid argument'


def unavailable(fstype: str) -> str | None:
    """Why a loop filesystem of this type cannot be made here, or None."""
    if os.geteuid() != 0:
        return 'needs root (loop devices, mount)'
    missing = [tool for tool in TOOLS[fstype] if shutil.which(tool) is None]
    if missing:
        return 'needs %s, not installed' % ', '.join(missing)
    return None


def _undo(argv: list) -> bool:
    """Run one clean-up command; say so on stderr when it fails, and return whether it worked."""
    completed = subprocess.run(argv, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.stderr.write('bench: clean-up %s failed: %s\n' % (' '.join(argv), completed.stderr.strip()))
    return completed.returncode == 0


def _thaw(mountpoint: Path) -> None:
    """Thaw a filesystem a failed run may have left frozen (the usual answer: it was not frozen)."""
    completed = subprocess.run(['fsfreeze', '--unfreeze', str(mountpoint)], capture_output=True, text=True, check=False,
                               env=dict(os.environ, LC_ALL='C'))
    if completed.returncode != 0 and NOT_FROZEN not in completed.stderr:
        sys.stderr.write('bench: clean-up fsfreeze --unfreeze %s failed: %s\n' % (mountpoint, completed.stderr.strip()))


@contextlib.contextmanager
def loop_filesystem(directory: Path, fstype: str, size_mib: int):
    """A new filesystem in a sparse image in directory, on a loop device, mounted at <directory>/<fstype>-mnt.

    Yields the mount point. Afterwards: thawed (an interrupted freeze), unmounted (lazily if busy), the loop
    device detached and the image removed.
    """
    image = Path(directory) / ('%s.img' % fstype)
    mountpoint = Path(directory) / ('%s-mnt' % fstype)
    mountpoint.mkdir(parents=True)
    with open(image, 'wb') as stream:
        stream.truncate(size_mib << 20)
    try:
        run(['mkfs.' + fstype, '-q', '-f', image])
        device = run(['losetup', '--find', '--show', image]).stdout.strip()
        try:
            run(['mount', device, mountpoint])
            try:
                yield mountpoint
            finally:
                if fstype == 'xfs':
                    _thaw(mountpoint)
                if not _undo(['umount', str(mountpoint)]):
                    _undo(['umount', '--lazy', str(mountpoint)])
        finally:
            _undo(['losetup', '--detach', device])
    finally:
        image.unlink()
