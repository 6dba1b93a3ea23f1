"""Unit tests of bigchaindb.rethinkdb.catalog driven through main() on real temporary directories."""

from __future__ import annotations

import datetime
import json
import os
import sys

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import backup_set
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.archive import sha256_file
from ansible_collections.bigchaindb.rethinkdb.plugins.modules import catalog
from tests.unit.plugins.fake_reql import run_module

CLUSTER = 'rethinkdb'
TABLES = [{'db': 'bigchain', 'name': 'bigchain', 'documents': 1200, 'primary_key': 'id',
           'indexes': ['block_timestamp', 'transaction_id'], 'shards': 1, 'replicas': 3, 'primary_replicas': ['node1']}]
MANIFEST = {'rethinkdb_version': '2.4.4', 'tables': TABLES}
NOW = backup_set.utc_now()


def ago(hours: float) -> datetime.datetime:
    return NOW - datetime.timedelta(hours=hours)


def catalog_run(capsys, root, check_mode=False, **options) -> dict:
    """Run the module with root and cluster set; return its result."""
    args = dict(root=str(root), cluster=CLUSTER, **options)
    if check_mode:
        args['_ansible_check_mode'] = True
    return run_module(catalog.main, args, capsys)


def write_part(partial_dir: str, path: str, content: bytes) -> dict:
    file_path = os.path.join(partial_dir, *path.split('/'))
    os.makedirs(os.path.dirname(file_path), exist_ok=True)
    with open(file_path, 'wb') as stream:
        stream.write(content)
    digest, size = sha256_file(file_path)
    return {'path': path, 'bytes': size, 'sha256': digest, 'host': 'node1'}


def make_set(root, at: datetime.datetime, commit: bool = True) -> str:
    """A dump set begun at `at`, committed unless told otherwise; returns its directory."""
    _set_id, partial_dir = backup_set.begin(str(root), CLUSTER, 'dump', now=at)
    part = write_part(partial_dir, 'dump/bigchain.tar.gz', b'dump ' + at.isoformat().encode())
    return backup_set.commit(partial_dir, MANIFEST, [part]) if commit else partial_dir


def tree(root) -> list:
    """Every path under root, to show that nothing changed."""
    return sorted(os.path.relpath(os.path.join(directory, name), str(root))
                  for directory, subdirs, files in os.walk(str(root)) for name in subdirs + files)


# --- list, select, check -----------------------------------------------------------------------------------

def test_list_of_a_missing_root_is_empty(tmp_path, capsys):
    result = catalog_run(capsys, tmp_path / 'absent')

    assert (result['changed'], result['sets']) == (False, [])
    assert not os.path.exists(tmp_path / 'absent')


def test_list_returns_every_set_newest_first(tmp_path, capsys):
    older = make_set(tmp_path, ago(3))
    partial = make_set(tmp_path, ago(1), commit=False)

    result = catalog_run(capsys, tmp_path, operation='list')

    assert result['changed'] is False
    assert [(entry['path'], entry['state']) for entry in result['sets']] == [(partial, 'partial'), (older, 'complete')]
    assert result['sets'][1]['tables'] == ['bigchain.bigchain'] and result['sets'][1]['documents'] == 1200
    set_id = os.path.basename(older)
    assert result['summary'][1] == '%s  dump      complete        0.0 MB  1 tables  1,200 documents' % set_id
    assert result['summary'][0].startswith(os.path.basename(partial)[:-len('.partial')] + '  dump      partial ')


def test_a_root_that_is_a_file_is_an_error(tmp_path, capsys):
    (tmp_path / 'backups').write_text('')

    result = catalog_run(capsys, tmp_path / 'backups')

    assert result['failed'] is True
    assert result['msg'] == 'Backup root %s is not a directory: give the directory that holds the backup sets.' % (tmp_path / 'backups')
    assert 'exception' not in result


def test_a_bad_cluster_name_is_an_error_that_says_what_is_allowed(tmp_path, capsys):
    result = run_module(catalog.main, dict(root=str(tmp_path), cluster='../etc'), capsys)

    assert result['failed'] is True
    assert result['msg'].startswith("Cluster '../etc' is not a valid name: use letters, digits")


def test_select_latest_and_by_query(tmp_path, capsys):
    dump = make_set(tmp_path, ago(5))
    newest = make_set(tmp_path, ago(2))
    make_set(tmp_path, ago(1), commit=False)

    latest = catalog_run(capsys, tmp_path, operation='select')
    queried = catalog_run(capsys, tmp_path, operation='select', which="[?started_at < '%s']"
                          % backup_set.format_time(ago(4)))

    assert (latest['changed'], latest['set']['path']) == (False, newest)
    assert queried['set']['path'] == dump


def test_select_errors_are_one_line_without_traceback(tmp_path, capsys):
    make_set(tmp_path, ago(1), commit=False)

    none_complete = catalog_run(capsys, tmp_path, operation='select')
    no_match = catalog_run(capsys, tmp_path, operation='select', which="[?method=='snapshot']")
    bad_query = catalog_run(capsys, tmp_path, operation='select', which='[?')

    assert none_complete['msg'] == 'No complete backup set to select (1 set(s), none complete).'
    assert no_match['msg'] == "The query '[?method=='snapshot']' matches no backup set (of 1)."
    assert bad_query['msg'].startswith("Which '[?' is not 'latest', a set id, or a valid JMESPath query: ")
    for result in (none_complete, no_match, bad_query):
        assert result['failed'] is True and '\n' not in result['msg'] and 'exception' not in result


def test_select_by_query_without_jmespath_fails_with_missing_required_lib(tmp_path, capsys, monkeypatch):
    make_set(tmp_path, ago(1))
    monkeypatch.setitem(sys.modules, 'jmespath', None)

    result = catalog_run(capsys, tmp_path, operation='select', which="[?method=='dump']")

    assert result['failed'] is True
    assert result['msg'].startswith('Failed to import the required Python library (jmespath)')


def test_check_passes_a_valid_set_and_fails_a_corrupt_one_with_its_problems(tmp_path, capsys):
    valid = make_set(tmp_path, ago(2))
    corrupt = make_set(tmp_path, ago(1))
    with open(os.path.join(corrupt, 'dump', 'bigchain.tar.gz'), 'r+b') as stream:
        stream.write(b'X')
    corrupt_id = os.path.basename(corrupt)
    digest = sha256_file(os.path.join(corrupt, 'dump', 'bigchain.tar.gz'))[0]

    good = catalog_run(capsys, tmp_path, operation='check', set_id=os.path.basename(valid))
    bad = catalog_run(capsys, tmp_path, operation='check')
    sizes_only = catalog_run(capsys, tmp_path, operation='check', verify_checksums=False)

    assert (good['changed'], good['problems'], good['set']['state']) == (False, [], 'complete')
    assert bad['failed'] is True
    problem = 'part dump/bigchain.tar.gz has sha256 %s, expected %s' % (
        digest, backup_set.read_manifest(corrupt)['parts'][0]['sha256'])
    assert bad['problems'] == [problem]
    assert bad['msg'] == 'Backup set %s is not valid: %s.' % (corrupt_id, problem)
    assert (bad['set']['set_id'], bad['set']['state'], bad['set']['complete']) == (corrupt_id, 'invalid', False)
    assert (sizes_only['set']['set_id'], sizes_only['problems']) == (corrupt_id, [])


def test_check_of_a_partial_or_unknown_set_id(tmp_path, capsys):
    partial = make_set(tmp_path, ago(1), commit=False)
    set_id = os.path.basename(partial)[:-len('.partial')]

    not_committed = catalog_run(capsys, tmp_path, operation='check', set_id=set_id)
    unknown = catalog_run(capsys, tmp_path, operation='check', set_id='20200101T000000Z-dump-0000')
    malformed = catalog_run(capsys, tmp_path, operation='check', set_id='latest')

    assert not_committed['problems'] == ['not committed: the backup is still running or was interrupted']
    assert unknown['msg'] == 'No backup set 20200101T000000Z-dump-0000 of cluster rethinkdb under %s.' % tmp_path
    assert malformed['msg'] == "'latest' is not a backup set id (like 20261124T163000Z-dump-3f9a)."


def test_set_id_and_which_are_mutually_exclusive(tmp_path, capsys):
    result = catalog_run(capsys, tmp_path, operation='check', set_id='20200101T000000Z-dump-0000', which='latest')

    assert result['failed'] is True
    assert 'mutually exclusive' in result['msg']


# --- begin, commit, fail -----------------------------------------------------------------------------------

def test_begin_commit_writes_a_complete_set(tmp_path, capsys):
    begun = catalog_run(capsys, tmp_path, operation='begin', method='snapshot')
    set_id, partial = begun['set']['set_id'], begun['set']['path']
    assert (begun['changed'], begun['set']['state'], os.listdir(partial)) == (True, 'partial', ['nodes'])
    part = write_part(partial, 'nodes/node1/data.tar.zst', b'zstd frames')
    snapshot = {'backend': 'btrfs', 'barrier_at': backup_set.format_time(NOW), 'skew_ms': 2.5,
                'nodes': [{'server': 'node1', 'host': 'node1', 'taken_at': backup_set.format_time(NOW), 'freeze_ms': 0}]}

    committed = catalog_run(capsys, tmp_path, operation='commit', set_id=set_id,
                            manifest=dict(MANIFEST, snapshot=snapshot), parts=[dict(part, server='node1', bytes=str(part['bytes']))])

    assert not os.path.exists(partial)
    assert committed['changed'] is True
    assert committed['set']['path'] == str(tmp_path / CLUSTER / set_id)
    assert (committed['set']['state'], committed['set']['bytes'], committed['set']['parts']) == ('complete', part['bytes'], 1)
    manifest = backup_set.read_manifest(committed['set']['path'])
    assert manifest['parts'] == [{'path': 'nodes/node1/data.tar.zst', 'bytes': part['bytes'], 'sha256': part['sha256'],
                                  'server': 'node1', 'host': 'node1'}]
    assert manifest['snapshot']['nodes'][0]['server'] == 'node1'


def test_begin_creates_the_nodes_directory_and_is_idempotent_with_a_set_id(tmp_path, capsys):
    first = catalog_run(capsys, tmp_path, operation='begin', method='snapshot', set_id='20261124T163000Z-snapshot-3f9a')
    second = catalog_run(capsys, tmp_path, operation='begin', method='snapshot', set_id='20261124T163000Z-snapshot-3f9a')
    wrong_method = catalog_run(capsys, tmp_path, operation='begin', method='dump', set_id='20261124T163000Z-snapshot-3f9a')

    assert (first['changed'], second['changed']) == (True, False)
    assert os.listdir(first['set']['path']) == ['nodes']
    assert second['set']['path'] == first['set']['path']
    assert wrong_method['msg'] == ('Set id 20261124T163000Z-snapshot-3f9a names method snapshot, not dump: '
                                   'give method snapshot or another set id.')


def test_begin_with_the_id_of_a_committed_or_failed_set_is_refused(tmp_path, capsys):
    committed_id = os.path.basename(make_set(tmp_path, ago(2)))
    failed = make_set(tmp_path, ago(1), commit=False)
    backup_set.mark_failed(failed, 'disk full')
    failed_id = os.path.basename(failed)[:-len('.partial')]

    committed = catalog_run(capsys, tmp_path, check_mode=True, operation='begin', method='dump', set_id=committed_id)
    refailed = catalog_run(capsys, tmp_path, operation='begin', method='dump', set_id=failed_id)

    assert committed['msg'] == 'Backup set %s already exists at %s: begin a new set.' % (committed_id, tmp_path / CLUSTER / committed_id)
    assert refailed['msg'].startswith('Backup set %s was marked failed (the backup failed at ' % failed_id)
    assert refailed['msg'].endswith(': disk full): begin a new set.')


def test_begin_needs_a_method(tmp_path, capsys):
    result = catalog_run(capsys, tmp_path, operation='begin')

    assert result['failed'] is True
    assert result['msg'] == 'operation is begin but all of the following are missing: method'


def test_commit_refuses_a_truncated_part_and_leaves_the_set_partial(tmp_path, capsys):
    partial = make_set(tmp_path, ago(1), commit=False)
    set_id = os.path.basename(partial)[:-len('.partial')]
    part = write_part(partial, 'dump/bigchain.tar.gz', b'full content')
    with open(os.path.join(partial, 'dump', 'bigchain.tar.gz'), 'r+b') as stream:
        stream.truncate(4)

    result = catalog_run(capsys, tmp_path, operation='commit', set_id=set_id, manifest=MANIFEST, parts=[part])

    assert result['failed'] is True
    assert result['msg'] == 'Cannot commit backup set %s: part dump/bigchain.tar.gz has 4 bytes, expected 12.' % set_id
    assert os.path.isdir(partial) and not os.path.exists(tmp_path / CLUSTER / set_id)


def test_commit_twice_is_unchanged_and_with_other_parts_refused(tmp_path, capsys):
    partial = make_set(tmp_path, ago(1), commit=False)
    set_id = os.path.basename(partial)[:-len('.partial')]
    part = write_part(partial, 'dump/bigchain.tar.gz', b'content')

    first = catalog_run(capsys, tmp_path, operation='commit', set_id=set_id, manifest=MANIFEST, parts=[part])
    again = catalog_run(capsys, tmp_path, operation='commit', set_id=set_id, manifest=MANIFEST, parts=[part])
    other = catalog_run(capsys, tmp_path, operation='commit', set_id=set_id, manifest=MANIFEST,
                        parts=[dict(part, sha256='0' * 64)])

    assert (first['changed'], again['changed']) == (True, False)
    assert again['set']['state'] == 'complete'
    assert other['msg'] == 'Backup set %s is already committed with other parts: begin a new set.' % set_id


def test_commit_with_an_unknown_manifest_field_says_which_fields_are_allowed(tmp_path, capsys):
    partial = make_set(tmp_path, ago(1), commit=False)
    set_id = os.path.basename(partial)[:-len('.partial')]

    result = catalog_run(capsys, tmp_path, operation='commit', set_id=set_id, manifest=dict(MANIFEST, method='dump'), parts=[])

    assert result['msg'] == ('Unknown manifest field(s) method: the caller gives only started_at, finished_at, '
                             'rethinkdb_version, tables, snapshot.')


def test_fail_marks_once_then_is_unchanged_and_refuses_a_committed_set(tmp_path, capsys):
    partial = make_set(tmp_path, ago(1), commit=False)
    set_id = os.path.basename(partial)[:-len('.partial')]
    committed_id = os.path.basename(make_set(tmp_path, ago(2)))

    first = catalog_run(capsys, tmp_path, operation='fail', set_id=set_id, reason='node2 unreachable')
    second = catalog_run(capsys, tmp_path, operation='fail', set_id=set_id, reason='another reason')
    committed = catalog_run(capsys, tmp_path, operation='fail', set_id=committed_id, reason='late')

    assert (first['changed'], first['set']['state']) == (True, 'failed')
    assert first['set']['reason'].endswith(': node2 unreachable')
    assert (second['changed'], second['set']['reason']) == (False, first['set']['reason'])
    assert committed['msg'] == ('Backup set %s is already committed (state complete): only a partial set can be marked failed.'
                                % committed_id)
    with open(os.path.join(partial, 'FAILED'), encoding='utf-8') as marker:
        assert json.load(marker)['reason'] == 'node2 unreachable'


# --- check mode --------------------------------------------------------------------------------------------

def test_check_mode_begin_commit_and_fail_change_nothing(tmp_path, capsys):
    partial = make_set(tmp_path, ago(1), commit=False)
    set_id = os.path.basename(partial)[:-len('.partial')]
    part = write_part(partial, 'dump/bigchain.tar.gz', b'content')
    before = tree(tmp_path)

    begun = catalog_run(capsys, tmp_path, check_mode=True, operation='begin', method='dump')
    committed = catalog_run(capsys, tmp_path, check_mode=True, operation='commit', set_id=set_id, manifest=MANIFEST, parts=[part])
    bad_commit = catalog_run(capsys, tmp_path, check_mode=True, operation='commit', set_id=set_id, manifest=MANIFEST,
                             parts=[dict(part, bytes=1)])
    failed = catalog_run(capsys, tmp_path, check_mode=True, operation='fail', set_id=set_id, reason='test')

    assert tree(tmp_path) == before
    assert begun['changed'] is True and begun['msg'] == 'Would create backup set %s at %s.' % (begun['set']['set_id'], begun['set']['path'])
    assert sorted(begun['set']) == ['cluster', 'method', 'path', 'set_id']
    assert (committed['changed'], committed['msg'], committed['set']['state']) == (
        True, 'Would commit backup set %s with 1 part(s).' % set_id, 'partial')
    assert bad_commit['msg'] == 'Cannot commit backup set %s: part dump/bigchain.tar.gz has 7 bytes, expected 1.' % set_id
    assert (failed['changed'], failed['msg']) == (True, 'Would mark backup set %s failed.' % set_id)


# --- prune -------------------------------------------------------------------------------------------------

def test_prune_in_check_mode_reports_and_deletes_nothing_then_prunes_once(tmp_path, capsys):
    old = [make_set(tmp_path, ago(hours)) for hours in (96, 72, 48)]
    newest = make_set(tmp_path, ago(1))
    failed = make_set(tmp_path, ago(30), commit=False)
    backup_set.mark_failed(failed, 'skew too large')
    running = make_set(tmp_path, ago(0.5), commit=False)
    before = tree(tmp_path)

    planned = catalog_run(capsys, tmp_path, check_mode=True, operation='prune', keep_last=2)
    unchanged_tree = tree(tmp_path)
    pruned = catalog_run(capsys, tmp_path, operation='prune', keep_last=2)
    again = catalog_run(capsys, tmp_path, operation='prune', keep_last=2)

    assert unchanged_tree == before
    doomed = [failed, old[1], old[0]]
    assert (planned['changed'], [entry['path'] for entry in planned['pruned']]) == (True, doomed)
    assert planned['pruned_bytes'] == sum(entry['bytes'] for entry in planned['pruned']) > 0
    assert [entry['path'] for entry in planned['kept']] == [running, newest, old[2]]
    assert pruned['pruned'] == planned['pruned'] and pruned['changed'] is True
    assert sorted(os.listdir(tmp_path / CLUSTER)) == sorted(os.path.basename(path) for path in (running, newest, old[2]))
    assert (again['changed'], again['pruned'], again['pruned_bytes']) == (False, [], 0)


def test_prune_never_deletes_the_newest_complete_set(tmp_path, capsys):
    only = make_set(tmp_path, ago(24 * 400))

    result = catalog_run(capsys, tmp_path, operation='prune', keep_last=0, keep_days=1)

    assert (result['changed'], result['pruned']) == (False, [])
    assert result['kept'][0]['path'] == only
    assert result['kept'][0]['why'] == 'the newest complete set is never deleted'


def test_prune_refuses_negative_retention(tmp_path, capsys):
    result = catalog_run(capsys, tmp_path, operation='prune', keep_days=-3)

    assert (result['failed'], result['msg']) == (True, 'keep_days must be 0 or more, not -3.')


def test_a_filesystem_error_is_one_line_with_the_path(tmp_path, capsys, monkeypatch):
    def refuse(path, mode=0o777, exist_ok=False):
        raise PermissionError(13, 'Permission denied', path)
    monkeypatch.setattr(backup_set.os, 'makedirs', refuse)

    result = catalog_run(capsys, tmp_path, operation='begin', method='dump')

    assert result['failed'] is True
    assert result['msg'] == 'Cannot begin backup sets of cluster rethinkdb under %s: Permission denied (%s).' % (
        tmp_path, tmp_path / CLUSTER)
