# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: login_options
version_added: 0.1.0
short_description: The login options of a RethinkDB node, from its inventory variables
description:
  - Returns the login options of the collection's modules (C(login_host), C(login_port), C(login_user),
    C(login_password) or C(login_password_file), C(tls_ca_file)) from the variables C(rethinkdb_login_host)
    (default C(localhost)), C(rethinkdb_driver_port) (default 28015), C(rethinkdb_login_user) (default
    C(admin)), C(rethinkdb_login_password), C(rethinkdb_login_password_file) and C(rethinkdb_tls_ca_file) of
    the host the task runs for; unset variables are left out.
  - The collection's roles and playbooks set it as the C(module_defaults) of the action group
    C(bigchaindb.rethinkdb.rethinkdb), so every module that logs in uses the node's inventory.
author: bigchaindb.rethinkdb contributors (@bigchaindb)
options: {}
'''

EXAMPLES = r'''
- name: Read the facts of the cluster that this node belongs to
  module_defaults:
    group/bigchaindb.rethinkdb.rethinkdb: "{{ lookup('bigchaindb.rethinkdb.login_options') }}"
  block:
    - name: Gather facts
      bigchaindb.rethinkdb.info:
'''

RETURN = r'''
_raw:
  description: One mapping of module option to value.
  type: list
  elements: dict
'''

from ansible.plugins.lookup import LookupBase

# Module option -> (inventory variable, default when the variable is unset; None leaves the option out).
LOGIN_VARIABLES = {
    'login_host': ('rethinkdb_login_host', 'localhost'),
    'login_port': ('rethinkdb_driver_port', 28015),
    'login_user': ('rethinkdb_login_user', 'admin'),
    'login_password': ('rethinkdb_login_password', None),
    'login_password_file': ('rethinkdb_login_password_file', None),
    'tls_ca_file': ('rethinkdb_tls_ca_file', None),
}


class LookupModule(LookupBase):
    """Maps a node's rethinkdb_* variables to the modules' login options, in one place."""

    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        options = {}
        for option, (name, default) in LOGIN_VARIABLES.items():
            if name in variables:
                options[option] = self._templar.template(variables[name])
            elif default is not None:
                options[option] = default
        return [options]
