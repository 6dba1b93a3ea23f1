"""info(), index_status() and the function blobs that dump/restore round-trip: indexes and write hooks."""

from __future__ import annotations

import re

import pytest
from rethinkdb.errors import ReqlOpFailedError


@pytest.fixture
def blocks(r, conn, db):
    """A table of BigchainDB-like blocks with a simple and a multi index."""
    r.db(db).table_create('bigchain').run(conn)
    table = r.db(db).table('bigchain')
    table.insert([{'id': 'b%d' % n, 'block': {'timestamp': str(1000 + n), 'transactions': [
        {'id': 't%d-%d' % (n, k)} for k in range(2)]}} for n in range(5)]).run(conn)
    table.index_create('block_timestamp', r.row['block']['timestamp']).run(conn)
    table.index_create('transaction_id', r.row['block']['transactions']['id'], multi=True).run(conn)
    table.index_wait().run(conn)
    return table


def test_info_shape(r, conn, db, blocks):
    info = blocks.info().run(conn)
    assert set(info) == {'db', 'doc_count_estimates', 'id', 'indexes', 'name', 'primary_key', 'type'}
    assert (info['type'], info['name'], info['primary_key']) == ('TABLE', 'bigchain', 'id')
    assert info['db'] == {'id': r.db(db).config()['id'].run(conn), 'name': db, 'type': 'DB'}
    assert info['indexes'] == ['block_timestamp', 'transaction_id']
    assert len(info['doc_count_estimates']) == 1 and isinstance(info['doc_count_estimates'][0], int)


def test_index_status_shape(r, conn, blocks):
    statuses = blocks.index_status().run(conn, binary_format='raw')
    assert [status['index'] for status in statuses] == ['block_timestamp', 'transaction_id']
    for status in statuses:
        assert set(status) == {'function', 'geo', 'index', 'multi', 'outdated', 'query', 'ready'}
        assert status['ready'] is True and status['outdated'] is False and status['geo'] is False
        assert status['function']['$reql_type$'] == 'BINARY'
        assert status['query'].startswith("indexCreate('%s', function(" % status['index'])
    assert [status['multi'] for status in statuses] == [False, True]
    assert blocks.index_list().run(conn) == ['block_timestamp', 'transaction_id']


def test_index_query_texts(r, conn, blocks):
    blocks.index_create('tx_ids', lambda block: block['block']['transactions'].map(lambda tx: tx['id'])).run(conn)
    texts = dict((status['index'], status['query']) for status in blocks.index_status().run(conn))
    outer = re.search(r'function\((var\d+)\)', texts['block_timestamp']).group(1)
    assert texts['block_timestamp'] == 'indexCreate(\'block_timestamp\', function(%s) { return r.row("block")("timestamp"); })' % outer
    outer = re.search(r'function\((var\d+)\)', texts['transaction_id']).group(1)
    assert texts['transaction_id'] == ('indexCreate(\'transaction_id\', function(%s) { return '
                                       'r.row("block")("transactions")("id"); }, {multi: true})' % outer)
    # The body is laid out 80 columns wide on its own; the nested function breaks over lines, indented under it.
    outer, inner = re.findall(r'function ?\((var\d+)\)', texts['tx_ids'])
    head = '%s("block")("transactions").map(' % outer
    assert texts['tx_ids'] == ('indexCreate(\'tx_ids\', function(%s) { return %sfunction (%s) {\n%sreturn %s("id");\n%s}); })'
                               % (outer, head, inner, ' ' * (len(head) + 4), inner, ' ' * len(head)))


def test_index_round_trip_from_blob(r, conn, blocks):
    status = blocks.index_status('transaction_id').nth(0).run(conn)
    assert blocks.index_drop('transaction_id').run(conn) == {'dropped': 1}
    assert blocks.index_list().run(conn) == ['block_timestamp']
    assert blocks.index_create('transaction_id', status['function'], multi=status['multi']).run(conn) == {'created': 1}
    waited = blocks.index_wait('transaction_id').run(conn)
    assert waited[0]['ready'] is True and waited[0]['multi'] is True
    assert blocks.get_all('t3-1', index='transaction_id')['id'].coerce_to('array').run(conn) == ['b3']
    assert blocks.index_status('transaction_id').nth(0)['function'].run(conn) == status['function']


def test_index_errors(r, conn, db, blocks):
    with pytest.raises(ReqlOpFailedError) as raised:
        blocks.index_create('block_timestamp').run(conn)
    assert raised.value.message == 'Index `block_timestamp` already exists on table `%s.bigchain`.' % db
    with pytest.raises(ReqlOpFailedError) as raised:
        blocks.index_drop('absent').run(conn)
    assert raised.value.message == 'Index `absent` does not exist on table `%s.bigchain`.' % db
    with pytest.raises(ReqlOpFailedError) as raised:
        blocks.index_status('absent').run(conn)
    assert raised.value.message == 'Index `absent` was not found on table `%s.bigchain`.' % db


def test_index_rename(r, conn, blocks):
    assert blocks.index_rename('block_timestamp', 'timestamp').run(conn) == {'renamed': 1}
    assert blocks.index_list().run(conn) == ['timestamp', 'transaction_id']


def test_write_hook_round_trip(r, conn, blocks):
    assert blocks.get_write_hook().run(conn) is None
    created = blocks.set_write_hook(lambda context, old, new: new.merge({'hooked': True})).run(conn)
    assert created == {'created': 1}
    hook = blocks.get_write_hook().run(conn, binary_format='raw')
    assert set(hook) == {'function', 'query'}
    assert hook['function']['$reql_type$'] == 'BINARY'
    assert hook['query'].startswith('setWriteHook(function(')
    assert blocks.config()['write_hook']['query'].run(conn) == hook['query']
    assert blocks.set_write_hook(None).run(conn) == {'deleted': 1}
    assert blocks.get_write_hook().run(conn) is None
    blob = r.binary(__import__('base64').b64decode(hook['function']['data']))
    assert blocks.set_write_hook(blob).run(conn) == {'created': 1}
    assert blocks.get_write_hook()['query'].run(conn) == hook['query']
