"""Unit tests of the backup set format (module_utils/backup_set) on real temporary directories."""

from __future__ import annotations

import datetime
import json
import os
import sys

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import backup_set
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.archive import sha256_file
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.backup_set import BackupSetError

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 24, 16, 30, 0, 123456, tzinfo=UTC)
CLUSTER = 'rethinkdb'
TABLES = [
    {'db': 'bigchain', 'name': 'bigchain', 'documents': 1200, 'primary_key': 'id',
     'indexes': ['block_timestamp', 'transaction_id'], 'shards': 1, 'replicas': 3, 'primary_replicas': ['node1']},
    {'db': 'bigchain', 'name': 'votes', 'documents': 3600, 'primary_key': 'id',
     'indexes': ['block_and_voter'], 'shards': 1, 'replicas': 3, 'primary_replicas': ['node1']},
]
FIELDS = {'rethinkdb_version': '2.4.4', 'tables': TABLES}
TIMES = {'started_at': '2026-11-24T16:30:00.123Z', 'finished_at': '2026-11-24T16:30:09.456Z'}
SNAPSHOT = {'backend': 'btrfs', 'barrier_at': '2026-11-24T16:30:01.000Z', 'skew_ms': 3.1,
            'nodes': [{'server': 'node1', 'host': 'node1', 'taken_at': '2026-11-24T16:30:01.001Z', 'freeze_ms': 0.0}]}


def hours_ago(hours: float) -> datetime.datetime:
    return NOW - datetime.timedelta(hours=hours)


def write_part(partial_dir: str, path: str, content: bytes, host: str = 'node1', server: str | None = None) -> dict:
    """Write a part file into a partial set and return its parts entry."""
    file_path = os.path.join(partial_dir, *path.split('/'))
    os.makedirs(os.path.dirname(file_path), exist_ok=True)
    with open(file_path, 'wb') as stream:
        stream.write(content)
    digest, size = sha256_file(file_path)
    return {'path': path, 'bytes': size, 'sha256': digest, 'server': server, 'host': host}


def make_dump_set(root, at: datetime.datetime, commit: bool = True) -> str:
    """A dump set begun at `at` with one part; committed unless told otherwise. Returns its directory."""
    _set_id, partial_dir = backup_set.begin(str(root), CLUSTER, 'dump', now=at)
    part = write_part(partial_dir, 'dump/bigchain.tar.gz', b'dump of ' + at.isoformat().encode())
    if not commit:
        return partial_dir
    return backup_set.commit(partial_dir, FIELDS, [part], now=at)


# --- ids, paths, begin -------------------------------------------------------------------------------------

def test_new_set_id_names_time_and_method_and_sorts_by_time():
    earlier = backup_set.new_set_id('snapshot', NOW)
    later = backup_set.new_set_id('dump', NOW + datetime.timedelta(seconds=1))

    assert earlier.startswith('20261124T163000Z-snapshot-') and len(earlier) == len('20261124T163000Z-snapshot-3f9a')
    assert sorted([later, earlier]) == [earlier, later]
    assert backup_set.set_id_time(earlier) == NOW.replace(microsecond=0)
    assert backup_set.set_id_method(later) == 'dump'


@pytest.mark.parametrize('cluster, set_id', [('../etc', '20261124T163000Z-dump-3f9a'), ('-x', '20261124T163000Z-dump-3f9a'),
                                             ('rethinkdb', '../20261124T163000Z-dump-3f9a'), ('rethinkdb', '20261124T163000Z-tar-3f9a')])
def test_set_paths_refuse_names_that_leave_the_root(tmp_path, cluster, set_id):
    with pytest.raises(BackupSetError):
        backup_set.set_paths(str(tmp_path), cluster, set_id)


def test_set_paths_are_final_and_partial_under_the_cluster(tmp_path):
    paths = backup_set.set_paths(str(tmp_path), CLUSTER, '20261124T163000Z-dump-3f9a')

    assert paths.final == str(tmp_path / 'rethinkdb' / '20261124T163000Z-dump-3f9a')
    assert paths.partial == paths.final + '.partial'


@pytest.mark.parametrize('method, parts_dir', [('dump', 'dump'), ('snapshot', 'nodes')])
def test_begin_creates_the_partial_set_with_its_parts_directory_for_the_owner_only(tmp_path, method, parts_dir):
    set_id, partial_dir = backup_set.begin(str(tmp_path / 'backups'), CLUSTER, method, now=NOW)

    assert set_id.startswith('20261124T163000Z-%s-' % method)
    assert partial_dir == str(tmp_path / 'backups' / CLUSTER / (set_id + '.partial'))
    assert os.listdir(partial_dir) == [parts_dir]
    assert os.stat(partial_dir).st_mode & 0o777 == 0o700


def test_begin_with_a_set_id_creates_that_set_and_refuses_it_twice(tmp_path):
    set_id, partial_dir = backup_set.begin(str(tmp_path), CLUSTER, 'dump', set_id='20261124T163000Z-dump-00aa')

    assert (set_id, os.path.isdir(partial_dir)) == ('20261124T163000Z-dump-00aa', True)
    with pytest.raises(BackupSetError, match='already being written'):
        backup_set.begin(str(tmp_path), CLUSTER, 'dump', set_id=set_id)
    with pytest.raises(BackupSetError, match='set id 20261124T163000Z-dump-00aa names method dump, not snapshot: give method dump'):
        backup_set.begin(str(tmp_path), CLUSTER, 'snapshot', set_id=set_id)


def test_begin_refuses_an_unknown_method(tmp_path):
    with pytest.raises(BackupSetError, match="method 'tar' is not one of dump, snapshot"):
        backup_set.begin(str(tmp_path), CLUSTER, 'tar')
    assert not os.path.exists(tmp_path / CLUSTER)


# --- atomic writes and commit ------------------------------------------------------------------------------

def test_write_json_atomic_replaces_the_whole_file_and_leaves_no_tmp(tmp_path):
    path = tmp_path / 'doc.json'
    backup_set.write_json_atomic(str(path), {'a': 1})
    backup_set.write_json_atomic(str(path), {'b': [1, 2]})

    assert json.loads(path.read_text()) == {'b': [1, 2]}
    assert os.listdir(tmp_path) == ['doc.json']


def test_write_json_atomic_that_fails_before_the_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'doc.json'
    backup_set.write_json_atomic(str(path), {'old': True})

    def crash(_source, _target):
        raise OSError(5, 'Input/output error')
    monkeypatch.setattr(backup_set.os, 'replace', crash)
    with pytest.raises(OSError):
        backup_set.write_json_atomic(str(path), {'new': True})

    assert json.loads(path.read_text()) == {'old': True}
    assert os.listdir(tmp_path) == ['doc.json']


def test_commit_writes_the_manifest_in_format_order_and_renames_the_set(tmp_path):
    set_id, partial_dir = backup_set.begin(str(tmp_path), CLUSTER, 'dump', now=NOW)
    parts = [write_part(partial_dir, 'dump/bigchain.tar.gz', b'x' * 1000)]
    # the caller's key order does not matter
    parts[0] = dict(reversed(list(parts[0].items())))

    final_dir = backup_set.commit(partial_dir, dict(FIELDS, **TIMES), parts)

    assert final_dir == partial_dir[:-len('.partial')]
    assert not os.path.exists(partial_dir)
    with open(os.path.join(final_dir, 'manifest.json'), encoding='utf-8') as stream:
        manifest = json.load(stream)
    assert list(manifest) == ['format', 'set_id', 'cluster', 'method', 'started_at', 'finished_at',
                              'rethinkdb_version', 'tables', 'parts', 'snapshot']
    assert (manifest['format'], manifest['set_id'], manifest['cluster'], manifest['method']) == (1, set_id, CLUSTER, 'dump')
    assert list(manifest['tables'][0]) == ['db', 'name', 'documents', 'primary_key', 'indexes', 'shards', 'replicas',
                                           'primary_replicas']
    assert manifest['parts'] == [{'path': 'dump/bigchain.tar.gz', 'bytes': 1000,
                                  'sha256': sha256_file(os.path.join(final_dir, 'dump', 'bigchain.tar.gz'))[0],
                                  'server': None, 'host': 'node1'}]
    assert (manifest['started_at'], manifest['finished_at'], manifest['snapshot']) == (TIMES['started_at'], TIMES['finished_at'], None)
    assert backup_set.check_set(final_dir) == []


def test_commit_defaults_started_at_to_the_set_id_and_finished_at_to_now(tmp_path):
    _set_id, partial_dir = backup_set.begin(str(tmp_path), CLUSTER, 'snapshot', now=NOW)
    part = write_part(partial_dir, 'nodes/node1/data.tar.zst', b'zst', server='node1')

    final_dir = backup_set.commit(partial_dir, dict(FIELDS, snapshot=SNAPSHOT), [part], now=NOW + datetime.timedelta(seconds=9))

    manifest = backup_set.read_manifest(final_dir)
    assert (manifest['started_at'], manifest['finished_at']) == ('2026-11-24T16:30:00.000Z', '2026-11-24T16:30:09.123Z')
    assert manifest['snapshot'] == SNAPSHOT


def test_a_crash_between_the_manifest_tmp_and_its_rename_leaves_the_set_partial(tmp_path, monkeypatch):
    partial_dir = make_dump_set(tmp_path, NOW, commit=False)
    part = write_part(partial_dir, 'dump/bigchain.tar.gz', b'data')

    def crash(_source, _target):
        raise OSError(5, 'Input/output error')
    monkeypatch.setattr(backup_set.os, 'replace', crash)
    with pytest.raises(OSError):
        backup_set.commit(partial_dir, FIELDS, [part])

    assert sorted(os.listdir(partial_dir)) == ['dump']
    [entry] = backup_set.list_sets(str(tmp_path), CLUSTER)
    assert (entry['path'], entry['state'], entry['complete']) == (partial_dir, 'partial', False)


def test_a_crash_between_the_manifest_and_the_directory_rename_leaves_the_set_partial(tmp_path, monkeypatch):
    partial_dir = make_dump_set(tmp_path, NOW, commit=False)
    part = write_part(partial_dir, 'dump/bigchain.tar.gz', b'data')

    def crash(_source, _target):
        raise OSError(5, 'Input/output error')
    monkeypatch.setattr(backup_set.os, 'rename', crash)
    with pytest.raises(OSError):
        backup_set.commit(partial_dir, FIELDS, [part])

    assert sorted(os.listdir(partial_dir)) == ['dump', 'manifest.json']
    [entry] = backup_set.list_sets(str(tmp_path), CLUSTER)
    assert (entry['state'], entry['complete'], entry['tables']) == ('partial', False, ['bigchain.bigchain', 'bigchain.votes'])
    assert backup_set.check_set(partial_dir) == ['not committed: the backup is still running or was interrupted']


def commit_problem(tmp_path, parts_of, fields=None, verify_checksums=True) -> str:
    """The message of a refused commit; parts_of(partial_dir) writes files and returns the parts list."""
    _set_id, partial_dir = backup_set.begin(str(tmp_path), CLUSTER, 'dump', now=NOW)
    parts = parts_of(partial_dir)
    with pytest.raises(BackupSetError) as refusal:
        backup_set.commit(partial_dir, fields or FIELDS, parts, verify_checksums=verify_checksums)
    assert os.path.isdir(partial_dir) and not os.path.exists(os.path.join(partial_dir, 'manifest.json'))
    return str(refusal.value)


def test_commit_refuses_a_missing_part(tmp_path):
    def parts_of(partial_dir):
        return [dict(write_part(partial_dir, 'dump/a.tar.gz', b'a'), path='dump/b.tar.gz')]
    assert commit_problem(tmp_path, parts_of).endswith('part dump/b.tar.gz is missing')


def test_commit_refuses_a_truncated_part(tmp_path):
    def parts_of(partial_dir):
        return [dict(write_part(partial_dir, 'dump/a.tar.gz', b'abc'), bytes=4)]
    assert commit_problem(tmp_path, parts_of).endswith('part dump/a.tar.gz has 3 bytes, expected 4')


def test_commit_refuses_a_wrong_sha256_and_skips_hashing_when_told(tmp_path):
    def parts_of(partial_dir):
        return [dict(write_part(partial_dir, 'dump/a.tar.gz', b'abc'), sha256='0' * 64)]
    assert 'part dump/a.tar.gz has sha256 ba7816bf' in commit_problem(tmp_path, parts_of)

    _set_id, partial_dir = backup_set.begin(str(tmp_path), CLUSTER, 'dump', now=NOW + datetime.timedelta(hours=1))
    final_dir = backup_set.commit(partial_dir, FIELDS, parts_of(partial_dir), verify_checksums=False)
    assert backup_set.check_set(final_dir) == ['part dump/a.tar.gz has sha256 %s, expected %s'
                                               % (sha256_file(os.path.join(final_dir, 'dump', 'a.tar.gz'))[0], '0' * 64)]


@pytest.mark.parametrize('path, problem', [
    ('/etc/passwd', 'part path /etc/passwd is absolute'),
    ('../other/dump/a.tar.gz', 'part path ../other/dump/a.tar.gz must be relative names'),
    ('dump//a.tar.gz', 'part path dump//a.tar.gz must be relative names'),
    ('manifest.json', 'part path manifest.json names a file of the set format itself'),
])
def test_commit_refuses_parts_outside_the_set(tmp_path, path, problem):
    def parts_of(partial_dir):
        return [dict(write_part(partial_dir, 'dump/a.tar.gz', b'a'), path=path)]
    assert problem in commit_problem(tmp_path, parts_of)


def test_commit_refuses_a_part_that_is_a_symlink_out_of_the_set(tmp_path):
    outside = tmp_path / 'outside'
    outside.write_bytes(b'a')

    def parts_of(partial_dir):
        part = write_part(partial_dir, 'dump/a.tar.gz', b'a')
        os.unlink(os.path.join(partial_dir, 'dump', 'a.tar.gz'))
        os.symlink(str(outside), os.path.join(partial_dir, 'dump', 'a.tar.gz'))
        return [part]
    assert commit_problem(tmp_path, parts_of).endswith('part dump/a.tar.gz resolves to a file outside the set')


def test_commit_refuses_bad_fields_with_what_to_fix(tmp_path):
    def parts_of(partial_dir):
        return [write_part(partial_dir, 'dump/a.tar.gz', b'a')]

    assert 'unknown manifest field(s) format' in commit_problem(tmp_path, parts_of, dict(FIELDS, format=2))
    assert ('manifest.started_at is "2026-11-24 16:30", expected an ISO 8601 UTC time with milliseconds'
            in commit_problem(tmp_path, parts_of, dict(FIELDS, started_at='2026-11-24 16:30')))
    assert 'tables[0] has no documents' in commit_problem(
        tmp_path, parts_of, dict(FIELDS, tables=[{key: value for key, value in TABLES[0].items() if key != 'documents'}]))
    assert 'a dump set must have snapshot null' in commit_problem(tmp_path, parts_of, dict(FIELDS, snapshot=SNAPSHOT))


def test_commit_refuses_a_snapshot_set_without_its_snapshot_record(tmp_path):
    _set_id, partial_dir = backup_set.begin(str(tmp_path), CLUSTER, 'snapshot', now=NOW)
    part = write_part(partial_dir, 'nodes/node1/data.tar.zst', b'zst', server='node1')

    with pytest.raises(BackupSetError, match='a snapshot set needs a snapshot record'):
        backup_set.commit(partial_dir, FIELDS, [part])
    with pytest.raises(BackupSetError, match=r'snapshot.nodes\[0\].freeze_ms is -1, expected milliseconds'):
        node = dict(SNAPSHOT['nodes'][0], freeze_ms=-1)
        backup_set.commit(partial_dir, dict(FIELDS, snapshot=dict(SNAPSHOT, nodes=[node])), [part])


def test_commit_refuses_what_is_not_a_partial_set(tmp_path):
    final_dir = make_dump_set(tmp_path, NOW)

    with pytest.raises(BackupSetError, match='is not a partial backup set'):
        backup_set.commit(final_dir, FIELDS, [])
    with pytest.raises(BackupSetError, match='partial backup set .* does not exist'):
        backup_set.commit(final_dir + '.partial', FIELDS, [])


def test_commit_refuses_a_failed_set(tmp_path):
    partial_dir = make_dump_set(tmp_path, NOW, commit=False)
    backup_set.mark_failed(partial_dir, 'dump of bigchain.votes exited 1')

    with pytest.raises(BackupSetError, match=r'was marked failed \(dump of bigchain.votes exited 1\); begin a new set'):
        backup_set.commit(partial_dir, FIELDS, [])


# --- failure markers ---------------------------------------------------------------------------------------

def test_mark_failed_writes_the_marker_once_and_keeps_the_first_reason(tmp_path):
    partial_dir = make_dump_set(tmp_path, NOW, commit=False)

    assert backup_set.mark_failed(partial_dir, 'skew 45 ms over 20 ms', now=NOW) is True
    assert backup_set.mark_failed(partial_dir, 'another reason') is False

    assert backup_set.read_failure(partial_dir) == {'failed_at': '2026-11-24T16:30:00.123Z', 'reason': 'skew 45 ms over 20 ms'}
    [entry] = backup_set.list_sets(str(tmp_path), CLUSTER)
    assert (entry['state'], entry['reason']) == ('failed', 'the backup failed at 2026-11-24T16:30:00.123Z: skew 45 ms over 20 ms')


def test_mark_failed_refuses_a_complete_set_and_an_empty_reason(tmp_path):
    final_dir = make_dump_set(tmp_path, NOW)
    partial_dir = make_dump_set(tmp_path, hours_ago(1), commit=False)

    with pytest.raises(BackupSetError, match='is not a partial backup set'):
        backup_set.mark_failed(final_dir, 'late')
    with pytest.raises(BackupSetError, match='a failed set needs a reason'):
        backup_set.mark_failed(partial_dir, ' ')


# --- listing and checks ------------------------------------------------------------------------------------

def test_list_of_a_missing_root_or_cluster_is_empty_and_of_a_file_root_an_error(tmp_path):
    assert backup_set.list_sets(str(tmp_path / 'absent'), CLUSTER) == []
    assert backup_set.list_sets(str(tmp_path), CLUSTER) == []
    (tmp_path / 'file').write_text('')
    with pytest.raises(BackupSetError, match='backup root .*file is not a directory'):
        backup_set.list_sets(str(tmp_path / 'file'), CLUSTER)


def test_list_reports_complete_partial_failed_and_invalid_sets_newest_first(tmp_path):
    complete_dir = make_dump_set(tmp_path, hours_ago(5))
    truncated_dir = make_dump_set(tmp_path, hours_ago(4))
    with open(os.path.join(truncated_dir, 'dump', 'bigchain.tar.gz'), 'r+b') as stream:
        stream.truncate(3)
    no_manifest_dir = make_dump_set(tmp_path, hours_ago(3))
    os.unlink(os.path.join(no_manifest_dir, 'manifest.json'))
    failed_dir = make_dump_set(tmp_path, hours_ago(2), commit=False)
    backup_set.mark_failed(failed_dir, 'node2 unreachable', now=hours_ago(2))
    partial_dir = make_dump_set(tmp_path, hours_ago(1), commit=False)
    (tmp_path / CLUSTER / 'notes.txt').write_text('not a set')
    os.mkdir(tmp_path / CLUSTER / 'old-backups')

    listing = backup_set.list_sets(str(tmp_path), CLUSTER)

    assert [(entry['path'], entry['state'], entry['complete']) for entry in listing] == [
        (partial_dir, 'partial', False), (failed_dir, 'failed', False), (no_manifest_dir, 'invalid', False),
        (truncated_dir, 'invalid', False), (complete_dir, 'complete', True)]
    assert [entry['reason'] for entry in listing[2:]] == [
        'manifest.json is missing', 'part dump/bigchain.tar.gz has 3 bytes, expected %d' % (len(b'dump of ') + 32), None]
    complete = listing[-1]
    assert complete == {
        'set_id': os.path.basename(complete_dir), 'cluster': CLUSTER, 'method': 'dump', 'path': complete_dir,
        'complete': True, 'state': 'complete', 'started_at': backup_set.format_time(hours_ago(5).replace(microsecond=0)),
        'finished_at': backup_set.format_time(hours_ago(5)),
        'bytes': len(b'dump of ') + 32, 'tables': ['bigchain.bigchain', 'bigchain.votes'], 'documents': 4800,
        'parts': 1, 'reason': None}
    assert listing[0]['started_at'] == backup_set.format_time(hours_ago(1).replace(microsecond=0))
    assert (listing[0]['bytes'], listing[0]['tables'], listing[0]['finished_at']) == (len(b'dump of ') + 32, [], None)


def test_a_manifest_that_names_another_set_or_is_not_json_makes_the_set_invalid(tmp_path):
    copied_dir = make_dump_set(tmp_path, hours_ago(2))
    other_dir = make_dump_set(tmp_path, hours_ago(1))
    with open(os.path.join(other_dir, 'manifest.json'), 'rb') as source:
        manifest = source.read()
    with open(os.path.join(copied_dir, 'manifest.json'), 'wb') as target:
        target.write(manifest)
    broken_dir = make_dump_set(tmp_path, NOW)
    with open(os.path.join(broken_dir, 'manifest.json'), 'w', encoding='utf-8') as target:
        target.write('{"format": 1,')

    reasons = dict((entry['path'], entry['reason']) for entry in backup_set.list_sets(str(tmp_path), CLUSTER))

    assert reasons[copied_dir] == 'manifest set_id is %s, but the set directory says %s' % (
        os.path.basename(other_dir), os.path.basename(copied_dir))
    assert reasons[broken_dir].startswith('manifest.json is not valid JSON')
    assert reasons[other_dir] is None


def test_check_set_finds_a_wrong_sha256_that_the_listing_does_not_hash(tmp_path):
    final_dir = make_dump_set(tmp_path, NOW)
    part_path = os.path.join(final_dir, 'dump', 'bigchain.tar.gz')
    with open(part_path, 'r+b') as stream:
        stream.write(b'X')

    [entry] = backup_set.list_sets(str(tmp_path), CLUSTER)
    problems = backup_set.check_set(final_dir)

    assert entry['complete'] is True
    assert problems == ['part dump/bigchain.tar.gz has sha256 %s, expected %s'
                        % (sha256_file(part_path)[0], backup_set.read_manifest(final_dir)['parts'][0]['sha256'])]
    assert backup_set.check_set(final_dir, verify_checksums=False) == []


def test_check_set_names_every_problem_of_a_broken_manifest(tmp_path):
    final_dir = make_dump_set(tmp_path, NOW)
    manifest = backup_set.read_manifest(final_dir)
    manifest.update(format=2, extra=True)
    del manifest['rethinkdb_version']
    backup_set.write_json_atomic(os.path.join(final_dir, 'manifest.json'), manifest)

    assert backup_set.check_set(final_dir) == ['manifest has no rethinkdb_version', 'manifest.format is 2, expected format 1',
                                               'manifest has unknown key(s) extra']
    assert backup_set.list_sets(str(tmp_path), CLUSTER)[0]['reason'] == 'manifest has no rethinkdb_version (and 2 more problems)'


# --- select ------------------------------------------------------------------------------------------------

@pytest.fixture(name='history')
def history_of_sets(tmp_path):
    """Three complete dump sets (48, 24, 2 hours old), a snapshot set, and a newer partial dump."""
    make_dump_set(tmp_path, hours_ago(48))
    make_dump_set(tmp_path, hours_ago(24))
    make_dump_set(tmp_path, hours_ago(2))
    _set_id, partial_dir = backup_set.begin(str(tmp_path), CLUSTER, 'snapshot', now=hours_ago(30))
    part = write_part(partial_dir, 'nodes/node1/data.tar.zst', b'zst', server='node1')
    backup_set.commit(partial_dir, dict(FIELDS, snapshot=SNAPSHOT), [part])
    make_dump_set(tmp_path, hours_ago(1), commit=False)
    return backup_set.list_sets(str(tmp_path), CLUSTER)


def ids(sets):
    return [entry['set_id'] for entry in sets]


def test_select_latest_takes_the_newest_complete_set(history):
    assert history[0]['state'] == 'partial'
    assert backup_set.select(history) is history[1]
    assert backup_set.select(list(reversed(history)), 'latest') is history[1]


def test_select_by_id_needs_a_complete_set(history):
    assert backup_set.select(history, history[2]['set_id']) is history[2]
    with pytest.raises(BackupSetError, match=r'backup set %s is not complete: %s \(partial: not committed'
                       % (history[0]['set_id'], history[0]['set_id'])):
        backup_set.select(history, history[0]['set_id'])
    with pytest.raises(BackupSetError, match='no backup set 20200101T000000Z-dump-0000'):
        backup_set.select(history, '20200101T000000Z-dump-0000')


def test_select_by_query_takes_the_newest_complete_match(history):
    assert backup_set.select(history, "[?method=='snapshot']")['method'] == 'snapshot'
    assert backup_set.select(history, "[?method=='dump']") is history[1]
    assert backup_set.select(history, "[?started_at < '%s']" % history[2]['started_at']) is history[3]
    assert backup_set.select(history, '[-1]') is history[-1]
    assert backup_set.select(history, "[?method=='dump'].{set_id: set_id}") is history[1]


def test_select_by_query_errors_say_why(history):
    with pytest.raises(BackupSetError, match=r"the query '\[\?method=='tar'\]' matches no backup set \(of 5\)"):
        backup_set.select(history, "[?method=='tar']")
    with pytest.raises(BackupSetError, match=r"matches 1 set\(s\), none complete: .*partial"):
        backup_set.select(history, '[?!complete]')
    with pytest.raises(BackupSetError, match="returned .*; it must return sets of the listing"):
        backup_set.select(history, '[].set_id')
    with pytest.raises(BackupSetError, match="is not 'latest', a set id, or a valid JMESPath query: "):
        backup_set.select(history, "[?method=='dump'")


def test_select_latest_without_a_complete_set_is_an_error(tmp_path):
    make_dump_set(tmp_path, NOW, commit=False)
    with pytest.raises(BackupSetError, match=r'no complete backup set to select \(1 set\(s\), none complete\)'):
        backup_set.select(backup_set.list_sets(str(tmp_path), CLUSTER))


def test_select_by_query_without_jmespath_names_the_library(history, monkeypatch):
    monkeypatch.setitem(sys.modules, 'jmespath', None)
    with pytest.raises(backup_set.MissingLibraryError) as missing:
        backup_set.select(history, "[?method=='dump']")
    assert missing.value.library == 'jmespath'
    assert backup_set.select(history, 'latest') is history[1]


# --- retention ---------------------------------------------------------------------------------------------

def test_prune_keeps_the_newest_keep_last_complete_sets(history):
    plan = backup_set.plan_prune(history, keep_last=2, now=NOW)

    assert ids(plan.delete) == ids(history[3:])
    assert [entry['why'] for entry in plan.delete] == ['not one of the newest 2 complete sets'] * 2
    assert ids(plan.keep) == ids(history[:3])
    assert plan.keep[0]['why'] == 'partial, within the 24 h grace period'


def test_prune_keeps_sets_younger_than_keep_days_or_within_keep_last(history):
    by_days = backup_set.plan_prune(history, keep_days=1, now=NOW)
    either = backup_set.plan_prune(history, keep_last=3, keep_days=1, now=NOW)

    assert ids(by_days.delete) == ids(history[2:])
    assert ids(either.delete) == ids(history[4:])
    assert by_days.delete[0]['why'] == 'older than 1 days'
    assert either.delete[0]['why'] == 'not one of the newest 3 complete sets and older than 1 days'


def test_prune_never_deletes_the_newest_complete_set(history):
    plan = backup_set.plan_prune(history, keep_last=0, keep_days=0, now=NOW + datetime.timedelta(days=365))

    assert [entry['set_id'] for entry in plan.keep] == [history[1]['set_id']]
    assert plan.keep[0]['why'] == 'the newest complete set is never deleted'
    assert ids(plan.delete) == [history[0]['set_id']] + ids(history[2:])


def test_prune_without_retention_rules_keeps_every_complete_set(history):
    plan = backup_set.plan_prune(history, now=NOW + datetime.timedelta(days=2))

    assert ids(plan.keep) == ids(history[1:])
    assert ids(plan.delete) == [history[0]['set_id']]


def test_prune_deletes_incomplete_sets_only_after_the_grace_period(tmp_path):
    make_dump_set(tmp_path, hours_ago(100))
    failed_dir = make_dump_set(tmp_path, hours_ago(30), commit=False)
    backup_set.mark_failed(failed_dir, 'skew too large')
    make_dump_set(tmp_path, hours_ago(3), commit=False)
    listing = backup_set.list_sets(str(tmp_path), CLUSTER)

    default = backup_set.plan_prune(listing, now=NOW)
    short = backup_set.plan_prune(listing, grace_hours=2, now=NOW)
    long_grace = backup_set.plan_prune(listing, grace_hours=48, now=NOW)

    assert [entry['path'] for entry in default.delete] == [failed_dir]
    assert default.delete[0]['why'] == 'failed and older than the 24 h grace period'
    assert ids(short.delete) == ids(listing[:2])
    assert long_grace.delete == []


def test_prune_refuses_negative_retention(history):
    with pytest.raises(BackupSetError, match='keep_last must be 0 or more, not -1'):
        backup_set.plan_prune(history, keep_last=-1)


def test_prune_deletes_through_a_deleting_name_and_a_second_plan_deletes_nothing(history, tmp_path):
    plan = backup_set.plan_prune(history, keep_last=1, grace_hours=0, now=NOW)
    backup_set.prune(plan.delete)

    listing = backup_set.list_sets(str(tmp_path), CLUSTER)
    assert ids(listing) == [history[1]['set_id']]
    assert os.listdir(tmp_path / CLUSTER) == [history[1]['set_id']]
    assert backup_set.plan_prune(listing, keep_last=1, grace_hours=0, now=NOW).delete == []


def test_an_interrupted_prune_leaves_a_deleting_set_that_is_never_complete(history, tmp_path, monkeypatch):
    doomed = history[-1]

    def crash(_path):
        raise OSError(5, 'Input/output error')
    monkeypatch.setattr(backup_set.shutil, 'rmtree', crash)
    with pytest.raises(OSError):
        backup_set.prune([doomed])
    monkeypatch.undo()

    leftover = [entry for entry in backup_set.list_sets(str(tmp_path), CLUSTER) if entry['set_id'] == doomed['set_id']]
    assert [(entry['path'], entry['state'], entry['complete']) for entry in leftover] == [
        (doomed['path'] + '.deleting', 'invalid', False)]
    assert leftover[0]['reason'] == 'left over from an interrupted prune; the next prune removes it'
    with pytest.raises(BackupSetError, match='backup set %s is not complete' % doomed['set_id']):
        backup_set.select(leftover, doomed['set_id'])
    backup_set.prune(leftover)
    assert not os.path.exists(leftover[0]['path'])
