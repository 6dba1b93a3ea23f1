"""fsfreeze backend: the freeze, copy, thaw sequence and its failures, with the watchdog recorded (the
watchdog itself runs as a real process in test_watchdog.py)."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import snapshot_fsfreeze
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import SnapshotError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_fsfreeze import FsfreezeSnapshot
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.conftest import fake_mounts, mount_line

SET_ID = '20261124T163000Z-snapshot-3f9a'


class FakeWatchdog:
    """Records how the backend treats its watchdog."""

    instances: list = []

    def __init__(self, commands, thaw, seconds, purpose):
        self.thaw = thaw
        self.seconds = seconds
        self.purpose = purpose
        self.pid = 4242
        self.start_ticks = 99
        self.cancelled = False
        FakeWatchdog.instances.append(self)

    def record(self):
        return dict(pid=self.pid, start_ticks=self.start_ticks)

    def cancel(self):
        self.cancelled = True


@pytest.fixture(name='layout')
def frozen_layout(tmp_path, monkeypatch):
    """<tmp>/data is an XFS mount holding the data directory default; <tmp>/staging another filesystem."""
    for name in ('data/default', 'staging', 'data/staging'):
        (tmp_path / name).mkdir(parents=True)
    fake_mounts(monkeypatch, mount_line('/', 'ext4', '/dev/vda', device='254:0'),
                mount_line(str(tmp_path / 'data'), 'xfs', '/dev/sdb', device='8:16'),
                mount_line(str(tmp_path / 'staging'), 'ext4', '/dev/sdc', device='8:32'))
    FakeWatchdog.instances = []
    monkeypatch.setattr(snapshot_fsfreeze, 'Watchdog', FakeWatchdog)
    return tmp_path


def backend_for(layout, commands, **options):
    settings = dict(staging_dir=str(layout / 'staging'), freeze_timeout=300.0)
    settings.update(options)
    return FsfreezeSnapshot(FsfreezeSnapshot.make_plan(str(layout / 'data' / 'default'), SET_ID, settings, commands), commands)


def taken_with_progress(backend):
    recorded = []
    backend.prepare(None, lambda **fields: recorded.append(fields))
    return recorded, backend.take(lambda **fields: recorded.append(fields))


def test_freeze_copy_thaw_in_that_order_with_the_watchdog_armed_first(layout, commands, run):
    backend = backend_for(layout, commands)
    mountpoint = str(layout / 'data')
    copy = str(layout / 'staging' / ('default.snapshot-' + SET_ID))

    recorded, taken = taken_with_progress(backend)

    assert run.calls == [['fsfreeze', '--freeze', mountpoint], ['cp', '-a', '--', str(layout / 'data' / 'default'), copy],
                         ['fsfreeze', '--unfreeze', mountpoint]]
    watchdog = FakeWatchdog.instances[0]
    assert (watchdog.thaw, watchdog.seconds, watchdog.cancelled) == (['fsfreeze', '--unfreeze', mountpoint], 300.0, True)
    assert watchdog.purpose == 'thaw %s' % mountpoint
    assert recorded == [{'frozen': True, 'watchdog': {'pid': 4242, 'start_ticks': 99}}, {'frozen': False}]
    assert taken['freeze_ms'] >= 0 and abs(taken['taken_at'] - time.time()) < 5
    assert backend.read_path() == copy


def test_the_watchdog_counts_freeze_timeout_from_the_shared_instant(layout, commands):
    backend = backend_for(layout, commands)

    backend.prepare(time.time() + 100, lambda **fields: None)

    assert 399 < FakeWatchdog.instances[0].seconds <= 400


def test_a_failed_copy_still_thaws(layout, commands, run):
    run.answer(['cp'], rc=1, stderr="cp: cannot create directory: No space left on device\n")
    backend = backend_for(layout, commands)

    with pytest.raises(SnapshotError, match='Cannot copy .*: cp exited with 1: cp: cannot create directory: No space left on device'):
        taken_with_progress(backend)

    assert run.calls[-1] == ['fsfreeze', '--unfreeze', str(layout / 'data')]
    assert FakeWatchdog.instances[0].cancelled


def test_a_failed_freeze_cancels_the_watchdog(layout, commands, run):
    run.answer(['fsfreeze', '--freeze'], rc=1, stderr='fsfreeze: /data: freeze failed: Device or resource busy\n')
    backend = backend_for(layout, commands)

    with pytest.raises(SnapshotError, match='Cannot freeze .*: fsfreeze exited with 1: .*Device or resource busy'):
        taken_with_progress(backend)

    assert [call[0] for call in run.calls] == ['fsfreeze']
    assert FakeWatchdog.instances[0].cancelled


def test_a_copy_longer_than_the_timeout_is_not_consistent(layout, commands, run):
    run.answer(['fsfreeze', '--unfreeze'], rc=1, stderr='fsfreeze: /data: unfreeze failed: Invalid argument\n')
    backend = backend_for(layout, commands, freeze_timeout=0.0)

    with pytest.raises(SnapshotError) as failure:
        taken_with_progress(backend)

    assert 'lasted longer than freeze_timeout (0.0s): the watchdog thawed it during the copy' in str(failure.value)
    assert failure.value.details['rc'] == 1


def test_a_failed_thaw_leaves_the_watchdog_armed(layout, commands, run):
    run.answer(['fsfreeze', '--unfreeze'], rc=1, stderr='fsfreeze: /data: unfreeze failed: Input/output error\n')
    backend = backend_for(layout, commands)

    with pytest.raises(SnapshotError, match='Cannot thaw .* The watchdog \\(pid 4242\\) thaws it within freeze_timeout'):
        taken_with_progress(backend)

    assert not FakeWatchdog.instances[0].cancelled


def test_release_thaws_a_filesystem_left_frozen_and_removes_the_copy(layout, commands, run):
    backend = backend_for(layout, commands)
    os.mkdir(backend.plan['copy'])
    run.answer(['fsfreeze', '--unfreeze'], rc=1, stderr='fsfreeze: /data: unfreeze failed: Invalid argument\n')

    assert backend.release({'frozen': True}, dry_run=True) == ['thaw %s' % (layout / 'data'), 'remove the copy %s' % backend.plan['copy']]
    assert run.calls == [] and os.path.isdir(backend.plan['copy'])
    assert backend.release({'frozen': True}) == ['thaw %s' % (layout / 'data'), 'remove the copy %s' % backend.plan['copy']]
    assert run.calls == [['fsfreeze', '--unfreeze', str(layout / 'data')]]
    assert not os.path.exists(backend.plan['copy'])
    assert backend.release({'frozen': False}) == []


def test_release_reports_a_thaw_that_fails_for_another_reason(layout, commands, run):
    run.answer(['fsfreeze', '--unfreeze'], rc=1, stderr='fsfreeze: /data: unfreeze failed: Input/output error\n')

    with pytest.raises(SnapshotError, match='Cannot thaw .*Input/output error'):
        backend_for(layout, commands).release({'frozen': True})


@pytest.mark.parametrize('staging, message', [
    (None, 'The fsfreeze backend copies the data directory into staging_dir'),
    ('data/staging', 'is on the filesystem that fsfreeze freezes'),
    ('missing', 'The fsfreeze backend copies the data directory into staging_dir'),
])
def test_staging_must_be_another_existing_filesystem(layout, commands, staging, message):
    with pytest.raises(SnapshotError, match=message):
        backend_for(layout, commands, staging_dir=str(layout / staging) if staging else None)


def test_the_root_filesystem_is_never_frozen(tmp_path, monkeypatch, commands):
    fake_mounts(monkeypatch, mount_line('/', 'ext4', '/dev/vda'))

    with pytest.raises(SnapshotError, match='is on the root filesystem; freezing it would stop the whole node'):
        FsfreezeSnapshot.make_plan(str(tmp_path), SET_ID, dict(staging_dir=str(tmp_path), freeze_timeout=1.0), commands)
