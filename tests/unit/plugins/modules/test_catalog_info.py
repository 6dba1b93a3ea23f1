"""The catalog_info module through main() on a real repository: the listing, choosing a set by id, by query or
the newest, its full check, and errors in one line."""

from __future__ import annotations

import datetime
import hashlib
import os

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import format_time, utc_now
from ansible_collections.bigchaindb.rethinkdb.plugins.modules import catalog_info
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.backup_sets import CLUSTER, make_format_1_set, make_set, tree
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import run_module

NOW = utc_now().replace(microsecond=0)


def ago(hours: float) -> datetime.datetime:
    return NOW - datetime.timedelta(hours=hours)


@pytest.fixture(name='repository')
def controller_repository(tmp_path):
    return LocalRepository(str(tmp_path / 'backups'))


def read(capsys, repository, **options) -> dict:
    return run_module(catalog_info.main, dict(repository=repository.root, cluster=CLUSTER, **options), capsys)


def damage(made) -> str:
    """Change the first byte of a set's first part; return the part's new sha256."""
    path = os.path.join(made['location'], *made['parts'][0]['path'].split('/'))
    with open(path, 'r+b') as part:
        part.write(b'X')
    with open(path, 'rb') as part:
        return hashlib.sha256(part.read()).hexdigest()


def test_the_listing_of_every_set_newest_first_with_a_line_each(repository, capsys):
    dump = make_set(repository, ago(5))
    snapshot = make_set(repository, ago(3), method='snapshot')
    running = make_set(repository, ago(1), commit=False)
    before = tree(repository.root)

    result = read(capsys, repository, _ansible_check_mode=True)

    assert result['changed'] is False and 'set' not in result
    assert [(entry['set_id'], entry['state']) for entry in result['sets']] == [
        (running['set_id'], 'partial'), (snapshot['set_id'], 'complete'), (dump['set_id'], 'complete')]
    snapshot_mb = sum(part['bytes'] for part in snapshot['parts']) / 1e6
    assert result['summary'][1] == '%s  snapshot  complete  %9.1f MB  2 tables  2,097 documents' % (snapshot['set_id'], snapshot_mb)
    assert result['summary'][0].startswith('%s  dump      partial   ' % running['set_id'])
    assert result['summary'][0].endswith('0 tables  0 documents  (not committed: the backup is still running or was interrupted)')
    assert tree(repository.root) == before


def test_a_repository_or_cluster_without_sets_lists_nothing(tmp_path, capsys):
    result = read(capsys, LocalRepository(str(tmp_path / 'none')))

    assert (result['sets'], result['summary']) == ([], [])
    assert not os.path.exists(str(tmp_path / 'none'))


def test_select_chooses_the_newest_complete_set_with_its_manifest_and_topology(repository, capsys):
    chosen = make_set(repository, ago(5))
    future = make_set(repository, NOW + datetime.timedelta(days=1))
    damaged = make_set(repository, ago(2))
    os.unlink(os.path.join(damaged['location'], 'dump', 'rethinkdb_dump.tar.gz'))

    result = read(capsys, repository, select=True)

    assert result['set']['set_id'] == chosen['set_id'] and result['set']['complete'] is True
    assert result['manifest'] == chosen['manifest'] and result['topology'] == chosen['manifest']['topology']
    assert result['notes'] == ['passed over %s: it is dated in the future (a wrong clock when it was made?)' % future['set_id'],
                               'passed over %s: part dump/rethinkdb_dump.tar.gz is missing' % damaged['set_id']]
    assert 'problems' not in result


def test_choose_by_set_id_or_query(repository, capsys):
    dump = make_set(repository, ago(5))
    snapshot = make_set(repository, ago(3), method='snapshot')

    by_id = read(capsys, repository, set_id=dump['set_id'])
    by_query = read(capsys, repository, query="[?method=='snapshot']")
    by_time = read(capsys, repository, query="[?started_at < '%s']" % format_time(ago(4)))

    assert by_id['set']['set_id'] == dump['set_id'] and by_id['notes'] == []
    assert by_query['set']['set_id'] == snapshot['set_id'] and by_query['manifest']['snapshot']['backend'] == 'btrfs'
    assert by_time['set']['set_id'] == dump['set_id']


def test_check_reads_every_part_of_the_chosen_set(repository, capsys):
    made = make_set(repository, ago(5))

    good = read(capsys, repository, check=True)
    found = damage(made)
    quick = read(capsys, repository, check=True, verify_checksums=False)
    full = read(capsys, repository, check=True)

    assert good['problems'] == [] and good['set']['set_id'] == made['set_id']
    assert quick['problems'] == [] and 'failed' not in quick
    problem = 'part dump/rethinkdb_dump.tar.gz has sha256 %s, expected %s' % (found, made['parts'][0]['sha256'])
    assert full['failed'] is True and full['problems'] == [problem]
    assert full['msg'] == 'Backup set %s is not valid: %s.' % (made['set_id'], problem)
    assert full['set']['set_id'] == made['set_id'] and full['sets'][0]['set_id'] == made['set_id']


def test_a_format_1_set_is_chosen_with_the_topology_of_its_cluster_json(repository, capsys):
    made = make_format_1_set(repository, ago(5))

    result = read(capsys, repository, check=True)

    assert (result['set']['set_id'], result['set']['format']) == (made['set_id'], 1)
    assert result['topology'] == made['topology'] and result['problems'] == []


@pytest.mark.parametrize('options, message', [
    (dict(select=True), 'No complete backup set to select (1 set(s) of 1, none complete and dated in the past).'),
    (dict(set_id='20261124T163000Z-dump-0000'), 'No backup set 20261124T163000Z-dump-0000.'),
    (dict(query="[?method=='snapshot']"), "The query '[?method=='snapshot']' matches no backup set (of 1)."),
    (dict(query='[?'), "Query '[?' is not a valid JMESPath query: "),
    (dict(cluster='../etc'), "Cluster '../etc' is not a valid name: use letters, digits, '_', '.' and '-', starting with a letter or digit."),
    (dict(repository='s3://X'), 'Repository s3://X is not s3://<bucket>/<prefix> with a valid bucket name (lowercase letters, digits, '
                                "'.' and '-', 3 to 63 characters)."),
    (dict(set_id='20261124T163000Z-dump-0000', query='[0]'), 'parameters are mutually exclusive: set_id|query'),
])
def test_errors_are_one_line(repository, capsys, options, message):
    make_set(repository, ago(1), commit=False)
    before = tree(repository.root)
    args = dict(repository=repository.root, cluster=CLUSTER)
    args.update(options)

    result = run_module(catalog_info.main, args, capsys)

    assert result['failed'] is True and result['msg'].startswith(message) and '\n' not in result['msg']
    assert 'exception' not in result
    assert tree(repository.root) == before


def test_a_partial_set_chosen_by_id_says_why_it_cannot_be(repository, capsys):
    running = make_set(repository, ago(1), commit=False)

    result = read(capsys, repository, set_id=running['set_id'])

    assert result['msg'] == 'Backup set %s is partial: not committed: the backup is still running or was interrupted.' % running['set_id']


def test_a_repository_that_cannot_be_read_is_one_line(tmp_path, capsys):
    (tmp_path / 'backups').mkdir()
    (tmp_path / 'backups' / CLUSTER).write_text('')

    result = read(capsys, LocalRepository(str(tmp_path / 'backups')))

    assert result['msg'] == '%s is not a directory, so it cannot hold the sets of cluster %s.' % (tmp_path / 'backups' / CLUSTER, CLUSTER)
