"""stopped backend: stop, copy, start, with the start run whatever happened before it."""

from __future__ import annotations

import os

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import Commands, SnapshotError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_stopped import StoppedSnapshot

SET_ID = '20261124T163000Z-snapshot-3f9a'
STOP = ['systemctl', 'stop', 'rethinkdb@default']
START = ['systemctl', 'start', 'rethinkdb@default']


@pytest.fixture(name='backend')
def stopped_backend(tmp_path, commands):
    (tmp_path / 'default').mkdir()
    options = dict(staging_dir=None, stop_command=STOP, start_command=START)
    return StoppedSnapshot(StoppedSnapshot.make_plan(str(tmp_path / 'default'), SET_ID, options, commands), commands)


def take(backend):
    recorded = []
    return recorded, backend.take(lambda **fields: recorded.append(fields))


def test_stop_copy_start(backend, run, tmp_path):
    recorded, taken = take(backend)

    copy = str(tmp_path / ('default.snapshot-' + SET_ID))
    assert run.calls == [STOP, ['cp', '-a', '--', str(tmp_path / 'default'), copy], START]
    assert recorded == [{'server_stopped': True}, {'server_stopped': False}]
    assert taken['freeze_ms'] >= 0
    assert backend.read_path() == copy


def test_a_failed_copy_still_starts_the_server(backend, run):
    run.answer(['cp'], rc=1, stderr='cp: error writing: No space left on device\n')

    with pytest.raises(SnapshotError, match='Cannot copy .*No space left on device'):
        take(backend)

    assert run.calls[-1] == START


def test_a_failed_stop_still_starts_and_copies_nothing(backend, run):
    run.answer(STOP, rc=1, stderr='Failed to stop rethinkdb@default.service: Unit not loaded.\n')

    with pytest.raises(SnapshotError, match='Cannot stop the server: systemctl exited with 1: Failed to stop'):
        take(backend)

    assert run.calls == [STOP, START]


def test_a_failed_start_is_reported_with_the_earlier_failure_and_the_lock_says_stopped(backend, run):
    run.answer(['cp'], rc=1, stderr='cp: boom\n').answer(START, rc=1, stderr='Job failed.\n')

    recorded = []
    with pytest.raises(SnapshotError) as failure:
        backend.take(lambda **fields: recorded.append(fields))

    assert str(failure.value).startswith('Cannot start the server: systemctl exited with 1: Job failed. (before that: Cannot copy')
    assert failure.value.details['argv'] == START
    assert recorded == [{'server_stopped': True}]


def test_release_starts_a_server_left_stopped_and_removes_the_copy(backend, run):
    os.mkdir(backend.plan['copy'])

    done = backend.release({'server_stopped': True})

    assert done == ['start the server (systemctl start rethinkdb@default)', 'remove the copy %s' % backend.plan['copy']]
    assert run.calls == [START]
    assert backend.release({'server_stopped': False}) == []


def test_both_commands_are_required(tmp_path, commands):
    with pytest.raises(SnapshotError, match='needs stop_command and start_command'):
        StoppedSnapshot.make_plan(str(tmp_path), SET_ID, dict(staging_dir=None, stop_command=STOP, start_command=None), commands)


def test_commands_that_are_not_installed_are_problems(tmp_path, run):
    commands = Commands(run, locate=lambda name: None if name == 'systemctl' else name)
    options = dict(staging_dir=None, stop_command=STOP, start_command=START)
    backend = StoppedSnapshot(StoppedSnapshot.make_plan(str(tmp_path), SET_ID, options, commands), commands)

    assert backend.problems() == ['The systemctl command is not installed on this node.']
