"""The snapshot module through main(): its states, check mode, idempotency, the lock, and failures.

The `stopped` backend runs here for real (cp, and small stop/start commands), the other backends have unit
tests of their own and real-filesystem tests in test_snapshot_filesystems.py.
"""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import archive
from ansible_collections.bigchaindb.rethinkdb.plugins.modules import snapshot
from tests.unit.plugins.fake_reql import run_module

SET_ID = '20261124T163000Z-snapshot-3f9a'
OTHER_SET = '20261124T170000Z-snapshot-0b1c'


@pytest.fixture(name='node')
def stopped_node(tmp_path):
    """A data directory, and stop/start commands that log to a file."""
    data_dir = tmp_path / 'default'
    (data_dir / 'tables').mkdir(parents=True)
    (data_dir / 'metadata').write_bytes(b'm' * 5000)
    (data_dir / 'tables' / 'votes').write_bytes(os.urandom(20000))
    log = tmp_path / 'server.log'
    record = [sys.executable, '-c', 'import sys; open(sys.argv[1], "a").write(sys.argv[2] + "\\n")', str(log)]
    args = dict(data_dir=str(data_dir), set_id=SET_ID, backend='stopped', stop_command=record + ['stop'],
                start_command=record + ['start'])
    return dict(args=args, data_dir=data_dir, log=log, tmp=tmp_path, copy=tmp_path / ('default.snapshot-' + SET_ID),
                lock=str(data_dir) + '.backup-lock', dest=str(tmp_path / 'out' / 'data.tar.zst'))


def server_log(node):
    return node['log'].read_text().split() if node['log'].exists() else []


def test_check_reports_clock_space_and_a_free_lock(node, capsys):
    before = time.time()

    result = run_module(snapshot.main, dict(node['args'], state='check', dest=node['dest']), capsys)

    assert result['changed'] is False and 'failed' not in result
    assert before <= result['now'] <= time.time()
    assert result['now_iso'].endswith('Z')
    assert result['problems'] == [] and result['lock'] is None
    assert result['data_bytes'] == 25000
    assert len(result['free_space']) == 1 and result['free_space'][0]['needed'] == 50000
    assert result['snapshot']['copy'] == str(node['copy'])
    assert not os.path.exists(node['lock']) and server_log(node) == []


def test_check_fails_with_every_reason(node, capsys):
    result = run_module(snapshot.main, dict(node['args'], state='check', min_free_bytes=1 << 62,
                                            stop_command=['no-such-command-here']), capsys)

    assert result['failed'] is True
    assert result['msg'].startswith('Cannot take a stopped snapshot of %s: ' % node['data_dir'])
    assert result['problems'][0] == 'The no-such-command-here command is not installed on this node.'
    assert 'needs %d free bytes' % (1 << 62) in result['problems'][1]


def test_present_archived_absent_and_each_again(node, capsys):
    taken = run_module(snapshot.main, dict(node['args'], state='present'), capsys)
    again = run_module(snapshot.main, dict(node['args'], state='present'), capsys)

    assert taken['changed'] is True and again['changed'] is False
    assert {key: again[key] for key in taken if key != 'changed'} == {key: taken[key] for key in taken if key != 'changed'}
    assert taken['backend'] == 'stopped' and taken['set_id'] == SET_ID
    assert taken['freeze_ms'] > 0 and taken['took_ms'] >= taken['freeze_ms'] * 0.5 and taken['late_ms'] == 0.0
    assert server_log(node) == ['stop', 'start']
    assert (node['copy'] / 'tables' / 'votes').read_bytes() == (node['data_dir'] / 'tables' / 'votes').read_bytes()
    with open(node['lock'], encoding='utf-8') as lock:
        assert json.load(lock)['phase'] == 'taken'

    archived = run_module(snapshot.main, dict(node['args'], state='archived', dest=node['dest']), capsys)
    archived_again = run_module(snapshot.main, dict(node['args'], state='archived', dest=node['dest']), capsys)

    assert archived['changed'] is True and archived_again['changed'] is False
    assert (archived['sha256'], archived['bytes']) == archive.sha256_file(node['dest'])
    assert archived_again['sha256'] == archived['sha256']
    assert (archived['files'], archived['raw_bytes']) == (4, 25000)
    assert archived['throughput'] is None or archived['throughput'] > 0

    released = run_module(snapshot.main, dict(node['args'], state='absent'), capsys)
    released_again = run_module(snapshot.main, dict(node['args'], state='absent'), capsys)

    assert released['changed'] is True and released_again['changed'] is False
    assert released['released'] == ['remove the copy %s' % node['copy'], 'remove the lock %s' % node['lock']]
    assert not os.path.exists(str(node['copy'])) and not os.path.exists(node['lock'])
    assert os.path.isfile(node['dest'])


def test_an_archive_that_changed_is_written_again(node, capsys):
    run_module(snapshot.main, dict(node['args'], state='present'), capsys)
    first = run_module(snapshot.main, dict(node['args'], state='archived', dest=node['dest']), capsys)
    with open(node['dest'], 'ab') as stream:
        stream.write(b'damage')

    second = run_module(snapshot.main, dict(node['args'], state='archived', dest=node['dest']), capsys)

    assert second['changed'] is True and second['sha256'] == first['sha256']
    assert archive.sha256_file(node['dest'])[0] == first['sha256']


def test_check_mode_changes_nothing(node, capsys):
    present = run_module(snapshot.main, dict(node['args'], state='present', _ansible_check_mode=True), capsys)

    assert present['changed'] is True and present['msg'].startswith('Would take a stopped snapshot of ')
    assert not os.path.exists(node['lock']) and server_log(node) == []

    run_module(snapshot.main, dict(node['args'], state='present'), capsys)
    archived = run_module(snapshot.main, dict(node['args'], state='archived', dest=node['dest'], _ansible_check_mode=True), capsys)
    absent = run_module(snapshot.main, dict(node['args'], state='absent', _ansible_check_mode=True), capsys)

    assert archived['changed'] is True and archived['msg'].startswith('Would archive ')
    assert not os.path.exists(node['dest'])
    assert absent['changed'] is True and absent['released'] == ['remove the copy %s' % node['copy'], 'remove the lock %s' % node['lock']]
    assert os.path.exists(node['lock']) and os.path.isdir(str(node['copy']))


def test_another_sets_lock_is_named_and_left_alone(node, capsys):
    run_module(snapshot.main, dict(node['args'], state='present', set_id=OTHER_SET), capsys)

    present = run_module(snapshot.main, dict(node['args'], state='present'), capsys)
    checked = run_module(snapshot.main, dict(node['args'], state='check'), capsys)
    archived = run_module(snapshot.main, dict(node['args'], state='archived', dest=node['dest']), capsys)
    absent = run_module(snapshot.main, dict(node['args'], state='absent'), capsys)

    expected = 'Backup set %s holds the lock %s' % (OTHER_SET, node['lock'])
    assert present['failed'] is True and present['msg'].startswith(expected)
    assert checked['failed'] is True and checked['problems'][0].startswith(expected)
    assert archived['failed'] is True and archived['msg'].startswith(expected)
    assert absent['changed'] is False
    assert [warning['event']['msg'] for warning in absent['warnings'] if warning['event']['msg'].startswith('Left alone: ' + expected)]
    with open(node['lock'], encoding='utf-8') as lock:
        assert json.load(lock)['set_id'] == OTHER_SET


def test_a_failed_snapshot_starts_the_server_and_releases_everything(node, capsys):
    result = run_module(snapshot.main, dict(node['args'], state='present', stop_command=[sys.executable, '-c', 'import sys; sys.exit(3)']), capsys)

    assert result['failed'] is True
    assert result['msg'] == 'Cannot stop the server: %s exited with 3.' % sys.executable
    assert result['rc'] == 3 and result['argv'][0] == sys.executable
    assert server_log(node) == ['start']
    assert not os.path.exists(node['lock']) and not os.path.exists(str(node['copy']))


def test_present_waits_for_the_shared_instant(node, capsys):
    at = time.time() + 0.3

    result = run_module(snapshot.main, dict(node['args'], state='present', at=at), capsys)

    assert result['taken_at'] >= at
    assert result['late_ms'] >= 0


def test_archived_before_present_says_what_to_do(node, capsys):
    result = run_module(snapshot.main, dict(node['args'], state='archived', dest=node['dest']), capsys)

    assert result['msg'] == 'No snapshot of set %s on this node (no lock %s): run state=present first.' % (SET_ID, node['lock'])


@pytest.mark.parametrize('change, message', [
    (dict(at=time.time() + 10 ** 6), 'seconds ahead of this node\'s clock: give seconds since the epoch'),
    (dict(set_id='../etc'), "set_id: '../etc' is not a backup set id"),
    (dict(staging_dir='{data_dir}/tables'), 'is inside data_dir'),
    (dict(data_dir='{data_dir}/missing'), 'is not a directory'),
    (dict(start_command=None), 'needs stop_command and start_command'),
    (dict(backend=None), 'state is present but all of the following are missing: backend'),
])
def test_bad_input_is_one_clear_line(node, capsys, change, message):
    args = dict(node['args'], state='present')
    args.update((key, value.format(data_dir=node['data_dir']) if isinstance(value, str) else value) for key, value in change.items())
    args = dict((key, value) for key, value in args.items() if value is not None)

    result = run_module(snapshot.main, args, capsys)

    assert result['failed'] is True and message in result['msg'] and '\n' not in result['msg']
    assert not os.path.exists(node['lock'])
