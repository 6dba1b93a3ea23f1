#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: server
short_description: Stop or start one node's RethinkDB server
version_added: 0.2.0
description:
  - Stops or starts the node's RethinkDB server through its systemd unit (O(service)), or through the
    inventory's stop and start commands, the one way the collection does it (the C(stopped) snapshot
    backend uses the same options).
extends_documentation_fragment:
  - bigchaindb.rethinkdb.server
options:
  state:
    description:
      - V(stopped) stops the server (the command returns once it has exited); V(started) starts it.
    type: str
    choices: [started, stopped]
    required: true
attributes:
  check_mode:
    support: full
    description: Reports what it would run, and runs nothing.
  diff_mode:
    support: none
    description: The module returns no diff.
  idempotent:
    support: partial
    description: With O(service), a unit already in the state asked for reports no change. The commands are
      always run and report a change (they must succeed when the server is already in that state).
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Stop the node's server
  bigchaindb.rethinkdb.server:
    service: rethinkdb@default
    state: stopped

- name: Start it with the inventory's command
  bigchaindb.rethinkdb.server:
    stop_command: [/usr/local/bin/rethinkdb-ctl, stop]
    start_command: [/usr/local/bin/rethinkdb-ctl, start]
    state: started
'''

RETURN = r'''
cmd:
  description: The command run (would be run, in check mode); null when nothing was needed.
  returned: always
  type: list
  elements: str
  sample: [systemctl, stop, rethinkdb@default]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.server_control import (
    is_active, require_server_commands, server_argument_spec, set_server)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_backends import module_commands
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import SnapshotError


def main():
    argument_spec = server_argument_spec()
    argument_spec.update(state=dict(type='str', required=True, choices=['started', 'stopped']))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[('service', 'stop_command'), ('service', 'start_command')])
    params = module.params
    commands = module_commands(module)
    try:
        argv = require_server_commands(params)['stop' if params['state'] == 'stopped' else 'start']
        if module.check_mode:
            needed = not params['service'] or is_active(commands, params['service']) != (params['state'] == 'started')
            module.exit_json(changed=needed, cmd=argv if needed else None)
        changed = set_server(commands, params, params['state'])
    except SnapshotError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(changed=changed, cmd=argv if changed else None)


if __name__ == '__main__':
    main()
