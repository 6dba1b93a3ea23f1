"""The checks of single blocks, votes and transactions, on sample data and on documents damaged one way each."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.bigchaindb_documents import DocumentChecker, Findings
from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data as sample

BLOCKS = 12


@pytest.fixture(scope='module', name='chain')
def fixture_chain() -> dict:
    return {table: list(documents) for table, documents in sample.generate(BLOCKS, seed=11, transactions_per_block=3).items()}


def federation(chain) -> frozenset:
    return frozenset(chain['bigchain'][0]['block']['voters'])


def check(checker: DocumentChecker, blocks=(), votes=()) -> Findings:
    findings = Findings()
    for block in blocks:
        checker.block(block, findings)
    for vote in votes:
        checker.vote(vote, findings)
    return findings


def resigned_block(block: dict, signer: sample.Signer) -> dict:
    """The block with its id and signature made again over its (changed) content."""
    return sample.signed_block(signer, block['block']['transactions'], int(block['block']['timestamp']), block['block']['voters'])


def node(chain, block) -> sample.Signer:
    """The sample node that signed a block."""
    return next(sample.Signer(11, 'node', index) for index in range(sample.DEFAULT_VOTERS)
                if sample.Signer(11, 'node', index).public_key == block['block']['node_pubkey'])


def test_a_clean_chain_passes_and_is_counted(chain):
    findings = check(DocumentChecker(federation(chain)), chain['bigchain'], chain['votes'])
    assert findings.failures == {}
    assert findings.counts == {'blocks': BLOCKS, 'genesis_blocks': 1, 'chain_blocks': BLOCKS - 1, 'transactions': 1 + 3 * (BLOCKS - 1),
                               'fulfillments': 1 + 3 * (BLOCKS - 1), 'votes': 3 * (BLOCKS - 1)}
    assert [block.id for block in findings.blocks] == [block['id'] for block in chain['bigchain']]
    assert [block.genesis for block in findings.blocks] == [True] + [False] * (BLOCKS - 1)
    assert findings.blocks[1].voters == tuple(chain['bigchain'][1]['block']['voters'])
    assert findings.blocks[1].timestamp == int(chain['bigchain'][1]['block']['timestamp'])
    vote = chain['votes'][0]
    assert tuple(findings.votes[0]) == (vote['id'], vote['vote']['voting_for_block'], vote['vote']['previous_block'], vote['node_pubkey'])
    assert sum(entry['votes'] for entry in findings.signers.values()) == 3 * (BLOCKS - 1)
    assert sum(entry['blocks'] for entry in findings.signers.values()) == BLOCKS


def test_a_transaction_changed_after_signing_fails_its_ids_and_signatures(chain):
    block = copy.deepcopy(chain['bigchain'][3])
    transaction = block['block']['transactions'][1]
    transaction['metadata'] = {'note': 'changed'}
    findings = check(DocumentChecker(None), [block])
    assert findings.failures == {'block_id': [block['id']], 'block_signature': [block['id']],
                                 'transaction_id': [transaction['id']], 'transaction_signature': [transaction['id']]}


def test_a_transaction_with_a_wrong_signature_in_a_signed_block_fails_only_its_signature(chain):
    block = copy.deepcopy(chain['bigchain'][4])
    transaction = block['block']['transactions'][0]
    other = chain['bigchain'][5]['block']['transactions'][0]
    transaction['inputs'][0]['fulfillment'] = other['inputs'][0]['fulfillment']
    resigned = resigned_block(block, node(chain, block))
    findings = check(DocumentChecker(federation(chain)), [resigned])
    assert findings.failures == {'transaction_signature': [transaction['id']]}


def test_block_signature_and_federation(chain):
    block = chain['bigchain'][2]
    outsider = sample.Signer(11, 'outsider', 0)
    by_outsider = resigned_block(block, outsider)
    swapped = dict(block, signature=chain['bigchain'][3]['signature'])
    checker = DocumentChecker(federation(chain))
    assert check(checker, [by_outsider]).failures == {'block_signer_outside_federation': [by_outsider['id']]}
    assert check(DocumentChecker(None), [by_outsider]).failures == {}
    assert check(checker, [swapped]).failures == {'block_signature': [block['id']]}
    assert check(checker, [dict(block, id='0' * 64)]).failures == {'block_id': ['0' * 64]}


def test_malformed_documents_are_named_and_still_linked(chain):
    block = copy.deepcopy(chain['bigchain'][2])
    del block['block']['voters']
    vote = copy.deepcopy(chain['votes'][0])
    del vote['vote']['previous_block']
    transactionless = copy.deepcopy(chain['bigchain'][3])
    transactionless['block']['transactions'][0] = {'id': 'x'}
    findings = check(DocumentChecker(None), [block, ['not a block'], transactionless], [vote, 'not a vote'])
    assert findings.failures['block_malformed'] == [block['id'], 'None']
    assert findings.failures['vote_malformed'] == [vote['id'], 'None']
    assert findings.failures['transaction_malformed'] == ['x']
    assert [linked.id for linked in findings.blocks] == [block['id'], transactionless['id']]
    assert findings.blocks[0].voters is None and findings.votes == []


def test_a_vote_changed_after_signing_fails_its_signature(chain):
    vote = copy.deepcopy(chain['votes'][4])
    vote['vote']['is_block_valid'] = False
    findings = check(DocumentChecker(None), votes=[vote, chain['votes'][5]])
    assert findings.failures == {'vote_signature': [vote['id']]}
    assert findings.counts['votes_declaring_invalid'] == 1


def multi_input_transfer(owners: list[sample.Signer], recipient: sample.Signer, metadata, serialize=sample.serialize) -> dict:
    """A TRANSFER of several outputs signed as Transaction.sign() did: each input over the transaction with
    that input alone, fulfillments null, and that partial transaction's id."""
    inputs = [{'owners_before': [owner.public_key], 'fulfills': {'txid': '%064x' % number, 'output': 0}, 'fulfillment': None}
              for number, owner in enumerate(owners)]
    transaction = {'inputs': inputs, 'outputs': [recipient.output(2)], 'operation': 'TRANSFER', 'metadata': metadata,
                   'asset': {'id': 'a' * 64}, 'version': '0.10'}
    transaction['id'] = sample.hash_data(serialize(transaction))
    for index, owner in enumerate(owners):
        partial = dict(transaction, inputs=[inputs[index]])
        del partial['id']
        partial['id'] = sample.hash_data(serialize(partial))
        inputs[index]['fulfillment'] = owner.fulfillment_uri(serialize(partial))
    return transaction


def test_each_input_signs_the_transaction_with_that_input_alone():
    owners = [sample.Signer(1, 'user', index) for index in range(2)]
    transaction = multi_input_transfer(owners, sample.Signer(1, 'user', 3), {'note': 'merged'})
    findings = Findings()
    DocumentChecker(None).transaction(transaction, findings)
    assert findings.failures == {} and findings.counts == {'transactions': 1, 'fulfillments': 2}
    whole = copy.deepcopy(transaction)
    unsigned = dict(whole, inputs=[dict(item, fulfillment=None) for item in whole['inputs']])
    whole['inputs'][1]['fulfillment'] = owners[1].fulfillment_uri(sample.serialize(unsigned))
    findings = Findings()
    DocumentChecker(None).transaction(whole, findings)
    assert findings.failures == {'transaction_signature': [transaction['id']]}


def test_floats_in_a_transaction_are_hashed_as_rapidjson_wrote_them():
    """BigchainDB's rapidjson wrote 1e-07 as 1e-7 and 1e+16 as 10000000000000000.0: ids and signatures over
    that text verify, those over Python's own text do not."""
    def rapidjson_text(value) -> str:
        return sample.serialize(value).replace('1e-07', '1e-7').replace('1e+16', '10000000000000000.0')

    owners = [sample.Signer(1, 'user', index) for index in range(2)]
    metadata = {'rate': 1e-07, 'cap': 1e16, 'price': 2.5}
    as_bigchaindb_did = multi_input_transfer(owners, owners[0], metadata, rapidjson_text)
    as_python_does = multi_input_transfer(owners, owners[0], metadata)
    findings = Findings()
    DocumentChecker(None).transaction(as_bigchaindb_did, findings)
    DocumentChecker(None).transaction(as_python_does, findings)
    assert findings.failures == {'transaction_id': [as_python_does['id']], 'transaction_signature': [as_python_does['id']]}


def test_unverifiable_fulfillments_are_counted_not_failed(chain):
    transaction = copy.deepcopy(chain['bigchain'][1]['block']['transactions'][0])
    transaction['inputs'][0]['fulfillment'] = 'cf:0:cHJlaW1hZ2U'
    findings = Findings()
    DocumentChecker(None).transaction(transaction, findings)
    assert findings.failures == {}
    assert findings.counts == {'transactions': 1, 'fulfillments': 1, 'fulfillments_unverifiable': 1}


def test_documents_nested_beyond_what_json_can_write_are_malformed(chain):
    deep: list = []
    for dummy in range(100000):
        deep = [deep]
    block = copy.deepcopy(chain['bigchain'][1])
    block['block']['transactions'][0]['metadata'] = {'deep': deep}
    vote = copy.deepcopy(chain['votes'][0])
    vote['vote']['deep'] = deep
    findings = check(DocumentChecker(None), [block], [vote])
    assert findings.failures == {'block_malformed': [block['id']], 'vote_malformed': [vote['id']]}
