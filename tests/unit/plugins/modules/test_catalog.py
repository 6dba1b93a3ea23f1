"""The catalog module through main() on a real repository: begin, commit, fail, prune and report, check mode
and idempotence, and every refusal in one line that changes nothing."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_store import ChainStore, check_chain
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import format_time, new_set_id, utc_now
from ansible_collections.bigchaindb.rethinkdb.plugins.modules import catalog
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.backup_sets import CLUSTER, cluster_info, make_set, part_contents, tree, write_parts
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.chain_sets import make_base, open_writer, seal_failing_once, votes
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import run_module

NOW = utc_now().replace(microsecond=0)
RUN = {'host': 'ops1', 'pid': 777}
NODES = [dict(server='node2', host='db2', taken_at=1795537807.16, freeze_ms=2.0),
         dict(server='node1', host='db1', taken_at=1795537807.15, freeze_ms=1.0)]
CAPTURE = dict(backend='fsfreeze', barrier_at=1795537807.142, nodes=NODES)


def ago(hours: float) -> datetime.datetime:
    return NOW - datetime.timedelta(hours=hours)


@pytest.fixture(name='repository')
def controller_repository(tmp_path):
    return LocalRepository(str(tmp_path / 'backups'))


def catalog_run(capsys, repository, operation, check_mode=False, **options) -> dict:
    args = dict(repository=repository.root, cluster=CLUSTER, operation=operation, **options)
    if check_mode:
        args['_ansible_check_mode'] = True
    return run_module(catalog.main, args, capsys)


def states(repository) -> list:
    return sorted((stored.set_id, stored.state) for stored in repository.list_sets(CLUSTER))


def begun_with_parts(repository, method='dump', at=None) -> tuple:
    """A set begun and its parts written, as the roles leave it before commit."""
    set_id = new_set_id(method, at or ago(0.1))
    repository.begin(CLUSTER, set_id, RUN)
    return set_id, write_parts(repository, CLUSTER, set_id, part_contents(method, set_id))


def commit_options(set_id, parts, **changes) -> dict:
    options = dict(set_id=set_id, cluster_info=cluster_info(), parts=parts)
    options.update(changes)
    return options


# --- begin -------------------------------------------------------------------------------------------------------

def test_begin_makes_a_new_set_and_records_the_run(repository, capsys):
    begun = catalog_run(capsys, repository, 'begin', method='snapshot', run=RUN)

    set_id = begun['set_id']
    assert begun['changed'] is True and begun['msg'] == 'Began backup set %s.' % set_id
    assert set_id.split('-')[1] == 'snapshot' and abs(begun['started_at'] - NOW.timestamp()) < 120
    assert begun['path'] == os.path.join(repository.root, CLUSTER, set_id + '.partial')
    run = json.loads(repository.read_file(CLUSTER, set_id, 'run.json', committed=False))
    assert (run['host'], run['pid'], run['set_id']) == ('ops1', 777, set_id) and run['begun_at'].endswith('Z')
    assert states(repository) == [(set_id, 'partial')]


def test_begin_of_a_given_set_id_is_idempotent(repository, capsys):
    set_id = new_set_id('dump', NOW)

    begun = catalog_run(capsys, repository, 'begin', method='dump', set_id=set_id)
    again = catalog_run(capsys, repository, 'begin', method='dump', set_id=set_id)

    assert (begun['changed'], again['changed']) == (True, False)
    assert again['msg'] == 'Backup set %s is already begun.' % set_id and again['path'] == begun['path']
    assert again['started_at'] == begun['started_at'] == NOW.timestamp()


def test_begin_in_check_mode_changes_nothing(repository, capsys):
    begun = catalog_run(capsys, repository, 'begin', check_mode=True, method='dump')

    assert begun['changed'] is True and begun['path'] is None
    assert begun['msg'] == 'Would begin backup set %s in controller:%s.' % (begun['set_id'], repository.root)
    assert not os.path.exists(repository.root)


def test_begin_refuses_a_set_id_used_already(repository, capsys):
    committed = make_set(repository, ago(3))
    failed, dummy = begun_with_parts(repository)
    repository.mark_failed(CLUSTER, failed, 'x', format_time(NOW))
    before = tree(repository.root)

    results = [catalog_run(capsys, repository, 'begin', method='dump', set_id=committed['set_id']),
               catalog_run(capsys, repository, 'begin', method='dump', set_id=failed),
               catalog_run(capsys, repository, 'begin', method='snapshot', set_id=failed)]

    assert [result['msg'] for result in results] == [
        'Backup set %s is already committed at %s: begin a new set.' % (committed['set_id'], committed['location']),
        'Backup set %s was marked failed: begin a new set.' % failed,
        'Set id %s names method dump, not snapshot.' % failed]
    assert tree(repository.root) == before


# --- commit ------------------------------------------------------------------------------------------------------

def test_commit_builds_the_manifest_and_makes_the_set_complete(repository, capsys):
    set_id, parts = begun_with_parts(repository)

    committed = catalog_run(capsys, repository, 'commit', **commit_options(set_id, parts, started_at=NOW.timestamp() - 30))
    again = catalog_run(capsys, repository, 'commit', **commit_options(set_id, parts))

    manifest = committed['manifest']
    assert committed['changed'] is True and committed['msg'] == 'Committed backup set %s.' % set_id
    assert committed['path'] == os.path.join(repository.root, CLUSTER, set_id)
    assert (manifest['format'], manifest['set_id'], manifest['method'], manifest['snapshot']) == (2, set_id, 'dump', None)
    assert manifest['started_at'] == format_time(NOW - datetime.timedelta(seconds=30))
    assert [(table['name'], table['documents']) for table in manifest['tables']] == [('bigchain', 1200), ('votes', 897)]
    assert [(part['path'], part['bytes'], part['sha256']) for part in manifest['parts']] == [
        (part['path'], part['bytes'], part['sha256']) for part in parts]
    assert manifest['topology']['tables'] == cluster_info()['tables']
    assert json.loads(repository.read_file(CLUSTER, set_id, 'manifest.json')) == manifest
    assert (again['changed'], again['manifest'], again['msg']) == (False, manifest, 'Backup set %s is already committed.' % set_id)
    assert states(repository) == [(set_id, 'committed')]


def test_commit_of_a_snapshot_set_records_each_nodes_capture(repository, capsys):
    set_id, parts = begun_with_parts(repository, 'snapshot')

    committed = catalog_run(capsys, repository, 'commit', **commit_options(
        set_id, parts, snapshot=CAPTURE,
        tables=['bigchain.votes'], counts={'bigchain.votes': {'documents': 900}},
        documents_after={'bigchain.votes': 905}))

    manifest = committed['manifest']
    assert manifest['snapshot'] == dict(backend='fsfreeze', barrier_at='2026-11-24T16:30:07.142Z', skew_ms=10.0, nodes=[
        dict(server='node1', host='db1', taken_at='2026-11-24T16:30:07.150Z', freeze_ms=1.0),
        dict(server='node2', host='db2', taken_at='2026-11-24T16:30:07.160Z', freeze_ms=2.0)])
    assert [(table['name'], table['documents']) for table in manifest['tables']] == [('votes', 900)]
    assert manifest['topology']['documents_after'] == {'bigchain.votes': 905}
    assert [part['server'] for part in manifest['parts']] == ['node1', 'node2']


def test_commit_in_check_mode_shows_the_manifest_and_changes_nothing(repository, capsys):
    set_id, parts = begun_with_parts(repository)
    before = tree(repository.root)

    checked = catalog_run(capsys, repository, 'commit', check_mode=True, **commit_options(set_id, parts))

    assert checked['changed'] is True and checked['msg'] == 'Would commit backup set %s with 1 part(s).' % set_id
    assert checked['manifest']['set_id'] == set_id and checked['path'].endswith('.partial')
    assert tree(repository.root) == before


def test_commit_refuses_parts_that_are_not_as_recorded(repository, capsys):
    set_id, parts = begun_with_parts(repository, 'snapshot')
    missing = dict(parts[0], path='nodes/node3/data.tar.zst')
    resized = dict(parts[1], bytes=parts[1]['bytes'] + 1)
    changed = dict(parts[1], sha256='0' * 64)
    before = tree(repository.root)

    refused = catalog_run(capsys, repository, 'commit', **commit_options(set_id, [missing, resized], snapshot=CAPTURE))
    changed_parts = commit_options(set_id, [parts[0], changed], snapshot=CAPTURE)
    unverified = catalog_run(capsys, repository, 'commit', check_mode=True, **changed_parts)
    verified = catalog_run(capsys, repository, 'commit', verify_checksums=True, **changed_parts)

    assert refused['msg'] == 'Cannot commit backup set %s: part nodes/node3/data.tar.zst is missing; part nodes/node2/data.tar.zst has ' \
        '%d bytes, expected %d.' % (set_id, parts[1]['bytes'], parts[1]['bytes'] + 1)
    assert refused['problems'] == ['part nodes/node3/data.tar.zst is missing',
                                   'part nodes/node2/data.tar.zst has %d bytes, expected %d' % (parts[1]['bytes'], parts[1]['bytes'] + 1)]
    assert unverified['changed'] is True
    assert verified['problems'] == ['part nodes/node2/data.tar.zst has sha256 %s, expected %s' % (parts[1]['sha256'], '0' * 64)]
    assert tree(repository.root) == before


def test_commit_refuses_a_manifest_the_format_does_not_allow(repository, capsys):
    set_id, parts = begun_with_parts(repository)
    before = tree(repository.root)

    unknown_table = catalog_run(capsys, repository, 'commit', **commit_options(set_id, parts, tables=['bigchain.assets']))
    no_count = catalog_run(capsys, repository, 'commit', **commit_options(set_id, parts, counts={}))
    bad_path = catalog_run(capsys, repository, 'commit', **commit_options(set_id, [dict(parts[0], path='../x')]))

    assert unknown_table['msg'] == 'Table bigchain.assets is not among the tables the cluster reported.'
    assert no_count['msg'] == 'Table bigchain.bigchain has no document count (found null).'
    assert bad_path['msg'] == ("The manifest of set %s is not valid: part path ../x must be relative names joined by '/', without '.', "
                               "'..' or empty names." % set_id)
    assert tree(repository.root) == before


def test_commit_refuses_a_set_committed_with_other_parts_or_not_being_written(repository, capsys):
    set_id, parts = begun_with_parts(repository)
    catalog_run(capsys, repository, 'commit', **commit_options(set_id, parts))
    failed, failed_parts = begun_with_parts(repository, at=ago(1))
    repository.mark_failed(CLUSTER, failed, 'x', format_time(NOW))
    before = tree(repository.root)

    other_parts = catalog_run(capsys, repository, 'commit', **commit_options(set_id, [dict(parts[0], sha256='1' * 64)]))
    marked = catalog_run(capsys, repository, 'commit', **commit_options(failed, failed_parts))
    unknown = catalog_run(capsys, repository, 'commit', **commit_options('20261124T163000Z-dump-0000', parts))

    assert other_parts['msg'] == 'Backup set %s is already committed with other parts: begin a new set.' % set_id
    assert marked['msg'] == 'Backup set %s is not being written in controller:%s (it was marked failed): begin a new set.' % (
        failed, repository.root)
    assert unknown['msg'] == 'Backup set 20261124T163000Z-dump-0000 is not being written in controller:%s: begin a new set.' % repository.root
    assert tree(repository.root) == before


# --- fail --------------------------------------------------------------------------------------------------------

def test_fail_marks_a_partial_set_once(repository, capsys):
    set_id, dummy = begun_with_parts(repository)

    checked = catalog_run(capsys, repository, 'fail', check_mode=True, set_id=set_id)
    failed = catalog_run(capsys, repository, 'fail', set_id=set_id, reason='node2 was unreachable')
    again = catalog_run(capsys, repository, 'fail', set_id=set_id)

    location = os.path.join(repository.root, CLUSTER, set_id + '.failed')
    assert (checked['changed'], checked['msg']) == (True, 'Would mark backup set %s failed.' % set_id)
    assert (failed['changed'], failed['path'], failed['msg']) == (True, location, 'Marked backup set %s failed.' % set_id)
    assert (again['changed'], again['path'], again['msg']) == (False, location, 'Backup set %s is already marked failed.' % set_id)
    marker = json.loads(repository.read_file(CLUSTER, set_id, 'FAILED', committed=False))
    assert marker['reason'] == 'node2 was unreachable' and marker['failed_at'].endswith('Z')
    assert states(repository) == [(set_id, 'failed')]


def test_fail_refuses_a_committed_or_unknown_set(repository, capsys):
    committed = make_set(repository, ago(1))
    before = tree(repository.root)

    late = catalog_run(capsys, repository, 'fail', set_id=committed['set_id'])
    unknown = catalog_run(capsys, repository, 'fail', set_id='20261124T163000Z-dump-0000')

    assert late['msg'] == 'Backup set %s is already committed: only a partial set can be marked failed.' % committed['set_id']
    assert unknown['msg'] == 'No backup set 20261124T163000Z-dump-0000 of cluster %s in controller:%s.' % (CLUSTER, repository.root)
    assert tree(repository.root) == before


# --- prune -------------------------------------------------------------------------------------------------------

def test_prune_keeps_the_newest_good_sets_per_method_and_removes_old_incomplete_ones(repository, capsys):
    dumps = [make_set(repository, ago(hours)) for hours in (1, 30, 60)]
    snapshot = make_set(repository, ago(70), method='snapshot')
    stale = make_set(repository, ago(48), commit=False)
    running = make_set(repository, ago(2), commit=False)

    checked = catalog_run(capsys, repository, 'prune', check_mode=True, keep_last=2)
    assert states(repository) == sorted([(made['set_id'], 'committed') for made in dumps + [snapshot]]
                                        + [(stale['set_id'], 'partial'), (running['set_id'], 'partial')])
    pruned = catalog_run(capsys, repository, 'prune', keep_last=2)
    again = catalog_run(capsys, repository, 'prune', keep_last=2)

    assert (checked['changed'], checked['pruned']) == (True, pruned['pruned'])
    assert pruned['changed'] is True and again['changed'] is False and again['pruned'] == []
    assert [(verdict['set_id'], verdict['why']) for verdict in pruned['pruned']] == [
        (stale['set_id'], 'partial and older than the 24 h grace period'),
        (dumps[2]['set_id'], 'not one of the newest 2 dump sets that pass their check')]
    assert pruned['pruned_bytes'] == sum(verdict['bytes'] for verdict in pruned['pruned']) > 0
    assert sorted(verdict['set_id'] for verdict in pruned['kept']) == sorted([dumps[0]['set_id'], dumps[1]['set_id'], snapshot['set_id'],
                                                                              running['set_id']])
    assert states(repository) == sorted([(dumps[0]['set_id'], 'committed'), (dumps[1]['set_id'], 'committed'),
                                         (snapshot['set_id'], 'committed'), (running['set_id'], 'partial')])
    assert pruned['leftovers'] == []


def test_prune_counts_only_sets_that_pass_a_full_check(repository, capsys):
    good = make_set(repository, ago(30))
    damaged = make_set(repository, ago(1))
    path = os.path.join(damaged['location'], 'dump', 'rethinkdb_dump.tar.gz')
    with open(path, 'r+b') as part:
        part.write(b'X')

    pruned = catalog_run(capsys, repository, 'prune', keep_last=1)

    assert pruned['changed'] is False and pruned['pruned'] == []
    assert sorted((verdict['set_id'], verdict['why'][:28]) for verdict in pruned['kept']) == sorted([
        (damaged['set_id'], 'kept but not counted: it fai'), (good['set_id'], 'one of the newest 1 dump set')])
    assert len(states(repository)) == 2


def test_prune_never_deletes_the_set_just_made_or_a_set_dated_in_the_future(repository, capsys):
    future = make_set(repository, NOW + datetime.timedelta(days=2))
    older = make_set(repository, ago(50))
    just_made = make_set(repository, ago(0.2), commit=False)

    pruned = catalog_run(capsys, repository, 'prune', keep_last=1, grace_hours=0, protect=[just_made['set_id']])

    assert pruned['pruned'] == []
    assert sorted((verdict['set_id'], verdict['why']) for verdict in pruned['kept']) == sorted([
        (future['set_id'], 'dated in the future: never pruned nor counted; check the clocks'),
        (older['set_id'], 'one of the newest 1 dump sets that pass their check'),
        (just_made['set_id'], 'made by this run')])


def test_prune_finishes_a_prune_that_was_interrupted(repository, capsys):
    kept = make_set(repository, ago(1))
    doomed = make_set(repository, ago(50))
    os.rename(doomed['location'], doomed['location'] + '.deleting')
    os.unlink(os.path.join(doomed['location'] + '.deleting', 'manifest.json'))

    pruned = catalog_run(capsys, repository, 'prune', keep_last=5)

    assert [(verdict['set_id'], verdict['state']) for verdict in pruned['pruned']] == [(doomed['set_id'], 'invalid')]
    assert states(repository) == [(kept['set_id'], 'committed')]


def test_the_next_prune_removes_what_an_interrupted_prune_left_however_young(repository, capsys):
    """A failed set of an hour ago pruned with grace_hours=0, interrupted: the listing says the next prune
    removes it, and the next prune (with the default grace) must."""
    failed = make_set(repository, ago(1), commit=False)
    repository.mark_failed(CLUSTER, failed['set_id'], 'x', format_time(NOW))
    deleting = os.path.join(repository.root, CLUSTER, failed['set_id'] + '.failed.deleting')
    os.rename(os.path.join(repository.root, CLUSTER, failed['set_id'] + '.failed'), deleting)

    pruned = catalog_run(capsys, repository, 'prune')

    assert [verdict['set_id'] for verdict in pruned['pruned']] == [failed['set_id']]
    assert not os.path.exists(deleting)


def test_prune_without_a_rule_keeps_every_complete_set(repository, capsys):
    made = make_set(repository, ago(500))

    pruned = catalog_run(capsys, repository, 'prune')

    assert pruned['changed'] is False
    assert [(verdict['set_id'], verdict['why']) for verdict in pruned['kept']] == [
        (made['set_id'], 'no retention rule (keep_last, keep_days) is set')]


def test_prune_by_age(repository, capsys):
    young = make_set(repository, ago(20))
    old = make_set(repository, ago(24 * 10))

    pruned = catalog_run(capsys, repository, 'prune', keep_days=7)

    assert [(verdict['set_id'], verdict['why']) for verdict in pruned['pruned']] == [(old['set_id'], 'older than 7 days')]
    assert states(repository) == [(young['set_id'], 'committed')]


# --- report ------------------------------------------------------------------------------------------------------

def test_report_is_kept_with_the_sets(repository, capsys):
    report = {'set_id': 'x', 'seconds': 12.5, 'pruned': [], 'when': {'b': 2, 'a': 1}}

    checked = catalog_run(capsys, repository, 'report', check_mode=True, name='x.json', report=report)
    written = catalog_run(capsys, repository, 'report', name='x.json', report=report)

    assert (checked['changed'], checked['report_path']) == (True, None) and checked['msg'] == 'Would write report x.json.'
    path = os.path.join(repository.root, CLUSTER, 'reports', 'x.json')
    assert (written['changed'], written['report_path']) == (True, path)
    with open(path, encoding='utf-8') as stream:
        text = stream.read()
    assert json.loads(text) == report and text.index('"a"') < text.index('"b"') and text.endswith('}\n')


@pytest.mark.parametrize('name', ['../x.json', 'x.txt', '.hidden.json', 'a/b.json'])
def test_a_report_name_must_be_a_plain_json_file_name(repository, capsys, name):
    result = catalog_run(capsys, repository, 'report', name=name, report={})

    assert result['msg'] == "name %r is not a report name: use letters, digits, '_', '.' and '-', ending in .json." % name
    assert not os.path.exists(repository.root)


# --- options -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('options, message', [
    (dict(cluster='../etc', operation='prune'), "Cluster '../etc' is not a valid name: use letters, digits, '_', '.' and '-', "
                                                "starting with a letter or digit."),
    (dict(operation='fail', set_id='latest'), "'latest' is not a backup set id (like 20261124T163000Z-dump-3f9a)."),
    (dict(operation='prune', keep_last=-1), 'Keep_last must be 0 or more, not -1.'),
    (dict(operation='prune', grace_hours=-2), 'Grace_hours must be 0 or more, not -2.'),
    (dict(operation='begin', repository='backups', method='dump'), 'Repository backups is not an absolute directory, '
                                                                   'path:/<directory> or s3://<bucket>/<prefix>.'),
    (dict(operation='commit', set_id='20261124T163000Z-dump-0000'), 'operation is commit but all of the following are missing: '
                                                                    'cluster_info, parts'),
])
def test_bad_options_are_one_line(repository, capsys, options, message):
    args = dict(repository=repository.root, cluster=CLUSTER)
    args.update(options)

    result = run_module(catalog.main, args, capsys)

    assert result['failed'] is True and result['msg'] == message and 'exception' not in result
    assert not os.path.exists(repository.root)


def test_a_repository_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / 'backups').write_text('')

    result = run_module(catalog.main, dict(repository=str(tmp_path / 'backups'), cluster=CLUSTER, operation='begin', method='dump'), capsys)

    assert result['msg'] == 'Cannot begin backup sets of cluster %s in %s: Not a directory (%s).' % (
        CLUSTER, tmp_path / 'backups', tmp_path / 'backups' / CLUSTER)


def test_prune_removes_segment_data_that_no_record_names_from_a_kept_chain(repository, capsys, tmp_path):
    make_base(repository, {'bigchain.votes': votes(range(3))}, at=ago(1))
    writer = open_writer(repository, tmp_path / 'index.sqlite')
    writer.add_document('bigchain.votes', 'vote-0009', {'id': 'vote-0009', 'vote': {'n': 9}}, 'feed', 1.0)
    with pytest.raises(OSError, match='the store went away'):
        seal_failing_once(writer, OSError('the store went away'))
    kept_data = writer.seal()['data']['path']
    store = ChainStore(repository, CLUSTER)
    orphan = store.orphans(writer.chain_id)

    checked = catalog_run(capsys, repository, 'prune', check_mode=True)
    assert store.orphans(writer.chain_id) == orphan and len(orphan) == 1
    pruned = catalog_run(capsys, repository, 'prune')
    again = catalog_run(capsys, repository, 'prune')

    assert checked['changed'] is True and checked['leftovers'] == pruned['leftovers'] == [
        '%s of chain %s (data no segment record names)' % (orphan[0], writer.chain_id)]
    assert store.orphans(writer.chain_id) == [] and list(store.listing(writer.chain_id).data) == [kept_data]
    assert (again['changed'], again['leftovers']) == (False, [])
    assert check_chain(store, writer.chain_id).problems == []
