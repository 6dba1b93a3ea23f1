#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: scratch_cluster_info
short_description: List the scratch RethinkDB clusters of restore rehearsals on a host
version_added: 0.3.0
description:
  - Lists the scratch clusters that M(bigchaindb.rethinkdb.scratch_cluster) made under O(directory), with the
    controller run that made each, when it expires, and which of its servers and its keeper still run.
  - The C(restore) role's rehearsal removes, before it makes its own, those whose run is gone (tested on the
    controller) or whose lifetime is over, which a rehearsal killed with its controller leaves; a directory
    without the record of a scratch cluster is left alone.
options:
  directory:
    description:
      - The directory that holds scratch clusters. A directory that does not exist holds none.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: The module changes nothing.
  idempotent:
    support: full
    description: The module changes nothing.
seealso:
  - module: bigchaindb.rethinkdb.scratch_cluster
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: List what rehearsals left on this host
  bigchaindb.rethinkdb.scratch_cluster_info:
    directory: /var/tmp/bigchaindb-rethinkdb-rehearsal
  register: scratch

- name: Show the scratch clusters whose servers still run
  ansible.builtin.debug:
    msg: "{{ scratch.clusters | selectattr('running') | map(attribute='path') }}"
'''

RETURN = r'''
clusters:
  description: Every scratch cluster under O(directory), by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Its name.
      type: str
    path:
      description: Its directory.
      type: str
    recorded:
      description: Whether it holds the record of a scratch cluster made there (without one it is never removed).
      type: bool
    run:
      description: The controller run that made it (host, boot, process); null when its record is missing.
      type: dict
    servers:
      description: Its servers' names.
      type: list
      elements: str
    created_at:
      description: When it was made, in seconds since the epoch.
      type: float
    expires_at:
      description: When its keeper removes it at the latest, in seconds since the epoch.
      type: float
    expired:
      description: Whether that time has passed (also true for a directory without a record).
      type: bool
    ports:
      description: Each server's C(driver_port) and C(cluster_port), once started.
      type: dict
    running:
      description: The servers whose processes still run.
      type: list
      elements: str
    keeper_running:
      description: Whether its keeper still runs.
      type: bool
  sample:
    - name: 20261202T051500Z-a1b2
      path: /var/tmp/bigchaindb-rethinkdb-rehearsal/20261202T051500Z-a1b2
      recorded: true
      run: {host: controller, boot_id: 0b5c..., pid: 4242, start_ticks: 123456}
      servers: [node1, node2, node3]
      created_at: 1796187300.5
      expires_at: 1796201700.5
      expired: false
      ports: {node1: {driver_port: 41235, cluster_port: 41236}}
      running: [node1, node2, node3]
      keeper_running: true
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.scratch_cluster import listing


def main():
    module = AnsibleModule(argument_spec=dict(directory=dict(type='path', required=True)), supports_check_mode=True)
    try:
        clusters = listing(module.params['directory'])
    except OSError as exc:
        module.fail_json(msg='Cannot list the scratch clusters in %s: %s.' % (module.params['directory'], exc.strerror or exc))
    module.exit_json(changed=False, clusters=clusters)


if __name__ == '__main__':
    main()
