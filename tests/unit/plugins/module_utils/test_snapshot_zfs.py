"""ZFS backend: the exact commands (no pool here to try them on)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import SnapshotError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_zfs import ZfsSnapshot
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.conftest import fake_mounts, mount_line

SET_ID = '20261124T163000Z-snapshot-3f9a'


@pytest.fixture(name='backend')
def dataset_backend(tmp_path, monkeypatch, commands):
    """The data directory <tmp>/tank/rethinkdb/default on the dataset tank/rethinkdb mounted at <tmp>/tank/rethinkdb."""
    data_dir = tmp_path / 'tank' / 'rethinkdb' / 'default'
    data_dir.mkdir(parents=True)
    fake_mounts(monkeypatch, mount_line('/', 'ext4', '/dev/vda'),
                mount_line(str(tmp_path / 'tank' / 'rethinkdb'), 'zfs', 'tank/rethinkdb', device='0:52'))
    return ZfsSnapshot(ZfsSnapshot.make_plan(str(data_dir), SET_ID, {}, commands), commands)


def test_plan_reads_through_the_snapshot_directory(backend, tmp_path):
    name = backend.plan['snapshot'].split('@')[1]

    assert backend.plan['dataset'] == 'tank/rethinkdb'
    assert name.startswith('rethinkdb-' + SET_ID + '-')
    assert backend.read_path() == os.path.join(str(tmp_path), 'tank', 'rethinkdb', '.zfs', 'snapshot', name, 'default')


def test_take_snapshots_the_dataset(backend, run):
    taken = backend.take(lambda **fields: None)

    assert run.calls == [['zfs', 'snapshot', backend.plan['snapshot']]]
    assert taken['freeze_ms'] == 0.0


def test_failed_snapshot_is_reported(backend, run):
    run.answer(['zfs', 'snapshot'], rc=1, stderr="cannot create snapshot 'tank/rethinkdb@x': dataset already exists\n")

    with pytest.raises(SnapshotError, match="Cannot take the ZFS snapshot .*: zfs exited with 1: cannot create snapshot 'tank/rethinkdb@x'"):
        backend.take(lambda **fields: None)


def test_release_destroys_an_existing_snapshot(backend, run):
    snapshot = backend.plan['snapshot']

    assert backend.release({}, dry_run=True) == ['destroy the ZFS snapshot %s' % snapshot]
    assert backend.release({}) == ['destroy the ZFS snapshot %s' % snapshot]
    assert run.calls == [['zfs', 'list', '-H', '-t', 'snapshot', '-o', 'name', snapshot]] * 2 + [['zfs', 'destroy', snapshot]]


def test_release_of_a_missing_snapshot_does_nothing(backend, run):
    run.answer(['zfs', 'list'], rc=1, stderr="cannot open 'tank/rethinkdb@x': dataset does not exist\n")

    assert backend.release({}) == []
    assert [call[1] for call in run.calls] == ['list']


def test_other_filesystems_are_refused(tmp_path, monkeypatch, commands):
    fake_mounts(monkeypatch, mount_line('/', 'ext4', '/dev/vda'))

    with pytest.raises(SnapshotError, match='is on a ext4 filesystem \\(/\\), not a ZFS dataset'):
        ZfsSnapshot.make_plan(str(tmp_path), SET_ID, {}, commands)
