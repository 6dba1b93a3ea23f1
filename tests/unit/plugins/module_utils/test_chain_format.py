"""The chain format: names, keys and digests, segments written and read back, records checked, points in time."""

from __future__ import annotations

import datetime
import gzip
import io
import json

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import chain_format
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_format import (
    ChainFormatError, SegmentBuilder, chain_problems, chain_record, document_digest, key_text, parse_object_name, parse_until,
    read_segment, segment_problems, segment_record)

AT = '2026-11-24T16:30:00.123Z'
LATER = '2026-11-24T16:30:01.456Z'
BASE = {'set_id': '20261124T120000Z-dump-77aa', 'finished_at': '2026-11-24T12:00:05.000Z', 'manifest_sha256': 'a' * 64,
        'documents': {'bigchain.votes': 3}}
TABLES = [{'db': 'bigchain', 'name': 'votes', 'primary_key': 'id'}]
WRITER = {'kind': 'follower', 'host': 'db1'}


def built() -> SegmentBuilder:
    builder = SegmentBuilder()
    builder.add('bigchain.votes', 'insert', 'v1', AT, 'feed', 10.0, doc={'id': 'v1', 'n': 1})
    builder.add('bigchain.votes', 'update', 'v0', LATER, 'feed', 11.0, old={'id': 'v0'}, new={'id': 'v0', 'n': 2})
    builder.add_gap({'table': 'bigchain.votes', 'reason': 'the follower started', 'opened_at': AT, 'closed_at': LATER,
                     'found': 1, 'missing': 0}, 11.5)
    return builder


def test_names_sort_and_parse():
    assert chain_format.segment_data_name(7, '0a1b2c3d') == 'segments/00000007-0a1b2c3d.jsonl.gz'
    assert chain_format.segment_data_name(7) != chain_format.segment_data_name(7)
    assert parse_object_name('segments/00000007.json') == (7, 'record')
    assert parse_object_name('segments/00000007-0a1b2c3d.jsonl.gz') == (7, 'data')
    assert parse_object_name(chain_format.segment_data_name(12)) == (12, 'data')
    for other in ('segments/7.json', 'chain.json', 'segments/00000007.jsonl.gz', 'segments/00000007-xyz.jsonl.gz'):
        assert parse_object_name(other) is None
    assert chain_format.is_chain_id(chain_format.new_chain_id(datetime.datetime(2026, 11, 24, tzinfo=datetime.timezone.utc)))
    with pytest.raises(ChainFormatError, match='is not a chain id'):
        chain_format.check_chain_id('20261124T163000Z-dump-3f9a')


def test_keys_and_digests_ignore_key_order_but_not_content():
    assert key_text('abc') == '"abc"' and key_text(12) == '12' and key_text(['a', 1]) == '["a",1]'
    assert document_digest({'id': 1, 'a': {'x': 1, 'y': 2}}) == document_digest({'a': {'y': 2, 'x': 1}, 'id': 1})
    assert document_digest({'id': 1, 'a': 1}) != document_digest({'id': 1, 'a': 2})
    assert len(document_digest({'id': 1})) == 16


def test_a_segment_counts_what_it_holds_and_reads_back():
    builder = built()
    assert (len(builder), builder.documents, builder.alarms) == (2, 1, 1)
    assert (builder.first_received_at, builder.last_received_at, builder.opened_monotonic) == (AT, LATER, 10.0)
    assert builder.tables == {'bigchain.votes': {'insert': 1, 'update': 1, 'delete': 0, 'missing': 0, 'reinsert': 0}}
    first, second = io.BytesIO(), io.BytesIO()
    builder.write(first)
    builder.write(second)
    assert first.getvalue() == second.getvalue()
    records = list(read_segment(io.BytesIO(first.getvalue())))
    assert [(record['op'], record['key'], record['at'], record['via']) for record in records] == [
        ('insert', 'v1', AT, 'feed'), ('update', 'v0', LATER, 'feed')]
    assert records[0]['doc'] == {'id': 'v1', 'n': 1} and records[1]['new'] == {'id': 'v0', 'n': 2}


def test_a_damaged_segment_is_refused():
    with pytest.raises(ChainFormatError, match='record 1 is not valid JSON'):
        list(read_segment(io.BytesIO(gzip.compress(b'{not json\n'))))
    with pytest.raises(ChainFormatError, match='record 1 has no doc'):
        list(read_segment(io.BytesIO(gzip.compress(json.dumps({'op': 'insert', 'table': 'a.b', 'key': 1, 'at': AT, 'via': 'feed'}).encode()))))
    with pytest.raises(ChainFormatError, match='operation drop from feed is not one of'):
        SegmentBuilder().add('a.b', 'drop', 1, AT, 'feed', 0.0)


def test_records_are_checked():
    chain = chain_record('20261124T163000Z-3f9a', 'rethinkdb', BASE, TABLES, WRITER)
    assert chain_problems(chain, '20261124T163000Z-3f9a', 'rethinkdb') == []
    assert chain_problems(chain, '20261124T163000Z-0000') == ['chain chain_id is 20261124T163000Z-3f9a, but the chain is stored as 20261124T163000Z-0000']
    assert chain_problems(dict(chain, base=dict(BASE, set_id='x'))) == ['chain.base.set_id is "x", expected a backup set id']
    builder = built()
    data = {'path': 'segments/00000003-0a1b2c3d.jsonl.gz', 'bytes': 10, 'sha256': 'b' * 64, 'raw_bytes': 40, 'store_checksum': None}
    totals = {'segments': 3, 'documents': 1, 'alarms': 1, 'gaps': 1, 'inserted': {'bigchain.votes': 1}}
    record = segment_record('20261124T163000Z-3f9a', 3, 'c' * 64, data, builder, totals, WRITER)
    assert segment_problems(record, '20261124T163000Z-3f9a', 3) == []
    assert segment_problems(dict(record, records=5)) == ['segment ? counts 5 records, but its tables add up to another number']
    assert segment_problems(dict(record, data=dict(data, path='segments/00000004-0a1b2c3d.jsonl.gz'))) == [
        'segment ? names data segments/00000004-0a1b2c3d.jsonl.gz, not its own']
    with pytest.raises(ChainFormatError, match='previous_sha256 is "short"'):
        segment_record('20261124T163000Z-3f9a', 3, 'short', data, builder, totals, WRITER)


@pytest.mark.parametrize('text, expected', [
    ('2026-11-24T16:30:00Z', datetime.datetime(2026, 11, 24, 16, 30, tzinfo=datetime.timezone.utc)),
    ('2026-11-24T16:30:00.250', datetime.datetime(2026, 11, 24, 16, 30, 0, 250000, tzinfo=datetime.timezone.utc)),
    ('2026-11-24T17:30:00+01:00', datetime.datetime(2026, 11, 24, 16, 30, tzinfo=datetime.timezone.utc)),
])
def test_points_in_time(text, expected):
    assert parse_until(text) == expected


def test_a_point_in_time_that_is_not_one():
    with pytest.raises(ChainFormatError, match="until 'yesterday' is not an ISO 8601 time"):
        parse_until('yesterday')
    with pytest.raises(ChainFormatError, match='until is empty'):
        parse_until(' ')
