"""The snapshot module through main(): present, archived (into a file or straight into a repository set) and
absent, check mode, idempotency without re-reading the archive, the lock, and failures.

The `stopped` backend runs here for real (cp, small stop/start commands, its watchdog); the other backends
have unit tests of their own and real-filesystem tests in test_snapshot_filesystems.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time

import pyrage
import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import archive, snapshot_stopped
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository
from ansible_collections.bigchaindb.rethinkdb.plugins.modules import snapshot
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.backup_sets import CLUSTER
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import run_module

SET_ID = '20261124T163000Z-snapshot-3f9a'
OTHER_SET = '20261124T170000Z-snapshot-0b1c'
PART = 'nodes/node1/data.tar.zst'
RUN = {'host': 'ops1', 'pid': 777, 'boot_id': 'b00t', 'start_ticks': 12345}


class RecordedWatchdog:
    """The backend's watchdog, not started: it runs for real in the first test below, in test_watchdog.py and
    in test_snapshot_stopped.py."""

    def __init__(self, commands, action, seconds, purpose):
        self.pid = 4242

    def record(self):
        return dict(pid=self.pid, start_ticks=99)

    def cancel(self):
        return True


@pytest.fixture(name='node')
def stopped_node(tmp_path, monkeypatch):
    """A data directory, and stop/start commands that log to a file."""
    monkeypatch.setattr(snapshot_stopped, 'Watchdog', RecordedWatchdog)
    data_dir = tmp_path / 'default'
    (data_dir / 'tables').mkdir(parents=True)
    (data_dir / 'metadata').write_bytes(b'm' * 5000)
    (data_dir / 'tables' / 'votes').write_bytes(os.urandom(20000))
    log = tmp_path / 'server.log'
    record = ['sh', '-c', 'echo "$2" >> "$1"', 'server', str(log)]
    args = dict(data_dir=str(data_dir), set_id=SET_ID, backend='stopped', stop_command=record + ['stop'],
                start_command=record + ['start'], run=RUN)
    return dict(args=args, data_dir=data_dir, log=log, tmp=tmp_path, copy=tmp_path / ('default.snapshot-' + SET_ID),
                lock=str(data_dir) + '.backup-lock', dest=str(tmp_path / 'out' / 'data.tar.zst'))


def server_log(node):
    return node['log'].read_text().split() if node['log'].exists() else []


def lock_of(node):
    with open(node['lock'], encoding='utf-8') as lock:
        return json.load(lock)


def snapshot_run(node, capsys, state, **changes):
    args = dict(node['args'], state=state)
    args.update(changes)
    return run_module(snapshot.main, dict((key, value) for key, value in args.items() if value is not None), capsys)


def sha256_of(path):
    with open(path, 'rb') as stream:
        content = stream.read()
    return hashlib.sha256(content).hexdigest(), len(content)


def index_of(root):
    """The file index an archive of root must record."""
    index = []
    for directory, subdirs, names in os.walk(root):
        subdirs.sort()
        for name in sorted(names):
            path = os.path.join(directory, name)
            digest, size = sha256_of(path)
            index.append(dict(path=os.path.relpath(path, root), bytes=size, sha256=digest))
    return sorted(index, key=lambda entry: entry['path'])


# --- present ---------------------------------------------------------------------------------------------------

def test_present_takes_the_snapshot_under_a_lock_that_says_who_and_until_when(node, capsys, monkeypatch):
    monkeypatch.undo()  # the real watchdog
    before = time.time()

    taken = snapshot_run(node, capsys, 'present', lock_hours=2)
    again = snapshot_run(node, capsys, 'present', lock_hours=2)

    assert taken['changed'] is True and again['changed'] is False
    assert {key: again[key] for key in taken if key not in ('changed', 'invocation')} == \
        {key: taken[key] for key in taken if key not in ('changed', 'invocation')}
    assert taken['backend'] == 'stopped' and taken['lock_file'] == node['lock']
    assert taken['freeze_ms'] > 0 and taken['took_ms'] >= taken['freeze_ms'] * 0.5 and taken['late_ms'] == 0.0
    assert before <= taken['taken_at'] <= time.time() and taken['taken_at_iso'].endswith('Z')
    assert taken['snapshot']['read_path'] == str(node['copy'])
    assert server_log(node) == ['stop', 'start']
    assert (node['copy'] / 'tables' / 'votes').read_bytes() == (node['data_dir'] / 'tables' / 'votes').read_bytes()
    lock = lock_of(node)
    assert (lock['set_id'], lock['run'], lock['pid'], lock['host'], lock['backend'], lock['phase']) == (
        SET_ID, RUN, os.getpid(), socket.gethostname(), 'stopped', 'taken')
    assert (lock['data_dir'], lock['plan'], lock['taken_at']) == (str(node['data_dir']), taken['snapshot'], taken['taken_at'])
    assert before + 2 * 3600 <= lock['expires_at'] <= time.time() + 2 * 3600
    assert lock['server_stopped'] is False and lock['watchdog']['pid'] not in (4242, os.getpid())


def test_present_waits_for_the_shared_instant(node, capsys):
    at = time.time() + 0.3

    result = snapshot_run(node, capsys, 'present', at=at)

    assert result['taken_at'] >= at and result['late_ms'] >= 0


def test_a_failed_snapshot_starts_the_server_and_releases_everything(node, capsys):
    result = snapshot_run(node, capsys, 'present', stop_command=[sys.executable, '-c', 'import sys; sys.exit(3)'])

    assert result['failed'] is True
    assert result['msg'] == 'Cannot stop the server: %s exited with 3.' % sys.executable
    assert result['rc'] == 3 and result['argv'][0] == sys.executable
    assert server_log(node) == ['start']
    assert not os.path.exists(node['lock']) and not os.path.exists(str(node['copy']))


# --- archived ----------------------------------------------------------------------------------------------------

def test_archived_into_a_file_records_the_part_and_is_not_redone(node, capsys, monkeypatch):
    taken = snapshot_run(node, capsys, 'present')

    archived = snapshot_run(node, capsys, 'archived', dest=node['dest'], server='node1')

    digest, size = sha256_of(node['dest'])
    assert archived['changed'] is True and archived['location'] == node['dest']
    assert archived['part'] == dict(path=PART, bytes=size, sha256=digest, raw_bytes=25000, compression='zstd', encryption=None,
                                    store_checksum=None, files=index_of(str(node['copy'])), server='node1')
    assert (archived['entries'], archived['sockets_left_out'], archived['backend']) == (4, [], 'stopped')
    assert archived['throughput'] is None or archived['throughput'] > 0
    assert os.stat(node['dest']).st_mode & 0o777 == 0o600 and os.listdir(os.path.dirname(node['dest'])) == ['data.tar.zst']
    assert lock_of(node)['archive'] == dict((key, archived[key]) for key in ('part', 'location', 'entries', 'sockets_left_out',
                                                                             'seconds', 'throughput'))

    status = os.stat(node['dest'])
    monkeypatch.setattr(archive, 'write_archive', lambda *args, **kwargs: pytest.fail('the archive was made again'))
    again = snapshot_run(node, capsys, 'archived', dest=node['dest'], server='node1')

    assert again['changed'] is False
    assert dict((key, again[key]) for key in ('part', 'location', 'entries')) == dict((key, archived[key]) for key in ('part', 'location', 'entries'))
    assert (os.stat(node['dest']).st_ino, os.stat(node['dest']).st_mtime_ns) == (status.st_ino, status.st_mtime_ns)
    assert taken['snapshot']['read_path'] == str(node['copy'])


def test_the_archive_unpacks_to_the_snapshot(node, capsys):
    snapshot_run(node, capsys, 'present')
    archived = snapshot_run(node, capsys, 'archived', dest=node['dest'], server='node1')

    with open(node['dest'], 'rb') as source:
        unpacked = archive.extract(source, str(node['tmp'] / 'unpacked'), sha256=archived['part']['sha256'],
                                   index=archived['part']['files'], durable=False)

    assert unpacked['raw_bytes'] == 25000
    assert index_of(str(node['tmp'] / 'unpacked')) == index_of(str(node['data_dir']))


def test_an_archive_that_changed_is_written_again(node, capsys):
    snapshot_run(node, capsys, 'present')
    first = snapshot_run(node, capsys, 'archived', dest=node['dest'], server='node1')
    with open(node['dest'], 'ab') as stream:
        stream.write(b'damage')

    second = snapshot_run(node, capsys, 'archived', dest=node['dest'], server='node1')

    assert second['changed'] is True and second['part']['sha256'] == first['part']['sha256']
    assert sha256_of(node['dest'])[0] == first['part']['sha256']


def test_archived_straight_into_a_repository_set(node, capsys):
    repository = LocalRepository(str(node['tmp'] / 'shared'), 'path')
    partial = repository.begin(CLUSTER, SET_ID, RUN)
    snapshot_run(node, capsys, 'present')
    target = dict(repository='path:' + repository.root, cluster=CLUSTER, server='node1')

    archived = snapshot_run(node, capsys, 'archived', **target)
    again = snapshot_run(node, capsys, 'archived', **target)

    stored = os.path.join(partial, 'nodes', 'node1', 'data.tar.zst')
    assert archived['changed'] is True and again['changed'] is False
    assert archived['location'] == again['location'] == stored
    assert (archived['part']['sha256'], archived['part']['bytes']) == sha256_of(stored)
    assert archived['part']['files'] == index_of(str(node['data_dir']))
    assert os.listdir(os.path.dirname(stored)) == ['data.tar.zst']
    assert repository.stat_part(CLUSTER, SET_ID, PART, committed=False).bytes == archived['part']['bytes']


def test_archived_into_a_set_that_was_not_begun_is_one_line(node, capsys):
    snapshot_run(node, capsys, 'present')

    result = snapshot_run(node, capsys, 'archived', repository='path:%s' % (node['tmp'] / 'shared'), cluster=CLUSTER, server='node1')

    partial = node['tmp'] / 'shared' / CLUSTER / (SET_ID + '.partial')
    assert result['msg'] == ('Cannot archive the snapshot of set %s: backup set %s is not being written in path:%s (no %s).'
                             % (SET_ID, SET_ID, node['tmp'] / 'shared', partial))
    assert lock_of(node).get('archive') is None


def test_archived_encrypted_to_recipients(node, capsys):
    first, second = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    recipients = [str(second.to_public()), str(first.to_public())]
    snapshot_run(node, capsys, 'present')

    archived = snapshot_run(node, capsys, 'archived', dest=node['dest'], server='node1', recipients=recipients)

    assert archived['part']['encryption'] == dict(format='age', recipients=sorted(recipients))
    with open(node['dest'], 'rb') as source:
        assert source.read(22) == b'age-encryption.org/v1\n'
    with open(node['dest'], 'rb') as source:
        unpacked = archive.extract(source, str(node['tmp'] / 'unpacked'), sha256=archived['part']['sha256'],
                                   index=archived['part']['files'], identities=[first], durable=False)
    assert unpacked['raw_bytes'] == 25000
    assert 'AGE-SECRET-KEY' not in json.dumps(archived)


def test_archived_to_a_bad_recipient_is_refused_and_leaves_no_file(node, capsys):
    snapshot_run(node, capsys, 'present')

    result = snapshot_run(node, capsys, 'archived', dest=node['dest'], server='node1', recipients=['age1nothing'])

    assert result['msg'] == ("Cannot archive the snapshot of set %s: 'age1nothing' is not an age X25519 recipient (a public key like "
                             "age1...): give the output of age-keygen -y." % SET_ID)
    assert os.listdir(os.path.dirname(node['dest'])) == []


def test_archived_without_room_is_refused_first(node, capsys):
    snapshot_run(node, capsys, 'present')

    result = snapshot_run(node, capsys, 'archived', dest=node['dest'], server='node1', min_free_bytes=1 << 62)

    assert result['msg'].startswith('Not enough space for the archive in %s: ' % node['tmp'])
    assert result['msg'].endswith(' bytes free, %d needed.' % (1 << 62))
    assert not os.path.exists(os.path.dirname(node['dest']))


def test_archived_before_present_says_what_to_do(node, capsys):
    result = snapshot_run(node, capsys, 'archived', dest=node['dest'], server='node1')

    assert result['msg'] == 'No snapshot of set %s on this node (no lock %s): run state=present first.' % (SET_ID, node['lock'])


def test_archived_needs_a_server_and_a_destination(node, capsys):
    snapshot_run(node, capsys, 'present')

    without_server = snapshot_run(node, capsys, 'archived', dest=node['dest'])
    without_destination = snapshot_run(node, capsys, 'archived', server='node1')
    without_cluster = snapshot_run(node, capsys, 'archived', server='node1', repository=str(node['tmp'] / 'r'))

    message = 'state=archived needs server, and dest (a file on this node) or repository and cluster.'
    assert [result['msg'] for result in (without_server, without_destination)] == [message] * 2
    assert without_cluster['msg'] == "missing parameter(s) required by 'repository': cluster"


# --- absent ------------------------------------------------------------------------------------------------------

def test_absent_releases_the_copy_and_the_lock_once(node, capsys):
    snapshot_run(node, capsys, 'present')
    snapshot_run(node, capsys, 'archived', dest=node['dest'], server='node1')

    released = snapshot_run(node, capsys, 'absent')
    again = snapshot_run(node, capsys, 'absent')

    assert released['changed'] is True and again['changed'] is False
    assert released['released'] == ['remove the copy %s' % node['copy'], 'remove the lock %s' % node['lock']]
    assert again['released'] == []
    assert not os.path.exists(str(node['copy'])) and not os.path.exists(node['lock'])
    assert os.path.isfile(node['dest'])


# --- check mode and another set's lock ---------------------------------------------------------------------------

def test_check_mode_changes_nothing(node, capsys):
    present = snapshot_run(node, capsys, 'present', _ansible_check_mode=True)

    assert present['changed'] is True and present['msg'] == 'Would take a stopped snapshot of %s for set %s.' % (node['data_dir'], SET_ID)
    assert present['snapshot']['copy'] == str(node['copy'])
    assert not os.path.exists(node['lock']) and server_log(node) == [] and not os.path.exists(str(node['copy']))

    snapshot_run(node, capsys, 'present')
    lock = lock_of(node)
    archived = snapshot_run(node, capsys, 'archived', dest=node['dest'], server='node1', _ansible_check_mode=True)
    absent = snapshot_run(node, capsys, 'absent', _ansible_check_mode=True)

    assert archived['changed'] is True and archived['msg'] == 'Would archive %s into %s.' % (node['copy'], node['dest'])
    assert not os.path.exists(os.path.dirname(node['dest']))
    assert absent['changed'] is True and absent['released'] == ['remove the copy %s' % node['copy'], 'remove the lock %s' % node['lock']]
    assert lock_of(node) == lock and os.path.isdir(str(node['copy']))


def test_another_sets_lock_is_named_and_left_alone(node, capsys):
    snapshot_run(node, capsys, 'present', set_id=OTHER_SET)
    lock = lock_of(node)

    present = snapshot_run(node, capsys, 'present')
    archived = snapshot_run(node, capsys, 'archived', dest=node['dest'], server='node1')
    absent = snapshot_run(node, capsys, 'absent')

    expected = 'Backup set %s holds the lock %s (taken by ansible-playbook pid 777 on ops1 at ' % (OTHER_SET, node['lock'])
    assert present['failed'] is True and present['msg'].startswith(expected)
    assert present['msg'].endswith('release it with state=absent and set_id=%s.' % OTHER_SET)
    assert archived['failed'] is True and archived['msg'] == present['msg']
    assert absent['changed'] is False and absent['released'] == []
    assert [warning for warning in absent['warnings'] if str(warning).find('Left alone: ' + expected) >= 0]
    assert lock_of(node) == lock and server_log(node) == ['stop', 'start']


def test_a_snapshot_that_was_not_completed_must_be_released(node, capsys):
    snapshot_run(node, capsys, 'present')
    lock = lock_of(node)
    lock['phase'] = 'taking'
    with open(node['lock'], 'w', encoding='utf-8') as stream:
        json.dump(lock, stream)

    present = snapshot_run(node, capsys, 'present')
    archived = snapshot_run(node, capsys, 'archived', dest=node['dest'], server='node1')

    message = 'The snapshot of set %s was not completed (lock %s): release it with state=absent.' % (SET_ID, node['lock'])
    assert (present['msg'], archived['msg']) == (message, message)


@pytest.mark.parametrize('change, message', [
    (dict(at=time.time() + 10 ** 6), 'seconds ahead of this node\'s clock: give seconds since the epoch, a few seconds ahead.'),
    (dict(set_id='../etc'), "set_id: '../etc' is not a backup set id (like 20261124T163000Z-dump-3f9a)."),
    (dict(staging_dir='{data_dir}/tables'), 'is inside data_dir'),
    (dict(data_dir='{data_dir}/missing'), 'is not a directory.'),
    (dict(start_command=None), 'Say how to stop and start the server: service (a systemd unit), or stop_command and start_command '
                               '(argument lists).'),
    (dict(backend=None), 'state is present but all of the following are missing: backend'),
    (dict(service='rethinkdb'), 'parameters are mutually exclusive: service|stop_command'),
])
def test_bad_input_is_one_clear_line(node, capsys, change, message):
    change = dict((key, value.format(data_dir=node['data_dir']) if isinstance(value, str) else value) for key, value in change.items())
    args = dict(node['args'], state='present')
    args.update(change)

    result = run_module(snapshot.main, dict((key, value) for key, value in args.items() if value is not None), capsys)

    assert result['failed'] is True and message in result['msg'] and '\n' not in result['msg']
    assert not os.path.exists(node['lock']) and server_log(node) == []


def test_a_sink_that_fails_removes_the_partial_file(node, capsys, monkeypatch):
    snapshot_run(node, capsys, 'present')

    def fails(source_dir, sink, **options):
        sink.write(b'some bytes')
        raise archive.ArchiveError('cannot archive %s: [Errno 28] No space left on device' % source_dir)

    monkeypatch.setattr(archive, 'write_archive', fails)
    result = snapshot_run(node, capsys, 'archived', dest=node['dest'], server='node1')

    assert result['msg'] == ('Cannot archive the snapshot of set %s: cannot archive %s: [Errno 28] No space left on device.'
                             % (SET_ID, node['copy']))
    assert os.listdir(os.path.dirname(node['dest'])) == []
    assert lock_of(node).get('archive') is None
