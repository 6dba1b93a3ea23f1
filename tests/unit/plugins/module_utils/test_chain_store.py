"""Chains in a directory repository: begun on a base, sealed segment by segment with their index, continued after a
restart, checked in full (holes, changed records, damaged data, wrong counts), chosen for a restore, and pruned only
with their base set."""

from __future__ import annotations

import datetime
import gzip
import io
import os
import re
import tarfile
import time

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_base import archive_documents, base_documents, choose_base
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_format import segment_record_name
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_store import (
    ChainError, ChainStore, check_chain, choose_chain, list_chains, plan_chain_retention, summarize)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_catalog import PrunePlan, list_sets
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import parse_time
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.backup_sets import CLUSTER
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.chain_sets import blocks, make_base, open_writer, seal_failing_once, votes

NOW = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(name='repository')
def fixture_repository(tmp_path):
    repository = LocalRepository(str(tmp_path / 'backups'))
    make_base(repository, {'bigchain.votes': votes(range(3)), 'bigchain.bigchain': blocks(range(1))})
    return repository


def fill(writer, numbers, table='bigchain.votes'):
    for number in numbers:
        writer.add_document(table, 'vote-%04d' % number, {'id': 'vote-%04d' % number, 'vote': {'n': number}}, 'feed', 1.0)


def test_a_writer_takes_each_document_once_and_seals_linked_segments(repository, tmp_path):
    writer = open_writer(repository, tmp_path / 'index.sqlite')
    fill(writer, [1, 2, 3])
    assert [writer.add_document('bigchain.votes', 'vote-0003', {'id': 'vote-0003', 'vote': {'n': 3}}, 'catchup', 2.0),
            writer.add_document('bigchain.votes', 'vote-0004', {'id': 'vote-0004', 'vote': {'n': 4}}, 'catchup', 2.0),
            writer.add_document('bigchain.votes', 'vote-0001', {'id': 'vote-0001', 'vote': {'n': 'changed'}}, 'feed', 2.0)] == [
        'repeat', 'inserted', 'reinsert']
    first = writer.seal()
    fill(writer, [5, 4])
    writer.add_alarm('bigchain.votes', 'delete', 'vote-0000', 'feed', 3.0, old={'id': 'vote-0000', 'vote': {'n': 0}})
    second = writer.seal()

    assert writer.seal() is None
    assert (first['seq'], first['records'], first['tables']['bigchain.votes']['insert'], first['tables']['bigchain.votes']['reinsert']) == (1, 3, 2, 1)
    assert (second['seq'], second['records'], second['totals']['documents'], second['totals']['alarms'], second['totals']['inserted']) == (
        2, 2, 3, 2, {'bigchain.bigchain': 0, 'bigchain.votes': 3})
    check = check_chain(ChainStore(repository, CLUSTER), writer.chain_id)
    assert check.problems == [] and check.entry['state'] == 'complete'
    assert check.inserted == {'bigchain.bigchain': 0, 'bigchain.votes': 3}
    assert [(alarm['op'], alarm['key']) for alarm in check.alarms] == [('reinsert', 'vote-0001'), ('delete', 'vote-0000')]
    assert writer.index.lookup('bigchain.votes', ['"vote-0000"', '"vote-0005"', '"vote-0009"']).keys() == {'"vote-0000"', '"vote-0005"'}
    assert writer.index.lookup('bigchain.votes', ['"vote-0000"'])['"vote-0000"'][1] is True


def test_a_restarted_writer_continues_the_chain_and_rebuilds_a_lost_index(repository, tmp_path):
    writer = open_writer(repository, tmp_path / 'index.sqlite')
    fill(writer, [10, 11])
    writer.seal()
    writer.index.close()
    os.remove(tmp_path / 'index.sqlite')

    again = open_writer(repository, tmp_path / 'index.sqlite')

    assert (again.chain_id, again.head.seq) == (writer.chain_id, 1)
    assert again.index.count('bigchain.votes') == 5
    assert again.add_document('bigchain.votes', 'vote-0010', {'id': 'vote-0010', 'vote': {'n': 10}}, 'catchup', 1.0) == 'repeat'
    fill(again, [12])
    assert again.seal()['previous_sha256'] == writer.head.sha256


def test_a_newer_base_begins_a_new_chain(repository, tmp_path):
    writer = open_writer(repository, tmp_path / 'one.sqlite')
    newer = make_base(repository, {'bigchain.votes': votes(range(5)), 'bigchain.bigchain': []},
                      at=datetime.datetime(2026, 11, 24, 18, tzinfo=datetime.timezone.utc))
    other = open_writer(repository, tmp_path / 'two.sqlite')
    assert other.chain_id != writer.chain_id and other.chain['base']['set_id'] == newer
    assert other.index.count('bigchain.votes') == 5


def test_the_base_is_read_document_by_document_and_counted(repository):
    entry, manifest = choose_base(repository, CLUSTER, ['bigchain.bigchain', 'bigchain.votes'])
    tables = [{'db': 'bigchain', 'name': 'votes', 'primary_key': 'id'}]
    assert [(table, key) for table, key, _document in base_documents(repository, CLUSTER, manifest, tables)] == [
        ('bigchain.votes', 'vote-0000'), ('bigchain.votes', 'vote-0001'), ('bigchain.votes', 'vote-0002')]
    with pytest.raises(ChainError, match='can be the base of a chain of bigchain.backlog'):
        choose_base(repository, CLUSTER, ['bigchain.backlog'])


def test_a_second_writer_of_a_segment_loses(repository, tmp_path):
    writer = open_writer(repository, tmp_path / 'index.sqlite')
    store = ChainStore(repository, CLUSTER)
    with repository.chain_object_writer(CLUSTER, writer.chain_id, segment_record_name(1), exclusive=True) as other:
        other.stream.write(b'{"written": "by another writer"}\n')
        other.finish()
    fill(writer, [20])
    with pytest.raises(ChainError, match='segment 1 of chain .* was written by another writer'):
        writer.seal()
    assert len(writer.builder) == 1 and writer.head.seq == 0
    listing = store.listing(writer.chain_id)
    assert list(listing.records) == [1] and list(listing.data.values()) == [1]


def test_what_a_failed_seal_left_is_an_orphan_that_replaces_nothing(repository, tmp_path):
    writer = open_writer(repository, tmp_path / 'index.sqlite')
    fill(writer, [60])
    with pytest.raises(ChainError, match='the store went away'):
        seal_failing_once(writer, ChainError('the store went away'))
    record = writer.seal()
    store = ChainStore(repository, CLUSTER)

    assert store.orphans(writer.chain_id) == [name for name in store.listing(writer.chain_id).data if name != record['data']['path']]
    assert len(store.orphans(writer.chain_id)) == 1 and check_chain(store, writer.chain_id).problems == []


def damage(repository, chain_id, name, change):
    path = os.path.join(repository.root, CLUSTER, 'chains', chain_id, *name.split('/'))
    with open(path, 'rb') as stream:
        content = stream.read()
    with open(path, 'wb') as stream:
        stream.write(change(content))


@pytest.mark.parametrize('fault, problem', [
    ('hole', r'segment\(s\) 2 missing'),
    ('record', 'segment 3 names record sha256'),
    ('data', 'segment 2 of chain .* has .* bytes with sha256'),
    ('no data', r'segment 2 has no data \(segments/00000002-[0-9a-f]{8}.jsonl.gz is missing\)'),
])
def test_a_full_check_finds_what_is_wrong(repository, tmp_path, fault, problem):
    writer = open_writer(repository, tmp_path / 'index.sqlite')
    for number in range(3):
        fill(writer, [30 + number])
        writer.seal()
    chain_id = writer.chain_id
    data_name = ChainStore(repository, CLUSTER).read_segment_record(chain_id, 2)[0]['data']['path']
    if fault == 'hole':
        repository.delete_chain_objects(CLUSTER, chain_id, [segment_record_name(2), data_name])
    elif fault == 'record':
        damage(repository, chain_id, segment_record_name(2), lambda content: content.replace(b'"host": "db1"', b'"host": "db9"'))
    elif fault == 'data':
        damage(repository, chain_id, data_name, lambda content: gzip.compress(gzip.decompress(content), compresslevel=1, mtime=1))
    else:
        repository.delete_chain_objects(CLUSTER, chain_id, [data_name])

    check = check_chain(ChainStore(repository, CLUSTER), chain_id)

    assert check.entry['state'] == 'invalid'
    assert any(re.search(problem, text) for text in check.problems), check.problems
    if fault == 'hole':
        store = ChainStore(repository, CLUSTER)
        assert summarize(store, chain_id)['holes'] == [2]
        with pytest.raises(ChainError, match='has no segment 2: it cannot be continued'):
            store.head(chain_id, store.read_chain(chain_id)[1], writer.chain['tables'])
        assert open_writer(repository, tmp_path / 'other.sqlite').chain_id != chain_id


def test_counts_up_to_a_point_in_time(repository, tmp_path):
    writer = open_writer(repository, tmp_path / 'index.sqlite')
    fill(writer, [40, 41])
    first = writer.seal()
    time.sleep(0.01)
    fill(writer, [42])
    writer.seal()

    check = check_chain(ChainStore(repository, CLUSTER), writer.chain_id, parse_time(first['last_received_at']))

    assert check.inserted == {'bigchain.bigchain': 0, 'bigchain.votes': 2}
    assert check_chain(ChainStore(repository, CLUSTER), writer.chain_id).inserted['bigchain.votes'] == 3


def entry(chain_id, base, state='complete', sealed_at='2026-11-25T11:00:00.000Z', first='2026-11-24T12:10:00.000Z'):
    return {'chain_id': chain_id, 'base_set_id': base, 'state': state, 'complete': state == 'complete', 'bytes': 10, 'segments': 4,
            'sealed_at': sealed_at, 'created_at': '2026-11-24T12:00:10.000Z', 'first_received_at': first,
            'last_received_at': sealed_at, 'reason': None if state == 'complete' else 'broken'}


def verdict(set_id, why='not one of the newest 1 dump sets that pass their check'):
    return {'set_id': set_id, 'method': 'dump', 'state': 'complete', 'path': '/x/' + set_id, 'bytes': 100, 'why': why}


def test_retention_keeps_a_chain_exactly_with_its_base():
    sets = [{'set_id': name, 'complete': True} for name in ('20261120T000000Z-dump-0001', '20261122T000000Z-dump-0002', '20261124T000000Z-dump-0003')]
    plan = PrunePlan(delete=[verdict('20261120T000000Z-dump-0001'), verdict('20261122T000000Z-dump-0002')],
                     keep=[verdict('20261124T000000Z-dump-0003', 'newest')])
    chains = [entry('20261120T000010Z-aaaa', '20261120T000000Z-dump-0001', sealed_at='2026-11-22T00:00:05.000Z'),
              entry('20261122T000010Z-bbbb', '20261122T000000Z-dump-0002'),
              entry('20261124T000010Z-cccc', '20261124T000000Z-dump-0003'),
              entry('20261123T000010Z-dddd', '20261101T000000Z-dump-0009', sealed_at='2026-11-23T00:00:00.000Z'),
              entry('20261123T000010Z-eeee', None, state='deleting', sealed_at=None)]

    delete, keep = plan_chain_retention(chains, sets, plan, 24, NOW)

    assert [(item['chain_id'], item['why']) for item in delete] == [
        ('20261120T000010Z-aaaa', 'its base set 20261120T000000Z-dump-0001 is pruned (not one of the newest 1 dump sets that pass their check)'),
        ('20261123T000010Z-dddd', 'its base set 20261101T000000Z-dump-0009 is not a complete set, and it was not written within the last 24 h'),
        ('20261123T000010Z-eeee', 'left over from an interrupted prune')]
    assert [item['chain_id'] for item in keep] == ['20261122T000010Z-bbbb', '20261124T000010Z-cccc']
    assert [item['set_id'] for item in plan.delete] == ['20261120T000000Z-dump-0001']
    assert plan.keep[-1] == dict(verdict('20261122T000000Z-dump-0002'), why='the base of chain 20261122T000010Z-bbbb, written within the last 24 h')


def test_a_restore_chooses_the_chain_receiving_at_the_moment():
    chains = [entry('20261124T000010Z-cccc', '20261124T000000Z-dump-0003', first='2026-11-24T00:05:00.000Z'),
              entry('20261122T000010Z-bbbb', '20261122T000000Z-dump-0002', first='2026-11-22T00:05:00.000Z'),
              entry('20261123T000010Z-ffff', '20261122T000000Z-dump-0002', state='invalid')]
    assert choose_chain(chains)['chain_id'] == '20261124T000010Z-cccc'
    assert choose_chain(chains, until=parse_time('2026-11-23T10:00:00.000Z'))['chain_id'] == '20261122T000010Z-bbbb'
    assert choose_chain(chains, until=parse_time('2026-11-25T10:00:00.000Z'), base_set_id='20261122T000000Z-dump-0002')['chain_id'] == '20261122T000010Z-bbbb'
    with pytest.raises(ChainError, match='no chain was receiving at 2026-11-21T00:00:00.000Z \\(the earliest begins at 2026-11-22T00:05:00.000Z\\)'):
        choose_chain(chains, until=parse_time('2026-11-21T00:00:00.000Z'))
    with pytest.raises(ChainError, match='chain 20261123T000010Z-ffff is invalid: broken'):
        choose_chain(chains, chain_id='20261123T000010Z-ffff')


def test_a_deleted_chain_goes_record_first(repository, tmp_path):
    writer = open_writer(repository, tmp_path / 'index.sqlite')
    fill(writer, [50])
    data_name = writer.seal()['data']['path']
    store = ChainStore(repository, CLUSTER)
    deleted = []
    original = repository.delete_chain_objects
    repository.delete_chain_objects = lambda cluster, chain, names: deleted.append(list(names)) or original(cluster, chain, names)

    store.delete(writer.chain_id)

    assert deleted[0] == ['chain.json'] and deleted[1] == [segment_record_name(1), data_name]
    assert list_chains(store) == [] and [entry['method'] for entry in list_sets(repository, CLUSTER)] == ['dump']


@pytest.mark.parametrize('content, problem', [
    (b'{"id": "vote-0001"}', "is not a JSON array of documents: expected '[', found '{'"),
    (b'[{"id": "vote-0001"}, 7]', 'holds something other than a JSON object where a document should be'),
    (b'[{"id": "vote-0001"', 'has a document that is not valid JSON'),
])
def test_a_base_archive_whose_table_is_not_an_array_of_documents_is_named(content, problem):
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode='wb', mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode='w|') as archive:
            member = tarfile.TarInfo('rethinkdb_dump_2026_11_24/bigchain/votes.json')
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    packed.seek(0)
    tables = [dict(db='bigchain', name='votes', primary_key='id')]

    with pytest.raises(ChainError) as raised:
        list(archive_documents(packed, 'gzip', tables, label='the archive of base set X'))
    assert str(raised.value).startswith('rethinkdb_dump_2026_11_24/bigchain/votes.json of the archive of base set X ')
    assert problem in str(raised.value)
