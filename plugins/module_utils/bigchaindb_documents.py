# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one BigchainDB 0.9/0.10 block or vote proves by itself, and what it tells about the chain's links.

A block (table `bigchain`) must have the id BigchainDB computed (Block.from_dict()), the signature of the node
named in it (Block.is_signature_valid()), come from a federation node when the federation is known
(Block._validate_block()), and hold transactions whose ids (Transaction.validate_id()) and input fulfillments
(Transaction._input_valid()) are right. A vote (table `votes`) must carry its node's signature
(utils.verify_vote_signature()). What needs the whole chain (the voted and the previous block exist, the voter
is one of the block's voters) is left to the link records each check returns.
"""

from __future__ import annotations

from typing import NamedTuple

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.bigchaindb_signing import (
    FulfillmentChecker,
    UnverifiableFulfillment,
    Verifier,
    hash_data,
    serialize,
)

# Failure kinds a single document shows.
BLOCK_MALFORMED = 'block_malformed'
BLOCK_ID = 'block_id'
BLOCK_SIGNATURE = 'block_signature'
BLOCK_SIGNER_OUTSIDE_FEDERATION = 'block_signer_outside_federation'
TRANSACTION_MALFORMED = 'transaction_malformed'
TRANSACTION_ID = 'transaction_id'
TRANSACTION_SIGNATURE = 'transaction_signature'
VOTE_MALFORMED = 'vote_malformed'
VOTE_SIGNATURE = 'vote_signature'
DOCUMENT_KINDS = (BLOCK_MALFORMED, BLOCK_ID, BLOCK_SIGNATURE, BLOCK_SIGNER_OUTSIDE_FEDERATION,
                  TRANSACTION_MALFORMED, TRANSACTION_ID, TRANSACTION_SIGNATURE, VOTE_MALFORMED, VOTE_SIGNATURE)

GENESIS = 'GENESIS'
# The keys of a transaction as Transaction.to_dict() made them; its signatures were computed over these only.
TRANSACTION_FIELDS = ('inputs', 'outputs', 'operation', 'metadata', 'asset', 'version')
INPUT_FIELDS = {'owners_before', 'fulfills', 'fulfillment'}


class BlockLinks(NamedTuple):
    """What the link checks need of a block: its stored id, its voters, whether it is the genesis block (which
    no node votes on), and its timestamp (seconds, None when not a number)."""

    id: str
    voters: tuple | None
    genesis: bool
    timestamp: int | None


class VoteLinks(NamedTuple):
    """What the link checks need of a vote: its id, the block it votes for, the block it names as previous,
    and its voter."""

    id: str
    block: str
    previous: str
    voter: str


class Findings:
    """What the checks of some documents found: counts by kind, failed ids by failure kind, link records, and
    which keys signed how many blocks and votes."""

    def __init__(self):
        self.counts: dict = {}
        self.failures: dict = {}
        self.blocks: list = []
        self.votes: list = []
        self.signers: dict = {}

    def count(self, kind: str, number: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + number

    def fail(self, kind: str, document_id) -> None:
        self.failures.setdefault(kind, []).append(str(document_id))

    def signed(self, key, what: str) -> None:
        if isinstance(key, str):
            entry = self.signers.setdefault(key, {'blocks': 0, 'votes': 0})
            entry[what] += 1


def _text_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _block_shape_ok(document) -> bool:
    if not isinstance(document, dict) or not isinstance(document.get('id'), str) or not isinstance(document.get('signature'), str):
        return False
    block = document.get('block')
    return (isinstance(block, dict) and isinstance(block.get('node_pubkey'), str) and _text_list(block.get('voters'))
            and isinstance(block.get('timestamp'), str) and isinstance(block.get('transactions'), list) and len(block['transactions']) > 0)


def _transaction_shape_ok(transaction) -> bool:
    if not isinstance(transaction, dict) or not isinstance(transaction.get('id'), str) or any(field not in transaction for field in TRANSACTION_FIELDS):
        return False
    inputs = transaction['inputs']
    return (isinstance(inputs, list) and len(inputs) > 0 and isinstance(transaction['outputs'], list)
            and all(isinstance(item, dict) and 'owners_before' in item and 'fulfills' in item for item in inputs))


def _vote_shape_ok(document) -> bool:
    if not isinstance(document, dict) or not isinstance(document.get('node_pubkey'), str) or not isinstance(document.get('signature'), str):
        return False
    vote = document.get('vote')
    return isinstance(vote, dict) and isinstance(vote.get('voting_for_block'), str) and isinstance(vote.get('previous_block'), str)


def _signed_texts(transaction: dict) -> tuple[str, list]:
    """The id BigchainDB computes for a transaction (Transaction.validate_id(): its stored fields but the id,
    fulfillments set to null) and, for each input, the text that input's fulfillment signs (Transaction.sign():
    the transaction with that input alone, fulfillments null, and the id of that partial transaction).

    A transaction with one input and only BigchainDB's own fields signs its own body and id: both texts are
    spliced from one serialisation, 'id' sorting between 'asset' and the other fields.
    """
    inputs = transaction['inputs']
    if len(inputs) == 1 and len(transaction) == len(TRANSACTION_FIELDS) + 1 and inputs[0].keys() == INPUT_FIELDS:
        rest = dict((field, transaction[field]) for field in TRANSACTION_FIELDS if field != 'asset')
        rest['inputs'] = [dict(inputs[0], fulfillment=None)]
        asset_text, rest_text = serialize(transaction['asset']), serialize(rest)
        computed_id = hash_data('{"asset":%s,%s' % (asset_text, rest_text[1:]))
        return computed_id, ['{"asset":%s,"id":"%s",%s' % (asset_text, computed_id, rest_text[1:])]
    body = dict(transaction)
    del body['id']
    body['inputs'] = [dict(item, fulfillment=None) for item in inputs]
    messages = []
    for signed_input in inputs:
        partial = dict((field, transaction[field]) for field in TRANSACTION_FIELDS)
        partial['inputs'] = [{'owners_before': signed_input['owners_before'], 'fulfills': signed_input['fulfills'], 'fulfillment': None}]
        partial['id'] = hash_data(serialize(partial))
        messages.append(serialize(partial))
    return hash_data(serialize(body)), messages


def _timestamp(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


class DocumentChecker:
    """Checks blocks and votes one at a time into a Findings; federation is a set of base58 keys, or None to
    leave the federation check out."""

    def __init__(self, federation: frozenset | None):
        self._federation = federation
        self._verifier = Verifier()
        self._fulfillments = FulfillmentChecker(self._verifier)

    def block(self, document, findings: Findings) -> None:
        """Check one document of table `bigchain`."""
        findings.count('blocks')
        if not _block_shape_ok(document):
            document_id = document.get('id') if isinstance(document, dict) else None
            findings.fail(BLOCK_MALFORMED, document_id)
            if isinstance(document_id, str):
                findings.blocks.append(BlockLinks(document_id, None, False, None))
            return
        block = document['block']
        try:
            block_text = serialize(block)
        except (TypeError, ValueError, RecursionError):
            findings.fail(BLOCK_MALFORMED, document['id'])
            findings.blocks.append(BlockLinks(document['id'], None, False, None))
            return
        if hash_data(block_text) != document['id']:
            findings.fail(BLOCK_ID, document['id'])
        signer = block['node_pubkey']
        findings.signed(signer, 'blocks')
        if not self._verifier.verify(signer, document['signature'], block_text.encode('utf-8')):
            findings.fail(BLOCK_SIGNATURE, document['id'])
        if self._federation is not None and signer not in self._federation:
            findings.fail(BLOCK_SIGNER_OUTSIDE_FEDERATION, document['id'])
        transactions = block['transactions']
        genesis = isinstance(transactions[0], dict) and transactions[0].get('operation') == GENESIS
        findings.count('genesis_blocks' if genesis else 'chain_blocks')
        for transaction in transactions:
            self.transaction(transaction, findings)
        findings.blocks.append(BlockLinks(document['id'], tuple(block['voters']), genesis, _timestamp(block['timestamp'])))

    def transaction(self, transaction, findings: Findings) -> None:
        """Check a transaction's id and the fulfillment of each of its inputs."""
        findings.count('transactions')
        if not _transaction_shape_ok(transaction):
            findings.fail(TRANSACTION_MALFORMED, transaction.get('id') if isinstance(transaction, dict) else None)
            return
        try:
            computed_id, messages = _signed_texts(transaction)
        except (TypeError, ValueError, RecursionError):
            findings.fail(TRANSACTION_MALFORMED, transaction['id'])
            return
        if computed_id != transaction['id']:
            findings.fail(TRANSACTION_ID, transaction['id'])
        signed = True
        for signed_input, message in zip(transaction['inputs'], messages):
            findings.count('fulfillments')
            try:
                signed = self._fulfillments.valid(signed_input.get('fulfillment'), message.encode('utf-8')) and signed
            except UnverifiableFulfillment:
                findings.count('fulfillments_unverifiable')
        if not signed:
            findings.fail(TRANSACTION_SIGNATURE, transaction['id'])

    def vote(self, document, findings: Findings) -> None:
        """Check one document of table `votes`."""
        findings.count('votes')
        document_id = str(document.get('id')) if isinstance(document, dict) else None
        if not _vote_shape_ok(document):
            findings.fail(VOTE_MALFORMED, document_id)
            return
        vote = document['vote']
        findings.signed(document['node_pubkey'], 'votes')
        try:
            vote_text = serialize(vote)
        except (TypeError, ValueError, RecursionError):
            findings.fail(VOTE_MALFORMED, document_id)
            return
        if not self._verifier.verify(document['node_pubkey'], document['signature'], vote_text.encode('utf-8')):
            findings.fail(VOTE_SIGNATURE, document_id)
        if vote.get('is_block_valid') is not True:
            findings.count('votes_declaring_invalid')
        findings.votes.append(VoteLinks(document_id, vote['voting_for_block'], vote['previous_block'], document['node_pubkey']))
