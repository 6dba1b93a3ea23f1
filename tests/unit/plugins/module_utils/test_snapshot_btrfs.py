"""btrfs backend: commands, placement of the snapshot, and refusals (real btrfs runs in the module's tests)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import snapshot_btrfs
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import SnapshotError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_btrfs import BtrfsSnapshot
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.conftest import fake_mounts, mount_line

SET_ID = '20261124T163000Z-snapshot-3f9a'


@pytest.fixture(name='layout')
def btrfs_layout(tmp_path, monkeypatch):
    """<tmp>/pool is a btrfs mount whose subvolume root is <tmp>/pool; the data directory is pool/rethinkdb/default."""
    data_dir = tmp_path / 'pool' / 'rethinkdb' / 'default'
    data_dir.mkdir(parents=True)
    (tmp_path / 'elsewhere').mkdir()
    fake_mounts(monkeypatch, mount_line('/', 'ext4', '/dev/vda', device='254:0'),
                mount_line(str(tmp_path / 'pool'), 'btrfs', '/dev/sdb', device='0:40'))
    monkeypatch.setattr(snapshot_btrfs, 'subvolume_of', lambda path, mountpoint: mountpoint)
    return tmp_path


def test_snapshot_goes_beside_the_data_directory_and_is_read_at_its_relative_path(layout, commands, run):
    data_dir = str(layout / 'pool' / 'rethinkdb' / 'default')
    backend = BtrfsSnapshot(BtrfsSnapshot.make_plan(data_dir, SET_ID, {}, commands), commands)
    snapshot = str(layout / 'pool' / 'rethinkdb' / ('default.snapshot-' + SET_ID))

    backend.prepare(None, lambda **fields: None)
    backend.take(lambda **fields: None)

    assert run.calls == [['btrfs', 'filesystem', 'sync', str(layout / 'pool')],
                         ['btrfs', 'subvolume', 'snapshot', '-r', str(layout / 'pool'), snapshot]]
    assert backend.read_path() == os.path.join(snapshot, 'rethinkdb', 'default')


def test_staging_dir_on_another_filesystem_is_refused(layout, commands):
    data_dir = str(layout / 'pool' / 'rethinkdb' / 'default')

    with pytest.raises(SnapshotError, match='A btrfs snapshot must stay on the filesystem of .*: set staging_dir'):
        BtrfsSnapshot.make_plan(data_dir, SET_ID, {'staging_dir': str(layout / 'elsewhere')}, commands)


def test_other_filesystems_are_refused(layout, commands):
    with pytest.raises(SnapshotError, match='elsewhere is on a ext4 filesystem \\(/\\), not btrfs'):
        BtrfsSnapshot.make_plan(str(layout / 'elsewhere'), SET_ID, {}, commands)


def test_release_deletes_the_snapshot_once(layout, commands, run):
    data_dir = str(layout / 'pool' / 'rethinkdb' / 'default')
    backend = BtrfsSnapshot(BtrfsSnapshot.make_plan(data_dir, SET_ID, {}, commands), commands)
    os.mkdir(backend.plan['snapshot'])

    assert backend.release({}, dry_run=True) == ['delete the btrfs snapshot %s' % backend.plan['snapshot']]
    assert run.calls == []
    assert backend.release({}) == ['delete the btrfs snapshot %s' % backend.plan['snapshot']]
    assert run.calls == [['btrfs', 'subvolume', 'delete', backend.plan['snapshot']]]
    os.rmdir(backend.plan['snapshot'])
    assert backend.release({}) == []


def test_failed_delete_is_reported(layout, commands, run):
    data_dir = str(layout / 'pool' / 'rethinkdb' / 'default')
    backend = BtrfsSnapshot(BtrfsSnapshot.make_plan(data_dir, SET_ID, {}, commands), commands)
    os.mkdir(backend.plan['snapshot'])
    run.answer(['btrfs', 'subvolume', 'delete'], rc=1, stderr='ERROR: Could not destroy subvolume: Operation not permitted\n')

    with pytest.raises(SnapshotError, match='Cannot delete the btrfs snapshot .*: btrfs exited with 1: ERROR: Could not destroy'):
        backend.release({})
