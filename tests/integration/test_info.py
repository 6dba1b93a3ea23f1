"""bigchaindb.rethinkdb.info through real ansible-playbook runs on a 3-node cluster."""

from __future__ import annotations

from ansible_collections.bigchaindb.rethinkdb.tests.integration.helpers import load_bigchain

LOGIN = {'login_port': '{{ rethinkdb_driver_port }}', 'login_password_file': '{{ rethinkdb_login_password_file | default(omit) }}'}


def test_facts_of_a_three_node_cluster(cluster, ansible):
    loaded = load_bigchain(cluster, replicas=3)

    facts = ansible.module('info', dict(LOGIN, count=True, wait_ready=True), host='node2')

    assert facts['changed'] is False
    assert [server['name'] for server in facts['servers']] == ['node1', 'node2', 'node3']
    assert sorted(server['driver_port'] for server in facts['servers']) == sorted(node.driver_port for node in cluster.nodes)
    assert all(set(server['connected_to']) == {'node1', 'node2', 'node3'} - {server['name']} for server in facts['servers'])
    assert facts['version'].startswith('2.4.')
    assert 'bigchain' in facts['databases']
    for table in ('bigchain', 'votes', 'backlog'):
        entry = facts['tables']['bigchain.' + table]
        assert entry['documents'] == loaded[table]
        assert (entry['shards'], entry['replicas'], entry['ready']) == (1, 3, True)
        assert sorted(state['server'] for state in entry['replica_states']) == ['node1', 'node2', 'node3']
    assert 'transaction_id' in facts['tables']['bigchain.bigchain']['indexes']
    assert facts['issues'] == [] and facts['ready'] is True and facts['disconnected_servers'] == []


def test_a_stopped_node_shows_and_wait_times_out_naming_it(cluster, ansible):
    load_bigchain(cluster, blocks=5, replicas=3)
    cluster.stop_node('node3')

    facts = ansible.module('info', dict(LOGIN, tables=['bigchain.votes']))
    timed_out = ansible.module('info', dict(LOGIN, tables=['bigchain.votes'], wait_ready=True, wait_timeout=2), expect_failure=True)

    assert facts['disconnected_servers'] == ['node3']
    assert facts['tables']['bigchain.votes']['ready'] is False
    assert {'shard': 1, 'server': 'node3', 'state': 'disconnected'} in facts['tables']['bigchain.votes']['replica_states']
    assert facts['issues'], 'a missing replica is a current issue'
    assert timed_out['msg'] == 'Tables not all_replicas_ready after 2 seconds: bigchain.votes (node3 disconnected).'


def test_bad_input_gives_one_line_errors(cluster, ansible):
    load_bigchain(cluster, blocks=2)
    closed_port = cluster.node(3).driver_port
    cluster.stop_node('node3')

    wrong_port = ansible.module('info', {'login_port': closed_port}, expect_failure=True)
    wrong_table = ansible.module('info', dict(LOGIN, tables=['bigchain.blocks']), expect_failure=True)
    bad_name = ansible.module('info', dict(LOGIN, tables=['votes']), expect_failure=True)

    assert wrong_port['msg'].startswith('Cannot connect to RethinkDB at localhost:%d as admin: ' % closed_port)
    assert 'refused' in wrong_port['msg'].lower()
    assert wrong_table['msg'].startswith('Table bigchain.blocks does not exist on the cluster at localhost:')
    assert bad_name['msg'] == "tables: 'votes' is not a table name of the form database.table."
    for result in (wrong_port, wrong_table, bad_name):
        assert '\n' not in result['msg'] and 'Traceback' not in str(result)


def test_wrong_password_is_refused_and_never_shown(cluster_factory, tmp_path):
    from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import Ansible
    cluster = cluster_factory(1, password='correct horse')
    ansible = Ansible(tmp_path, cluster.write_inventory(tmp_path / 'inventory.yml'))

    good = ansible.module('info', LOGIN)
    bad = ansible.module('info', {'login_port': '{{ rethinkdb_driver_port }}', 'login_password': 'battery staple'}, expect_failure=True)

    assert [server['name'] for server in good['servers']] == ['node1']
    assert bad['msg'] == 'Cannot connect to RethinkDB at localhost:%d as admin: Wrong password.' % cluster.node(1).driver_port
    assert 'battery staple' not in str(bad)
