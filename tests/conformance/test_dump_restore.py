"""`rethinkdb dump` / `rethinkdb restore` (the driver's own tools) round-trip data, indexes and write hooks."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile


def _tool(cluster, *arguments) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop('RETHINKDB_DRIVER_PORT', None)
    node = cluster.node('node1')
    command = [sys.executable, '-m', 'rethinkdb'] + list(arguments) + ['-c', '%s:%d' % (cluster.host, node.driver_port)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_dump_and_restore_round_trip(r, cluster, conn, db, tmp_path):
    table = r.db(db).table('bigchain')
    r.db(db).table_create('bigchain').run(conn)
    r.db(db).table_create('votes', primary_key='key').run(conn)
    documents = [{'id': 'b%04d' % n, 'block': {'timestamp': str(n), 'transactions': [{'id': 't%d' % n}]}}
                 for n in range(600)]
    table.insert(documents).run(conn)
    r.db(db).table('votes').insert([{'key': n, 'vote': {'is_block_valid': n % 2 == 0}} for n in range(30)]).run(conn)
    table.index_create('transaction_id', r.row['block']['transactions']['id'], multi=True).run(conn)
    table.index_wait().run(conn)
    table.set_write_hook(lambda context, old, new: new).run(conn)
    archive = tmp_path / 'dump.tar.gz'

    dumped = _tool(cluster, 'dump', '-e', db, '-f', str(archive))
    assert dumped.returncode == 0, dumped.stderr
    with tarfile.open(archive) as tar:
        names = sorted(name.split('/', 1)[1] for name in tar.getnames() if name.count('/') == 2)
    assert names == ['%s/bigchain.info' % db, '%s/bigchain.json' % db, '%s/votes.info' % db, '%s/votes.json' % db]

    r.db_drop(db).run(conn)
    restored = _tool(cluster, 'restore', str(archive))
    assert restored.returncode == 0, restored.stderr
    r.db(db).wait(timeout=60).run(conn)
    assert table.count().run(conn) == 600
    assert table.order_by(index='id').limit(3)['id'].coerce_to('array').run(conn) == ['b0000', 'b0001', 'b0002']
    assert table.get('b0123').run(conn) == documents[123]
    assert r.db(db).table('votes').info()['primary_key'].run(conn) == 'key'
    assert r.db(db).table('votes').count().run(conn) == 30
    assert table.index_list().run(conn) == ['transaction_id']
    table.index_wait().run(conn)
    assert table.get_all('t77', index='transaction_id')['id'].coerce_to('array').run(conn) == ['b0077']
    assert table.get_write_hook().run(conn) is not None
