"""Unit tests of the login_options lookup: inventory variables to the modules' login options."""

from __future__ import annotations

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.bigchaindb.rethinkdb.plugins.lookup.login_options import LookupModule


def login_options(variables: dict) -> dict:
    """What the lookup returns for a host with these variables."""
    lookup = LookupModule(loader=DataLoader(), templar=Templar(loader=DataLoader(), variables=variables))
    [options] = lookup.run([], variables=variables)
    return options


def test_defaults_for_a_node_without_variables():
    assert login_options({}) == {'login_host': 'localhost', 'login_port': 28015, 'login_user': 'admin'}


def test_every_variable_maps_to_its_option():
    options = login_options({
        'rethinkdb_login_host': 'db1.example.org', 'rethinkdb_driver_port': 28016, 'rethinkdb_login_user': 'backup',
        'rethinkdb_login_password_file': '/etc/rethinkdb/password', 'rethinkdb_tls_ca_file': '/etc/rethinkdb/ca.pem',
        'rethinkdb_cluster_port': 29015,
    })

    assert options == {'login_host': 'db1.example.org', 'login_port': 28016, 'login_user': 'backup',
                       'login_password_file': '/etc/rethinkdb/password', 'tls_ca_file': '/etc/rethinkdb/ca.pem'}


def test_templated_variables_are_resolved():
    # Inventory values are trusted templates; a plain string from elsewhere would not be templated.
    options = login_options({'base': 28000, 'rethinkdb_driver_port': trust_as_template('{{ base + 15 }}'), 'rethinkdb_login_password': 'secret'})

    assert options['login_port'] == 28015
    assert options['login_password'] == 'secret'
