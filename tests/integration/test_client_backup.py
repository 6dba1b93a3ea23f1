"""A BigchainDB client's own backup through the client_backup and client_merge playbooks: a cluster holds a tampered
chain (tests/harness/bigchaindb_data.Tampering); a client with a read-only user of its own saves the blocks of some
transactions and of a public key into client sets, which the chain check proves the federation signed, while a set
holding the altered transaction is refused by the check; two sets merged into an empty cluster give back exactly
their blocks and votes, and the blocks that the votes link to but neither set holds are named as missing."""

from __future__ import annotations

import json

from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data
from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import Ansible, write_inventory

r = RethinkDB()
BLOCKS = 40
SEED = 7
ADMIN_PASSWORD = 'federation admin'
WALLET_PASSWORD = 'wallet reads only'
CLIENT_BACKUP = 'bigchaindb.rethinkdb.client_backup'
CLIENT_MERGE = 'bigchaindb.rethinkdb.client_merge'
CHECK_TASK = 'Check the chain in the client set (ids, signatures, signers, votes)'
MERGE_CHECK_TASK = 'Check the merged chain, naming the blocks still missing'
UNKNOWN_TRANSACTION = 'f' * 64
FEDERATION = [bigchaindb_data.Signer(SEED, 'node', index).public_key for index in range(bigchaindb_data.DEFAULT_VOTERS)]


def stored_chain(tampering: bigchaindb_data.Tampering) -> tuple:
    """The blocks (by id) and votes as the cluster stores them."""
    documents = bigchaindb_data.generate(BLOCKS, seed=SEED, tampering=tampering)
    return dict((block['id'], block) for block in documents['bigchain']), list(documents['votes'])


def blocks_of_key(blocks: dict, public_key: str) -> set:
    """The ids of the blocks with an output to the key, and of those that spend one."""
    outputs = set((transaction['id'], index) for block in blocks.values() for transaction in block['block']['transactions']
                  for index, output in enumerate(transaction['outputs']) if public_key in output['public_keys'])
    received = set(block_id for block_id, block in blocks.items() for transaction in block['block']['transactions']
                   if any(public_key in output['public_keys'] for output in transaction['outputs']))
    spent = set(block_id for block_id, block in blocks.items() for transaction in block['block']['transactions']
                for spending in transaction['inputs']
                if spending['fulfills'] and (spending['fulfills']['txid'], spending['fulfills']['output']) in outputs)
    return received | spent


def client_vars(cluster, tmp_path, **asked) -> dict:
    password_file = tmp_path / 'wallet-password'
    password_file.write_text(WALLET_PASSWORD + '\n')
    return dict(asked, rethinkdb_login_host='127.0.0.1', rethinkdb_driver_port=cluster.node(1).driver_port, rethinkdb_login_user='wallet',
                rethinkdb_login_password_file=str(password_file), bigchaindb_federation_keys=FEDERATION)


def failures_named(result: dict) -> dict:
    return dict((kind, entry['ids']) for kind, entry in result['failures'].items() if entry['count'])


def test_client_sets_are_verified_and_merged_naming_the_blocks_still_missing(cluster_factory, tmp_path):
    source = cluster_factory(1, password=ADMIN_PASSWORD)
    tampering = bigchaindb_data.Tampering(BLOCKS, seed=SEED)
    with source.connect() as connection:
        bigchaindb_data.create_schema(r, connection)
        bigchaindb_data.load(r, connection, bigchaindb_data.generate(BLOCKS, seed=SEED, tampering=tampering))
        r.db('rethinkdb').table('users').insert(dict(id='wallet', password=WALLET_PASSWORD)).run(connection)
        r.db('bigchain').grant('wallet', dict(read=True)).run(connection)
    blocks, votes = stored_chain(bigchaindb_data.Tampering(BLOCKS, seed=SEED))
    damaged = {tampering.changed['altered_transaction']['block'], tampering.changed['outsider_block']['block']}
    by_height = sorted(blocks.values(), key=lambda block: int(block['block']['timestamp']))
    asked_transactions = [by_height[3]['block']['transactions'][0]['id'], by_height[30]['block']['transactions'][1]['id']]
    key = next(user.public_key for user in (bigchaindb_data.Signer(SEED, 'user', index) for index in range(bigchaindb_data.USERS))
               if blocks_of_key(blocks, user.public_key) and not blocks_of_key(blocks, user.public_key) & damaged)
    ansible = Ansible(tmp_path, write_inventory(source, tmp_path / 'inventory.yml'))

    asked_a = client_vars(source, tmp_path, dest=str(tmp_path / 'set-a'), transaction_ids=asked_transactions + [UNKNOWN_TRANSACTION])
    by_transaction = ansible.playbook(CLIENT_BACKUP, asked_a)
    by_key = ansible.playbook(CLIENT_BACKUP, client_vars(source, tmp_path, dest=str(tmp_path / 'set-b'), public_keys=[key]))
    altered = ansible.playbook(CLIENT_BACKUP, client_vars(source, tmp_path, dest=str(tmp_path / 'set-c'),
                                                          transaction_ids=[tampering.changed['altered_transaction']['transaction']]), expect_rc=2)

    record_a = json.loads((tmp_path / 'set-a' / 'client-set.json').read_text())
    set_a = {by_height[3]['id'], by_height[30]['id']}
    assert record_a['asked'] == dict(transaction_ids=asked_transactions + [UNKNOWN_TRANSACTION], public_keys=[])
    assert record_a['found']['transaction_ids'] == {
        asked_transactions[0]: [by_height[3]['id']], asked_transactions[1]: [by_height[30]['id']], UNKNOWN_TRANSACTION: []}
    assert record_a['not_found'] == dict(transaction_ids=[UNKNOWN_TRANSACTION], public_keys=[])
    assert record_a['blocks'] == sorted(set_a)
    assert record_a['tables'][1] == dict(db='bigchain', name='votes', documents=6)
    record_b = json.loads((tmp_path / 'set-b' / 'client-set.json').read_text())
    set_b = blocks_of_key(blocks, key)
    assert record_b['blocks'] == sorted(set_b)
    assert set(record_b['found']['public_keys'][key]['received_in']) | set(record_b['found']['public_keys'][key]['spent_in']) == set_b
    for run, saved in ((by_transaction, set_a), (by_key, set_b)):
        checked = run.result(CHECK_TASK)
        assert checked['counts']['blocks'] == len(saved) and checked['counts']['votes'] == 3 * len(saved)
        assert sorted(failures_named(checked)) == ['block_missing'] and checked['federation_checked'] is True
    named = failures_named(altered.result(CHECK_TASK))
    signed_wrong = ('block_id', 'block_signature', 'transaction_id', 'transaction_signature')
    assert sorted(named) == sorted(signed_wrong + ('block_missing',))
    assert [named[kind] for kind in signed_wrong] == [tampering.expected_failures()[kind] for kind in signed_wrong]
    assert [task for task, host, message in altered.failures()] == ['Check that everything in the set was signed as BigchainDB signs']
    assert (tmp_path / 'set-c' / 'client-set.json').exists()
    assert WALLET_PASSWORD not in by_transaction.output + by_key.output + altered.output

    target = cluster_factory(1)
    merged = ansible.playbook(CLIENT_MERGE, dict(rethinkdb_driver_port=target.node(1).driver_port, bigchaindb_federation_keys=FEDERATION,
                                                 sets=[str(tmp_path / 'set-a'), str(tmp_path / 'set-b')]))

    restored = set_a | set_b
    with target.connect() as connection:
        assert set(r.db('bigchain').table('bigchain')['id'].run(connection)) == restored
        assert sorted(r.db('bigchain').table('votes')['id'].run(connection)) == sorted(
            vote['id'] for vote in votes if vote['vote']['voting_for_block'] in restored)
        assert sorted(r.db('bigchain').table('bigchain').index_list().run(connection)) == [
            'asset_id', 'block_timestamp', 'inputs', 'outputs', 'transaction_id']
    missing = sorted(set(vote['vote']['previous_block'] for vote in votes if vote['vote']['voting_for_block'] in restored) - restored)
    check = merged.result(MERGE_CHECK_TASK)
    assert failures_named(check) == dict(block_missing=missing)
    assert merged.result('Say what the merge restored and what is still missing')['msg'][-1] == (
        "still missing, by the votes' links: %d block(s): %s" % (len(missing), ', '.join(missing)))
