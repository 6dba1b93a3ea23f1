# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ZFS backend: a snapshot of the dataset that holds the data directory, read through its .zfs directory.

Not exercised on a real pool by the tests (they check the commands).
"""

from __future__ import annotations

import os
import time

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import (
    Backend, mount_of_type, snapshot_name)


def snapshot_argv(snapshot: str) -> list:
    return ['zfs', 'snapshot', snapshot]


def list_argv(snapshot: str) -> list:
    return ['zfs', 'list', '-H', '-t', 'snapshot', '-o', 'name', snapshot]


def destroy_argv(snapshot: str) -> list:
    return ['zfs', 'destroy', snapshot]


class ZfsSnapshot(Backend):
    """`zfs snapshot <dataset>@<name>`: atomic and instant; read at <mountpoint>/.zfs/snapshot/<name>."""

    name = 'zfs'
    tools = ('zfs',)

    @classmethod
    def make_plan(cls, data_dir, set_id, options, commands):
        mount = mount_of_type(data_dir, 'zfs', 'a ZFS dataset')
        name = snapshot_name(data_dir, set_id)
        inside = os.path.relpath(data_dir, mount.mountpoint)
        return dict(dataset=mount.source, snapshot='%s@%s' % (mount.source, name),
                    read_path=os.path.normpath(os.path.join(mount.mountpoint, '.zfs', 'snapshot', name, inside)))

    def take(self, progress):
        self.commands.run(snapshot_argv(self.plan['snapshot']), 'take the ZFS snapshot %s' % self.plan['snapshot'])
        return dict(taken_at=time.time(), freeze_ms=0.0)

    def release(self, state, dry_run=False):
        snapshot = self.plan['snapshot']
        if self.commands.attempt(list_argv(snapshot))[0] != 0:
            return []
        if not dry_run:
            self.commands.run(destroy_argv(snapshot), 'destroy the ZFS snapshot %s' % snapshot)
        return ['destroy the ZFS snapshot %s' % snapshot]
