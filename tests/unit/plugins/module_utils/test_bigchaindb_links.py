"""The link checks over the whole chain, on hand-made link records."""

from __future__ import annotations

import os

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.bigchaindb_documents import BlockLinks, VoteLinks
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.bigchaindb_links import LinkLedger, block_key, smallest

VOTERS = ('key-a', 'key-b')


def block_id(number: int) -> str:
    return '%064x' % number


def chain(blocks: int) -> tuple[list, list]:
    """A genesis block and blocks 1.. with a vote of each voter, each naming the block before as previous."""
    records = [BlockLinks(block_id(0), VOTERS, True, 100)]
    votes = []
    for number in range(1, blocks):
        records.append(BlockLinks(block_id(number), VOTERS, False, 100 + number))
        votes += [VoteLinks('vote-%d-%s' % (number, voter), block_id(number), block_id(number - 1), voter) for voter in VOTERS]
    return records, votes


@pytest.fixture(name='ledger')
def fixture_ledger(tmp_path):
    ledger = LinkLedger(str(tmp_path))
    yield ledger
    ledger.close()


def found(ledger, limit=10, recent=0) -> tuple[dict, int]:
    links, awaiting = ledger.findings(limit, recent)
    return dict((kind, result) for kind, result in links.items() if result[0]), awaiting


def test_a_linked_chain_in_any_order_has_no_link_failures(ledger):
    blocks, votes = chain(6)
    ledger.add([], votes[4:])
    ledger.add(blocks[::-1], [])
    ledger.add([], votes[:4])
    assert found(ledger) == ({}, 0)


def test_each_kind_of_broken_link_is_found_and_named(ledger):
    blocks, votes = chain(6)
    deleted = blocks.pop(3)
    votes.append(VoteLinks('vote-for-nothing', block_id(99), block_id(5), 'key-a'))
    votes.append(VoteLinks('vote-by-stranger', block_id(5), block_id(4), 'key-z'))
    votes.append(VoteLinks('vote-again', block_id(2), block_id(1), 'key-b'))
    blocks.append(BlockLinks(block_id(7), VOTERS, False, 107))
    ledger.add(blocks, votes)
    assert found(ledger) == ({
        'vote_for_unknown_block': (3, ['vote-3-key-a', 'vote-3-key-b', 'vote-for-nothing']),
        'block_missing': (1, [deleted.id]),
        'vote_voter_not_listed': (1, ['vote-by-stranger']),
        'vote_duplicate': (2, ['vote-2-key-b', 'vote-again']),
        'block_without_votes': (1, [block_id(7)]),
    }, 0)


def test_recent_blocks_without_votes_may_await_them(ledger):
    blocks, votes = chain(3)
    blocks += [BlockLinks(block_id(10), VOTERS, False, 139), BlockLinks(block_id(11), VOTERS, False, 200),
               BlockLinks('not-hex', VOTERS, False, None)]
    ledger.add(blocks, votes)
    assert found(ledger, recent=60) == ({'block_without_votes': (2, [block_id(10), 'not-hex'])}, 1)


def test_every_unvoted_block_fails_without_a_grace(ledger):
    blocks, votes = chain(2)
    ledger.add(blocks + [BlockLinks(block_id(9), VOTERS, False, 500)], votes)
    assert found(ledger) == ({'block_without_votes': (1, [block_id(9)])}, 0)


def test_ids_are_kept_compact_and_counted_past_the_limit(ledger):
    assert block_key(block_id(1)) == bytes.fromhex(block_id(1))
    assert block_key('ABC') == 'ABC' and block_key(block_id(0xab).upper()) == block_id(0xab).upper()
    votes = [VoteLinks('vote-%02d' % number, block_id(1000 + number), block_id(0), 'key-a') for number in range(30, 0, -1)]
    ledger.add([BlockLinks(block_id(0), VOTERS, True, 1)], votes)
    links, dummy = ledger.findings(3, 0)
    assert links['vote_for_unknown_block'] == (30, ['vote-01', 'vote-02', 'vote-03'])
    assert smallest(iter([('b',), ('a',)]), 0) == (2, [])


def test_a_block_seen_twice_is_kept_once_and_malformed_blocks_still_count_as_there(ledger):
    blocks, votes = chain(3)
    ledger.add(blocks + [blocks[1], BlockLinks(block_id(5), None, False, None)],
               votes + [VoteLinks('vote-5', block_id(5), block_id(2), 'key-a')])
    assert found(ledger) == ({}, 0)


def test_close_removes_the_scratch_file(tmp_path):
    ledger = LinkLedger(str(tmp_path))
    ledger.add(*chain(4))
    ledger.findings(10, 0)
    assert os.path.exists(ledger.path)
    ledger.close()
    assert os.listdir(tmp_path) == []
