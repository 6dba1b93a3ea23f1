"""Unit tests of the server_options lookup: how a node's server is stopped and started, from its variables."""

from __future__ import annotations

from ansible_collections.bigchaindb.rethinkdb.plugins.lookup.server_options import LookupModule
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.lookup.test_login_options import Templar

STOP = ['/opt/rdb/ctl', 'stop']
START = ['/opt/rdb/ctl', 'start']


def server_options(variables) -> dict:
    [options] = LookupModule(templar=Templar()).run([], variables=variables)
    return options


def test_a_systemd_unit_wins():
    assert server_options({'rethinkdb_service': 'rethinkdb@default', 'rethinkdb_stop_command': STOP, 'rethinkdb_start_command': START}) \
        == {'service': ('templated', 'rethinkdb@default')}


def test_both_commands_or_nothing():
    assert server_options({'rethinkdb_stop_command': STOP, 'rethinkdb_start_command': START}) == {
        'stop_command': ('templated', STOP), 'start_command': ('templated', START)}
    assert server_options({'rethinkdb_stop_command': STOP}) == {}
    assert server_options({}) == {} and server_options(None) == {}
