#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: snapshot
short_description: Take, archive and release one node's part of a coordinated RethinkDB snapshot
version_added: 0.1.0
description:
  - One node's part of a coordinated file-level backup of a RethinkDB cluster. The C(backup) role runs it on
    every node of the cluster in one task, so that all nodes capture their data directory at the same
    instant O(at); restoring file copies is only safe for all nodes together, from one set.
  - O(state=present) takes the node lock and the snapshot at O(at). O(state=archived) streams the snapshot
    into the node's part of the set, a C(tar.zst) archive (zstd content checksum on, each file's size and
    sha256 recorded, optionally encrypted with age), hashed as it is written, into a file O(dest) or straight
    into the set in the O(repository). O(state=absent) releases the snapshot and the lock.
  - The preflight (can the backend serve, free space, who holds the lock, the node's clock) is
    M(bigchaindb.rethinkdb.snapshot_info)'s.
  - The node lock is a JSON file beside the data directory, C(<data_dir>.backup-lock), created atomically. It
    allows one backup at a time per data directory, records what was taken for the later states, and says
    who holds it (O(run)) and until when (O(lock_hours)), so that a later run can break the lock of a run
    that was interrupted.
extends_documentation_fragment:
  - bigchaindb.rethinkdb.snapshot
  - bigchaindb.rethinkdb.server
  - bigchaindb.rethinkdb.repository
options:
  set_id:
    required: true
  state:
    description:
      - V(present) takes the lock, waits until O(at), and takes the snapshot.
      - V(archived) streams the snapshot into O(dest), or into the set O(set_id) of O(repository).
      - V(absent) releases the snapshot (deletes it, unmounts and removes it, or removes the copy), thaws a
        filesystem this set left frozen, starts a server this set left stopped, and removes the lock. It
        leaves the archive alone.
    type: str
    choices: [present, archived, absent]
    default: present
  backend:
    description:
      - Required for O(state=present); the later states read it from the lock.
  service:
    description:
      - V(stopped) only.
  stop_command:
    description:
      - V(stopped) only.
  start_command:
    description:
      - V(stopped) only. It runs after the copy whether the copy worked or not, and again on O(state=absent) if
        the server was left stopped.
  at:
    description:
      - The shared instant to take the snapshot at, in seconds since the epoch, computed once on the controller
        a few seconds ahead (the C(backup) role does). O(state=present) sleeps until then and spins for the
        last milliseconds, then takes the snapshot; RV(late_ms) says how late it started.
      - An instant in the past means now. More than an hour ahead is refused as a likely unit mistake.
      - Unset means now.
    type: float
  run:
    description:
      - Who takes the snapshot, kept in the lock (the C(backup) role gives the
        C(bigchaindb.rethinkdb.controller_run) lookup), so that a later run can test whether this one is still
        alive.
    type: dict
    default: {}
  lock_hours:
    description:
      - How long the lock is held at most; after that, a later backup may break it even when it cannot test
        whether its holder still runs (a run of another controller).
    type: float
    default: 24
  dest:
    description:
      - V(archived) into a file on this node instead of the repository (the C(backup) role does so for a
        repository of kind C(controller), and fetches the file). Its directory is created if missing. It is
        written as C(<dest>.writing), renamed when complete and fsynced, mode 0600, and given to the owner of
        its directory, so that a login user can fetch what a module run with become wrote.
      - Mutually exclusive with O(repository).
    type: path
  server:
    description:
      - V(archived) only, and required then. The node's RethinkDB server name, which names its part in the
        set, C(nodes/<server>/data.tar.zst).
    type: str
  recipients:
    description:
      - V(archived) encrypts the archive with age to these public keys (C(age1...), as C(age-keygen -y) prints
        them) while it streams, so that only the holders of the matching identities can restore it.
    type: list
    elements: str
    default: []
  level:
    description:
      - zstd compression level of the archive (1 fastest; 3 is zstd's default; 19 smallest).
    type: int
    default: 3
  threads:
    description:
      - zstd worker threads; V(0) means one per CPU of the node.
    type: int
    default: 0
  min_free_bytes:
    description:
      - V(archived) into O(dest) or a C(path) repository, the free bytes that its filesystem must have.
      - Unset, the module requires the data directory's size (an archive is never much larger than its data).
    type: int
notes:
  - Run O(state=present) on all nodes in one task with at least as many forks as nodes, so each node waits
    for the same O(at); the C(backup) role checks this and measures the skew from RV(taken_at).
  - "RV(taken_at) is when the capture command returned: the snapshot holds the data as it was at or just
    before that instant (for V(stopped): when the server had stopped)."
  - Snapshots of a running server (V(btrfs), V(lvm), V(zfs), V(fsfreeze)) are crash-consistent; each holds what a
    power cut at that instant would have left, every write the server had synced included, and RethinkDB
    recovers from that state when it starts. Writes not yet synced may be missing (seen with btrfs, in tests,
    for a file written just before the snapshot). V(stopped) copies a cleanly stopped server.
  - Needs root on the node for every backend but V(stopped) (which needs whatever its commands need).
seealso:
  - module: bigchaindb.rethinkdb.snapshot_info
  - module: bigchaindb.rethinkdb.data_restore
  - module: bigchaindb.rethinkdb.catalog
attributes:
  check_mode:
    support: full
    description: V(absent) reports what it would release; V(present) and V(archived) check their inputs and
      the lock, then report what they would do without doing it.
  diff_mode:
    support: none
    description: Reports what it took, archived or released in its result instead.
  idempotent:
    support: full
    description: V(present) again for a set whose snapshot is taken, V(archived) again when the archive is
      in place with its recorded size, and V(absent) again, report no change.
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Begin a snapshot set in the repository
  bigchaindb.rethinkdb.catalog:
    repository: s3://backups/rethinkdb
    cluster: rethinkdb
    operation: begin
    method: snapshot
  delegate_to: localhost
  run_once: true
  register: begun

- name: Agree on the instant, five seconds from now, and the set's id
  ansible.builtin.set_fact:
    barrier_at: "{{ now(utc=true).timestamp() + 5 }}"
    set_id: "{{ begun.set_id }}"
  run_once: true

- name: Take the snapshot on every node at the same instant
  bigchaindb.rethinkdb.snapshot:
    state: present
    data_dir: /var/lib/rethinkdb/default
    backend: btrfs
    set_id: "{{ set_id }}"
    at: "{{ barrier_at }}"
    run: "{{ lookup('bigchaindb.rethinkdb.controller_run') }}"
    lock_hours: 12
  register: taken

- name: Archive each node's snapshot straight into an S3 bucket, encrypted
  bigchaindb.rethinkdb.snapshot:
    state: archived
    data_dir: /var/lib/rethinkdb/default
    set_id: "{{ set_id }}"
    repository: s3://backups/rethinkdb
    cluster: rethinkdb
    s3_endpoint_url: https://s3.example.net
    s3_credentials_file: /etc/rethinkdb/s3-credentials
    server: "{{ inventory_hostname }}"
    recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]
    s3_region: eu-west-1
    s3_profile: backups
    s3_ca_bundle: /etc/ssl/certs/example-ca.pem
    level: 1
    threads: 4
  register: archived

- name: Archive into a file on the node, for the controller to fetch
  bigchaindb.rethinkdb.snapshot:
    state: archived
    data_dir: /var/lib/rethinkdb/default
    set_id: "{{ set_id }}"
    dest: /var/tmp/rethinkdb-backup/nodes/node1/data.tar.zst
    min_free_bytes: 10000000000

- name: Freeze an XFS data directory for the copy, with a 10 minute watchdog
  bigchaindb.rethinkdb.snapshot:
    state: present
    data_dir: /srv/rethinkdb/data
    backend: fsfreeze
    staging_dir: /mnt/backup-staging
    freeze_timeout: 600
    set_id: "{{ set_id }}"
    at: "{{ barrier_at }}"

- name: Snapshot an LVM logical volume, with room for 10 GB of changes
  bigchaindb.rethinkdb.snapshot:
    state: present
    data_dir: /srv/rethinkdb/data
    backend: lvm
    lvm_snapshot_size: 10G
    set_id: "{{ set_id }}"
    at: "{{ barrier_at }}"

- name: Stop, copy, start, where no filesystem can snapshot
  bigchaindb.rethinkdb.snapshot:
    state: present
    data_dir: /var/lib/rethinkdb/default
    backend: stopped
    service: rethinkdb@default
    set_id: "{{ set_id }}"
    at: "{{ barrier_at }}"

- name: The same with commands instead of a systemd unit
  bigchaindb.rethinkdb.snapshot:
    state: present
    data_dir: /var/lib/rethinkdb/default
    backend: stopped
    stop_command: [/usr/local/bin/rethinkdb-ctl, stop]
    start_command: [/usr/local/bin/rethinkdb-ctl, start]
    set_id: "{{ set_id }}"

- name: Release the snapshot and the lock, whatever happened
  bigchaindb.rethinkdb.snapshot:
    state: absent
    data_dir: /var/lib/rethinkdb/default
    set_id: "{{ set_id }}"
'''

RETURN = r'''
lock_file:
  description: Path of the node lock.
  returned: always
  type: str
  sample: /var/lib/rethinkdb/default.backup-lock
backend:
  description: The backend used.
  returned: state is present or archived
  type: str
  sample: btrfs
snapshot:
  description: What the backend takes (and releases), as recorded in the lock, for example the btrfs
    snapshot path, the LVM volume and mount directory, the ZFS snapshot name, or the staging copy; and
    C(read_path), the directory the archive is made from.
  returned: state is present
  type: dict
  sample: {"subvolume": "/srv/rethinkdb", "snapshot": "/srv/rethinkdb/default.snapshot-20261124T163000Z-snapshot-3f9a",
           "read_path": "/srv/rethinkdb/default.snapshot-20261124T163000Z-snapshot-3f9a/default"}
taken_at:
  description: When the snapshot was taken, in seconds since the epoch (see the notes for the exact instant).
  returned: state is present
  type: float
  sample: 1795537803.002
taken_at_iso:
  description: RV(taken_at) in ISO 8601 UTC with milliseconds.
  returned: state is present
  type: str
  sample: "2026-11-24T16:30:03.002Z"
took_ms:
  description: How long the capture took, in milliseconds (for V(fsfreeze) and V(stopped), the copy included).
  returned: state is present
  type: float
  sample: 21.4
freeze_ms:
  description: How long writes were blocked, in milliseconds. V(fsfreeze) the freeze (the whole copy);
    V(stopped) the server's downtime; 0 for V(btrfs), V(lvm) and V(zfs).
  returned: state is present
  type: float
  sample: 0.0
late_ms:
  description: How late after O(at) the capture started, in milliseconds (0 without O(at)).
  returned: state is present
  type: float
  sample: 0.2
part:
  description: The part written, as the catalog records it (C(host) is the caller's to add).
  returned: state is archived
  type: dict
  contains:
    path:
      description: The part's path in the set.
      type: str
    bytes:
      description: Its size as stored.
      type: int
    sha256:
      description: The sha256 of the stored bytes, computed while they were written.
      type: str
    raw_bytes:
      description: Size of the regular files archived, uncompressed.
      type: int
    compression:
      description: C(zstd).
      type: str
    encryption:
      description: Null, or C(format) C(age) and the C(recipients).
      type: dict
    store_checksum:
      description: The store's own checksum of the part (S3), or null.
      type: str
    files:
      description: Each regular file's C(path), C(bytes) and C(sha256).
      type: list
      elements: dict
    server:
      description: The server whose data it holds.
      type: str
  sample: {"path": "nodes/node1/data.tar.zst", "bytes": 381022, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
           "raw_bytes": 1048576, "compression": "zstd", "encryption": null, "store_checksum": null,
           "files": [{"path": "metadata", "bytes": 1048576, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}],
           "server": "node1"}
location:
  description: Where the part was written (a file, or the repository's location of the part).
  returned: state is archived
  type: str
  sample: /var/tmp/rethinkdb-backup/nodes/node1/data.tar.zst
entries:
  description: Entries archived (files, directories and links).
  returned: state is archived
  type: int
  sample: 12
sockets_left_out:
  description: Sockets found in the data directory and left out of the archive.
  returned: state is archived
  type: list
  elements: str
  sample: []
seconds:
  description: Time spent writing the archive.
  returned: state is archived
  type: float
  sample: 2.31
throughput:
  description: Uncompressed data archived per second, in MB (10^6 bytes).
  returned: state is archived
  type: float
  sample: 412.5
released:
  description: What V(absent) released (or, in check mode, would release).
  returned: state is absent
  type: list
  elements: str
  sample: ["delete the btrfs snapshot /srv/rethinkdb/default.snapshot-20261124T163000Z-snapshot-3f9a",
           "remove the lock /srv/rethinkdb/default.backup-lock"]
'''

import os
import socket
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import archive
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.encryption import PYRAGE_IMPORT_ERROR, EncryptionError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import existing_ancestor, free_bytes
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import (
    MissingLibraryError, RepositoryError, parse_location, part_destination, repository_argument_spec, repository_from_params)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import FormatError, iso_from_epoch, node_part_path, set_id_time
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_backends import (
    backend_of, module_commands, planned_backend, snapshot_argument_spec)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import SnapshotError, elapsed_ms, tree_bytes, wait_until
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_lock import LockHeld, NodeLock, held_message
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.fault_points import checkpoint

# An instant further ahead than this is more likely milliseconds or a wrong clock than a plan.
MAX_AHEAD_SECONDS = 3600


def taken_result(state: dict) -> dict:
    """What present returns, from the lock: the same on the run that took the snapshot and on later runs."""
    keys = ('backend', 'taken_at', 'taken_at_iso', 'took_ms', 'freeze_ms', 'late_ms')
    return dict(dict((key, state[key]) for key in keys), snapshot=state['plan'])


def own_lock(lock: NodeLock, set_id: str) -> dict:
    """The lock's state if this set holds it with its snapshot taken; SnapshotError otherwise."""
    state = lock.read()
    if state is None:
        raise SnapshotError('No snapshot of set %s on this node (no lock %s): run state=present first.' % (set_id, lock.path))
    if state['set_id'] != set_id:
        raise LockHeld(held_message(lock.path, state))
    if state.get('phase') != 'taken':
        raise SnapshotError('The snapshot of set %s was not completed (lock %s): release it with state=absent.' % (set_id, lock.path))
    return state


def present(module, data_dir: str, lock: NodeLock, commands) -> dict:
    params = module.params
    holder = lock.read()
    if holder is not None:
        if holder['set_id'] == params['set_id'] and holder.get('phase') == 'taken':
            return dict(changed=False, **taken_result(holder))
        own_lock(lock, params['set_id'])
    backend = planned_backend(params, data_dir, commands)
    problems = backend.problems()
    if problems:
        raise SnapshotError(' '.join(problems))
    if params['at'] is not None and params['at'] - time.time() > MAX_AHEAD_SECONDS:
        raise SnapshotError('at (%s) is %.0f seconds ahead of this node\'s clock: give seconds since the epoch, a few seconds ahead.'
                            % (params['at'], params['at'] - time.time()))
    if module.check_mode:
        return dict(changed=True, backend=backend.name, snapshot=backend.plan,
                    msg='Would take a %s snapshot of %s for set %s.' % (backend.name, data_dir, params['set_id']))
    now = time.time()
    lock.acquire(dict(set_id=params['set_id'], run=params['run'], pid=os.getpid(), host=socket.gethostname(), backend=backend.name,
                      data_dir=data_dir, created_at=iso_from_epoch(now), expires_at=now + params['lock_hours'] * 3600,
                      plan=backend.plan, phase='taking'))
    checkpoint('snapshot:locked')
    try:
        backend.prepare(params['at'], lock.update)
        late_ms = wait_until(params['at']) if params['at'] is not None else 0.0
        started = time.monotonic()
        taken = backend.take(lock.update)
        took_ms = elapsed_ms(started)
    except (SnapshotError, OSError) as exc:
        raise release_after_failure(backend, lock, exc)
    state = lock.update(phase='taken', taken_at=taken['taken_at'], taken_at_iso=iso_from_epoch(taken['taken_at']), took_ms=took_ms,
                        freeze_ms=taken['freeze_ms'], late_ms=round(late_ms, 3))
    checkpoint('snapshot:taken')
    return dict(changed=True, **taken_result(state))


def release_after_failure(backend, lock: NodeLock, failure: Exception) -> SnapshotError:
    """Undo a snapshot that failed half-way; the error to report (the lock stays if the undo failed too)."""
    details = getattr(failure, 'details', {})
    try:
        backend.release(lock.read() or {})
    except (SnapshotError, OSError) as exc:
        return SnapshotError('%s Releasing what was taken failed too (%s); the lock %s stays: run state=absent.'
                             % (failure, exc, lock.path), **details)
    lock.release()
    return SnapshotError(str(failure), **details)


def archived(module, lock: NodeLock, commands) -> dict:
    params = module.params
    state = own_lock(lock, params['set_id'])
    read_path = backend_of(state, commands).read_path()
    path = node_part_path(params['server'])
    recorded = state.get('archive')
    if recorded and recorded.get('location') and recorded['part']['path'] == path and _still_there(params, recorded):
        return dict(changed=False, backend=state['backend'], **recorded)
    raw_bytes = tree_bytes(read_path)
    _check_room(params, raw_bytes)
    if module.check_mode:
        return dict(changed=True, backend=state['backend'], msg='Would archive %s into %s.' % (read_path, params['dest'] or path))
    started = time.monotonic()
    with part_destination(params, path, size_hint=raw_bytes) as writer:
        checkpoint('snapshot:archiving')
        facts = archive.write_archive(read_path, writer.stream, level=params['level'], threads=params['threads'],
                                      recipients=params['recipients'])
        stored = writer.finish()
    seconds = round(time.monotonic() - started, 3)
    part = dict(path=path, bytes=stored['bytes'], sha256=stored['sha256'], raw_bytes=facts['raw_bytes'], compression='zstd',
                encryption=dict(format='age', recipients=sorted(params['recipients'])) if params['recipients'] else None,
                store_checksum=stored['store_checksum'], files=facts['files'], server=params['server'])
    result = dict(part=part, location=writer.location, entries=facts['entries'], sockets_left_out=facts['sockets_left_out'], seconds=seconds,
                  throughput=round(facts['raw_bytes'] / 1e6 / seconds, 1) if seconds else None)
    lock.update(archive=result)
    checkpoint('snapshot:archived')
    return dict(changed=True, backend=state['backend'], **result)


def _still_there(params: dict, recorded: dict) -> bool:
    """Whether the part an earlier run archived is still in place with its recorded size (nothing is re-read)."""
    part = recorded['part']
    if params['dest']:
        return os.path.isfile(params['dest']) and os.path.getsize(params['dest']) == part['bytes']
    found = repository_from_params(params).stat_part(params['cluster'], params['set_id'], part['path'], committed=False)
    return found is not None and found.bytes == part['bytes']


def _check_room(params: dict, raw_bytes: int) -> None:
    """Refuse an archive into a file or a shared directory without room for it (a store of objects has no
    free space to check)."""
    if params['dest']:
        directory = existing_ancestor(os.path.dirname(params['dest']))
    else:
        kind, location = parse_location(params['repository'])
        if kind == 's3':
            return
        directory = existing_ancestor(location)
    needed = raw_bytes if params['min_free_bytes'] is None else params['min_free_bytes']
    available = free_bytes(directory)
    if needed > available:
        raise SnapshotError('Not enough space for the archive in %s: %d bytes free, %d needed.' % (directory, available, needed))


def absent(module, lock: NodeLock, commands) -> dict:
    state = lock.read()
    if state is None:
        return dict(changed=False, released=[])
    if state['set_id'] != module.params['set_id']:
        module.warn('Left alone: %s' % held_message(lock.path, state))
        return dict(changed=False, released=[])
    backend = backend_of(state, commands)
    released = backend.release(state, dry_run=module.check_mode) + ['remove the lock %s' % lock.path]
    if not module.check_mode:
        lock.release()
    return dict(changed=True, released=released)


def main():
    argument_spec = snapshot_argument_spec()
    argument_spec['set_id']['required'] = True
    argument_spec.update(repository_argument_spec())
    argument_spec.update(
        state=dict(type='str', default='present', choices=['present', 'archived', 'absent']),
        at=dict(type='float'),
        run=dict(type='dict', default={}),
        lock_hours=dict(type='float', default=24),
        dest=dict(type='path'),
        server=dict(type='str'),
        recipients=dict(type='list', elements='str', default=[], no_log=False),
        level=dict(type='int', default=archive.DEFAULT_LEVEL),
        threads=dict(type='int', default=0),
        min_free_bytes=dict(type='int'),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[('state', 'present', ['backend'])],
        mutually_exclusive=[('dest', 'repository'), ('service', 'stop_command'), ('service', 'start_command')],
        required_by={'repository': 'cluster'},
        supports_check_mode=True,
    )
    params = module.params
    if params['state'] == 'archived':
        if archive.ZSTANDARD_IMPORT_ERROR is not None:
            module.fail_json(msg=missing_required_lib('zstandard'), exception=archive.ZSTANDARD_IMPORT_ERROR)
        if params['recipients'] and PYRAGE_IMPORT_ERROR is not None:
            module.fail_json(msg=missing_required_lib('pyrage'), exception=PYRAGE_IMPORT_ERROR)
        if not params['server'] or not (params['dest'] or (params['repository'] and params['cluster'])):
            module.fail_json(msg='state=archived needs server, and dest (a file on this node) or repository and cluster.')
    try:
        set_id_time(params['set_id'])
    except FormatError as exc:
        module.fail_json(msg='set_id: %s.' % exc)
    data_dir = os.path.realpath(params['data_dir'])
    if params['state'] == 'present' and not os.path.isdir(data_dir):
        module.fail_json(msg='data_dir %s is not a directory.' % params['data_dir'])
    if params['staging_dir']:
        params['staging_dir'] = os.path.realpath(params['staging_dir'])
        if params['staging_dir'] == data_dir or params['staging_dir'].startswith(data_dir + '/'):
            module.fail_json(msg='staging_dir %s is inside data_dir %s: choose a directory outside it.' % (params['staging_dir'], data_dir))
    lock = NodeLock(data_dir)
    commands = module_commands(module)
    steps = dict(present=lambda: present(module, data_dir, lock, commands), archived=lambda: archived(module, lock, commands),
                 absent=lambda: absent(module, lock, commands))
    try:
        result = steps[params['state']]()
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.import_traceback)
    except SnapshotError as exc:
        module.fail_json(msg=str(exc), lock_file=lock.path, **exc.details)
    except (archive.ArchiveError, EncryptionError, RepositoryError, FormatError) as exc:
        module.fail_json(msg='Cannot archive the snapshot of set %s: %s.' % (params['set_id'], str(exc).rstrip('.')), lock_file=lock.path)
    except OSError as exc:
        module.fail_json(msg='%s: %s.' % (exc.filename or 'snapshot', exc.strerror or exc), lock_file=lock.path)
    module.exit_json(lock_file=lock.path, **result)


if __name__ == '__main__':
    main()
