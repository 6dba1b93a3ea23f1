"""Chain objects on every kind of repository (a directory on the controller, a shared path, an S3 store run by
tests/harness/s3server): invisible until finished, never replaced when exclusive, listed, read, deleted; and a
whole chain written, checked and pruned through each kind."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_store import ChainStore, check_chain, list_chains
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import RepositoryError, open_repository
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_catalog import list_sets
from ansible_collections.bigchaindb.rethinkdb.tests.harness import s3server
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.backup_sets import CLUSTER
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.chain_sets import make_base, open_writer, votes

CHAIN = '20261124T163000Z-3f9a'


@pytest.fixture(scope='module', name='store')
def fixture_store(tmp_path_factory):
    reason = s3server.unavailable()
    if reason:
        pytest.skip('S3 store: %s' % reason)
    with s3server.S3Store(tmp_path_factory.mktemp('s3')) as store:
        yield store


@pytest.fixture(params=['controller', 'path', 's3'], name='repository')
def fixture_repository(request, tmp_path):
    if request.param == 's3':
        store = request.getfixturevalue('store')
        return open_repository('s3://%s/site' % store.create_bucket(), dict(
            endpoint_url=store.endpoint_url, credentials_file=str(store.credentials_file), region='us-east-1'))
    return open_repository('%s:%s' % (request.param, tmp_path / 'backups'))


def put(repository, name, content, exclusive=False):
    with repository.chain_object_writer(CLUSTER, CHAIN, name, exclusive=exclusive) as writer:
        writer.stream.write(content)
        return writer.finish()


def test_objects_appear_whole_and_exclusive_ones_are_never_replaced(repository):
    assert repository.list_chains(CLUSTER) == [] and repository.chain_objects(CLUSTER, CHAIN) == {}
    with repository.chain_object_writer(CLUSTER, CHAIN, 'segments/00000001.jsonl.gz') as writer:
        writer.stream.write(b'x' * 1000)
        assert repository.chain_objects(CLUSTER, CHAIN) == {}
        facts = writer.finish()
    assert facts['bytes'] == 1000 and len(facts['sha256']) == 64
    put(repository, 'segments/00000001.json', b'first', exclusive=True)
    with pytest.raises(RepositoryError, match='exists already: another writer wrote it first'):
        put(repository, 'segments/00000001.json', b'second', exclusive=True)
    put(repository, 'segments/00000001.jsonl.gz', b'rewritten')

    assert repository.list_chains(CLUSTER) == [CHAIN]
    assert repository.chain_objects(CLUSTER, CHAIN) == {'segments/00000001.jsonl.gz': 9, 'segments/00000001.json': 5}
    assert repository.read_chain_object(CLUSTER, CHAIN, 'segments/00000001.json') == b'first'
    assert repository.read_chain_object(CLUSTER, CHAIN, 'chain.json') is None
    stream = repository.open_chain_object(CLUSTER, CHAIN, 'segments/00000001.jsonl.gz')
    assert stream.read() == b'rewritten'
    stream.close()
    with pytest.raises(RepositoryError, match='chain.json of chain %s' % CHAIN):
        repository.open_chain_object(CLUSTER, CHAIN, 'chain.json')
    with pytest.raises(RepositoryError, match='not a plain name'):
        repository.chain_object_writer(CLUSTER, CHAIN, '../escape')

    repository.delete_chain_objects(CLUSTER, CHAIN, ['segments/00000001.json', 'segments/00000001.jsonl.gz', 'segments/00000009.json'])
    assert repository.chain_objects(CLUSTER, CHAIN) == {} and repository.list_chains(CLUSTER) == []


def test_an_aborted_object_leaves_nothing(repository):
    with pytest.raises(ValueError):
        with repository.chain_object_writer(CLUSTER, CHAIN, 'segments/00000002.jsonl.gz') as writer:
            writer.stream.write(b'half')
            raise ValueError('the writer failed')
    assert repository.chain_objects(CLUSTER, CHAIN) == {}


def test_a_chain_is_written_checked_and_deleted_on_every_kind(repository, tmp_path):
    base = make_base(repository, {'bigchain.votes': votes(range(3)), 'bigchain.bigchain': []},
                     at=datetime.datetime(2026, 11, 24, 12, tzinfo=datetime.timezone.utc))
    writer = open_writer(repository, tmp_path / 'index.sqlite')
    for number in range(3, 6):
        writer.add_document('bigchain.votes', 'vote-%04d' % number, {'id': 'vote-%04d' % number}, 'feed', 1.0)
    writer.seal()
    store = ChainStore(repository, CLUSTER)

    check = check_chain(store, writer.chain_id)
    listing = list_chains(store)
    sets = list_sets(repository, CLUSTER)
    store.delete(writer.chain_id)

    assert check.problems == [] and check.inserted['bigchain.votes'] == 3
    assert [(entry['chain_id'], entry['base_set_id'], entry['segments'], entry['documents']) for entry in listing] == [(writer.chain_id, base, 1, 3)]
    assert [entry['set_id'] for entry in sets] == [base]
    assert list_chains(store) == [] and [entry['set_id'] for entry in list_sets(repository, CLUSTER)] == [base]
