# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fsfreeze backend: freeze the data directory's filesystem, copy the data directory to another
filesystem, thaw. The freeze lasts the whole copy, and a watchdog process thaws the filesystem if the
module does not within freeze_timeout, or dies.
"""

from __future__ import annotations

import os
import time

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import (
    Backend, SnapshotError, copy_path, copy_tree, mount_of, remove_copy)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.watchdog import Watchdog

# Filesystems that the kernel cannot freeze, or that a freeze would not make consistent.
UNFREEZABLE = frozenset(('tmpfs', 'ramfs', 'devtmpfs', 'proc', 'sysfs', 'overlay', 'nfs', 'nfs4', 'cifs', 'fuse', 'fuseblk'))
# What fsfreeze -u prints when the filesystem is not frozen (the kernel's EINVAL).
NOT_FROZEN = 'Invalid argument'


def freeze_argv(mountpoint: str) -> list:
    return ['fsfreeze', '--freeze', mountpoint]


def thaw_argv(mountpoint: str) -> list:
    return ['fsfreeze', '--unfreeze', mountpoint]


class FsfreezeSnapshot(Backend):
    """fsfreeze -f, cp -a to staging_dir (on another filesystem: any write to a frozen filesystem blocks
    until the thaw), fsfreeze -u. Writes to the data directory's filesystem wait for the whole copy."""

    name = 'fsfreeze'
    tools = ('fsfreeze', 'cp')
    copies = True

    def __init__(self, plan, commands):
        super().__init__(plan, commands)
        self.watchdog = None

    @classmethod
    def make_plan(cls, data_dir, set_id, options, commands):
        mount = mount_of(data_dir)
        if mount.mountpoint == '/':
            raise SnapshotError('%s is on the root filesystem; freezing it would stop the whole node: use another backend '
                                'or move the data directory to a filesystem of its own.' % data_dir)
        if mount.fstype in UNFREEZABLE:
            raise SnapshotError('%s is on a %s filesystem, which cannot be frozen.' % (data_dir, mount.fstype))
        staging_dir = options.get('staging_dir')
        if not staging_dir or not os.path.isdir(staging_dir):
            raise SnapshotError('The fsfreeze backend copies the data directory into staging_dir, an existing directory on '
                                'another filesystem: set staging_dir.')
        if mount_of(staging_dir).device == mount.device:
            raise SnapshotError('staging_dir %s is on the filesystem that fsfreeze freezes (%s): the copy would wait for the '
                                'thaw forever. Choose a directory on another filesystem.' % (staging_dir, mount.mountpoint))
        copy = copy_path(staging_dir, data_dir, set_id)
        return dict(data_dir=data_dir, mountpoint=mount.mountpoint, copy=copy, read_path=copy,
                    freeze_timeout=options['freeze_timeout'])

    def prepare(self, at, progress):
        """Flush dirty pages now so the freeze at the shared instant is quick, and arm the watchdog before
        anything is frozen, for freeze_timeout from that instant."""
        os.sync()
        until_freeze = max(0.0, at - time.time()) if at is not None else 0.0
        self.watchdog = Watchdog(self.commands, thaw_argv(self.plan['mountpoint']), until_freeze + self.plan['freeze_timeout'],
                                 'thaw %s' % self.plan['mountpoint'])
        progress(frozen=True, watchdog=self.watchdog.record())

    def take(self, progress):
        mountpoint = self.plan['mountpoint']
        try:
            self.commands.run(freeze_argv(mountpoint), 'freeze %s' % mountpoint)
        except SnapshotError:
            self.watchdog.cancel()
            progress(frozen=False)
            raise
        taken_at = time.time()
        frozen_at = time.monotonic()
        copy_failure = None
        try:
            copy_tree(self.commands, self.plan['data_dir'], self.plan['copy'])
        except SnapshotError as exc:
            copy_failure = exc
        rc, stdout, stderr = self.commands.attempt(thaw_argv(mountpoint))
        freeze_ms = round((time.monotonic() - frozen_at) * 1000, 3)
        if rc != 0:
            if freeze_ms >= self.plan['freeze_timeout'] * 1000:
                raise SnapshotError('The freeze of %s lasted longer than freeze_timeout (%ss): the watchdog thawed it during '
                                    'the copy, so the copy is not consistent. Raise freeze_timeout.'
                                    % (mountpoint, self.plan['freeze_timeout']), argv=thaw_argv(mountpoint), rc=rc,
                                    stdout=stdout, stderr=stderr)
            raise SnapshotError('Cannot thaw %s: fsfreeze exited with %d: %s. The watchdog (pid %d) thaws it within '
                                'freeze_timeout; or run fsfreeze --unfreeze %s.'
                                % (mountpoint, rc, stderr.strip(), self.watchdog.pid, mountpoint),
                                argv=thaw_argv(mountpoint), rc=rc, stdout=stdout, stderr=stderr)
        self.watchdog.cancel()
        progress(frozen=False)
        if copy_failure is not None:
            raise copy_failure
        return dict(taken_at=taken_at, freeze_ms=freeze_ms)

    def release(self, state, dry_run=False):
        done = []
        mountpoint = self.plan['mountpoint']
        if state.get('frozen'):
            done.append('thaw %s' % mountpoint)
            if not dry_run:
                rc, stdout, stderr = self.commands.attempt(thaw_argv(mountpoint))
                if rc != 0 and NOT_FROZEN not in stderr:
                    raise SnapshotError('Cannot thaw %s: fsfreeze exited with %d: %s' % (mountpoint, rc, stderr.strip()),
                                        argv=thaw_argv(mountpoint), rc=rc, stdout=stdout, stderr=stderr)
        return done + remove_copy(self.plan['copy'], dry_run)
