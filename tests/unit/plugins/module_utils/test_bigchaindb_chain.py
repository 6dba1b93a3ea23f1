"""The whole chain check over dump archives: worker processes, merged findings, link checks, bad archives."""

from __future__ import annotations

import json

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import bigchaindb_chain
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.bigchaindb_chain import (
    FAILURE_KINDS,
    ChainCheckError,
    Options,
    check_archive,
    key_ranges,
    summary_lines,
)
from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data as sample
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.module_utils.test_dump_archive import TOP, info_json, table_members, write_archive

BLOCKS = 30


def generated(blocks: int = BLOCKS, tampering: sample.Tampering | None = None) -> dict:
    tables = sample.generate(blocks, seed=5, tampering=tampering)
    return {'bigchain.%s' % table: list(documents) for table, documents in tables.items()}


def federation_of(tables: dict) -> frozenset:
    return frozenset(tables['bigchain.bigchain'][0]['block']['voters'])


def failures(outcome: dict) -> dict:
    return dict((kind, entry['ids']) for kind, entry in outcome['failures'].items() if entry['count'])


@pytest.fixture(scope='module', name='clean')
def fixture_clean(tmp_path_factory) -> tuple:
    tables = generated()
    return tables, write_archive(tmp_path_factory.mktemp('clean') / 'dump.tar.gz', table_members(tables))


def test_a_clean_archive_passes_with_every_document_counted(clean, tmp_path):
    tables, path = clean
    outcome = check_archive(path, Options(federation=federation_of(tables), workers=2, temp_dir=str(tmp_path)))
    assert outcome['ok'] is True and outcome['failure_count'] == 0
    assert sorted(outcome['failures']) == sorted(FAILURE_KINDS)
    assert all(entry == {'count': 0, 'ids': []} for entry in outcome['failures'].values())
    assert outcome['counts'] == {'documents': BLOCKS + 3 * (BLOCKS - 1), 'blocks': BLOCKS, 'chain_blocks': BLOCKS - 1, 'genesis_blocks': 1,
                                 'transactions': 1 + 2 * (BLOCKS - 1), 'fulfillments': 1 + 2 * (BLOCKS - 1), 'fulfillments_unverifiable': 0,
                                 'votes': 3 * (BLOCKS - 1), 'votes_declaring_invalid': 0, 'blocks_awaiting_votes': 0}
    assert outcome['federation_checked'] is True and outcome['not_checked'] == [] and outcome['workers'] == 2
    assert sorted(outcome['signers']) == sorted(federation_of(tables))
    assert sum(signer['votes'] for signer in outcome['signers'].values()) == 3 * (BLOCKS - 1)
    assert all(signer['in_federation'] is True for signer in outcome['signers'].values())
    assert summary_lines(outcome)[0].startswith('passed: 30 blocks (59 transactions, 59 fulfillments), 87 votes checked in ')
    assert list(tmp_path.iterdir()) == []


def test_every_tampering_is_found_and_named(tmp_path):
    tampering = sample.Tampering(BLOCKS, seed=5)
    tables = generated(tampering=tampering)
    path = write_archive(tmp_path / 'dump.tar.gz', table_members(tables))
    outcome = check_archive(path, Options(federation=federation_of(generated()), workers=2))
    assert outcome['ok'] is False
    assert failures(outcome) == tampering.expected_failures()
    assert outcome['failure_count'] == sum(len(ids) for ids in tampering.expected_failures().values())
    assert outcome['counts']['votes_declaring_invalid'] == 1
    assert outcome['signers'][tampering.outsider.public_key] == {'blocks': 1, 'votes': 0, 'in_federation': False}
    lines = summary_lines(outcome)
    assert lines[0].startswith('FAILED: ') and 'block_missing: 1 (%s)' % tampering.changed['deleted_block']['block'] in lines


def test_without_a_federation_its_check_is_skipped_and_signers_listed(tmp_path):
    tampering = sample.Tampering(BLOCKS, seed=5)
    path = write_archive(tmp_path / 'dump.tar.gz', table_members(generated(tampering=tampering)))
    outcome = check_archive(path, Options(workers=1, failure_ids=1))
    assert failures(outcome) == dict((kind, ids[:1]) for kind, ids in tampering.expected_failures(federation_checked=False).items())
    assert outcome['failures']['vote_for_unknown_block']['count'] == 4
    assert outcome['federation_checked'] is False
    assert outcome['not_checked'] == ['block_signer_outside_federation: no federation given; signers lists the keys that signed']
    assert set(signer['in_federation'] for signer in outcome['signers'].values()) == {None}
    assert len(outcome['signers']) == 4


def test_recent_unvoted_blocks_await_their_votes(tmp_path):
    tables = generated()
    newest = tables['bigchain.bigchain'][-1]
    tables['bigchain.votes'] = [vote for vote in tables['bigchain.votes'] if vote['vote']['voting_for_block'] != newest['id']]
    path = write_archive(tmp_path / 'dump.tar.gz', table_members(tables))
    strict = check_archive(path, Options(workers=1))
    lenient = check_archive(path, Options(workers=1, recent_unvoted_seconds=30))
    assert failures(strict) == {'block_without_votes': [newest['id']]}
    assert lenient['ok'] is True and lenient['counts']['blocks_awaiting_votes'] == 1


def test_any_layout_of_the_json_arrays_gives_the_same_outcome(clean, tmp_path):
    tables, path = clean
    members = [(TOP + '/bigchain/%s.info' % table, info_json(table)) for table in ('bigchain', 'votes')]
    members += [(TOP + '/bigchain/%s.json' % table, json.dumps(tables['bigchain.' + table], indent=1).encode()) for table in ('bigchain', 'votes')]
    pretty = check_archive(write_archive(tmp_path / 'pretty.tar.gz', members), Options(workers=2))
    plain = check_archive(path, Options(workers=2))
    for outcome in (pretty, plain):
        del outcome['seconds']
    assert pretty == plain


def test_another_database_is_chosen_by_name(clean, tmp_path):
    tables, dummy = clean
    renamed = dict(('chain2.%s' % name.split('.')[1], documents) for name, documents in tables.items())
    path = write_archive(tmp_path / 'dump.tar.gz', table_members(renamed))
    assert check_archive(path, Options(db='chain2'))['counts']['blocks'] == BLOCKS
    with pytest.raises(ChainCheckError, match=r'is not a usable rethinkdb dump: it holds no table bigchain.bigchain and no table bigchain.votes\.$'):
        check_archive(path, Options())


def test_archives_that_cannot_be_read_are_one_line_errors(clean, tmp_path):
    tables, path = clean
    data = open(path, 'rb').read()
    (tmp_path / 'short.tar.gz').write_bytes(data[:len(data) // 2])
    no_votes = write_archive(tmp_path / 'blocks.tar.gz', table_members({'bigchain.bigchain': tables['bigchain.bigchain']}))
    broken_line = write_archive(tmp_path / 'line.tar.gz', [(TOP + '/bigchain/bigchain.json', b'[\n]\n'),
                                                           (TOP + '/bigchain/votes.json', b'[\n{"id": 1},\n{"id": \n]\n')])
    cases = [
        (str(tmp_path / 'short.tar.gz'),
         r'short.tar.gz is not a usable rethinkdb dump: it is truncated or corrupt \(Compressed file ended before the end-of-stream marker was reached\)\.$'),
        (no_votes, 'holds no table bigchain.votes'),
        (broken_line, r'bigchain/votes.json has a line that is not one JSON document \(.*\): the archive is not in the layout'),
        (str(tmp_path / 'absent.tar.gz'), r'^Cannot read archive .*absent.tar.gz: No such file or directory\.$'),
    ]
    for archive, message in cases:
        with pytest.raises(ChainCheckError, match=message) as caught:
            check_archive(archive, Options(workers=2))
        assert '\n' not in str(caught.value)


def test_key_ranges_cover_every_key_in_order():
    for documents, workers in ((0, 1), (100000, 2), (10 ** 9, 8)):
        ranges = key_ranges(documents, workers)
        assert ranges[0][0] == 'minval' and ranges[-1][1] == 'maxval'
        assert all(first[1] == second[0] for first, second in zip(ranges, ranges[1:]))
        assert [upper for dummy, upper in ranges[:-1]] == sorted(upper for dummy, upper in ranges[:-1])
    assert len(key_ranges(0, 3)) == 6
    assert len(key_ranges(100000, 2)) == 10
    assert len(key_ranges(10 ** 9, 8)) == bigchaindb_chain.MAX_RANGES
