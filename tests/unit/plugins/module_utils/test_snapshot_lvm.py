"""LVM backend: the exact commands, and what happens when one fails (no volume group here to try them on)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import snapshot_base, snapshot_lvm
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import Mount, SnapshotError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_lvm import LvmSnapshot
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.conftest import fake_mounts, mount_line

SET_ID = '20261124T163000Z-snapshot-3f9a'
GIB = 1 << 30
LVS_DATA = '  vg0|data|-wi-ao----|%d|%d\n' % (100 * GIB, 30 * GIB)
OPTIONS = dict(staging_dir=None, lvm_snapshot_size='20%ORIGIN')


@pytest.fixture(name='layout')
def srv_on_lvm(tmp_path, monkeypatch, run):
    """/<tmp>/srv is an XFS filesystem on vg0/data holding the data directory srv/rethinkdb/default."""
    data_dir = tmp_path / 'srv' / 'rethinkdb' / 'default'
    data_dir.mkdir(parents=True)
    table = fake_mounts(monkeypatch, mount_line('/', 'ext4', '/dev/vda', device='254:0'),
                        mount_line(str(tmp_path / 'srv'), 'xfs', '/dev/mapper/vg0-data'))
    run.answer(['lvs', '--noheadings', '--nosuffix', '--units', 'b', '--separator', '|', '-o', snapshot_lvm.LVS_FIELDS,
                '/dev/mapper/vg0-data'], stdout=LVS_DATA)
    return dict(data_dir=str(data_dir), srv=str(tmp_path / 'srv'), table=table)


def planned(layout, commands, **options):
    return LvmSnapshot(LvmSnapshot.make_plan(layout['data_dir'], SET_ID, dict(OPTIONS, **options), commands), commands)


def test_plan_names_volume_snapshot_and_mount(layout, commands):
    backend = planned(layout, commands)
    plan = backend.plan
    mount_dir = os.path.join(layout['srv'], 'rethinkdb', 'default.snapshot-' + SET_ID)

    assert (plan['vg'], plan['lv'], plan['thin'], plan['fstype']) == ('vg0', 'data', False, 'xfs')
    assert plan['snapshot_lv'].startswith('rethinkdb-' + SET_ID + '-')
    assert plan['device'] == '/dev/vg0/' + plan['snapshot_lv']
    assert plan['mount_dir'] == mount_dir
    assert backend.read_path() == os.path.join(mount_dir, 'rethinkdb', 'default')
    assert backend.problems() == []


def test_take_creates_then_mounts_read_only_without_uuid_check_for_xfs(layout, commands, run):
    backend = planned(layout, commands)
    run.calls.clear()

    taken = backend.take(lambda **fields: None)

    name = backend.plan['snapshot_lv']
    assert run.calls == [
        ['lvcreate', '--snapshot', '--extents', '20%ORIGIN', '--name', name, 'vg0/data'],
        ['mount', '-t', 'xfs', '-o', 'ro,nouuid', '/dev/vg0/' + name, backend.plan['mount_dir']],
    ]
    assert os.path.isdir(backend.plan['mount_dir'])
    assert taken['freeze_ms'] == 0.0


@pytest.mark.parametrize('size, sizing', [('10G', ['--size', '10G']), ('50%FREE', ['--extents', '50%FREE'])])
def test_lvcreate_takes_sizes_and_extents(size, sizing):
    assert snapshot_lvm.lvcreate_argv('vg0', 'data', 'snap', size, False) == ['lvcreate', '--snapshot'] + sizing + ['--name', 'snap', 'vg0/data']


def test_a_thin_volume_gets_a_thin_snapshot_that_activates():
    assert snapshot_lvm.lvcreate_argv('vg0', 'thin1', 'snap', '20%ORIGIN', True) == [
        'lvcreate', '--snapshot', '--setactivationskip', 'n', '--name', 'snap', 'vg0/thin1']


def test_ext4_is_mounted_read_only():
    assert snapshot_lvm.mount_argv('ext4', '/dev/vg0/snap', '/mnt/s') == ['mount', '-t', 'ext4', '-o', 'ro', '/dev/vg0/snap', '/mnt/s']


def test_failed_lvcreate_reports_and_mounts_nothing(layout, commands, run):
    backend = planned(layout, commands)
    run.rules.insert(0, (['lvcreate'], 5, '', '  Insufficient free space: 5120 extents needed, but only 10 available\n'))
    run.calls.clear()

    with pytest.raises(SnapshotError) as failure:
        backend.take(lambda **fields: None)

    assert str(failure.value) == ('Cannot create the LVM snapshot vg0/%s: lvcreate exited with 5: Insufficient free space: '
                                  '5120 extents needed, but only 10 available' % backend.plan['snapshot_lv'])
    assert failure.value.details['rc'] == 5
    assert failure.value.details['argv'][0] == 'lvcreate'
    assert [call[0] for call in run.calls] == ['lvcreate']


def test_release_after_a_failed_mount_removes_directory_and_volume(layout, commands, run):
    backend = planned(layout, commands)
    run.rules.insert(0, (['mount'], 32, '', 'mount: wrong fs type\n'))
    with pytest.raises(SnapshotError, match='Cannot mount the LVM snapshot'):
        backend.take(lambda **fields: None)
    run.calls.clear()

    done = backend.release({})

    volume = 'vg0/' + backend.plan['snapshot_lv']
    assert done == ['remove the directory %s' % backend.plan['mount_dir'], 'remove the logical volume %s' % volume]
    assert run.calls == [snapshot_lvm.lvs_argv(volume, 'lv_name'), ['lvremove', '-f', volume]]
    assert not os.path.exists(backend.plan['mount_dir'])


def test_release_unmounts_first(layout, commands, run, monkeypatch):
    backend = planned(layout, commands)
    os.mkdir(backend.plan['mount_dir'])
    table = layout['table'] + [Mount(mount_line(backend.plan['mount_dir'], 'xfs', backend.plan['device']))]
    monkeypatch.setattr(snapshot_base, 'mounts', lambda: table)
    run.calls.clear()

    backend.release({})

    assert run.calls[0] == ['umount', backend.plan['mount_dir']]
    assert run.calls[-1] == ['lvremove', '-f', 'vg0/' + backend.plan['snapshot_lv']]


def test_release_with_nothing_left_does_nothing(layout, commands, run):
    backend = planned(layout, commands)
    run.rules.insert(0, (['lvs', '--noheadings', '--nosuffix', '--units', 'b', '--separator', '|', '-o', 'lv_name'], 5, '',
                         'Failed to find logical volume'))
    run.calls.clear()

    assert backend.release({}) == []
    assert [call[0] for call in run.calls] == ['lvs']


def test_a_failed_lvremove_is_an_error(layout, commands, run):
    backend = planned(layout, commands)
    run.rules.insert(0, (['lvremove'], 5, '', '  Logical volume vg0/x in use.\n'))

    with pytest.raises(SnapshotError, match='Cannot remove the LVM snapshot vg0/.*: lvremove exited with 5: Logical volume vg0/x in use.'):
        backend.release({})


def test_not_a_logical_volume(layout, commands, run):
    run.rules.insert(0, (['lvs'], 5, '', '  Volume group "mapper" not found\n'))

    with pytest.raises(SnapshotError, match=r'is on /dev/mapper/vg0-data, which is not an LVM logical volume \(Volume group \"mapper\" not found\)\.$'):
        planned(layout, commands)


def test_too_little_room_in_the_volume_group(layout, commands):
    backend = planned(layout, commands, lvm_snapshot_size='40G')

    assert backend.problems() == ['Volume group vg0 has %d bytes free; a snapshot of 40G needs %d (lvm_snapshot_size 40G).'
                                  % (30 * GIB, 40 * GIB)]


def test_a_size_lvcreate_would_not_take(layout, commands):
    assert planned(layout, commands, lvm_snapshot_size='lots').problems() == [
        "lvm_snapshot_size 'lots' is not a size lvcreate takes (e.g. 20%ORIGIN, 10G)."]


@pytest.mark.parametrize('size, expected', [('20%ORIGIN', 20 * GIB), ('50%FREE', 15 * GIB), ('512m', 512 << 20),
                                            ('1.5g', 3 * GIB // 2), ('4096', 4096), ('10%VG', None)])
def test_size_bytes(size, expected):
    assert snapshot_lvm.size_bytes(size, 100 * GIB, 30 * GIB) == expected
