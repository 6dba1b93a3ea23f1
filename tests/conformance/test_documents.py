"""Documents: insert results and errors, get, count, between, order_by(index=) cursors over several batches."""

from __future__ import annotations

import pytest
from rethinkdb.errors import ReqlNonExistenceError, ReqlQueryLogicError

DOCUMENTS = 250


@pytest.fixture
def numbers(r, conn, db):
    """A table of 250 documents {id: 'k000', n: 0, parity}: ids sort like n."""
    r.db(db).table_create('numbers').run(conn)
    table = r.db(db).table('numbers')
    result = table.insert([{'id': 'k%03d' % n, 'n': n, 'parity': n % 2} for n in range(DOCUMENTS)]).run(conn)
    assert result == {'deleted': 0, 'errors': 0, 'inserted': DOCUMENTS, 'replaced': 0, 'skipped': 0, 'unchanged': 0}
    return table


def test_insert_results(r, conn, numbers):
    duplicate = numbers.insert({'id': 'k001', 'n': -1}).run(conn)
    assert duplicate['errors'] == 1 and duplicate['inserted'] == 0
    assert duplicate['first_error'] == ('Duplicate primary key `id`:\n{\n\t"id":\t"k001",\n\t"n":\t1,\n\t"parity":\t1\n}'
                                        '\n{\n\t"id":\t"k001",\n\t"n":\t-1\n}')
    replaced = numbers.insert({'id': 'k001', 'n': 1, 'parity': 1, 'x': 1}, conflict='replace').run(conn)
    assert replaced['replaced'] == 1
    unchanged = numbers.insert({'id': 'k001', 'x': 1}, conflict='update').run(conn)
    assert unchanged['unchanged'] == 1
    generated = numbers.insert([{'n': 1000}, {'n': 1001}], return_changes=True).run(conn)
    assert generated['inserted'] == 2 and len(generated['generated_keys']) == 2
    assert [change['new_val']['n'] for change in generated['changes']] == [1000, 1001]
    assert all(change['old_val'] is None for change in generated['changes'])


def test_get_count_and_writes(r, conn, numbers):
    assert numbers.get('k007').run(conn) == {'id': 'k007', 'n': 7, 'parity': 1}
    assert numbers.get('nope').run(conn) is None
    assert numbers.count().run(conn) == DOCUMENTS
    assert numbers.filter({'parity': 0}).count().run(conn) == DOCUMENTS // 2
    assert numbers.get('k007').update({'n': 70}).run(conn)['replaced'] == 1
    assert numbers.get('k007')['n'].run(conn) == 70
    assert numbers.get('k008').replace({'id': 'k008', 'n': 8}).run(conn)['replaced'] == 1
    assert numbers.get('k009').delete().run(conn)['deleted'] == 1
    assert numbers.get('k009').delete().run(conn)['skipped'] == 1
    assert numbers.filter({'parity': 1}).update({'odd': True}).run(conn)['replaced'] == DOCUMENTS // 2 - 1
    with pytest.raises(ReqlNonExistenceError) as raised:
        numbers.get('k010')['missing'].run(conn)
    assert raised.value.message.startswith('No attribute `missing` in object:')


def test_order_by_primary_index_streams_in_batches(r, conn, numbers):
    cursor = numbers.order_by(index='id').run(conn, max_batch_rows=40)
    ids = [document['id'] for document in cursor]
    assert ids == ['k%03d' % n for n in range(DOCUMENTS)]
    descending = list(numbers.order_by(index=r.desc('id')).limit(3).run(conn))
    assert [document['n'] for document in descending] == [249, 248, 247]


def test_between_with_bounds(r, conn, numbers):
    closed = list(numbers.between('k010', 'k020', right_bound='closed').run(conn))
    assert sorted(document['n'] for document in closed) == list(range(10, 21))
    open_left = numbers.between('k240', r.maxval, left_bound='open').order_by(index='id').run(conn)
    assert [document['n'] for document in open_left] == list(range(241, DOCUMENTS))
    everything = numbers.between(r.minval, r.maxval).count().run(conn)
    assert everything == DOCUMENTS


def test_secondary_index_reads(r, conn, numbers):
    numbers.index_create('n').run(conn)
    numbers.index_wait('n').run(conn)
    assert sorted(doc['id'] for doc in numbers.get_all(3, 4, index='n').run(conn)) == ['k003', 'k004']
    ordered = numbers.order_by(index=r.desc('n')).limit(2).run(conn)
    assert [doc['n'] for doc in ordered] == [249, 248]
    window = numbers.between(100, 105, index='n').order_by(index='n').run(conn)
    assert [doc['n'] for doc in window] == [100, 101, 102, 103, 104]


def test_cursor_types_and_atoms(r, conn, numbers):
    assert isinstance(r.expr([1, 2]).run(conn), list)
    assert numbers.type_of().run(conn) == 'TABLE'
    assert numbers.get('k001').type_of().run(conn) == 'SELECTION<OBJECT>'
    assert numbers.filter({'n': 1}).type_of().run(conn) == 'SELECTION<STREAM>'
    assert r.expr([3, 1, 2]).order_by(r.row).run(conn) == [1, 2, 3]
    with pytest.raises(ReqlQueryLogicError) as raised:
        r.expr(1).add('a').run(conn)
    assert raised.value.message == 'Expected type NUMBER but found STRING.'


def test_sharded_table_reads_every_shard(r, conn, db):
    """Three shards, each on every server: scans by primary and secondary index see every row once, in order."""
    count = 2600
    r.db(db).table_create('sharded').run(conn)
    table = r.db(db).table('sharded')
    table.insert([{'id': n, 'n': count - n} for n in range(count)]).run(conn)
    table.index_create('n').run(conn)
    assert table.reconfigure(shards=3, replicas=3).run(conn)['reconfigured'] == 1
    table.wait(timeout=60).run(conn)
    table.index_wait('n').run(conn)
    assert len(table.config()['shards'].run(conn)) == 3
    assert [doc['id'] for doc in table.order_by(index='id').run(conn)] == list(range(count))
    assert [doc['n'] for doc in table.order_by(index=r.desc('n')).run(conn)] == list(range(count, 0, -1))
    assert table.between(100, 2100, index='n').count().run(conn) == 2000
    assert sorted(doc['id'] for doc in table.get_all(1, count, index='n').run(conn)) == [0, count - 1]
    estimates = table.info()['doc_count_estimates'].run(conn)
    assert len(estimates) == 3 and all(estimate > 0 for estimate in estimates)
