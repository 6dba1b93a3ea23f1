#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: snapshot_info
short_description: Tell whether a node can take its part of a coordinated RethinkDB snapshot
version_added: 0.2.0
description:
  - The preflight of M(bigchaindb.rethinkdb.snapshot), on one node; it changes nothing.
  - Checks that the backend can snapshot the data directory's filesystem and that its tools are installed,
    that the filesystems written to (the staging copy, the archive) have room, and that the repository the
    node writes its part to answers (for a C(path) repository, that the set begun on the controller is
    there, which proves the node mounts the same directory).
  - Reports the node lock's holder, if any, with whether its lease has run out, so that the caller can tell
    a running backup from one that was interrupted, and the node's clock, for the offset check.
  - Problems are returned in RV(problems), not raised; the C(backup) role fails on them, naming each node's.
extends_documentation_fragment:
  - bigchaindb.rethinkdb.snapshot
  - bigchaindb.rethinkdb.server
  - bigchaindb.rethinkdb.repository
options:
  backend:
    required: true
  dest:
    description:
      - The file the archive will be written to on this node, when it goes to a file (for a repository of
        kind C(controller)); its filesystem must have room for it.
    type: path
  min_free_bytes:
    description:
      - Free bytes that each filesystem written to (the staging copy, the archive) must have.
      - Unset, the data directory's size is required for the copy and again for the archive (an archive is
        never much larger than its data), summed where they share a filesystem.
    type: int
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
  - module: bigchaindb.rethinkdb.snapshot
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Preflight every node before a btrfs snapshot into a shared path
  bigchaindb.rethinkdb.snapshot_info:
    data_dir: /var/lib/rethinkdb/default
    backend: btrfs
    set_id: 20261124T163000Z-snapshot-3f9a
    repository: path:/mnt/backups/rethinkdb
    cluster: rethinkdb
  register: preflight

- name: Fail on what the preflight found
  ansible.builtin.assert:
    that: preflight.problems | length == 0
    fail_msg: "{{ preflight.problems | join(' ') }}"

- name: Preflight the stopped backend, with the archive written to a file on the node
  bigchaindb.rethinkdb.snapshot_info:
    data_dir: /var/lib/rethinkdb/default
    backend: stopped
    service: rethinkdb@default
    staging_dir: /srv/staging
    freeze_timeout: 900
    lvm_snapshot_size: 20%ORIGIN
    dest: /var/tmp/rethinkdb-backup/data.tar.zst
    min_free_bytes: 20000000000

- name: Preflight stopping and starting by commands, with the parts written to S3
  bigchaindb.rethinkdb.snapshot_info:
    data_dir: /var/lib/rethinkdb/default
    backend: stopped
    stop_command: [/usr/local/bin/rethinkdb-ctl, stop]
    start_command: [/usr/local/bin/rethinkdb-ctl, start]
    repository: s3://backups/rethinkdb
    cluster: rethinkdb
    s3_endpoint_url: https://s3.example.net
    s3_region: eu-west-1
    s3_credentials_file: /etc/rethinkdb/s3-credentials
    s3_profile: backups
    s3_ca_bundle: /etc/ssl/certs/example-ca.pem
'''

RETURN = r'''
now:
  description: The node's clock when the module started, in seconds since the epoch.
  returned: always
  type: float
  sample: 1795537800.123
now_iso:
  description: RV(now) in ISO 8601 UTC.
  returned: always
  type: str
  sample: "2026-11-24T16:30:00.123Z"
problems:
  description: Why the snapshot cannot be taken now; empty when it can.
  returned: always
  type: list
  elements: str
  sample: ["/srv/rethinkdb/default is on a ext4 filesystem (/srv), not btrfs."]
data_bytes:
  description: Size of the data directory's regular files.
  returned: always
  type: int
  sample: 734003200
free_space:
  description: Each filesystem the snapshot writes to, with the bytes needed and available.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The directory written to.
      type: str
    mountpoint:
      description: Where its filesystem is mounted.
      type: str
    needed:
      description: Bytes needed there.
      type: int
    available:
      description: Bytes available there.
      type: int
  sample: [{"path": "/srv/rethinkdb", "mountpoint": "/srv", "needed": 734003200, "available": 9000000000}]
lock_file:
  description: Path of the node lock.
  returned: always
  type: str
  sample: /var/lib/rethinkdb/default.backup-lock
lock:
  description: The lock's content when a lock exists (its set, who took it, when, until when, what it took), else null.
  returned: always
  type: dict
  sample: {"set_id": "20261124T163000Z-snapshot-3f9a", "run": {"host": "ops1", "pid": 4242}, "phase": "taken"}
lock_expired:
  description: Whether the lock's lease has run out (null without a lock).
  returned: always
  type: bool
  sample: false
lock_message:
  description: Who holds the lock and how to break it, in one sentence (null without a lock).
  returned: always
  type: str
  sample: >-
    Backup set 20261124T163000Z-snapshot-3f9a holds the lock /var/lib/rethinkdb/default.backup-lock (taken by
    ansible-playbook pid 4242 on ops1 at 2026-11-24T16:30:00Z, until 2026-11-25T04:30:00Z). If that run no longer
    runs, a backup breaks it once it expires, or at once with backup_break_lock=true (the role), or release it with
    state=absent and set_id=20261124T163000Z-snapshot-3f9a.
backend:
  description: The backend checked.
  returned: always
  type: str
  sample: btrfs
snapshot:
  description: What the backend would take, for example the btrfs snapshot path; null when it cannot serve.
  returned: always
  type: dict
  sample: {"subvolume": "/srv/rethinkdb", "snapshot": "/srv/rethinkdb/default.snapshot-20261124T163000Z-snapshot-3f9a",
           "read_path": "/srv/rethinkdb/default.snapshot-20261124T163000Z-snapshot-3f9a/default"}
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import existing_ancestor, free_bytes
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import (
    RepositoryError, parse_location, repository_argument_spec, repository_from_params)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import iso_from_epoch
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_backends import (
    module_commands, planned_backend, snapshot_argument_spec)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import SnapshotError, mount_of, tree_bytes
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_lock import NodeLock, expired, held_message


def written_directories(params: dict, backend) -> list[str]:
    """The directories the snapshot writes to: the staging copy, and the archive when it goes to this node's
    filesystems (a file, or a shared path)."""
    directories = []
    if backend is not None and backend.copies:
        directories.append(os.path.dirname(backend.plan['copy']))
    if params['dest']:
        directories.append(existing_ancestor(os.path.dirname(os.path.abspath(params['dest']))))
    elif params['repository'] and parse_location(params['repository'])[0] == 'path':
        directories.append(existing_ancestor(parse_location(params['repository'])[1]))
    return directories


def space_needs(params: dict, backend, data_bytes: int) -> list[dict]:
    """Free space per filesystem that the snapshot writes to."""
    by_filesystem: dict = {}
    for path in written_directories(params, backend):
        mount = mount_of(path)
        need = by_filesystem.setdefault(mount.device, dict(path=path, mountpoint=mount.mountpoint, needed=0, available=free_bytes(path)))
        need['needed'] += data_bytes if params['min_free_bytes'] is None else params['min_free_bytes']
    return list(by_filesystem.values())


def repository_problems(params: dict) -> list[str]:
    """Why this node could not write its part to the repository (nothing to check for a file)."""
    if params['dest'] or not params['repository']:
        return []
    kind = parse_location(params['repository'])[0]
    if kind == 'controller':
        return ['A repository of kind controller is on the controller: give dest, a file on this node, instead.']
    try:
        repository_from_params(params).check_reachable(params['cluster'], params['set_id'])
    except RepositoryError as exc:
        return ['%s.' % str(exc).rstrip('.')]
    return []


def main():
    argument_spec = snapshot_argument_spec()
    argument_spec['backend']['required'] = True
    argument_spec.update(repository_argument_spec())
    argument_spec.update(dest=dict(type='path'), min_free_bytes=dict(type='int'))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, required_by={'repository': 'cluster'},
                           mutually_exclusive=[('dest', 'repository'), ('service', 'stop_command'), ('service', 'start_command')])
    params = module.params
    now = time.time()
    data_dir = os.path.realpath(params['data_dir'])
    lock = NodeLock(data_dir)
    problems = []
    backend = None
    data_bytes = 0
    holder = None
    try:
        holder = lock.read()
        if not os.path.isdir(data_dir):
            raise SnapshotError('data_dir %s is not a directory.' % params['data_dir'])
        if params['staging_dir']:
            params['staging_dir'] = os.path.realpath(params['staging_dir'])
        backend = planned_backend(params, data_dir, module_commands(module))
        problems.extend(backend.problems())
        data_bytes = tree_bytes(data_dir)
    except SnapshotError as exc:
        problems.append(str(exc))
    free_space = []
    try:
        free_space = space_needs(params, backend, data_bytes)
        problems.extend('%s needs %d free bytes on %s, which has %d.' % (need['path'], need['needed'], need['mountpoint'], need['available'])
                        for need in free_space if need['needed'] > need['available'])
        problems.extend(repository_problems(params))
    except RepositoryError as exc:
        problems.append('%s.' % str(exc).rstrip('.'))
    module.exit_json(changed=False, now=now, now_iso=iso_from_epoch(now), problems=problems, data_bytes=data_bytes,
                     free_space=free_space, lock_file=lock.path, lock=holder, lock_expired=expired(holder, now) if holder else None,
                     lock_message=held_message(lock.path, holder) if holder else None, backend=params['backend'],
                     snapshot=backend.plan if backend else None)


if __name__ == '__main__':
    main()
