"""The backup filters: each one through the FilterModule the controller loads."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.bigchaindb.rethinkdb.plugins.filter.backup import FilterModule
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.controller_run import describe_run
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.backup_sets import cluster_info

FILTERS = FilterModule().filters()
MANIFEST_TABLES = [
    dict(db='bigchain', name='bigchain', documents=1200, primary_key='id', indexes=[], shards=1, replicas=2, primary_replicas=['node2']),
    dict(db='bigchain', name='votes', documents=897, primary_key='id', indexes=[], shards=2, replicas=3, primary_replicas=['node1']),
]


def test_every_filter_is_registered():
    assert sorted(FILTERS) == ['backup_lines', 'count_check', 'iso_time', 'replica_layout', 'repository_kind', 'restore_lines',
                               'run_state']


# --- replica_layout ----------------------------------------------------------------------------------------------

def test_replica_layout_by_tag_when_each_replica_server_has_a_tag_of_its_own():
    cluster = cluster_info()

    layout = FILTERS['replica_layout'](cluster, 'bigchain.votes')

    assert layout == dict(shards=1, replicas={'dc1': 1, 'dc2': 1}, primary_replica_tag='dc1', nonvoting_replica_tags=[])


def test_replica_layout_counts_replicas_per_tag_and_names_nonvoting_tags():
    cluster = cluster_info()
    cluster['servers'] = [dict(name='a', tags=['default', 'east']), dict(name='b', tags=['east']), dict(name='c', tags=['west'])]
    config = cluster['tables']['bigchain.votes']['config']
    config['shards'] = [dict(primary_replica='b', replicas=['a', 'b', 'c'], nonvoting_replicas=['c']),
                        dict(primary_replica='a', replicas=['a'], nonvoting_replicas=[])]

    layout = FILTERS['replica_layout'](cluster, 'bigchain.votes')

    assert layout == dict(shards=2, replicas={'east': 2, 'west': 1}, primary_replica_tag='east', nonvoting_replica_tags=['west'])


@pytest.mark.parametrize('tags', [['default'], ['default', 'dc1', 'rack4'], None])
def test_replica_layout_by_count_when_a_replica_server_has_no_single_tag(tags):
    cluster = cluster_info()
    if tags is None:
        cluster['servers'] = cluster['servers'][1:]
    else:
        cluster['servers'][0]['tags'] = tags

    layout = FILTERS['replica_layout'](cluster, 'bigchain.votes')

    assert layout == dict(shards=1, replicas=2, primary_replica_tag=None, nonvoting_replica_tags=[])


# --- count_check -------------------------------------------------------------------------------------------------

def info_with(counts: dict) -> dict:
    return {'tables': dict((name, {'documents': count}) for name, count in counts.items())}


def test_count_check_of_a_dump_wants_the_exact_count():
    checks = FILTERS['count_check'](info_with({'bigchain.bigchain': 1200, 'bigchain.votes': 896}), {'tables': MANIFEST_TABLES},
                                    ['bigchain.bigchain', 'bigchain.votes'])

    assert checks == [dict(table='bigchain.bigchain', expected_min=1200, expected_max=1200, found=1200, ok=True),
                      dict(table='bigchain.votes', expected_min=897, expected_max=897, found=896, ok=False)]


@pytest.mark.parametrize('found, ok', [(896, False), (897, True), (900, True), (905, True), (906, False), (None, False)])
def test_count_check_of_a_snapshot_accepts_any_count_between_before_and_after(found, ok):
    [check] = FILTERS['count_check'](info_with({'bigchain.votes': found}), {'tables': MANIFEST_TABLES}, ['bigchain.votes'],
                                     {'bigchain.votes': 905})

    assert check == dict(table='bigchain.votes', expected_min=897, expected_max=905, found=found, ok=ok)


def test_count_check_when_documents_were_deleted_around_the_snapshot():
    [check] = FILTERS['count_check'](info_with({'bigchain.votes': 890}), {'tables': MANIFEST_TABLES}, ['bigchain.votes'],
                                     {'bigchain.votes': 880})

    assert (check['expected_min'], check['expected_max'], check['ok']) == (880, 897, True)


def test_count_check_at_least_for_a_dump_restored_into_tables_with_documents():
    checks = FILTERS['count_check'](info_with({'bigchain.votes': 5000, 'bigchain.bigchain': 10}), {'tables': MANIFEST_TABLES},
                                    ['bigchain.votes', 'bigchain.bigchain'], None, True)

    assert [(check['expected_min'], check['expected_max'], check['ok']) for check in checks] == [(897, None, True), (1200, None, False)]


# --- report lines ------------------------------------------------------------------------------------------------

BACKUP_REPORT = dict(
    set_id='20261124T163000Z-snapshot-3f9a', method='snapshot', path='/srv/backups/rethinkdb/20261124T163000Z-snapshot-3f9a',
    tables=MANIFEST_TABLES, documents=2097, bytes=381022000, parts=[{}, {}], seconds=19.33, verified='verified by reading every part',
    snapshot=dict(backend='btrfs', barrier_at='2026-11-24T16:30:07.142Z', skew_ms=19.84, nodes=[
        dict(server='node1', host='db1', taken_at='2026-11-24T16:30:07.155Z', freeze_ms=0.4),
        dict(server='node2', host='db2', taken_at='2026-11-24T16:30:07.175Z', freeze_ms=1250.6)]),
    pruned=['20261120T163000Z-snapshot-0000', '20261121T163000Z-dump-1111'])


def test_backup_lines_of_a_snapshot_set():
    assert FILTERS['backup_lines'](BACKUP_REPORT, '/srv/backups/rethinkdb/reports/x.json') == [
        'backup set 20261124T163000Z-snapshot-3f9a (snapshot) committed at /srv/backups/rethinkdb/20261124T163000Z-snapshot-3f9a',
        '2 tables, 2,097 documents, 381.0 MB in 2 part(s), 19.3 s; verified by reading every part',
        '  bigchain.bigchain: 1,200 documents, 1 shard(s) x 2 replica(s)',
        '  bigchain.votes: 897 documents, 2 shard(s) x 3 replica(s)',
        'snapshot: btrfs at barrier 2026-11-24T16:30:07.142Z, skew 19.8 ms',
        '  node1 (db1): taken at 2026-11-24T16:30:07.155Z, writes blocked 0 ms',
        '  node2 (db2): taken at 2026-11-24T16:30:07.175Z, writes blocked 1251 ms',
        'pruned: 20261120T163000Z-snapshot-0000, 20261121T163000Z-dump-1111',
        'report: /srv/backups/rethinkdb/reports/x.json']


def test_backup_lines_of_a_dump_set_that_pruned_nothing():
    report = dict(BACKUP_REPORT, method='dump', snapshot=None, pruned=[], parts=[{}], tables=MANIFEST_TABLES[:1], documents=1200)

    lines = FILTERS['backup_lines'](report)

    assert lines[1] == '1 tables, 1,200 documents, 381.0 MB in 1 part(s), 19.3 s; verified by reading every part'
    assert lines[2:] == ['  bigchain.bigchain: 1,200 documents, 1 shard(s) x 2 replica(s)', 'pruned: nothing']


def test_restore_lines_say_each_count_and_where_the_old_data_is():
    counts = [dict(table='bigchain.bigchain', expected_min=1200, expected_max=1200, found=1200, ok=True),
              dict(table='bigchain.votes', expected_min=897, expected_max=905, found=1000, ok=False),
              dict(table='bigchain.assets', expected_min=10000, expected_max=None, found=None, ok=False)]
    report = dict(set_id='20261124T163000Z-snapshot-3f9a', method='snapshot', seconds=42.04, counts=counts,
                  moved_aside={'db2': '/var/lib/rethinkdb/default.before-restore-x', 'db1': '/var/lib/rethinkdb/default.before-restore-x'})

    assert FILTERS['restore_lines'](report, '/srv/r.json') == [
        'restored backup set 20261124T163000Z-snapshot-3f9a (snapshot) in 42.0 s',
        '  bigchain.bigchain: 1,200 documents (set: 1,200) ok',
        '  bigchain.votes: 1,000 documents (set: 897 to 905) MISMATCH',
        '  bigchain.assets: unknown documents (set: at least 10,000) MISMATCH',
        '  db1: previous data directory kept at /var/lib/rethinkdb/default.before-restore-x',
        '  db2: previous data directory kept at /var/lib/rethinkdb/default.before-restore-x',
        'report: /srv/r.json']
    assert FILTERS['restore_lines'](dict(report, counts=[], moved_aside=None)) == [
        'restored backup set 20261124T163000Z-snapshot-3f9a (snapshot) in 42.0 s']


# --- small ones --------------------------------------------------------------------------------------------------

def test_iso_time():
    assert FILTERS['iso_time'](1795537800.1239) == '2026-11-24T16:30:00.123Z'
    assert FILTERS['iso_time'](0) == '1970-01-01T00:00:00.000Z'


@pytest.mark.parametrize('url, kind', [('/srv/backups', 'controller'), ('controller:/srv/b', 'controller'), ('path:/mnt/b', 'path'),
                                       ('s3://backups/rethinkdb', 's3')])
def test_repository_kind(url, kind):
    assert FILTERS['repository_kind'](url) == kind


def test_repository_kind_of_something_else_is_a_filter_error():
    with pytest.raises(AnsibleFilterError) as refused:
        FILTERS['repository_kind']('backups')

    assert refused.value.message == ('repository_kind: repository backups is not an absolute directory, path:/<directory> or '
                                     's3://<bucket>/<prefix>')


def test_run_state_tells_this_run_from_an_ended_or_foreign_one():
    run = describe_run()

    assert FILTERS['run_state'](run) == 'alive'
    assert FILTERS['run_state'](dict(run, boot_id='before-a-reboot')) == 'gone'
    assert FILTERS['run_state'](dict(run, host='elsewhere')) == 'unknown'
    assert FILTERS['run_state'](None) == 'unknown'
