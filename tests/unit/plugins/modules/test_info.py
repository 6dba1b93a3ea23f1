"""Unit tests of bigchaindb.rethinkdb.info with the driver replaced by a fake."""

from __future__ import annotations

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.modules import info
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import Connection, FakeR, names, run_module

SERVERS = [
    {'id': 'id-%d' % n, 'name': 'node%d' % n,
     'network': {'hostname': 'host%d' % n, 'reql_port': 28014 + n, 'cluster_port': 29014 + n,
                 'connected_to': {}},
     'process': {'version': 'rethinkdb 2.4.4~0bookworm (GCC 12.2.0)',
                 'time_started': {'$reql_type$': 'TIME', 'epoch_time': 1764000000.5, 'timezone': '+00:00'}}}
    for n in (2, 1)
]
SERVER_CONFIG = [{'id': 'id-1', 'name': 'node1', 'tags': ['default', 'dc1']}, {'id': 'id-2', 'name': 'node2', 'tags': ['default']}]
TABLE_CONFIG = [
    {'id': 't-votes', 'db': 'bigchain', 'name': 'votes', 'primary_key': 'id', 'indexes': ['block_and_voter'],
     'shards': [{'primary_replica': 'node1', 'replicas': ['node1', 'node2'], 'nonvoting_replicas': []}],
     'durability': 'hard', 'write_acks': 'majority', 'write_hook': None},
    {'id': 't-blocks', 'db': 'bigchain', 'name': 'bigchain', 'primary_key': 'id', 'indexes': ['transaction_id', 'block_timestamp'],
     'shards': [{'primary_replica': 'node1', 'replicas': ['node1', 'node3'], 'nonvoting_replicas': []},
                {'primary_replica': 'node2', 'replicas': ['node2'], 'nonvoting_replicas': []}],
     'durability': 'hard', 'write_acks': 'majority', 'write_hook': None},
]
READY = {'all_replicas_ready': True, 'ready_for_outdated_reads': True, 'ready_for_reads': True, 'ready_for_writes': True}
DEGRADED = dict(READY, all_replicas_ready=False)
TABLE_STATUS = [
    {'id': 't-votes', 'db': 'bigchain', 'name': 'votes', 'status': READY,
     'shards': [{'primary_replicas': ['node1'], 'replicas': [{'server': 'node1', 'state': 'ready'}, {'server': 'node2', 'state': 'ready'}]}]},
    {'id': 't-blocks', 'db': 'bigchain', 'name': 'bigchain', 'status': DEGRADED,
     'shards': [{'primary_replicas': ['node1'], 'replicas': [{'server': 'node1', 'state': 'ready'}, {'server': 'node3', 'state': 'disconnected'}]},
                {'primary_replicas': ['node2'], 'replicas': [{'server': 'node2', 'state': 'ready'}]}]},
]
SYSTEM_TABLES = {'server_status': SERVERS, 'server_config': SERVER_CONFIG, 'table_config': TABLE_CONFIG,
                 'table_status': TABLE_STATUS, 'current_issues': []}


class WaitTimeout(info.ReqlError):
    """What the driver raises when a wait times out."""


def cluster_answer(counts=None, wait_error=None):
    """Answers of a two-server cluster whose bigchain table misses a replica on node3."""
    def answer(chain):
        steps = names(chain)
        if steps == ('db', 'table'):
            return SYSTEM_TABLES[chain[1][1][0]]
        if steps == ('db_list',):
            return ['bigchain', 'rethinkdb', 'test']
        if steps == ('db', 'table', 'count'):
            return counts[chain[1][1][0]]
        if steps == ('db', 'table', 'wait'):
            if wait_error:
                raise wait_error
            return {'ready': 1}
        raise AssertionError('unexpected query %r' % (steps,))
    return answer


@pytest.fixture(name='fake')
def fake_cluster(monkeypatch):
    """Install a fake connection; the test sets fake.answer."""
    fake = FakeR(cluster_answer())
    connection = Connection()
    monkeypatch.setattr(info, 'connect', lambda module: (fake, connection))
    fake.connection = connection
    return fake


def test_reports_servers_tables_and_readiness(fake, capsys):
    result = run_module(info.main, {}, capsys)

    assert result['changed'] is False
    assert result['version'] == '2.4.4'
    assert [server['name'] for server in result['servers']] == ['node1', 'node2']
    assert result['servers'][0]['tags'] == ['default', 'dc1']
    assert result['servers'][0]['driver_port'] == 28015
    assert result['servers'][0]['time_started'].startswith('2025-11-24T16:00:00.5')
    assert result['databases'] == ['bigchain', 'test']
    assert sorted(result['tables']) == ['bigchain.bigchain', 'bigchain.votes']
    blocks = result['tables']['bigchain.bigchain']
    assert (blocks['shards'], blocks['replicas'], blocks['primary_replicas']) == (2, 1, ['node1', 'node2'])
    assert blocks['indexes'] == ['block_timestamp', 'transaction_id']
    assert blocks['ready'] is False
    assert {'shard': 1, 'server': 'node3', 'state': 'disconnected'} in blocks['replica_states']
    assert result['tables']['bigchain.votes']['ready'] is True
    assert result['disconnected_servers'] == ['node3']
    assert result['ready'] is False
    assert 'documents' not in blocks
    assert fake.connection.closed


def test_counts_only_the_named_tables(fake, capsys):
    fake.answer = cluster_answer(counts={'votes': 42})

    result = run_module(info.main, {'tables': ['bigchain.votes'], 'count': True}, capsys)

    assert list(result['tables']) == ['bigchain.votes']
    assert result['tables']['bigchain.votes']['documents'] == 42


def test_unknown_table_is_a_one_line_error(fake, capsys):
    result = run_module(info.main, {'tables': ['bigchain.blocks']}, capsys)

    assert result['failed']
    assert result['msg'] == ('Table bigchain.blocks does not exist on the cluster at localhost:28015 '
                             '(tables: bigchain.bigchain, bigchain.votes).')


def test_malformed_table_name(fake, capsys):
    result = run_module(info.main, {'tables': ['votes']}, capsys)

    assert result['msg'] == "tables: 'votes' is not a table name of the form database.table."


def test_wait_ready_waits_for_each_table_with_the_remaining_time(fake, capsys):
    result = run_module(info.main, {'wait_ready': True, 'wait_for': 'ready_for_writes', 'wait_timeout': 30}, capsys)

    waits = [query for query, options in fake.queries if names(query)[-1] == 'wait']
    assert len(waits) == 2
    assert all(query[-1][2]['wait_for'] == 'ready_for_writes' and 1 <= query[-1][2]['timeout'] <= 30 for query in waits)
    assert result['waited'] >= 0


def test_wait_timeout_names_the_tables_and_replicas_not_ready(fake, capsys):
    fake.answer = cluster_answer(wait_error=WaitTimeout('Timed out while waiting for tables.'))

    result = run_module(info.main, {'wait_ready': True, 'wait_timeout': 5}, capsys)

    assert result['failed']
    assert result['msg'] == 'Tables not all_replicas_ready after 5 seconds: bigchain.bigchain (node3 disconnected).'
    assert list(result['not_ready']) == ['bigchain.bigchain']


def test_other_wait_errors_are_reported_as_they_are(fake, capsys):
    fake.answer = cluster_answer(wait_error=WaitTimeout('Database `bigchain` does not exist.'))

    result = run_module(info.main, {'wait_ready': True}, capsys)

    assert result['msg'] == 'Reading the cluster at localhost:28015 failed: Database `bigchain` does not exist.'


def test_connection_failure_names_the_endpoint(monkeypatch, capsys):
    class Refused(info.ReqlError):
        """The driver's error for a closed port."""

    class Driver:
        """r whose connect() is refused."""

        def connect(self, **kwargs):
            raise Refused('Could not connect to localhost:1. Error: [Errno 111] Connection refused')

    monkeypatch.setattr('ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb.RethinkDB', Driver)

    result = run_module(info.main, {'login_port': 1}, capsys)

    assert result['msg'] == 'Cannot connect to RethinkDB at localhost:1 as admin: [Errno 111] Connection refused.'


def test_password_file_is_read_without_its_trailing_newline(monkeypatch, capsys, tmp_path):
    seen = {}

    class Driver:
        """r that records the password and then refuses it."""

        def connect(self, **kwargs):
            seen.update(kwargs)
            raise info.ReqlError('Could not connect to localhost:28015, Wrong password')

    password_file = tmp_path / 'password'
    password_file.write_text('s3cret\n')
    monkeypatch.setattr('ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb.RethinkDB', Driver)

    result = run_module(info.main, {'login_password_file': str(password_file)}, capsys)

    assert seen['password'] == 's3cret'
    assert result['msg'] == 'Cannot connect to RethinkDB at localhost:28015 as admin: Wrong password.'
    assert 's3cret' not in str(result)


def test_an_unavailable_table_is_reported_with_its_error(fake, capsys):
    unavailable = {'db': 'bigchain', 'id': 't-votes', 'name': 'votes', 'error': 'None of the replicas for this table are accessible.'}
    no_replicas = {'id': 't-votes', 'db': 'bigchain', 'name': 'votes', 'shards': None, 'status': dict.fromkeys(READY, False)}
    tables = {'table_config': [unavailable], 'table_status': [no_replicas]}
    answer = cluster_answer()
    fake.answer = lambda chain: tables.get(chain[1][1][0]) if names(chain) == ('db', 'table') and chain[1][1][0] in tables else answer(chain)

    result = run_module(info.main, {}, capsys)

    votes = result['tables']['bigchain.votes']
    assert (votes['shards'], votes['replicas'], votes['ready'], votes['replica_states']) == (0, 0, False, [])
    assert votes['error'] == 'None of the replicas for this table are accessible.'


def test_summary_reads_like_a_report(fake, capsys):
    fake.answer = cluster_answer(counts={'votes': 4200, 'bigchain': 17})

    result = run_module(info.main, {'count': True}, capsys)

    assert result['summary'] == [
        'RethinkDB 2.4.4, 2 servers connected, node3 disconnected',
        'server node1 on host1: driver port 28015, cluster port 29015, tags default, dc1',
        'server node2 on host2: driver port 28016, cluster port 29016, tags default',
        'table bigchain.bigchain: 2 shards x 1 replica, primary node1, node2, NOT all replicas ready, 17 documents',
        'table bigchain.votes: 1 shard x 2 replicas, primary node1, all replicas ready, 4,200 documents',
        'issues: none',
    ]
