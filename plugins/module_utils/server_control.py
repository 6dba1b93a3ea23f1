# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stopping and starting one node's RethinkDB server, one way for the whole collection: its systemd unit, or
the inventory's stop and start commands (argument lists, run without a shell)."""

from __future__ import annotations

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import Commands, SnapshotError


def server_argument_spec() -> dict:
    """The options that say how to stop and start the node's server."""
    return dict(
        service=dict(type='str'),
        stop_command=dict(type='list', elements='str'),
        start_command=dict(type='list', elements='str'),
    )


def server_commands(params: dict) -> dict | None:
    """The argv that stops and the argv that starts the server ({stop, start}), or None when the options
    name neither a unit nor both commands."""
    if params.get('service'):
        return dict(stop=['systemctl', 'stop', params['service']], start=['systemctl', 'start', params['service']])
    if params.get('stop_command') and params.get('start_command'):
        return dict(stop=list(params['stop_command']), start=list(params['start_command']))
    return None


def require_server_commands(params: dict) -> dict:
    """server_commands(params), or SnapshotError saying what to set."""
    commands = server_commands(params)
    if commands is None:
        raise SnapshotError('Say how to stop and start the server: service (a systemd unit), or stop_command and '
                            'start_command (argument lists).')
    return commands


def is_active(commands: Commands, service: str) -> bool:
    """Whether a systemd unit is active (running or starting)."""
    rc, dummy_out, dummy_err = commands.attempt(['systemctl', 'is-active', '--quiet', service])
    return rc == 0


def set_server(commands: Commands, params: dict, state: str) -> bool:
    """Bring the server to state (started or stopped); return whether anything was run. A systemd unit is
    asked first, so an unchanged unit reports no change; commands are always run (they must be idempotent:
    stopping a stopped server succeeds)."""
    argv = require_server_commands(params)['stop' if state == 'stopped' else 'start']
    if params.get('service') and is_active(commands, params['service']) == (state == 'started'):
        return False
    commands.run(argv, '%s the server' % ('stop' if state == 'stopped' else 'start'))
    return True
