"""Client sets: the blocks and votes a client's transactions and keys lead to through BigchainDB's indexes (on a
stand-in driver answering from sample data), written as a dump archive that the dump reader and the chain check
accept, beside a record of what was asked; a set is complete or absent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import bigchaindb_client_set
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.bigchaindb_chain import Options, check_archive
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.bigchaindb_client_set import ClientSetError, collect, write_client_set
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import read_dump_archive
from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data as sample
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import FakeR, names

BLOCKS = 12
SEED = 3
INFO = dict(db=dict(name='bigchain'), name='bigchain', primary_key='id', indexes=['transaction_id'], type='TABLE')


@pytest.fixture(scope='module', name='chain')
def fixture_chain() -> tuple:
    tables = sample.generate(BLOCKS, seed=SEED)
    return list(tables['bigchain']), list(tables['votes'])


def holds(block: dict, index: str, key) -> bool:
    """Whether a block has key among the values of one of BigchainDB's multi indexes."""
    transactions = block['block']['transactions']
    if index == 'transaction_id':
        return any(transaction['id'] == key for transaction in transactions)
    if index == 'outputs':
        return any(key in output['public_keys'] for transaction in transactions for output in transaction['outputs'])
    return any(spent['fulfills'] and [spent['fulfills']['txid'], spent['fulfills']['output']] == list(key)
               for transaction in transactions for spent in transaction['inputs'])


def stand_in(blocks: list, votes: list) -> FakeR:
    """A driver whose queries answer from the sample chain as RethinkDB's indexes would."""
    def answer(chain):
        steps = names(chain)
        table = chain[1][1][0]
        if steps[-1] == 'info':
            return dict(INFO, name=table)
        if steps[-1] == 'index_status':
            return [dict(index='transaction_id', multi=True, function={'$reql_type$': 'BINARY', 'data': 'AA=='})]
        if steps[-1] == 'get_all':
            keys, index = chain[-1][1], chain[-1][2]['index']
            return [block for block in blocks if any(holds(block, index, key) for key in keys)]
        if steps[-1] == 'between':
            return [vote for vote in votes if vote['vote']['voting_for_block'] == chain[-1][1][0][0]]
        raise AssertionError('unexpected query %s' % (steps,))
    return FakeR(answer)


def test_transactions_and_keys_lead_to_their_blocks_and_every_vote_on_them(chain):
    blocks, votes = chain
    asked = [blocks[2]['block']['transactions'][0]['id'], blocks[7]['block']['transactions'][1]['id'], 'f' * 64]
    owner = blocks[4]['block']['transactions'][0]['outputs'][0]['public_keys'][0]
    r = stand_in(blocks, votes)

    collected = collect(r, None, 'bigchain', asked, [owner, 'NoSuchKey'])

    received = set(block['id'] for block in blocks if holds(block, 'outputs', owner))
    outputs = [(transaction['id'], index) for block in blocks for transaction in block['block']['transactions']
               for index, output in enumerate(transaction['outputs']) if owner in output['public_keys']]
    spent = set(block['id'] for block in blocks if any(holds(block, 'inputs', output) for output in outputs))
    expected = {blocks[2]['id'], blocks[7]['id']} | received | spent
    assert [block['id'] for block in collected['blocks']] == sorted(expected)
    assert sorted(vote['id'] for vote in collected['votes']) == sorted(vote['id'] for vote in votes if vote['vote']['voting_for_block'] in expected)
    assert collected['found']['transaction_ids'] == {asked[0]: [blocks[2]['id']], asked[1]: [blocks[7]['id']], asked[2]: []}
    assert collected['found']['public_keys'][owner] == dict(received_in=sorted(received), spent_in=sorted(spent))
    assert collected['not_found'] == dict(transaction_ids=[asked[2]], public_keys=['NoSuchKey'])
    assert collected['infos']['votes']['indexes'][0]['index'] == 'transaction_id'
    assert all(options == dict(time_format='raw', binary_format='raw') for dummy, options in r.queries if options)


def client_set(tmp_path, blocks: list, votes: list) -> tuple:
    chosen = [blocks[3], blocks[5]]
    collected = dict(blocks=chosen, votes=[vote for vote in votes if vote['vote']['voting_for_block'] in (blocks[3]['id'], blocks[5]['id'])],
                     infos=dict(bigchain=dict(INFO), votes=dict(INFO, name='votes', indexes=[])),
                     found=dict(transaction_ids={'t': [blocks[3]['id']]}, public_keys={}), not_found=dict(transaction_ids=[], public_keys=[]))
    record = write_client_set(str(tmp_path / 'wallet'), 'bigchain', dict(transaction_ids=['t'], public_keys=[]), collected,
                              dict(endpoint='db1:28015', user='wallet'))
    return collected, record


def test_a_client_set_is_a_dump_archive_the_chain_check_proves(chain, tmp_path):
    blocks, votes = chain

    collected, record = client_set(tmp_path, blocks, votes)

    assert sorted(os.listdir(tmp_path)) == ['wallet']
    assert json.loads((tmp_path / 'wallet' / 'client-set.json').read_text()) == record
    assert (record['kind'], record['db'], record['asked'], record['blocks']) == (
        'bigchaindb-client-set', 'bigchain', dict(transaction_ids=['t'], public_keys=[]), [blocks[3]['id'], blocks[5]['id']])
    archive = read_dump_archive(str(tmp_path / 'wallet' / 'rethinkdb_dump.tar.gz'), record['archive']['sha256'])
    assert archive.bytes == record['archive']['bytes'] and archive.top == record['set_id']
    assert dict((name, table.documents) for name, table in archive.tables.items()) == {'bigchain.bigchain': 2, 'bigchain.votes': 6}
    assert archive.tables['bigchain.bigchain'].indexes == ['transaction_id']
    outcome = check_archive(str(tmp_path / 'wallet' / 'rethinkdb_dump.tar.gz'), Options(federation=frozenset(blocks[0]['block']['voters']), workers=1))
    named = dict((kind, entry['ids']) for kind, entry in outcome['failures'].items() if entry['count'])
    assert named == dict(block_missing=sorted({blocks[2]['id'], blocks[4]['id']}))
    assert outcome['counts']['votes'] == len(collected['votes']) == 6


def test_an_existing_dest_is_refused_and_a_failed_write_leaves_nothing(chain, tmp_path, monkeypatch):
    blocks, votes = chain
    client_set(tmp_path, blocks, votes)
    with pytest.raises(ClientSetError, match='wallet already exists: give another dest, or remove it'):
        client_set(tmp_path, blocks, votes)

    def no_room(*args):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(bigchaindb_client_set, 'write_json_atomic', no_room)
    empty = dict(blocks=[], votes=[], infos=dict(bigchain=INFO, votes=INFO), found={}, not_found={})
    with pytest.raises(OSError):
        write_client_set(str(tmp_path / 'second'), 'bigchain', {}, empty, {})
    assert sorted(path.name for path in Path(tmp_path).iterdir()) == ['wallet']
