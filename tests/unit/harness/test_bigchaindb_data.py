# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sample data must look to BigchainDB 0.10 like its own: real ids, real signatures, a chain of votes."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import operator
import os
import re
import subprocess
import sys
import uuid

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rethinkdb import RethinkDB
from rethinkdb.ast import ReQLEncoder

from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data

ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
BLOCKS = 40
VOTERS = 3
BACKLOG = 12
TRANSACTIONS_PER_BLOCK = 3

# ReQL term types, from the driver's ql2 protocol.
TERM_MAKE_ARRAY = 2
TERM_INSERT = 56


def b58decode(text: str) -> bytes:
    """An independent decoder, so the generator's encoder is checked rather than trusted."""
    number = 0
    for character in text:
        number = number * 58 + ALPHABET.index(character)
    leading_zeros = len(text) - len(text.lstrip('1'))
    return b'\0' * leading_zeros + number.to_bytes((number.bit_length() + 7) // 8, 'big')


def verifies(public_key: str, signature: bytes, message: str) -> bool:
    """Whether the Ed25519 signature of the UTF-8 message is valid for the base58 public key."""
    try:
        Ed25519PublicKey.from_public_bytes(b58decode(public_key)).verify(signature, message.encode('utf-8'))
    except InvalidSignature:
        return False
    return True


def compact_json(value) -> str:
    """The key-sorted compact JSON that BigchainDB's serialize() wrote with rapidjson."""
    return json.dumps(value, sort_keys=True, separators=(',', ':'), ensure_ascii=False)


def sha3(text: str) -> str:
    return hashlib.sha3_256(text.encode('utf-8')).hexdigest()


def materialize(tables) -> dict:
    """Every table's documents as lists, one whole table after the other."""
    return {table: list(documents) for table, documents in tables.items()}


def digest(tables) -> str:
    """sha256 of all documents serialized, table by table."""
    hasher = hashlib.sha256()
    for table, documents in tables.items():
        for document in documents:
            hasher.update(table.encode('ascii') + b'\0' + compact_json(document).encode('utf-8') + b'\n')
    return hasher.hexdigest()


def transaction_body(transaction: dict) -> dict:
    """The transaction as it was hashed: no id, no backlog fields, fulfillments set to None."""
    body = {key: value for key, value in transaction.items() if key not in ('id', 'assignee', 'assignment_timestamp')}
    body['inputs'] = [dict(transaction_input, fulfillment=None) for transaction_input in transaction['inputs']]
    return body


def all_transactions(data: dict) -> list[dict]:
    chain = [transaction for block in data['bigchain'] for transaction in block['block']['transactions']]
    return chain + data['backlog']


@pytest.fixture(scope='module', name='data')
def fixture_data() -> dict:
    return materialize(bigchaindb_data.generate(BLOCKS, seed=7, transactions_per_block=TRANSACTIONS_PER_BLOCK, voters=VOTERS, backlog=BACKLOG))


def test_base58_matches_known_values_and_round_trips():
    assert bigchaindb_data.b58encode(b'') == ''
    assert bigchaindb_data.b58encode(b'\0') == '1'
    assert bigchaindb_data.b58encode(b'\0\0\x01') == '112'
    assert bigchaindb_data.b58encode(b'hello world') == 'StV1DL6CwTryKyV'
    assert bigchaindb_data.b58encode(b'\xff' * 32) == 'JEKNVnkbo3jma5nREBBJCDoXFVeKkD56V3xKrvRmWxFG'
    for length in range(70):
        raw = hashlib.sha512(b'%d' % length).digest()[:length // 2].rjust(length, b'\0')
        assert b58decode(bigchaindb_data.b58encode(raw)) == raw


def test_same_seed_gives_the_same_bytes_and_another_seed_other_bytes():
    first = digest(materialize(bigchaindb_data.generate(12, seed=3)))
    assert digest(materialize(bigchaindb_data.generate(12, seed=3))) == first
    assert digest(materialize(bigchaindb_data.generate(12, seed=4))) != first


def test_output_does_not_depend_on_the_process():
    script = ('import hashlib, json; from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data as d; '
              'print(hashlib.sha256(json.dumps({t: list(v) for t, v in d.generate(6, seed=1).items()}, sort_keys=True).encode()).hexdigest())')
    outputs = set()
    for hash_seed in ('1', '2'):
        environment = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=os.pathsep.join(sys.path))
        completed = subprocess.run([sys.executable, '-c', script], env=environment, capture_output=True, text=True, check=True)
        outputs.add(completed.stdout)
    assert len(outputs) == 1


def test_reading_tables_in_any_order_gives_the_same_documents():
    tables = bigchaindb_data.generate(10, seed=5)
    votes_first = {'votes': list(tables['votes']), 'backlog': list(tables['backlog']), 'bigchain': list(tables['bigchain'])}
    assert digest(materialize(bigchaindb_data.generate(10, seed=5))) == digest({table: votes_first[table] for table in bigchaindb_data.TABLES})


def test_counts_scale_with_the_arguments(data):
    assert {table: len(documents) for table, documents in data.items()} == {'bigchain': BLOCKS, 'votes': (BLOCKS - 1) * VOTERS, 'backlog': BACKLOG}
    assert all(len(block['block']['transactions']) == TRANSACTIONS_PER_BLOCK for block in data['bigchain'][1:])
    for blocks in (1, 2, 25):
        counts = {table: len(documents) for table, documents in materialize(bigchaindb_data.generate(blocks, voters=4)).items()}
        assert counts == {'bigchain': blocks, 'votes': (blocks - 1) * 4, 'backlog': blocks // bigchaindb_data.BLOCKS_PER_BACKLOG_TRANSACTION}
        assert sum(counts.values()) == bigchaindb_data.document_count(blocks, voters=4)


def test_blocks_for_documents_lands_near_the_target():
    for documents in (1000, 100000, 1000000):
        blocks = bigchaindb_data.blocks_for_documents(documents)
        assert abs(bigchaindb_data.document_count(blocks) - documents) <= documents * 0.01


def test_blocks_for_bytes_lands_near_the_target():
    target = 1000000
    blocks = bigchaindb_data.blocks_for_bytes(target)
    tables = bigchaindb_data.generate(blocks)
    size = sum(len(compact_json(document).encode('utf-8')) for documents in tables.values() for document in documents)
    assert abs(size - target) <= target * 0.1


def test_tables_and_ids_are_bigchaindb_shaped(data):
    genesis = data['bigchain'][0]
    assert [transaction['operation'] for transaction in genesis['block']['transactions']] == ['GENESIS']
    assert genesis['block']['transactions'][0]['metadata'] == {'message': 'Hello World from the BigchainDB'}
    for block in data['bigchain']:
        assert set(block) == {'id', 'block', 'signature'}
        assert set(block['block']) == {'timestamp', 'transactions', 'node_pubkey', 'voters'}
        assert re.fullmatch('[0-9]{10}', block['block']['timestamp'])
    for vote in data['votes']:
        assert set(vote) == {'id', 'node_pubkey', 'signature', 'vote'}
        assert set(vote['vote']) == {'voting_for_block', 'previous_block', 'is_block_valid', 'invalid_reason', 'timestamp'}
        assert str(uuid.UUID(vote['id'])) == vote['id']
    for transaction in all_transactions(data):
        assert set(transaction) - {'assignee', 'assignment_timestamp'} == {'id', 'version', 'operation', 'asset', 'metadata', 'inputs', 'outputs'}
        assert transaction['version'] == '0.10'
    for transaction in data['backlog']:
        assert transaction['operation'] == 'CREATE'
        assert transaction['assignee'] in genesis['block']['voters']
        assert float(transaction['assignment_timestamp']) > int(data['bigchain'][-1]['block']['timestamp'])
    assert {'CREATE', 'TRANSFER'} <= {transaction['operation'] for transaction in all_transactions(data)}
    for table in data:
        ids = [document['id'] for document in data[table]]
        assert len(ids) == len(set(ids))


def test_ids_are_the_sha3_of_the_serialization(data):
    for block in data['bigchain']:
        assert block['id'] == sha3(compact_json(block['block']))
    for transaction in all_transactions(data):
        assert transaction['id'] == sha3(compact_json(transaction_body(transaction)))


def test_block_and_vote_signatures_verify(data):
    for block in data['bigchain']:
        assert verifies(block['block']['node_pubkey'], b58decode(block['signature']), compact_json(block['block']))
    for vote in data['votes']:
        assert verifies(vote['node_pubkey'], b58decode(vote['signature']), compact_json(vote['vote']))
    forged = copy.deepcopy(data['votes'][0])
    forged['vote']['is_block_valid'] = False
    assert not verifies(forged['node_pubkey'], b58decode(forged['signature']), compact_json(forged['vote']))


def test_fulfillments_and_conditions_are_ed25519_crypto_conditions(data):
    for transaction in all_transactions(data):
        (transaction_input,) = transaction['inputs']
        match = re.fullmatch('cf:4:([A-Za-z0-9_-]{128})', transaction_input['fulfillment'])
        payload = base64.urlsafe_b64decode(match.group(1))
        public_key, signature = payload[:32], payload[32:]
        (owner,) = transaction_input['owners_before']
        assert b58decode(owner) == public_key
        signed_message = compact_json(dict(transaction_body(transaction), id=transaction['id']))
        assert verifies(owner, signature, signed_message)
        for output in transaction['outputs']:
            (output_key,) = output['public_keys']
            encoded_key = base64.urlsafe_b64encode(b58decode(output_key)).rstrip(b'=').decode('ascii')
            assert output['condition']['uri'] == 'cc:4:20:%s:96' % encoded_key
            assert output['condition']['details'] == {'type': 'fulfillment', 'type_id': 4, 'bitmask': 32, 'public_key': output_key, 'signature': None}
            assert isinstance(output['amount'], int) and output['amount'] >= 1


def test_transfers_spend_earlier_outputs_once_and_keep_amounts(data):
    outputs = {}
    spent = set()
    for block in data['bigchain']:
        block_outputs = {}
        for transaction in block['block']['transactions']:
            (transaction_input,) = transaction['inputs']
            if transaction['operation'] == 'TRANSFER':
                link = (transaction_input['fulfills']['txid'], transaction_input['fulfills']['output'])
                assert link in outputs and link not in spent
                spent.add(link)
                source = outputs[link]
                assert transaction_input['owners_before'] == source['public_keys']
                assert transaction['asset']['id'] == source['asset_id']
                assert sum(output['amount'] for output in transaction['outputs']) == source['amount']
                asset_id = transaction['asset']['id']
            else:
                assert transaction_input['fulfills'] is None
                assert transaction_input['owners_before'] == transaction['outputs'][0]['public_keys']
                asset_id = transaction['id']
            for index, output in enumerate(transaction['outputs']):
                block_outputs[(transaction['id'], index)] = dict(output, asset_id=asset_id)
        outputs.update(block_outputs)
    assert spent


def test_votes_reference_existing_blocks_and_chain_them(data):
    block_ids = [block['id'] for block in data['bigchain']]
    voters = data['bigchain'][0]['block']['voters']
    assert len(voters) == VOTERS
    assert all(block['block']['voters'] == voters for block in data['bigchain'])
    assert all(block['block']['node_pubkey'] in voters for block in data['bigchain'])
    for voter in voters:
        votes = [vote['vote'] for vote in data['votes'] if vote['node_pubkey'] == voter]
        assert [vote['voting_for_block'] for vote in votes] == block_ids[1:]
        assert [vote['previous_block'] for vote in votes] == block_ids[:-1]
        assert all(vote['is_block_valid'] is True and vote['invalid_reason'] is None for vote in votes)
        timestamps = [int(vote['timestamp']) for vote in votes]
        assert timestamps == sorted(timestamps)
    block_times = [int(block['block']['timestamp']) for block in data['bigchain']]
    assert block_times == sorted(block_times)


def test_generate_refuses_empty_chains():
    with pytest.raises(ValueError):
        bigchaindb_data.generate(0)
    with pytest.raises(ValueError):
        bigchaindb_data.generate(3, voters=0)


class RecordingConnection:
    """A driver connection that answers from the wire form of each query and keeps every query it was sent."""

    def __init__(self, existing=None):
        self.existing = existing or {}
        self.queries = []
        self.closed = False

    def _start(self, term, **options):
        wire = json.loads(ReQLEncoder().encode(term))
        self.queries.append((type(term).__name__, wire))
        name = type(term).__name__
        if name in ('DbList', 'TableList', 'IndexList'):
            return self.existing.get(name, [])
        if name == 'Insert':
            return {'inserted': len(wire[1][1][1]), 'errors': 0}
        return {}

    def close(self):
        self.closed = True


def test_create_schema_makes_bigchaindbs_tables_and_indexes():
    connection = RecordingConnection()
    bigchaindb_data.create_schema(RethinkDB(), connection, shards=2, replicas=3)
    kinds = [query[0] for query in connection.queries]
    assert kinds.count('DbCreate') == 1 and kinds.count('TableCreate') == 3 and kinds.count('IndexWait') == 3
    assert kinds[-1] == 'Wait'
    tables = {wire[1][1]: wire[2] for kind, wire in connection.queries if kind == 'TableCreate'}
    assert tables == {table: {'shards': 2, 'replicas': 3} for table in ('bigchain', 'backlog', 'votes')}
    indexes = {(wire[1][0][1][1], wire[1][1]): wire[2] if len(wire) > 2 else {} for kind, wire in connection.queries if kind == 'IndexCreate'}
    assert indexes == {
        ('bigchain', 'block_timestamp'): {},
        ('bigchain', 'transaction_id'): {'multi': True},
        ('bigchain', 'asset_id'): {'multi': True},
        ('bigchain', 'outputs'): {'multi': True},
        ('bigchain', 'inputs'): {'multi': True},
        ('backlog', 'assignee__transaction_timestamp'): {},
        ('votes', 'block_and_voter'): {},
    }


def test_create_schema_keeps_what_exists():
    existing = {'DbList': ['bigchain'], 'TableList': ['bigchain', 'backlog', 'votes'], 'IndexList': [
        'block_timestamp', 'transaction_id', 'asset_id', 'outputs', 'inputs', 'assignee__transaction_timestamp', 'block_and_voter']}
    connection = RecordingConnection(existing)
    bigchaindb_data.create_schema(RethinkDB(), connection)
    assert not {'DbCreate', 'TableCreate', 'IndexCreate'} & {query[0] for query in connection.queries}


class QueueWatchingConnection(RecordingConnection):
    """Also notes, at each insert, the most documents the generator held made but not yet read."""

    def __init__(self, tables):
        super().__init__()
        self.tables = tables
        self.largest_queue = 0

    def _start(self, term, **options):
        waiting = max(operator.length_hint(documents) for documents in self.tables.values())
        self.largest_queue = max(self.largest_queue, waiting)
        return super()._start(term, **options)


class FailingConnection(RecordingConnection):
    """Every insert fails as a duplicate primary key does."""

    def _start(self, term, **options):
        return {'inserted': 0, 'errors': 1, 'first_error': 'Duplicate primary key `id`'}


def test_load_inserts_every_document_in_batches_with_little_buffering():
    tables = bigchaindb_data.generate(30, seed=2, backlog=7)
    connection = QueueWatchingConnection(tables)
    counts = bigchaindb_data.load(RethinkDB(), connection, tables, batch_size=10)
    assert counts == {'bigchain': 30, 'backlog': 7, 'votes': 87}
    inserted_ids = {}
    for kind, wire in connection.queries:
        assert kind == 'Insert' and wire[0] == TERM_INSERT and wire[1][1][0] == TERM_MAKE_ARRAY
        assert wire[1][0][1][0][1] == ['bigchain']
        batch = wire[1][1][1]
        assert 1 <= len(batch) <= 10
        inserted_ids.setdefault(wire[1][0][1][1], []).extend(document['id'] for document in batch)
    expected = materialize(bigchaindb_data.generate(30, seed=2, backlog=7))
    assert inserted_ids == {table: [document['id'] for document in documents] for table, documents in expected.items()}
    assert connection.largest_queue <= 10 * VOTERS


def test_load_fails_on_insert_errors():
    with pytest.raises(RuntimeError):
        bigchaindb_data.load(RethinkDB(), FailingConnection(), {'votes': [{'id': 'a'}]})


def test_cli_creates_the_schema_and_loads(tmp_path, monkeypatch, capsys):
    connection = RecordingConnection()
    connect_arguments = {}

    class ConnectingRethinkDB(RethinkDB):
        def connect(self, *args, **kwargs):
            connect_arguments.update(kwargs)
            return connection

    password_file = tmp_path / 'password'
    password_file.write_text('s3cret\n', encoding='utf-8')
    monkeypatch.setattr(bigchaindb_data, 'RethinkDB', ConnectingRethinkDB)
    assert bigchaindb_data.main(['--port', '29015', '--password-file', str(password_file), '--blocks', '5', '--backlog', '2']) == 0
    assert json.loads(capsys.readouterr().out) == {'bigchain': 5, 'backlog': 2, 'votes': 12}
    assert connect_arguments == {'host': 'localhost', 'port': 29015, 'user': 'admin', 'password': 's3cret'}
    assert connection.closed


def test_tampering_changes_only_what_it_names():
    tampering = bigchaindb_data.Tampering(BLOCKS, seed=7)
    tampered = materialize(bigchaindb_data.generate(BLOCKS, seed=7, transactions_per_block=TRANSACTIONS_PER_BLOCK, voters=VOTERS,
                                                    backlog=BACKLOG, tampering=tampering))
    clean = materialize(bigchaindb_data.generate(BLOCKS, seed=7, transactions_per_block=TRANSACTIONS_PER_BLOCK, voters=VOTERS, backlog=BACKLOG))
    changed = tampering.changed
    assert set(changed) == set(bigchaindb_data.Tampering.KINDS)
    clean_blocks = {block['id']: block for block in clean['bigchain']}
    tampered_blocks = {block['id']: block for block in tampered['bigchain']}
    assert set(clean_blocks) - set(tampered_blocks) == {changed['deleted_block']['block']}
    assert set(tampered_blocks) - set(clean_blocks) == {changed['outsider_block']['block']}
    altered_id = changed['altered_transaction']['block']
    assert [block_id for block_id in clean_blocks if block_id in tampered_blocks and clean_blocks[block_id] != tampered_blocks[block_id]] == [altered_id]
    altered = tampered_blocks[altered_id]
    assert altered['block']['transactions'][0]['id'] == changed['altered_transaction']['transaction']
    assert altered['block']['transactions'][0]['outputs'][0]['public_keys'] == [tampering.outsider.public_key]
    assert altered['id'] != sha3(compact_json(altered['block']))
    outsider = tampered_blocks[changed['outsider_block']['block']]
    assert outsider['block']['node_pubkey'] == tampering.outsider.public_key
    assert tampering.outsider.public_key not in outsider['block']['voters']
    assert verifies(outsider['block']['node_pubkey'], b58decode(outsider['signature']), compact_json(outsider['block']))
    clean_votes = {vote['id']: vote for vote in clean['votes']}
    tampered_votes = {vote['id']: vote for vote in tampered['votes']}
    assert set(tampered_votes) - set(clean_votes) == {changed['vote_for_missing_block']['vote']}
    assert [vote_id for vote_id in clean_votes if clean_votes[vote_id] != tampered_votes[vote_id]] == [changed['forged_vote']['vote']]
    forged = tampered_votes[changed['forged_vote']['vote']]
    assert forged['vote']['is_block_valid'] is False
    assert not verifies(forged['node_pubkey'], b58decode(forged['signature']), compact_json(forged['vote']))
    missing_vote = tampered_votes[changed['vote_for_missing_block']['vote']]
    assert missing_vote['vote']['voting_for_block'] == changed['vote_for_missing_block']['block']
    assert changed['vote_for_missing_block']['block'] not in tampered_blocks
    assert verifies(missing_vote['node_pubkey'], b58decode(missing_vote['signature']), compact_json(missing_vote['vote']))
    deleted_votes = [vote['id'] for vote in tampered['votes'] if vote['vote']['voting_for_block'] == changed['deleted_block']['block']]
    assert sorted(deleted_votes) == sorted(changed['deleted_block']['votes']) and len(deleted_votes) == VOTERS
    assert any(vote['vote']['previous_block'] == changed['deleted_block']['block'] for vote in tampered['votes'])
    assert tampered['backlog'] == clean['backlog']


def test_tampering_expects_each_damage_under_the_checks_names():
    tampering = bigchaindb_data.Tampering(10)
    materialize(bigchaindb_data.generate(10, tampering=tampering))
    expected = tampering.expected_failures()
    changed = tampering.changed
    assert expected['vote_for_unknown_block'] == sorted([changed['vote_for_missing_block']['vote']] + changed['deleted_block']['votes'])
    assert expected['block_signer_outside_federation'] == expected['block_without_votes'] == [changed['outsider_block']['block']]
    assert 'block_signer_outside_federation' not in tampering.expected_failures(federation_checked=False)
    with pytest.raises(ValueError):
        bigchaindb_data.Tampering(7)


def test_cli_loads_a_tampered_chain_and_says_what_it_changed(monkeypatch, capsys):
    connection = RecordingConnection()

    class ConnectingRethinkDB(RethinkDB):
        def connect(self, *args, **kwargs):
            return connection

    monkeypatch.setattr(bigchaindb_data, 'RethinkDB', ConnectingRethinkDB)
    assert bigchaindb_data.main(['--port', '29015', '--blocks', '9', '--backlog', '0', '--tampered']) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed['bigchain'] == 9 and printed['votes'] == 8 * 3 + 1
    assert set(printed['tampered']) == set(bigchaindb_data.Tampering.KINDS)
