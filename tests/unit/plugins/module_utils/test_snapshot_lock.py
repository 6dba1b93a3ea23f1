"""The node lock: beside the data directory, exclusive, complete from its first byte, updatable, and saying
which controller run holds it and until when."""

from __future__ import annotations

import json
import os
import time

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import SnapshotError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_lock import LockHeld, NodeLock, expired

HOLDER = dict(set_id='20261124T163000Z-snapshot-3f9a', pid=4242, host='node1', backend='btrfs',
              created_at='2026-11-24T16:30:00.000Z', plan={'snapshot': '/srv/default.snapshot-x'}, phase='taking')


@pytest.fixture(name='lock')
def node_lock(tmp_path):
    (tmp_path / 'default').mkdir()
    return NodeLock(str(tmp_path / 'default') + '/')


def test_lock_lies_beside_the_data_directory(lock, tmp_path):
    lock.acquire(HOLDER)

    assert lock.path == str(tmp_path / 'default.backup-lock')
    with open(lock.path, encoding='utf-8') as stream:
        assert json.load(stream) == HOLDER
    assert os.listdir(str(tmp_path / 'default')) == []
    assert sorted(os.listdir(str(tmp_path))) == ['default', 'default.backup-lock']


def test_second_holder_is_refused_with_the_first_one_named(lock):
    lock.acquire(HOLDER)

    with pytest.raises(LockHeld) as refused:
        lock.acquire(dict(HOLDER, set_id='20261124T170000Z-snapshot-0000'))

    message = str(refused.value)
    assert message.startswith('Backup set 20261124T163000Z-snapshot-3f9a holds the lock %s (taken by pid 4242 on node1' % lock.path)
    assert message.endswith('release it with state=absent and set_id=20261124T163000Z-snapshot-3f9a.')
    assert lock.read() == HOLDER


def test_update_keeps_what_it_does_not_change(lock):
    lock.acquire(HOLDER)

    state = lock.update(phase='taken', taken_at=1795537803.0)

    assert state == dict(HOLDER, phase='taken', taken_at=1795537803.0)
    assert lock.read() == state


def test_update_without_a_lock_fails(lock):
    with pytest.raises(SnapshotError, match='disappeared'):
        lock.update(phase='taken')


def test_release_is_safe_twice(lock):
    lock.acquire(HOLDER)

    assert lock.release() is True
    assert lock.release() is False
    assert lock.read() is None
    lock.acquire(HOLDER)
    assert lock.read()['set_id'] == HOLDER['set_id']


def test_acquire_leaves_no_temporary_file_won_or_lost(lock, tmp_path):
    lock.acquire(HOLDER)
    with pytest.raises(LockHeld):
        lock.acquire(dict(HOLDER, set_id='20261124T170000Z-snapshot-0000'))

    assert sorted(os.listdir(str(tmp_path))) == ['default', 'default.backup-lock']


def test_the_lock_names_the_controller_run_that_holds_it_and_until_when(lock):
    holder = dict(HOLDER, run={'host': 'ops1', 'pid': 777, 'boot_id': 'b', 'start_ticks': 5}, expires_at=1795624200.5)
    lock.acquire(holder)

    with pytest.raises(LockHeld) as refused:
        lock.acquire(dict(HOLDER, set_id='20261124T170000Z-snapshot-0000'))

    assert str(refused.value) == (
        'Backup set 20261124T163000Z-snapshot-3f9a holds the lock %s (taken by ansible-playbook pid 777 on ops1 at '
        '2026-11-24T16:30:00.000Z, until 2026-11-25T16:30:00.500Z). If that run no longer runs, a backup breaks it once it expires, '
        'or at once with backup_break_lock=true (the role), or release it with state=absent and set_id=20261124T163000Z-snapshot-3f9a.'
        % lock.path)
    assert refused.value.details == {'holder': holder}


@pytest.mark.parametrize('holder, now, is_expired', [
    ({}, 2000.0, False),
    ({'expires_at': None}, 2000.0, False),
    ({'expires_at': '1000'}, 2000.0, False),
    ({'expires_at': 1000}, 999.5, False),
    ({'expires_at': 1000}, 1000.0, False),
    ({'expires_at': 1000.0}, 1000.5, True),
    ({'expires_at': time.time() + 3600}, None, False),
    ({'expires_at': time.time() - 1}, None, True),
])
def test_expired_when_the_lease_ran_out(holder, now, is_expired):
    assert expired(holder, now) is is_expired


def test_a_damaged_lock_is_a_snapshot_error(lock):
    with open(lock.path, 'w', encoding='utf-8') as stream:
        stream.write('{"set_id": ')

    with pytest.raises(SnapshotError) as damaged:
        lock.read()

    assert str(damaged.value) == '%s is not valid JSON; it was not written by this collection, or was damaged.' % lock.path
