#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: scratch_cluster
short_description: Start a throw-away RethinkDB cluster for a restore rehearsal, and remove it with everything it wrote
version_added: 0.3.0
description:
  - Runs RethinkDB servers on the host the module runs on, each on free ports of its own and bound to O(bind)
    (loopback by default), with every file under one directory, C(<directory>/<name>), so that a restore can be
    rehearsed without touching any other server. The C(restore) role's C(rehearsal) task list uses it.
  - O(state=present) makes the directory (mode 0700), a directory for each of O(servers) and a record of the
    controller run that made it (C(run.json)), and starts a keeper, a detached process that stops the servers
    and removes the directory once that run is gone (when the run is on this host, tested every second) or
    O(lifetime) has passed, whichever comes first.
  - Between O(state=present) and O(state=started), each server's data directory, C(<directory>/<name>/<server>/data),
    may be filled from a snapshot set's part (M(bigchaindb.rethinkdb.data_restore)). The servers then start from
    it, keeping the names and the users their data holds; without data directories they start empty, and the
    admin user gets a random password.
  - O(state=started) starts every server as a daemon, joined to the others, waits until each answers, is the
    server its data directory says it is, and sees all others connected, and writes the admin password to a
    file only its owner can read. RV(login) is what the modules of the collection need to log in to it.
  - O(state=absent) ends the keeper, stops the servers (SIGTERM, SIGKILL after 30 seconds) and removes the
    directory. A directory without the record of a scratch cluster made there is refused, and left alone.
options:
  state:
    description:
      - What to do, see the description.
    type: str
    choices: [present, started, absent]
    required: true
  directory:
    description:
      - The directory that holds scratch clusters, one subdirectory each (see M(bigchaindb.rethinkdb.scratch_cluster_info)).
    type: path
    required: true
  name:
    description:
      - The scratch cluster's name, its subdirectory of O(directory), of letters, digits, C(_), C(.) and C(-).
    type: str
    required: true
  servers:
    description:
      - The servers' names, for O(state=present) and O(state=started). The servers of a snapshot set must keep
        their names (a server keeps its name in its data directory).
    type: list
    elements: str
  run:
    description:
      - For O(state=present), the controller run that makes the cluster (the C(bigchaindb.rethinkdb.controller_run)
        lookup), kept in its record, which its keeper and later rehearsals test.
    type: dict
    default: {}
  lifetime:
    description:
      - For O(state=present), seconds after which the keeper stops and removes the cluster whatever happens.
    type: int
    default: 14400
  binary:
    description:
      - The argv that runs a RethinkDB server on this host, before its flags, like V([/usr/bin/rethinkdb]).
    type: list
    elements: str
    default: [rethinkdb]
  bind:
    description:
      - The address the servers listen on, for clients and for each other.
    type: str
    default: 127.0.0.1
  cache_size:
    description:
      - Each server's cache in MB (C(--cache-size)); the server's default (half the free memory) when unset.
    type: int
  login_user:
    description:
      - For data directories restored from a set, the user to log in as (its users table is the backed-up cluster's).
    type: str
    default: admin
  login_password:
    description:
      - For data directories restored from a set, that user's password in the backed-up cluster.
      - Mutually exclusive with O(login_password_file).
    type: str
  login_password_file:
    description:
      - A file on this host holding that password (one trailing newline is ignored).
    type: path
  wait_timeout:
    description:
      - For O(state=started), seconds to wait until every server answers and sees all others.
    type: int
    default: 120
attributes:
  check_mode:
    support: none
    description: Servers cannot be started in part; in check mode the task is skipped.
  diff_mode:
    support: none
    description: What was made is in the result.
  idempotent:
    support: partial
    description: O(state=present) and O(state=absent) again change nothing; O(state=started) starts the servers that
      do not run, on new ports.
notes:
  - The password of O(login_password) or O(login_password_file) is written, for the duration, to
    C(<directory>/<name>/admin-password) (mode 0600), which O(state=absent) and the keeper remove.
requirements:
  - rethinkdb (the Python driver) for O(state=started)
seealso:
  - module: bigchaindb.rethinkdb.scratch_cluster_info
  - module: bigchaindb.rethinkdb.data_restore
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Make a scratch cluster of the set's servers
  bigchaindb.rethinkdb.scratch_cluster:
    state: present
    directory: /var/tmp/bigchaindb-rethinkdb-rehearsal
    name: 20261202T051500Z-a1b2
    servers: [node1, node2, node3]
    run: "{{ lookup('bigchaindb.rethinkdb.controller_run') }}"
    lifetime: 7200

- name: Start it once every data directory is staged
  bigchaindb.rethinkdb.scratch_cluster:
    state: started
    directory: /var/tmp/bigchaindb-rethinkdb-rehearsal
    name: 20261202T051500Z-a1b2
    servers: [node1, node2, node3]
    binary: [/usr/bin/rethinkdb]
    cache_size: 256
    bind: 127.0.0.1
    login_user: admin
    login_password_file: /var/tmp/bigchaindb-rethinkdb-rehearsal/20261202T051500Z-a1b2/set-password
    wait_timeout: 300
  register: scratch

- name: Count its documents
  bigchaindb.rethinkdb.info:
    count: true
  module_defaults:
    group/bigchaindb.rethinkdb.rethinkdb: "{{ scratch.login }}"

- name: Or start one server of a set whose admin password is in a vault
  bigchaindb.rethinkdb.scratch_cluster:
    state: started
    directory: /var/tmp/bigchaindb-rethinkdb-rehearsal
    name: 20261202T051500Z-c3d4
    servers: [node1]
    login_password: "{{ vault_rethinkdb_admin_password }}"

- name: Stop and remove it
  bigchaindb.rethinkdb.scratch_cluster:
    state: absent
    directory: /var/tmp/bigchaindb-rethinkdb-rehearsal
    name: 20261202T051500Z-a1b2
'''

RETURN = r'''
path:
  description: The scratch cluster's directory.
  returned: always
  type: str
  sample: /var/tmp/bigchaindb-rethinkdb-rehearsal/20261202T051500Z-a1b2
layout:
  description: Each server's directory and data directory, by name.
  returned: when state is present
  type: dict
  sample: {node1: {directory: /var/tmp/bigchaindb-rethinkdb-rehearsal/20261202T051500Z-a1b2/node1,
                   data_dir: /var/tmp/bigchaindb-rethinkdb-rehearsal/20261202T051500Z-a1b2/node1/data}}
keeper:
  description: The keeper process (C(pid), C(start_ticks)).
  returned: when state is present
  type: dict
  sample: {pid: 41822, start_ticks: 9183422}
expires_at:
  description: When the keeper removes the cluster at the latest, in seconds since the epoch.
  returned: when state is present
  type: float
  sample: 1796188500.25
servers:
  description: Each server, started, with C(name), C(id), C(pid), C(driver_port), C(cluster_port), C(data_dir) and C(log_file).
  returned: when state is started
  type: list
  elements: dict
  sample: [{name: node1, id: 6c7b1f4e-2f0e-4e65-9b6a-0a1d2c3e4f50, pid: 41830, driver_port: 41235, cluster_port: 41236,
            data_dir: /var/tmp/bigchaindb-rethinkdb-rehearsal/20261202T051500Z-a1b2/node1/data,
            log_file: /var/tmp/bigchaindb-rethinkdb-rehearsal/20261202T051500Z-a1b2/node1/server.log}]
restored:
  description: Whether the servers started from data directories restored from a set (else empty).
  returned: when state is started
  type: bool
  sample: true
login:
  description: The login options of the collection's modules for this cluster (C(login_host), C(login_port),
    C(login_user), C(login_password_file)).
  returned: when state is started
  type: dict
  sample: {login_host: 127.0.0.1, login_port: 41235, login_user: admin,
           login_password_file: /var/tmp/bigchaindb-rethinkdb-rehearsal/20261202T051500Z-a1b2/admin-password}
seconds:
  description: How long the step took.
  returned: always
  type: float
  sample: 4.812
stopped:
  description: The servers that were running and were stopped.
  returned: when state is absent
  type: list
  elements: str
  sample: [node1, node2, node3]
killed:
  description: The servers that did not stop within 30 seconds and were killed.
  returned: when state is absent
  type: list
  elements: str
  sample: []
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import scratch_keeper
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import ensure_driver, login_password
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.scratch_cluster import (
    Scratch, ScratchError, check_name, create, launch_keeper, start)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_backends import module_commands
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import SnapshotError


def argument_spec() -> dict:
    return dict(
        state=dict(type='str', required=True, choices=['present', 'started', 'absent']),
        directory=dict(type='path', required=True),
        name=dict(type='str', required=True),
        servers=dict(type='list', elements='str'),
        run=dict(type='dict', default={}),
        lifetime=dict(type='int', default=14400),
        binary=dict(type='list', elements='str', default=['rethinkdb']),
        bind=dict(type='str', default='127.0.0.1'),
        cache_size=dict(type='int'),
        login_user=dict(type='str', default='admin'),
        login_password=dict(type='str', no_log=True),
        login_password_file=dict(type='path', no_log=False),
        wait_timeout=dict(type='int', default=120),
    )


def servers_of(module) -> list:
    """The servers option, checked: names that can be directories, each once."""
    servers = module.params['servers']
    if not servers or len(set(servers)) != len(servers):
        module.fail_json(msg='servers must name each server of the scratch cluster once.')
    for server in servers:
        check_name(server, 'server')
    return servers


def make_present(module, scratch: Scratch) -> dict:
    params = module.params
    servers = servers_of(module)
    if params['lifetime'] < 1:
        module.fail_json(msg='lifetime must be at least 1 second, got %d.' % params['lifetime'])
    existed = scratch.record() is not None
    record = create(scratch, servers, params['run'], params['lifetime'])
    if not scratch_keeper.is_process(record.get('keeper')):
        record = launch_keeper(module_commands(module), scratch, record)
    return dict(changed=not existed, layout=scratch.layout(servers), keeper=record['keeper'], expires_at=record['expires_at'])


def make_started(module, scratch: Scratch) -> dict:
    params = module.params
    ensure_driver(module)
    servers = servers_of(module)
    if params['wait_timeout'] < 1:
        module.fail_json(msg='wait_timeout must be at least 1 second, got %d.' % params['wait_timeout'])
    if not params['binary']:
        module.fail_json(msg='binary is empty: give the argv that runs a RethinkDB server on this host.')
    options = dict(binary=params['binary'], bind=params['bind'], cache_size=params['cache_size'], user=params['login_user'],
                   password=login_password(module), wait_timeout=params['wait_timeout'])
    running = scratch_keeper.server_pids(scratch.path)
    if running:
        module.fail_json(msg='Servers %s of scratch cluster %s already run: remove it (state=absent) and make it again.'
                         % (', '.join(sorted(running)), scratch.path))
    return dict(changed=True, **start(module_commands(module), scratch, servers, options))


def make_absent(scratch: Scratch) -> dict:
    if not os.path.lexists(scratch.path):
        return dict(changed=False, stopped=[], killed=[])
    if (scratch.record() or {}).get('path') != scratch.path:
        raise ScratchError('%s is not a scratch cluster (it has no record of one, %s): nothing was removed; remove it by hand if it '
                           'is what a rehearsal left.' % (scratch.path, scratch.run_file))
    scratch_keeper.end_keeper(scratch.path)
    removed = scratch_keeper.remove(scratch.path)
    if not removed['removed']:
        raise ScratchError('Scratch cluster %s could not be removed entirely; remove what is left by hand.' % scratch.path)
    return dict(changed=True, stopped=removed['stopped'], killed=removed['killed'])


def main():
    module = AnsibleModule(argument_spec=argument_spec(), mutually_exclusive=[('login_password', 'login_password_file')],
                           supports_check_mode=False)
    params = module.params
    started = time.monotonic()
    try:
        scratch = Scratch(params['directory'], params['name'])
        if params['state'] == 'present':
            result = make_present(module, scratch)
        elif params['state'] == 'started':
            result = make_started(module, scratch)
        else:
            result = make_absent(scratch)
    except (ScratchError, SnapshotError) as exc:
        module.fail_json(msg=str(exc), **getattr(exc, 'details', {}))
    except OSError as exc:
        module.fail_json(msg='%s: %s.' % (exc.filename or params['directory'], exc.strerror or exc))
    module.exit_json(path=scratch.path, seconds=round(time.monotonic() - started, 3), **result)


if __name__ == '__main__':
    main()
