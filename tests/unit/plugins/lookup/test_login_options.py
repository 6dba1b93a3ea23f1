"""Unit tests of the login_options lookup: inventory variables to the modules' login options."""

from __future__ import annotations

from ansible_collections.bigchaindb.rethinkdb.plugins.lookup.login_options import LookupModule


class Templar:
    """Stands in for Ansible's templar (the controller's templating is exercised by the integration tests):
    marks each value it was asked to template."""

    def template(self, value):
        return ('templated', value)


def login_options(variables: dict) -> dict:
    """What the lookup returns for a host with these variables."""
    [options] = LookupModule(templar=Templar()).run([], variables=variables)
    return options


def test_defaults_for_a_node_without_variables():
    assert login_options({}) == {'login_host': 'localhost', 'login_port': 28015, 'login_user': 'admin'}


def test_every_variable_maps_to_its_option_through_the_templar():
    options = login_options({
        'rethinkdb_login_host': 'db1.example.org', 'rethinkdb_driver_port': '{{ base + 1 }}', 'rethinkdb_login_user': 'backup',
        'rethinkdb_login_password_file': '/etc/rethinkdb/password', 'rethinkdb_tls_ca_file': '/etc/rethinkdb/ca.pem',
        'rethinkdb_cluster_port': 29015,
    })

    assert options == {'login_host': ('templated', 'db1.example.org'), 'login_port': ('templated', '{{ base + 1 }}'),
                       'login_user': ('templated', 'backup'), 'login_password_file': ('templated', '/etc/rethinkdb/password'),
                       'tls_ca_file': ('templated', '/etc/rethinkdb/ca.pem')}


def test_a_password_is_passed_on_and_unset_ones_left_out():
    options = login_options({'rethinkdb_login_password': 'secret'})

    assert options['login_password'] == ('templated', 'secret')
    assert 'login_password_file' not in options and 'tls_ca_file' not in options
