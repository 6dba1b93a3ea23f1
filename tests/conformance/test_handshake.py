"""The V1_0 handshake: connecting with and without a password, and the errors for bad credentials."""

from __future__ import annotations

import pytest
from rethinkdb.errors import ReqlAuthError

from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import Cluster

PASSWORD = 'c0nformance-secret'


@pytest.fixture(scope='module')
def secured(tmp_path_factory):
    """One server whose admin user has a password."""
    with Cluster(tmp_path_factory.mktemp('secured'), size=1, password=PASSWORD) as cluster:
        yield cluster


def test_admin_without_password_connects_and_reports_the_server(r, cluster):
    with cluster.connect('node2') as connection:
        info = connection.server()
        assert info['name'] == 'node2'
        assert info['proxy'] is False
        assert r.expr([1, 'two', {'three': 3.5}]).run(connection) == [1, 'two', {'three': 3.5}]


def test_admin_with_password_connects(r, secured):
    with secured.connect() as connection:
        assert r.db('rethinkdb').table('users').get('admin')['password'].run(connection) is True


def test_wrong_password_is_an_auth_error(r, secured):
    node = secured.node('node1')
    with pytest.raises(ReqlAuthError) as raised:
        r.connect(host=secured.host, port=node.driver_port, password='wrong')
    assert str(raised.value) == 'Could not connect to %s:%d, Wrong password' % (secured.host, node.driver_port)


def test_missing_password_is_an_auth_error(r, secured):
    node = secured.node('node1')
    with pytest.raises(ReqlAuthError) as raised:
        r.connect(host=secured.host, port=node.driver_port)
    assert str(raised.value).endswith(', Wrong password')


def test_unknown_user_is_an_auth_error(r, secured):
    node = secured.node('node1')
    with pytest.raises(ReqlAuthError) as raised:
        r.connect(host=secured.host, port=node.driver_port, user='nobody', password='x')
    assert str(raised.value) == 'Could not connect to %s:%d, Unknown user' % (secured.host, node.driver_port)


def test_password_file_in_inventory(secured):
    inventory = secured.inventory()
    group = inventory['all']['children']['rethinkdb']
    assert group['vars']['rethinkdb_login_password_file'] == str(secured.password_file)
    assert secured.password_file.read_text() == PASSWORD + '\n'
    assert oct(secured.password_file.stat().st_mode & 0o777) == '0o600'
