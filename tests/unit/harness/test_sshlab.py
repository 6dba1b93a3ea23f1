# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a lab hands Ansible, checked without starting one: SSH hosts with become, and server commands that use
only flags the real server has, the service user, and the nodes' own addresses."""

from __future__ import annotations

import pytest

from ansible_collections.bigchaindb.rethinkdb.tests.harness import sshlab
from ansible_collections.bigchaindb.rethinkdb.tests.reql_server import cli


@pytest.fixture(name='lab')
def fixture_lab(tmp_path):
    lab = sshlab.Lab(size=3, password='secret', tags={'node2': ['east']}, parent=tmp_path)
    yield lab
    lab.teardown()
    assert not lab.root.exists()


def test_hosts_are_reached_over_ssh_as_the_lab_user_with_become(lab):
    inventory = lab.inventory(rethinkdb_backup_root='/srv/backups')
    group = inventory['all']['children']['rethinkdb']
    assert group['vars'] == {'rethinkdb_backup_root': '/srv/backups',
                             'rethinkdb_login_password_file': str(lab.password_file)}
    assert list(group['hosts']) == ['node1', 'node2', 'node3']
    node2 = group['hosts']['node2']
    assert {key: node2[key] for key in ('ansible_connection', 'ansible_host', 'ansible_user', 'ansible_become',
                                        'rethinkdb_driver_port', 'rethinkdb_cluster_port')} == {
        'ansible_connection': 'ssh', 'ansible_host': '10.231.0.12', 'ansible_user': sshlab.SSH_USER,
        'ansible_become': True, 'rethinkdb_driver_port': 28015, 'rethinkdb_cluster_port': 29015}
    assert 'UserKnownHostsFile=%s' % lab.known_hosts in node2['ansible_ssh_common_args']
    assert node2['ansible_control_path_dir'].startswith(str(lab.root))
    assert node2['rethinkdb_data_dir'] == str(lab.root / 'node2' / 'rethinkdb' / 'default')


def server_flags(command: list) -> list:
    """The flags of a start command, after the test server's path."""
    return command[command.index(str(sshlab.TEST_SERVER)) + 1:]


def test_the_start_command_runs_the_server_as_the_service_user_with_real_flags(lab, monkeypatch):
    monkeypatch.delenv('RETHINKDB_BIN', raising=False)
    start = lab.node('node2').start_command()
    assert start[:5] == ['setpriv', '--reuid=rdblab-db', '--regid=rdblab-db', '--init-groups', '--']
    parsed = cli.parse(server_flags(start))
    assert (parsed['bind'], parsed['canonical_addresses'], parsed['join'], parsed['server_tags']) == (
        ['127.0.0.1', '10.231.0.12'], ['10.231.0.12:29015'], ['10.231.0.11:29015', '10.231.0.13:29015'], ['east'])
    assert cli.parse(server_flags(lab.node('node1').start_command()))['join'] == []


def test_the_real_binary_gets_the_same_flags(lab, monkeypatch):
    monkeypatch.delenv('RETHINKDB_BIN', raising=False)
    test_server = lab.node('node1').start_command()
    monkeypatch.setenv('RETHINKDB_BIN', '/opt/rethinkdb/bin/rethinkdb')
    real = lab.node('node1').start_command()
    assert real[:6] == test_server[:5] + ['/opt/rethinkdb/bin/rethinkdb']
    assert real[6:] == server_flags(test_server)
