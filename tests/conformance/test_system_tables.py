"""Rows of the `rethinkdb` system tables that the collection reads, in the real shapes."""

from __future__ import annotations

import datetime
import re

import pytest

from ansible_collections.bigchaindb.rethinkdb.tests.conformance.conftest import CACHE_SIZES, SERVER_TAGS


def test_server_status_rows(r, cluster, conn):
    rows = {row['name']: row for row in r.db('rethinkdb').table('server_status').run(conn)}
    assert sorted(rows) == ['node1', 'node2', 'node3']
    for node in cluster.nodes:
        row = rows[node.name]
        assert set(row) == {'id', 'name', 'network', 'process'}
        assert set(row['network']) == {'canonical_addresses', 'cluster_port', 'connected_to', 'hostname',
                                       'http_admin_port', 'reql_port', 'time_connected'}
        assert row['network']['reql_port'] == node.driver_port
        assert row['network']['cluster_port'] == node.cluster_port
        assert row['network']['http_admin_port'] == '<no http admin>'
        assert row['network']['connected_to'] == {other.name: True for other in cluster.nodes if other is not node}
        assert isinstance(row['network']['time_connected'], datetime.datetime)
        assert set(row['process']) == {'argv', 'cache_size_mb', 'pid', 'time_started', 'version'}
        assert row['process']['pid'] == node.pid()
        assert re.match(r'^rethinkdb 2\.4\.\d+\S* \(.*\)$', row['process']['version'])
        assert isinstance(row['process']['time_started'], datetime.datetime)


def test_version_is_the_same_everywhere(r, cluster):
    versions = set()
    for node in cluster.nodes:
        with cluster.connect(node.name) as connection:
            versions.update(r.db('rethinkdb').table('server_status')['process']['version'].run(connection))
    assert len(versions) == 1


def test_server_config_rows(r, conn):
    rows = {row['name']: row for row in r.db('rethinkdb').table('server_config').run(conn)}
    assert sorted(rows) == ['node1', 'node2', 'node3']
    for name, row in rows.items():
        assert set(row) == {'cache_size_mb', 'id', 'name', 'tags'}
        assert sorted(row['tags']) == sorted(['default'] + SERVER_TAGS[name])


def test_cache_sizes(r, conn):
    """A server started with `--cache-size N` reports N (an integer) as its setting and its cache; one started
    without it reports 'auto' and the size it picked (a positive number of megabytes)."""
    configs = {row['name']: row['cache_size_mb'] for row in r.db('rethinkdb').table('server_config').run(conn)}
    actual = {row['name']: row['process']['cache_size_mb']
              for row in r.db('rethinkdb').table('server_status').run(conn)}
    for name in ('node1', 'node2', 'node3'):
        if name in CACHE_SIZES:
            assert configs[name] == CACHE_SIZES[name] and isinstance(configs[name], int)
            assert actual[name] == CACHE_SIZES[name] and isinstance(actual[name], int)
        else:
            assert configs[name] == 'auto'
            assert isinstance(actual[name], (int, float)) and actual[name] >= 100


def test_server_config_cache_size_update(r, conn):
    server = r.db('rethinkdb').table('server_config').filter({'name': 'node2'}).nth(0)
    status = r.db('rethinkdb').table('server_status').filter({'name': 'node2'}).nth(0)
    assert server.update({'cache_size_mb': 300}).run(conn)['replaced'] == 1
    try:
        assert server['cache_size_mb'].run(conn) == 300
        assert status['process']['cache_size_mb'].run(conn) == 300
        result = server.update({'cache_size_mb': 'lots'}).run(conn)
        assert result['errors'] == 1
        assert result['first_error'].endswith('In `cache_size_mb`: Expected a number or \'auto\', got "lots"')
        result = server.update({'cache_size_mb': -1}).run(conn)
        assert result['first_error'].endswith('In `cache_size_mb`: Cache size cannot be negative.')
    finally:
        server.update({'cache_size_mb': 'auto'}).run(conn)
    assert server['cache_size_mb'].run(conn) == 'auto'


def test_server_config_rename_and_back(r, conn):
    server = r.db('rethinkdb').table('server_config').filter({'name': 'node2'}).nth(0)
    result = server.update({'name': 'renamed_node2'}).run(conn)
    assert result['replaced'] == 1
    try:
        names = sorted(r.db('rethinkdb').table('server_status')['name'].run(conn))
        assert names == ['node1', 'node3', 'renamed_node2']
    finally:
        r.db('rethinkdb').table('server_config').filter({'name': 'renamed_node2'}).update({'name': 'node2'}).run(conn)
    assert sorted(r.db('rethinkdb').table('server_config')['name'].run(conn)) == ['node1', 'node2', 'node3']


def test_table_config_and_status_rows(r, conn, db):
    r.db(db).table_create('things', replicas=2).run(conn)
    config = r.db(db).table('things').config().run(conn)
    assert set(config) == {'db', 'durability', 'id', 'indexes', 'name', 'primary_key', 'shards', 'write_acks',
                           'write_hook'}
    assert (config['db'], config['name'], config['primary_key']) == (db, 'things', 'id')
    assert (config['durability'], config['write_acks'], config['indexes'], config['write_hook']) == (
        'hard', 'majority', [], None)
    assert len(config['shards']) == 1
    shard = config['shards'][0]
    assert set(shard) == {'nonvoting_replicas', 'primary_replica', 'replicas'}
    assert len(shard['replicas']) == 2 and shard['primary_replica'] in shard['replicas']
    assert r.db('rethinkdb').table('table_config').get(config['id']).run(conn) == config

    r.db(db).table('things').wait().run(conn)
    status = r.db(db).table('things').status().run(conn)
    assert set(status) == {'db', 'id', 'name', 'raft_leader', 'shards', 'status'}
    assert status['status'] == {'all_replicas_ready': True, 'ready_for_outdated_reads': True,
                                'ready_for_reads': True, 'ready_for_writes': True}
    assert status['shards'][0]['primary_replicas'] == [shard['primary_replica']]
    assert sorted(replica['server'] for replica in status['shards'][0]['replicas']) == sorted(shard['replicas'])
    assert {replica['state'] for replica in status['shards'][0]['replicas']} == {'ready'}
    assert status['raft_leader'] in ('node1', 'node2', 'node3')


def test_current_issues_empty_when_healthy(r, conn):
    assert list(r.db('rethinkdb').table('current_issues').run(conn)) == []


def test_users_permissions_and_db_config(r, conn, db):
    users = list(r.db('rethinkdb').table('users').run(conn))
    assert {'id': 'admin', 'password': False} in users
    permissions = list(r.db('rethinkdb').table('permissions').run(conn))
    assert {'id': ['admin'], 'permissions': {'config': True, 'connect': True, 'read': True, 'write': True},
            'user': 'admin'} in permissions
    rows = list(r.db('rethinkdb').table('db_config').filter({'name': db}).run(conn))
    assert len(rows) == 1 and set(rows[0]) == {'id', 'name'}
    assert r.db(db).config().run(conn) == rows[0]


def test_system_tables_listed_and_protected(r, conn):
    assert set(r.db('rethinkdb').table_list().run(conn)) >= {
        'server_status', 'server_config', 'table_config', 'table_status', 'db_config', 'current_issues', 'users',
        'permissions', 'cluster_config', 'jobs', 'stats', 'logs'}
    result = r.db('rethinkdb').table('table_status').insert({'id': 'x'}).run(conn)
    assert result['errors'] == 1
    assert result['first_error'] == 'It\'s illegal to write to the `rethinkdb.table_status` table.'


def test_system_database_is_special(r, conn):
    from rethinkdb.errors import ReqlOpFailedError
    with pytest.raises(ReqlOpFailedError) as raised:
        r.db('rethinkdb').table_create('mine').run(conn)
    assert raised.value.message == 'Database `rethinkdb` is special; you can\'t create new tables in it.'
