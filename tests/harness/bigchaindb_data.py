# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deterministic sample data shaped like BigchainDB 0.9/0.10, the releases that stored it in RethinkDB.

The demo, the tests and the benchmarks need a realistic `bigchain` database whose bytes are the same on
every run: blocks, votes and backlog transactions as BigchainDB v0.10 wrote them (bigchaindb/models.py,
common/transaction.py, core.py, backend/rethinkdb/schema.py; cryptoconditions 0.5 for the Ed25519
conditions and fulfillments), with real sha3-256 ids and real Ed25519 signatures.

Run `python -m ansible_collections.bigchaindb.rethinkdb.tests.harness.bigchaindb_data --port 28015 --blocks 1000` to create the schema and load it.
"""

from __future__ import annotations

import argparse
import base64
import collections
import copy
import hashlib
import itertools
import json
import operator
import random
import sys
import uuid
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import base58
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rethinkdb import RethinkDB

DB = 'bigchain'
# In the order `bigchaindb init` created them.
TABLES = ('bigchain', 'backlog', 'votes')

# Transaction.VERSION of BigchainDB 0.10: its major.minor version.
TRANSACTION_VERSION = '0.10'
GENESIS_MESSAGE = 'Hello World from the BigchainDB'
# 2017-04-24T02:13:20Z, when BigchainDB 0.10 was current.
FIRST_BLOCK_TIME = 1493000000

# BigchainDB 0.10's block pipeline closed a block at 1000 transactions or after a second without new ones,
# so a lightly used federation wrote small blocks; small blocks also keep generation fast (signing dominates).
DEFAULT_TRANSACTIONS_PER_BLOCK = 2
DEFAULT_VOTERS = 3
# Without an explicit backlog size, one backlog transaction per this many blocks.
BLOCKS_PER_BACKLOG_TRANSACTION = 10
USERS = 8
# Share of transactions that spend an earlier output rather than create an asset.
TRANSFER_SHARE = 0.4

# Secondary indexes of bigchaindb/backend/rethinkdb/schema.py: table -> (name, function, index_create options).
INDEXES = {
    'bigchain': (
        ('block_timestamp', lambda block: block['block']['timestamp'], {}),
        ('transaction_id', lambda block: block['block']['transactions']['id'], {'multi': True}),
        ('asset_id', lambda block: block['block']['transactions']['asset']['id'], {'multi': True}),
        ('outputs', lambda block: block['block']['transactions']
            .concat_map(lambda transaction: transaction['outputs']['public_keys'])
            .reduce(lambda left, right: left + right), {'multi': True}),
        ('inputs', lambda block: block['block']['transactions']
            .concat_map(lambda transaction: transaction['inputs']['fulfills'])
            .with_fields('txid', 'output')
            .map(lambda fulfills: [fulfills['txid'], fulfills['output']]), {'multi': True}),
    ),
    'backlog': (
        ('assignee__transaction_timestamp', lambda transaction: [transaction['assignee'], transaction['assignment_timestamp']], {}),
    ),
    'votes': (
        ('block_and_voter', lambda vote: [vote['vote']['voting_for_block'], vote['node_pubkey']], {}),
    ),
}

# cryptoconditions 0.5, Ed25519: type id 4, feature bitmask 0x20, fulfillment payload 32 + 64 bytes.
_ED25519_TYPE_ID = 4
_ED25519_BITMASK = 0x20
_ED25519_FULFILLMENT_LENGTH = 96

_ASSET_KINDS = ('bicycle', 'painting', 'shipping container', 'diamond', 'energy certificate', 'vintage wine')
_PLACES = ('Berlin', 'Zürich', 'São Paulo', '東京', 'Kraków', 'Toronto')
_NOTES = ('registered', 'inspected', 'insured', 'appraised', 'sold at auction')


def b58encode(raw: bytes) -> str:
    """Base58 (Bitcoin alphabet), the text form of BigchainDB's keys and signatures."""
    return base58.b58encode(raw).decode('ascii')


def serialize(value) -> str:
    """BigchainDB's serialize(): compact, key-sorted JSON keeping non-ASCII text, the input of every id and signature."""
    return json.dumps(value, sort_keys=True, separators=(',', ':'), ensure_ascii=False)


def hash_data(text: str) -> str:
    """BigchainDB's hash_data(): hex sha3-256 of the UTF-8 text."""
    return hashlib.sha3_256(text.encode('utf-8')).hexdigest()


def _base64url(raw: bytes) -> str:
    """Unpadded base64url, as crypto-condition URIs carry binary."""
    return base64.urlsafe_b64encode(raw).rstrip(b'=').decode('ascii')


class Signer:
    """An Ed25519 key pair derived from the seed, so that the same seed signs the same bytes."""

    def __init__(self, seed: int, role: str, index: int):
        secret = hashlib.sha256(('bigchaindb-sample:%d:%s:%d' % (seed, role, index)).encode('ascii')).digest()
        self._private_key = Ed25519PrivateKey.from_private_bytes(secret)
        self.public_bytes = self._private_key.public_key().public_bytes_raw()
        self.public_key = b58encode(self.public_bytes)
        self.condition_uri = 'cc:%x:%x:%s:%d' % (_ED25519_TYPE_ID, _ED25519_BITMASK, _base64url(self.public_bytes), _ED25519_FULFILLMENT_LENGTH)

    def sign(self, message: str) -> bytes:
        """The raw 64-byte signature of the UTF-8 message."""
        return self._private_key.sign(message.encode('utf-8'))

    def fulfillment_uri(self, message: str) -> str:
        """A signed Ed25519 fulfillment as cryptoconditions 0.5 serialized it: cf:4:<public key + signature>."""
        return 'cf:%x:%s' % (_ED25519_TYPE_ID, _base64url(self.public_bytes + self.sign(message)))

    def output(self, amount: int) -> dict:
        """An output locking `amount` to this key with an unsigned Ed25519 condition."""
        return {
            'public_keys': [self.public_key],
            'condition': {
                'details': {
                    'type': 'fulfillment',
                    'type_id': _ED25519_TYPE_ID,
                    'bitmask': _ED25519_BITMASK,
                    'public_key': self.public_key,
                    'signature': None,
                },
                'uri': self.condition_uri,
            },
            'amount': amount,
        }


class Unspent(NamedTuple):
    """An output not spent yet, with what a TRANSFER of it needs."""

    txid: str
    output: int
    owner: Signer
    amount: int
    asset_id: str


def signed_transaction(operation: str, asset: dict, owner: Signer, fulfills: dict | None,
                       recipients: list[tuple[Signer, int]], metadata: dict | None) -> dict:
    """A one-input transaction: id over the body without fulfillments, then the input signed over the body with its id."""
    transaction = {
        'inputs': [{'owners_before': [owner.public_key], 'fulfills': fulfills, 'fulfillment': None}],
        'outputs': [recipient.output(amount) for recipient, amount in recipients],
        'operation': operation,
        'metadata': metadata,
        'asset': asset,
        'version': TRANSACTION_VERSION,
    }
    transaction['id'] = hash_data(serialize(transaction))
    transaction['inputs'][0]['fulfillment'] = owner.fulfillment_uri(serialize(transaction))
    return transaction


def unspent_outputs(transaction: dict, recipients: list[tuple[Signer, int]]) -> list[Unspent]:
    """The outputs a later TRANSFER may spend."""
    asset_id = transaction['asset'].get('id', transaction['id'])
    return [Unspent(transaction['id'], index, recipient, amount, asset_id) for index, (recipient, amount) in enumerate(recipients)]


def genesis_transaction(node: Signer) -> dict:
    """The transaction of Bigchain.prepare_genesis_block(): a CREATE renamed GENESIS before signing."""
    return signed_transaction('GENESIS', {'data': None}, node, None, [(node, 1)], {'message': GENESIS_MESSAGE})


def create_transaction(rng: random.Random, owner: Signer, serial_number: str, issued: int) -> tuple[dict, list[Unspent]]:
    """A CREATE of a new asset, owned by its creator, sometimes divisible."""
    amount = 1 if rng.random() < 0.5 else rng.randint(2, 1000)
    asset = {'data': {'kind': rng.choice(_ASSET_KINDS), 'serial_number': serial_number, 'origin': rng.choice(_PLACES), 'issued': issued}}
    metadata = None if rng.random() < 0.2 else {'note': rng.choice(_NOTES), 'serial_number': serial_number}
    recipients = [(owner, amount)]
    transaction = signed_transaction('CREATE', asset, owner, None, recipients, metadata)
    return transaction, unspent_outputs(transaction, recipients)


def transfer_transaction(rng: random.Random, spent: Unspent, users: list[Signer]) -> tuple[dict, list[Unspent]]:
    """A TRANSFER of one output to another user, or split between two when the amount allows."""
    others = [user for user in users if user is not spent.owner]
    if spent.amount > 1 and rng.random() < 0.3:
        kept = rng.randint(1, spent.amount - 1)
        recipients = [(spent.owner, kept), (rng.choice(others), spent.amount - kept)]
    else:
        recipients = [(rng.choice(others), spent.amount)]
    metadata = None if rng.random() < 0.5 else {'note': rng.choice(_NOTES)}
    fulfills = {'txid': spent.txid, 'output': spent.output}
    transaction = signed_transaction('TRANSFER', {'id': spent.asset_id}, spent.owner, fulfills, recipients, metadata)
    return transaction, unspent_outputs(transaction, recipients)


def signed_block(node: Signer, transactions: list[dict], timestamp: int, voters: list[str]) -> dict:
    """A block as Block.to_dict() after sign(): id and signature both over the serialized block body."""
    body = {'timestamp': str(timestamp), 'transactions': transactions, 'node_pubkey': node.public_key, 'voters': voters}
    body_text = serialize(body)
    return {'id': hash_data(body_text), 'block': body, 'signature': b58encode(node.sign(body_text))}


def signed_vote(seed: int, node: Signer, block_id: str, previous_block_id: str, timestamp: int) -> dict:
    """A vote as Bigchain.vote() made it, plus the id RethinkDB would have generated, derived here for reproducibility."""
    body = {
        'voting_for_block': block_id,
        'previous_block': previous_block_id,
        'is_block_valid': True,
        'invalid_reason': None,
        'timestamp': str(timestamp),
    }
    vote_id = uuid.UUID(bytes=hashlib.sha256(('%d:%s:%s' % (seed, block_id, node.public_key)).encode('ascii')).digest()[:16], version=4)
    return {'id': str(vote_id), 'node_pubkey': node.public_key, 'signature': b58encode(node.sign(serialize(body))), 'vote': body}


class Tampering:
    """Five ways to damage a chain after BigchainDB wrote it, each once, at heights spread over the chain; once
    the documents are made, `changed` names what each one changed.

    - altered_transaction: the first output of a block's first transaction gets another owner after the block was
      signed; the block's and the transaction's ids and signatures are left as they were.
    - forged_vote: the first node's vote for a block says the block is invalid, its signature left as it was.
    - vote_for_missing_block: the first node signs a vote, validly, for a block id that is nowhere.
    - outsider_block: a block signed, validly, by a key outside the federation; nobody votes on it.
    - deleted_block: a block in the middle of the chain is gone; its votes, and the next votes that name it as
      their previous block, stay.

    The blocks and votes not named are those of the same seed untampered.
    """

    KINDS = ('altered_transaction', 'forged_vote', 'vote_for_missing_block', 'outsider_block', 'deleted_block')
    MINIMUM_BLOCKS = 8

    def __init__(self, blocks: int, seed: int = 0):
        if blocks < self.MINIMUM_BLOCKS:
            raise ValueError('a tampered chain needs at least %d blocks' % self.MINIMUM_BLOCKS)
        self.heights = dict((kind, blocks * (index + 1) // 6) for index, kind in enumerate(self.KINDS))
        self.outsider = Signer(seed, 'outsider', 0)
        self.rng = random.Random('bigchaindb-sample:%d:tampering' % seed)
        self.seed = seed
        self.changed: dict[str, dict] = {}

    def at(self, kind: str, height: int) -> bool:
        return self.heights[kind] == height

    def altered(self, block: dict) -> dict:
        """The block with its first transaction's first output given to the outsider after signing."""
        altered = copy.deepcopy(block)
        transaction = altered['block']['transactions'][0]
        transaction['outputs'][0] = self.outsider.output(transaction['outputs'][0]['amount'])
        self.changed['altered_transaction'] = {'block': block['id'], 'transaction': transaction['id']}
        return altered

    def forged(self, vote: dict) -> dict:
        """The vote turned into one that says its block is invalid, without signing it again."""
        forged = copy.deepcopy(vote)
        forged['vote']['is_block_valid'] = False
        self.changed['forged_vote'] = {'vote': vote['id']}
        return forged

    def vote_for_missing_block(self, node: Signer, previous_block_id: str, timestamp: int) -> dict:
        missing_block_id = hash_data('missing block of seed %d' % self.seed)
        vote = signed_vote(self.seed, node, missing_block_id, previous_block_id, timestamp)
        self.changed['vote_for_missing_block'] = {'vote': vote['id'], 'block': missing_block_id}
        return vote

    def outsider_block(self, users: list[Signer], voters: list[str], timestamp: int) -> dict:
        transaction = create_transaction(self.rng, self.rng.choice(users), 'OUTSIDER-%d' % self.seed, timestamp)[0]
        block = signed_block(self.outsider, [transaction], timestamp, voters)
        self.changed['outsider_block'] = {'block': block['id'], 'signer': self.outsider.public_key}
        return block

    def deleted(self, block: dict, votes: list[dict]) -> None:
        self.changed['deleted_block'] = {'block': block['id'], 'votes': [vote['id'] for vote in votes]}

    def expected_failures(self, federation_checked: bool = True) -> dict[str, list[str]]:
        """What a chain check must find, by its failure kinds: the ids it must name, sorted."""
        changed = self.changed
        expected = {
            'block_id': [changed['altered_transaction']['block']],
            'block_signature': [changed['altered_transaction']['block']],
            'transaction_id': [changed['altered_transaction']['transaction']],
            'transaction_signature': [changed['altered_transaction']['transaction']],
            'vote_signature': [changed['forged_vote']['vote']],
            'vote_for_unknown_block': [changed['vote_for_missing_block']['vote']] + changed['deleted_block']['votes'],
            'block_missing': [changed['deleted_block']['block']],
            'block_without_votes': [changed['outsider_block']['block']],
        }
        if federation_checked:
            expected['block_signer_outside_federation'] = [changed['outsider_block']['block']]
        return dict((kind, sorted(ids)) for kind, ids in expected.items())


def chain_documents(seed: int, blocks: int, transactions_per_block: int, nodes: list[Signer], users: list[Signer],
                    tampering: Tampering | None = None) -> Iterator[tuple[str, dict]]:
    """(table, document) pairs of a valid chain: the genesis block, then each block followed by every node's vote.

    TRANSFERs only spend outputs of earlier blocks, each output once; every node votes each block valid,
    naming the block before it (the genesis block first) as previous_block, as the vote pipeline did.
    With a tampering, the chain is damaged as it says.
    """
    rng = random.Random('bigchaindb-sample:%d:chain' % seed)
    voters = [node.public_key for node in nodes]
    genesis = signed_block(nodes[0], [genesis_transaction(nodes[0])], FIRST_BLOCK_TIME, voters)
    yield 'bigchain', genesis
    previous_block_id = genesis['id']
    timestamp = FIRST_BLOCK_TIME
    unspent: list[Unspent] = []
    created_count = 0
    for height in range(1, blocks):
        timestamp += rng.randint(1, 3)
        transactions = []
        new_outputs: list[Unspent] = []
        for _slot in range(transactions_per_block):
            if unspent and rng.random() < TRANSFER_SHARE:
                index = rng.randrange(len(unspent))
                unspent[index], unspent[-1] = unspent[-1], unspent[index]
                transaction, outputs = transfer_transaction(rng, unspent.pop(), users)
            else:
                created_count += 1
                transaction, outputs = create_transaction(rng, rng.choice(users), 'SN-%08d' % created_count, timestamp)
            transactions.append(transaction)
            new_outputs.extend(outputs)
        new_block = signed_block(nodes[height % len(nodes)], transactions, timestamp, voters)
        votes = [signed_vote(seed, node, new_block['id'], previous_block_id, timestamp + rng.randint(0, 1)) for node in nodes]
        yield from _tampered(tampering, height, new_block, votes, nodes, users)
        unspent.extend(new_outputs)
        previous_block_id = new_block['id']


def _tampered(tampering: Tampering | None, height: int, block: dict, votes: list[dict], nodes: list[Signer],
              users: list[Signer]) -> Iterator[tuple[str, dict]]:
    """The (table, document) pairs of one block and its votes, damaged where the tampering says."""
    if tampering is None:
        yield 'bigchain', block
        for vote in votes:
            yield 'votes', vote
        return
    if tampering.at('deleted_block', height):
        tampering.deleted(block, votes)
    else:
        yield 'bigchain', tampering.altered(block) if tampering.at('altered_transaction', height) else block
    for vote in votes:
        yield 'votes', tampering.forged(vote) if tampering.at('forged_vote', height) and vote is votes[0] else vote
    timestamp = int(block['block']['timestamp'])
    if tampering.at('vote_for_missing_block', height):
        yield 'votes', tampering.vote_for_missing_block(nodes[0], block['id'], timestamp + 1)
    if tampering.at('outsider_block', height):
        yield 'bigchain', tampering.outsider_block(users, block['block']['voters'], timestamp)


def backlog_transactions(seed: int, count: int, after: int, nodes: list[Signer], users: list[Signer]) -> Iterator[dict]:
    """CREATEs waiting in the backlog, each assigned to a node at a time after `after`, as write_transaction() did."""
    rng = random.Random('bigchaindb-sample:%d:backlog' % seed)
    for number in range(1, count + 1):
        assigned_at = after + number * 0.013 + rng.random() * 0.01
        transaction = create_transaction(rng, rng.choice(users), 'BL-%08d' % number, int(assigned_at))[0]
        transaction['assignee'] = rng.choice(nodes).public_key
        transaction['assignment_timestamp'] = round(assigned_at, 6)
        yield transaction


class _SharedSource:
    """Deals the (table, document) pairs of one generator out to per-table queues, filled only when a table asks."""

    def __init__(self, pairs: Iterator[tuple[str, dict]], tables: Iterable[str]):
        self._pairs = pairs
        self.queues: dict[str, collections.deque] = {table: collections.deque() for table in tables}

    def next_document(self, table: str) -> dict:
        """The table's next document; StopIteration once the generator is done and the queue empty."""
        queue = self.queues[table]
        while not queue:
            pair_table, document = next(self._pairs)
            self.queues[pair_table].append(document)
        return queue.popleft()


class TableStream:
    """One table's documents, lazily; its length hint is how many are already waiting, which load() drains first."""

    def __init__(self, source: _SharedSource, table: str):
        self._source = source
        self._table = table

    def __iter__(self) -> TableStream:
        return self

    def __next__(self) -> dict:
        return self._source.next_document(self._table)

    def __length_hint__(self) -> int:
        return len(self._source.queues[self._table])


def generate(blocks: int, seed: int = 0, transactions_per_block: int = DEFAULT_TRANSACTIONS_PER_BLOCK,
             voters: int = DEFAULT_VOTERS, backlog: int | None = None, tampering: Tampering | None = None) -> dict[str, Iterator[dict]]:
    """Table name -> iterator of its documents, the same bytes for the same arguments.

    `blocks` counts the genesis block; votes are (blocks - 1) * voters; backlog defaults to
    blocks // BLOCKS_PER_BACKLOG_TRANSACTION. Documents are made as they are read: reading one table
    far ahead of another keeps the other's documents in memory. A tampering (made for the same blocks and
    seed) damages the chain; it leaves as many blocks and adds one vote.
    """
    if blocks < 1 or voters < 1 or transactions_per_block < 1 or (backlog is not None and backlog < 0):
        raise ValueError('blocks, voters and transactions_per_block must be at least 1, backlog at least 0')
    if backlog is None:
        backlog = blocks // BLOCKS_PER_BACKLOG_TRANSACTION
    nodes = [Signer(seed, 'node', index) for index in range(voters)]
    users = [Signer(seed, 'user', index) for index in range(USERS)]
    source = _SharedSource(chain_documents(seed, blocks, transactions_per_block, nodes, users, tampering), ('bigchain', 'votes'))
    # Later than any block: blocks are at most 3 s apart.
    backlog_after = FIRST_BLOCK_TIME + 3 * blocks + 1
    return {
        'bigchain': TableStream(source, 'bigchain'),
        'backlog': backlog_transactions(seed, backlog, backlog_after, nodes, users),
        'votes': TableStream(source, 'votes'),
    }


def document_count(blocks: int, voters: int = DEFAULT_VOTERS, backlog: int | None = None) -> int:
    """How many documents generate() makes with these arguments."""
    if backlog is None:
        backlog = blocks // BLOCKS_PER_BACKLOG_TRANSACTION
    return blocks + (blocks - 1) * voters + backlog


def blocks_for_documents(documents: int, voters: int = DEFAULT_VOTERS) -> int:
    """The `blocks` that makes about `documents` documents in all, with the default backlog."""
    documents_per_block = 1 + voters + 1 / BLOCKS_PER_BACKLOG_TRANSACTION
    return max(1, round((documents + voters) / documents_per_block))


def blocks_for_bytes(size_bytes: int, seed: int = 0, transactions_per_block: int = DEFAULT_TRANSACTIONS_PER_BLOCK,
                     voters: int = DEFAULT_VOTERS, sample_blocks: int = 50) -> int:
    """The `blocks` that makes about `size_bytes` of compact JSON in all, measured on a small sample."""
    sample = generate(sample_blocks, seed, transactions_per_block, voters)
    sample_bytes = sum(len(serialize(document).encode('utf-8')) for documents in sample.values() for document in documents)
    return max(1, round(size_bytes * sample_blocks / sample_bytes))


def create_schema(r, connection, db: str = DB, shards: int = 1, replicas: int = 1) -> None:
    """What `bigchaindb init` made: the database, its three tables and their secondary indexes, ready to use.

    Unlike BigchainDB, whatever already exists is kept, so that loading again into a cluster works.
    """
    if db not in r.db_list().run(connection):
        r.db_create(db).run(connection)
    existing_tables = r.db(db).table_list().run(connection)
    for table in TABLES:
        if table not in existing_tables:
            r.db(db).table_create(table, shards=shards, replicas=replicas).run(connection)
        existing_indexes = r.db(db).table(table).index_list().run(connection)
        for name, function, options in INDEXES[table]:
            if name not in existing_indexes:
                r.db(db).table(table).index_create(name, function, **options).run(connection)
        r.db(db).table(table).index_wait().run(connection)
    r.db(db).wait(wait_for='all_replicas_ready').run(connection)


def load(r, connection, documents: dict[str, Iterable[dict]], db: str = DB, batch_size: int = 200) -> dict[str, int]:
    """Insert every table's documents in batches; returns the number inserted per table.

    The next batch comes from the table with the most documents already made (generate()'s queues),
    so memory stays bounded while blocks and their votes are made together.
    """
    remaining = {table: iter(table_documents) for table, table_documents in documents.items()}
    inserted = dict.fromkeys(remaining, 0)
    while remaining:
        table = max(remaining, key=lambda name: operator.length_hint(remaining[name]))
        batch = list(itertools.islice(remaining[table], batch_size))
        if not batch:
            del remaining[table]
            continue
        result = r.db(db).table(table).insert(batch).run(connection)
        if result['errors']:
            raise RuntimeError('Inserting into %s.%s failed for %d documents: %s' % (db, table, result['errors'], result.get('first_error')))
        inserted[table] += result['inserted']
    return inserted


def read_password(path: str | None) -> str:
    """The password in the file, without one trailing newline, as the rethinkdb tools read --password-file."""
    if not path:
        return ''
    with open(path, encoding='utf-8') as password_file:
        password = password_file.read()
    return password[:-1] if password.endswith('\n') else password


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line: where to connect, and generate()'s arguments."""
    parser = argparse.ArgumentParser(prog='python -m ansible_collections.bigchaindb.rethinkdb.tests.harness.bigchaindb_data',
                                     description='Create BigchainDB 0.10 tables in RethinkDB and load deterministic sample data.')
    parser.add_argument('--host', default='localhost')
    parser.add_argument('--port', type=int, required=True, help='driver port')
    parser.add_argument('--user', default='admin')
    parser.add_argument('--password-file', help='file holding the password (one trailing newline is ignored)')
    parser.add_argument('--db', default=DB)
    parser.add_argument('--blocks', type=int, required=True, help='blocks, the genesis block included')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--transactions-per-block', type=int, default=DEFAULT_TRANSACTIONS_PER_BLOCK)
    parser.add_argument('--voters', type=int, default=DEFAULT_VOTERS)
    parser.add_argument('--backlog', type=int, help='backlog transactions (default: blocks / %d)' % BLOCKS_PER_BACKLOG_TRANSACTION)
    parser.add_argument('--shards', type=int, default=1)
    parser.add_argument('--replicas', type=int, default=1)
    parser.add_argument('--batch-size', type=int, default=200)
    parser.add_argument('--tampered', action='store_true',
                        help='damage the chain in the five ways of Tampering and print what was changed under "tampered"')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Create the schema, load the data, print the inserted counts (and what was tampered with) as JSON."""
    arguments = parse_arguments(argv)
    tampering = Tampering(arguments.blocks, arguments.seed) if arguments.tampered else None
    r = RethinkDB()
    connection = r.connect(host=arguments.host, port=arguments.port, user=arguments.user, password=read_password(arguments.password_file))
    try:
        create_schema(r, connection, arguments.db, arguments.shards, arguments.replicas)
        documents = generate(arguments.blocks, arguments.seed, arguments.transactions_per_block, arguments.voters, arguments.backlog, tampering)
        inserted = load(r, connection, documents, arguments.db, arguments.batch_size)
    finally:
        connection.close()
    printed = dict(inserted, tampered=tampering.changed) if tampering else inserted
    print(json.dumps(printed, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
