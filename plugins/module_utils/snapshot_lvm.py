# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LVM backend: a snapshot of the logical volume that holds the data directory, mounted read-only.

lvcreate suspends the volume, freezing its filesystem, for the instant of the snapshot, so the snapshot
is consistent. Not exercised on a real volume group by the tests (they check the commands).
"""

from __future__ import annotations

import os
import re
import time

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import (
    Backend, SnapshotError, copy_path, is_mount_point, mount_of, snapshot_name)

LVS_FIELDS = 'vg_name,lv_name,lv_attr,lv_size,vg_free'
# Mount options for a snapshot of a mounted filesystem: XFS refuses a second filesystem with the same UUID.
MOUNT_OPTIONS = {'xfs': 'ro,nouuid'}
UNITS = {'': 1, 'b': 1, 's': 512, 'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30, 't': 1 << 40, 'p': 1 << 50, 'e': 1 << 60}


def lvs_argv(volume: str, fields: str = LVS_FIELDS) -> list:
    return ['lvs', '--noheadings', '--nosuffix', '--units', 'b', '--separator', '|', '-o', fields, volume]


def lvcreate_argv(vg: str, lv: str, name: str, size: str, thin: bool) -> list:
    """A thin volume's snapshot takes no size and is skipped at activation unless told otherwise;
    a size in % (20%ORIGIN) is a number of extents for lvcreate, anything else a size."""
    if thin:
        sizing = ['--setactivationskip', 'n']
    else:
        sizing = ['--extents' if '%' in size else '--size', size]
    return ['lvcreate', '--snapshot'] + sizing + ['--name', name, '%s/%s' % (vg, lv)]


def mount_argv(fstype: str, device: str, mount_dir: str) -> list:
    return ['mount', '-t', fstype, '-o', MOUNT_OPTIONS.get(fstype, 'ro'), device, mount_dir]


def umount_argv(mount_dir: str) -> list:
    return ['umount', mount_dir]


def lvremove_argv(vg: str, name: str) -> list:
    return ['lvremove', '-f', '%s/%s' % (vg, name)]


def size_bytes(size: str, origin_bytes: int, free_bytes: int) -> int | None:
    """Bytes an lvcreate size takes from the volume group: 20%ORIGIN, 10G, 512m...; None if unknown here."""
    percent = re.match(r'^(\d+(?:\.\d+)?)%(ORIGIN|FREE)$', size, re.IGNORECASE)
    if percent:
        share = float(percent.group(1)) / 100
        return int(share * (origin_bytes if percent.group(2).upper() == 'ORIGIN' else free_bytes))
    absolute = re.match(r'^(\d+(?:\.\d+)?)([bskmgtpe]?)$', size, re.IGNORECASE)
    if absolute:
        return int(float(absolute.group(1)) * UNITS[absolute.group(2).lower()])
    return None


class LvmSnapshot(Backend):
    """`lvcreate --snapshot` of the data directory's logical volume, mounted read-only beside the data
    directory (or in staging_dir) to be read."""

    name = 'lvm'
    tools = ('lvs', 'lvcreate', 'lvremove', 'mount', 'umount')

    @classmethod
    def make_plan(cls, data_dir, set_id, options, commands):
        mount = mount_of(data_dir)
        rc, stdout, stderr = commands.attempt(lvs_argv(mount.source))
        if rc != 0 or not stdout.strip():
            raise SnapshotError('%s is on %s, which is not an LVM logical volume (%s).'
                                % (data_dir, mount.source, (stderr.strip().splitlines() or ['lvs found nothing'])[-1]))
        vg, lv, attributes, lv_bytes, vg_free = [field.strip() for field in stdout.strip().splitlines()[0].split('|')]
        if attributes.startswith('s'):
            raise SnapshotError('%s is on %s/%s, itself a snapshot.' % (data_dir, vg, lv))
        mount_dir = copy_path(options.get('staging_dir') or os.path.dirname(data_dir), data_dir, set_id)
        name = snapshot_name(data_dir, set_id)
        return dict(vg=vg, lv=lv, thin=attributes.startswith('V'), size=options['lvm_snapshot_size'],
                    lv_bytes=int(lv_bytes), vg_free_bytes=int(vg_free), snapshot_lv=name,
                    device='/dev/%s/%s' % (vg, name), fstype=mount.fstype, mount_dir=mount_dir,
                    read_path=os.path.normpath(os.path.join(mount_dir, mount.inner_path(data_dir))))

    def problems(self):
        found = super().problems()
        plan = self.plan
        if not plan['thin']:
            needed = size_bytes(plan['size'], plan['lv_bytes'], plan['vg_free_bytes'])
            if needed is None:
                found.append('lvm_snapshot_size %r is not a size lvcreate takes (e.g. 20%%ORIGIN, 10G).' % plan['size'])
            elif needed > plan['vg_free_bytes']:
                found.append('Volume group %s has %d bytes free; a snapshot of %s needs %d (lvm_snapshot_size %s).'
                             % (plan['vg'], plan['vg_free_bytes'], plan['size'], needed, plan['size']))
        return found

    def take(self, progress):
        plan = self.plan
        self.commands.run(lvcreate_argv(plan['vg'], plan['lv'], plan['snapshot_lv'], plan['size'], plan['thin']),
                          'create the LVM snapshot %s/%s' % (plan['vg'], plan['snapshot_lv']))
        taken_at = time.time()
        os.mkdir(plan['mount_dir'], 0o700)
        self.commands.run(mount_argv(plan['fstype'], plan['device'], plan['mount_dir']),
                          'mount the LVM snapshot %s' % plan['device'])
        return dict(taken_at=taken_at, freeze_ms=0.0)

    def release(self, state, dry_run=False):
        plan = self.plan
        done = []
        mount_dir = plan['mount_dir']
        if is_mount_point(mount_dir):
            done.append('unmount %s' % mount_dir)
            if not dry_run:
                self.commands.run(umount_argv(mount_dir), 'unmount the LVM snapshot at %s' % mount_dir)
        if os.path.isdir(mount_dir):
            done.append('remove the directory %s' % mount_dir)
            if not dry_run:
                os.rmdir(mount_dir)
        volume = '%s/%s' % (plan['vg'], plan['snapshot_lv'])
        if self.commands.attempt(lvs_argv(volume, 'lv_name'))[0] == 0:
            done.append('remove the logical volume %s' % volume)
            if not dry_run:
                self.commands.run(lvremove_argv(plan['vg'], plan['snapshot_lv']), 'remove the LVM snapshot %s' % volume)
        return done
