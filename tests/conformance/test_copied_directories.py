"""A cluster restarted from copies of all its data directories (taken together, cluster stopped) serves exactly
the copied data and metadata, however it changed afterwards."""

from __future__ import annotations

import shutil

from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import Cluster

r = RethinkDB()


def test_restart_from_copied_directories(tmp_path):
    with Cluster(tmp_path / 'cluster', size=2) as cluster:
        with cluster.connect() as conn:
            r.db_create('kept').run(conn)
            r.db('kept').table_create('rows', replicas=2).run(conn)
            r.db('kept').table('rows').insert([{'id': n, 'copy': 'original'} for n in range(40)]).run(conn)
            r.db('kept').table('rows').index_create('copy').run(conn)
            r.db('kept').wait(timeout=60).run(conn)
        cluster.stop()
        copies = {node.name: tmp_path / 'copies' / node.name for node in cluster.nodes}
        for node in cluster.nodes:
            shutil.copytree(node.data_dir, copies[node.name])
        cluster.start()
        with cluster.connect() as conn:
            r.db('kept').wait(timeout=60).run(conn)
            r.db('kept').table('rows').update({'copy': 'changed'}).run(conn)
            r.db('kept').table('rows').insert({'id': 1000}).run(conn)
            r.db('kept').table_create('later').run(conn)
            r.db_create('added_later').run(conn)
        cluster.stop()
        for node in cluster.nodes:
            shutil.rmtree(node.data_dir)
            shutil.copytree(copies[node.name], node.data_dir)
        cluster.start()
        with cluster.connect('node2') as conn:
            r.db('kept').wait(timeout=60).run(conn)
            assert 'added_later' not in r.db_list().run(conn)
            assert r.db('kept').table_list().run(conn) == ['rows']
            rows = r.db('kept').table('rows')
            assert rows.count().run(conn) == 40
            assert set(rows['copy'].run(conn)) == {'original'}
            assert rows.index_list().run(conn) == ['copy']
            assert rows.get_all('original', index='copy').count().run(conn) == 40
            assert len(rows.config()['shards'][0]['replicas'].run(conn)) == 2
