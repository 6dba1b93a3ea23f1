# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: server_options
version_added: 0.2.0
short_description: How a node's RethinkDB server is stopped and started, from its inventory variables
description:
  - Returns the options C(service), or C(stop_command) and C(start_command), from the variables
    C(rethinkdb_service) (a systemd unit), or C(rethinkdb_stop_command) and C(rethinkdb_start_command)
    (argument lists), of the host the task runs for; nothing when neither is set.
  - The collection's roles set it as the C(module_defaults) of the action group C(bigchaindb.rethinkdb.server),
    so that the C(server) module and the C(stopped) snapshot backend stop and start servers the same way.
author: bigchaindb.rethinkdb contributors (@bigchaindb)
options: {}
'''

EXAMPLES = r'''
- name: Stop this node's server the way its inventory says
  module_defaults:
    group/bigchaindb.rethinkdb.server: "{{ lookup('bigchaindb.rethinkdb.server_options') }}"
  bigchaindb.rethinkdb.server:
    state: stopped
'''

RETURN = r'''
_raw:
  description: One mapping of module option to value.
  type: list
  elements: dict
'''

from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    """Maps a node's rethinkdb_service or rethinkdb_stop_command/rethinkdb_start_command to the modules' options."""

    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        if 'rethinkdb_service' in variables:
            return [dict(service=self._templar.template(variables['rethinkdb_service']))]
        if 'rethinkdb_stop_command' in variables and 'rethinkdb_start_command' in variables:
            return [dict(stop_command=self._templar.template(variables['rethinkdb_stop_command']),
                         start_command=self._templar.template(variables['rethinkdb_start_command']))]
        return [{}]
