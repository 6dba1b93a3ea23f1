"""Stopping and starting a node's server one way: its systemd unit (asked first), or the inventory's commands."""

from __future__ import annotations

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import server_control
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import SnapshotError

UNIT = dict(service='rethinkdb@default', stop_command=None, start_command=None)
COMMANDS = dict(service=None, stop_command=['/opt/rdb/ctl', 'stop'], start_command=['/opt/rdb/ctl', 'start'])


def test_the_argument_spec_names_a_unit_or_two_commands():
    assert server_control.server_argument_spec() == dict(service=dict(type='str'), stop_command=dict(type='list', elements='str'),
                                                         start_command=dict(type='list', elements='str'))


def test_server_commands_of_a_unit_or_of_commands():
    assert server_control.server_commands(UNIT) == dict(stop=['systemctl', 'stop', 'rethinkdb@default'],
                                                        start=['systemctl', 'start', 'rethinkdb@default'])
    assert server_control.server_commands(dict(COMMANDS, service='')) == dict(stop=['/opt/rdb/ctl', 'stop'], start=['/opt/rdb/ctl', 'start'])
    assert server_control.server_commands(dict(COMMANDS, start_command=None)) is None
    assert server_control.server_commands({}) is None


def test_require_server_commands_says_what_to_set():
    with pytest.raises(SnapshotError) as refused:
        server_control.require_server_commands(dict(COMMANDS, stop_command=[]))

    assert str(refused.value) == ('Say how to stop and start the server: service (a systemd unit), or stop_command and start_command '
                                  '(argument lists).')


def test_is_active_asks_systemd_quietly(run, commands):
    run.answer(['systemctl', 'is-active'], rc=3)

    assert server_control.is_active(commands, 'rethinkdb@default') is False
    assert run.calls == [['systemctl', 'is-active', '--quiet', 'rethinkdb@default']]
    run.rules = []
    assert server_control.is_active(commands, 'rethinkdb@default') is True


@pytest.mark.parametrize('active, state, runs', [
    (True, 'started', None), (False, 'started', 'start'), (True, 'stopped', 'stop'), (False, 'stopped', None),
])
def test_a_unit_already_in_state_is_left_alone(run, commands, active, state, runs):
    run.answer(['systemctl', 'is-active'], rc=0 if active else 3)

    changed = server_control.set_server(commands, UNIT, state)

    assert changed is (runs is not None)
    assert run.calls[1:] == ([['systemctl', runs, 'rethinkdb@default']] if runs else [])


def test_commands_are_always_run(run, commands):
    assert server_control.set_server(commands, COMMANDS, 'stopped') is True
    assert server_control.set_server(commands, COMMANDS, 'started') is True
    assert run.calls == [['/opt/rdb/ctl', 'stop'], ['/opt/rdb/ctl', 'start']]


def test_a_command_that_fails_names_what_it_did(run, commands):
    run.answer(['/opt/rdb/ctl', 'start'], rc=2, stderr='address already in use\n')

    with pytest.raises(SnapshotError) as failed:
        server_control.set_server(commands, COMMANDS, 'started')

    assert str(failed.value) == 'Cannot start the server: /opt/rdb/ctl exited with 2: address already in use'
    assert failed.value.details == dict(argv=['/opt/rdb/ctl', 'start'], rc=2, stdout='', stderr='address already in use\n')
