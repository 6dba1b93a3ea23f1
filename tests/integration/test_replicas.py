"""Setting the replication factor through the replicas playbook, role and module (real ansible-playbook)."""

from __future__ import annotations

from ansible_collections.bigchaindb.rethinkdb.tests.integration.helpers import counts, load_bigchain, table_config

LOGIN = {'login_port': '{{ rethinkdb_driver_port }}', 'login_password_file': '{{ rethinkdb_login_password_file | default(omit) }}'}
TABLES = ('bigchain', 'backlog', 'votes')


def replica_counts(cluster) -> dict:
    """Replicas of each shard of each bigchain table, from table_config."""
    return dict((table, [len(shard['replicas']) for shard in table_config(cluster, table)['shards']]) for table in TABLES)


def test_one_to_three_to_two_replicas_keeps_the_data(cluster, ansible):
    loaded = load_bigchain(cluster, blocks=30)

    to_three = ansible.playbook('bigchaindb.rethinkdb.replicas', {'replicas': 3})
    after_three = replica_counts(cluster)
    again = ansible.playbook('bigchaindb.rethinkdb.replicas', {'replicas': 3})
    to_two = ansible.playbook('bigchaindb.rethinkdb.replicas', {'replicas': 2})

    first = to_three.result('Set shards and replicas')
    assert first['changed'] is True
    assert sorted(first['reconfigured']) == ['bigchain.backlog', 'bigchain.bigchain', 'bigchain.votes']
    assert after_three == {'bigchain': [3], 'backlog': [3], 'votes': [3]}
    assert sorted(first['tables']['bigchain.votes']['after'][0]['replicas']) == ['node1', 'node2', 'node3']
    assert again.result('Set shards and replicas')['changed'] is False
    assert again.result('Set shards and replicas')['reconfigured'] == []
    assert to_two.result('Set shards and replicas')['changed'] is True
    assert replica_counts(cluster) == {'bigchain': [2], 'backlog': [2], 'votes': [2]}
    for node in (1, 2, 3):
        assert counts(cluster, node=node) == loaded
    summary = to_two.result('Show each table\'s shards and replicas')['msg']
    assert any(line.startswith('bigchain.votes: 1 shard, 2 replicas (primary ') and line.endswith('reconfigured') for line in summary)


def test_check_mode_shows_the_diff_and_changes_nothing(cluster, ansible):
    load_bigchain(cluster, blocks=3)
    before = dict((table, table_config(cluster, table)) for table in TABLES)

    run = ansible.playbook('bigchaindb.rethinkdb.replicas', {'replicas': 3, 'shards': 2}, check=True, diff=True)

    result = run.result('Set shards and replicas')
    assert result['changed'] is True
    assert dict((table, table_config(cluster, table)) for table in TABLES) == before
    planned = result['diff']['after']['bigchain.votes']['shards']
    assert len(planned) == 2 and all(len(shard['replicas']) == 3 for shard in planned)
    assert result['diff']['before']['bigchain.votes']['shards'] == before['votes']['shards']
    assert 'bigchain.votes' in run.output and 'shards' in run.output


def test_more_replicas_than_servers_fails_cleanly(cluster, ansible):
    load_bigchain(cluster, blocks=3)
    before = replica_counts(cluster)

    run = ansible.playbook('bigchaindb.rethinkdb.replicas', {'replicas': 5}, expect_rc=2)

    assert run.failures() == [(
        'Set shards and replicas', 'node1',
        "Cannot reconfigure bigchain.backlog: Can't put 5 replicas on servers with the tag `default` because there are only 3 "
        "servers with the tag `default`. It's impossible to have more replicas of the data than there are servers.")]
    assert replica_counts(cluster) == before


def test_a_stopped_node_is_refused_by_the_role_and_times_out_the_module(cluster, ansible):
    load_bigchain(cluster, blocks=3, replicas=3)
    cluster.stop_node('node3')

    refused = ansible.playbook('bigchaindb.rethinkdb.replicas', {'replicas': 2}, expect_rc=2)
    timed_out = ansible.module('replicas', dict(LOGIN, replicas=3, tables=['votes'], wait_timeout=3), expect_failure=True)

    assert refused.failures()[0][1] == 'node3'
    assert refused.failures()[0][2].startswith('Server node3 (node3) is not connected to the cluster (connected: node1, node2)')
    assert refused.results('Set shards and replicas') == []
    assert timed_out['changed'] is False
    assert timed_out['msg'] == 'Tables not all_replicas_ready after 3 seconds: bigchain.votes (node3 disconnected).'
    assert {'shard': 1, 'server': 'node3', 'state': 'disconnected'} in timed_out['not_ready']['bigchain.votes']
