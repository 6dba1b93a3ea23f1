# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""btrfs backend: a read-only snapshot of the subvolume that holds the data directory."""

from __future__ import annotations

import os
import time

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import (
    Backend, SnapshotError, copy_path, mount_of, mount_of_type)

# Every subvolume's root directory has this inode number (BTRFS_FIRST_FREE_OBJECTID).
SUBVOLUME_ROOT_INODE = 256


def snapshot_argv(subvolume: str, snapshot: str) -> list:
    return ['btrfs', 'subvolume', 'snapshot', '-r', subvolume, snapshot]


def sync_argv(path: str) -> list:
    return ['btrfs', 'filesystem', 'sync', path]


def delete_argv(snapshot: str) -> list:
    return ['btrfs', 'subvolume', 'delete', snapshot]


def subvolume_of(path: str, mountpoint: str) -> str:
    """The root of the subvolume holding path: the nearest directory above it with the subvolume root inode."""
    current = path
    while os.stat(current).st_ino != SUBVOLUME_ROOT_INODE:
        if current == mountpoint or current == os.path.dirname(current):
            raise SnapshotError('No btrfs subvolume root found above %s.' % path)
        current = os.path.dirname(current)
    return current


class BtrfsSnapshot(Backend):
    """`btrfs subvolume snapshot -r`: atomic and near instant; the snapshot lives on the same filesystem,
    by default beside the data directory (staging_dir chooses another directory of that filesystem)."""

    name = 'btrfs'
    tools = ('btrfs',)

    @classmethod
    def make_plan(cls, data_dir, set_id, options, commands):
        mount = mount_of_type(data_dir, 'btrfs', 'btrfs')
        subvolume = subvolume_of(data_dir, mount.mountpoint)
        snapshot_dir = options.get('staging_dir') or os.path.dirname(data_dir)
        if not os.path.isdir(snapshot_dir) or mount_of(snapshot_dir).device != mount.device:
            raise SnapshotError('A btrfs snapshot must stay on the filesystem of %s, and %s is not a directory of it: '
                                'set staging_dir to a directory on that filesystem.' % (data_dir, snapshot_dir))
        snapshot = copy_path(snapshot_dir, data_dir, set_id)
        return dict(subvolume=subvolume, snapshot=snapshot,
                    read_path=os.path.normpath(os.path.join(snapshot, os.path.relpath(data_dir, subvolume))))

    def prepare(self, at, progress):
        # Write out what is dirty before the shared instant: the snapshot then commits little, which keeps
        # its time, and so the skew between nodes, short.
        self.commands.run(sync_argv(self.plan['subvolume']), 'flush the btrfs filesystem of %s' % self.plan['subvolume'])

    def take(self, progress):
        self.commands.run(snapshot_argv(self.plan['subvolume'], self.plan['snapshot']),
                          'take a btrfs snapshot of %s' % self.plan['subvolume'])
        return dict(taken_at=time.time(), freeze_ms=0.0)

    def release(self, state, dry_run=False):
        snapshot = self.plan['snapshot']
        if not os.path.lexists(snapshot):
            return []
        if not dry_run:
            self.commands.run(delete_argv(snapshot), 'delete the btrfs snapshot %s' % snapshot)
        return ['delete the btrfs snapshot %s' % snapshot]
