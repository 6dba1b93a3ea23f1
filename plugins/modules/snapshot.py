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
  - O(state=check) is the preflight; it changes nothing. O(state=present) takes the node lock and the
    snapshot at O(at). O(state=archived) streams the snapshot into a checksummed C(tar.zst) archive on the
    node. O(state=absent) releases the snapshot and the lock.
  - The node lock is a JSON file beside the data directory, C(<data_dir>.backup-lock), created atomically. It
    allows one backup at a time per data directory and records what was taken, for the later states.
  - "Backends: C(btrfs) takes a read-only snapshot of the subvolume that holds the data directory (near
    instant, no downtime). C(lvm) takes a snapshot of its logical volume and mounts it read-only. C(zfs) takes
    a snapshot of its dataset. C(fsfreeze) freezes the filesystem, copies the data directory to another
    filesystem with C(cp -a), and thaws: writes to that filesystem wait for the whole copy. C(stopped) stops
    the server, copies the data directory, and starts the server again: consistent on any filesystem, with
    the server down for the whole copy."
options:
  data_dir:
    description:
      - The RethinkDB server's data directory on this node. Symbolic links are resolved.
    type: path
    required: true
  set_id:
    description:
      - The backup set this snapshot belongs to, as the catalog names it (C(20261124T163000Z-snapshot-3f9a)).
      - Names the lock's owner and the snapshot, so every state of one backup gives the same value.
    type: str
    required: true
  state:
    description:
      - V(check) checks that the backend can snapshot the data directory's filesystem, that the tools are
        installed, that there is free space where the copy and the archive will go, and that the lock is
        free; it fails with the reasons otherwise. It returns the node's clock, RV(now), for the offset check.
      - V(present) takes the lock, waits until O(at), and takes the snapshot.
      - V(archived) streams the snapshot into O(dest).
      - V(absent) releases the snapshot (deletes it, unmounts and removes it, or removes the copy), thaws a
        filesystem this set left frozen, starts a server this set left stopped, and removes the lock.
        It leaves O(dest) alone.
    type: str
    choices: [check, present, archived, absent]
    default: present
  backend:
    description:
      - How to capture the data directory. Required for O(state=check) and O(state=present); the later
        states read it from the lock.
      - V(lvm) and V(zfs) are tested against their exact commands only, not on real volumes.
    type: str
    choices: [btrfs, lvm, zfs, fsfreeze, stopped]
  at:
    description:
      - The shared instant to take the snapshot at, in seconds since the epoch, computed once on the controller
        a few seconds ahead (the C(backup) role does). O(state=present) sleeps until then and spins for the
        last milliseconds, then takes the snapshot; RV(late_ms) says how late it started.
      - An instant in the past means now. More than an hour ahead is refused as a likely unit mistake.
      - Unset means now.
    type: float
  staging_dir:
    description:
      - Where this node's snapshot or copy goes, as C(<staging_dir>/<data dir name>.snapshot-<set_id>).
      - V(btrfs) a directory on the same btrfs filesystem; V(lvm) where the snapshot is mounted; V(stopped)
        any directory with room for a full copy. These default to the directory that holds O(data_dir).
      - V(fsfreeze) requires it, on another filesystem than O(data_dir) (any write to a frozen filesystem
        blocks until the thaw, a reflink copy included), with room for a full copy.
      - Ignored by V(zfs), whose snapshots are read in the dataset's C(.zfs/snapshot) directory.
    type: path
  freeze_timeout:
    description:
      - V(fsfreeze) only. Seconds after O(at) (the freeze) at which a watchdog process thaws the filesystem if
        the module has not. The watchdog also thaws at once if the module dies. It is armed before the freeze
        and cancelled after the thaw.
      - The freeze lasts the whole copy, so allow for copying the data directory at the staging disk's speed.
        A copy that outlasts it fails the snapshot, since the copy is then no longer consistent.
    type: float
    default: 300
  stop_command:
    description:
      - V(stopped) only. The command that stops this node's RethinkDB server and returns once it has
        stopped, as an argument list (run without a shell), for example C([systemctl, stop, rethinkdb@default]).
    type: list
    elements: str
  start_command:
    description:
      - V(stopped) only. The command that starts the server again, as an argument list. It runs after the
        copy whether the copy worked or not, and again on O(state=absent) if the server was left stopped.
    type: list
    elements: str
  lvm_snapshot_size:
    description:
      - V(lvm) only. Room for the snapshot's copy-on-write data, as C(lvcreate) takes it. A value with C(%)
        (V(20%ORIGIN), C(50%FREE)) is passed as C(--extents), any other (C(10G)) as C(--size). Ignored for
        thin volumes, whose snapshots take no size.
    type: str
    default: 20%ORIGIN
  dest:
    description:
      - V(archived) the archive to write on this node, a C(tar.zst) file; required then. Its directory is
        created if missing. It is written as C(<dest>.partial) and renamed when complete, mode 0600.
      - V(check) when given, checks the free space for it.
    type: path
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
      - Free bytes that each filesystem written to (the staging copy, the archive) must have.
      - Unset, the module requires the data directory's size for the copy and again for the archive (an
        archive is never much larger than its data), summed where they share a filesystem.
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
  - module: bigchaindb.rethinkdb.data_restore
  - module: bigchaindb.rethinkdb.catalog
attributes:
  check_mode:
    support: full
    description: V(check) runs as usual; V(absent) reports what it would release; V(present) and V(archived)
      check their inputs and the lock, then report what they would do without doing it.
  diff_mode:
    support: none
    description: Reports what it took, archived or released in its result instead.
  idempotent:
    support: full
    description: V(present) again for a set whose snapshot is taken, V(archived) again when the archive has
      the recorded sha256, and V(absent) again, report no change.
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Preflight on every node
  bigchaindb.rethinkdb.snapshot:
    state: check
    data_dir: /var/lib/rethinkdb/default
    backend: btrfs
    set_id: "{{ set_id }}"
    dest: /var/backups/rethinkdb/{{ set_id }}.tar.zst
  register: preflight

- name: Take the snapshot on every node at the same instant
  bigchaindb.rethinkdb.snapshot:
    state: present
    data_dir: /var/lib/rethinkdb/default
    backend: btrfs
    set_id: "{{ set_id }}"
    at: "{{ barrier_at }}"
  register: taken

- name: Archive each node's snapshot
  bigchaindb.rethinkdb.snapshot:
    state: archived
    data_dir: /var/lib/rethinkdb/default
    set_id: "{{ set_id }}"
    dest: /var/backups/rethinkdb/{{ set_id }}.tar.zst
  register: archived

- name: Freeze an XFS data directory for the copy, with a 10 minute watchdog
  bigchaindb.rethinkdb.snapshot:
    state: present
    data_dir: /srv/rethinkdb/data
    backend: fsfreeze
    staging_dir: /mnt/backup-staging
    freeze_timeout: 600
    set_id: "{{ set_id }}"
    at: "{{ barrier_at }}"

- name: Stop, copy, start, where no filesystem can snapshot
  bigchaindb.rethinkdb.snapshot:
    state: present
    data_dir: /var/lib/rethinkdb/default
    backend: stopped
    stop_command: [systemctl, stop, rethinkdb@default]
    start_command: [systemctl, start, rethinkdb@default]
    set_id: "{{ set_id }}"
    at: "{{ barrier_at }}"

- name: Release the snapshot and the lock, whatever happened
  bigchaindb.rethinkdb.snapshot:
    state: absent
    data_dir: /var/lib/rethinkdb/default
    set_id: "{{ set_id }}"
'''

RETURN = r'''
now:
  description: The node's clock when the module started, in seconds since the epoch (V(check)).
  returned: state is check
  type: float
  sample: 1795537800.123
now_iso:
  description: RV(now) in ISO 8601 UTC.
  returned: state is check
  type: str
  sample: "2026-11-24T16:30:00.123Z"
problems:
  description: Why the snapshot cannot be taken (V(check) fails when there are any).
  returned: state is check
  type: list
  elements: str
data_bytes:
  description: Size of the data directory's regular files.
  returned: state is check
  type: int
free_space:
  description: Each filesystem the snapshot writes to, with the bytes needed and available.
  returned: state is check
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
lock:
  description: The lock's content when a lock exists (V(check)), else null.
  returned: state is check
  type: dict
lock_file:
  description: Path of the node lock.
  returned: always
  type: str
  sample: /var/lib/rethinkdb/default.backup-lock
backend:
  description: The backend used.
  returned: state is not absent
  type: str
snapshot:
  description: What the backend takes (and releases), as recorded in the lock, for example the btrfs
    snapshot path, the LVM volume and mount directory, the ZFS snapshot name, or the staging copy; and
    C(read_path), the directory the archive is made from.
  returned: state is check or present
  type: dict
  sample: {"subvolume": "/srv/rethinkdb", "snapshot": "/srv/rethinkdb/default.snapshot-20261124T163000Z-snapshot-3f9a",
           "read_path": "/srv/rethinkdb/default.snapshot-20261124T163000Z-snapshot-3f9a/default"}
taken_at:
  description: When the snapshot was taken, in seconds since the epoch (see the notes for the exact instant).
  returned: state is present
  type: float
taken_at_iso:
  description: RV(taken_at) in ISO 8601 UTC with milliseconds.
  returned: state is present
  type: str
  sample: "2026-11-24T16:30:03.002Z"
took_ms:
  description: How long the capture took, in milliseconds (for V(fsfreeze) and V(stopped), the copy included).
  returned: state is present
  type: float
freeze_ms:
  description: How long writes were blocked, in milliseconds. V(fsfreeze) the freeze (the whole copy);
    V(stopped) the server's downtime; 0 for V(btrfs), V(lvm) and V(zfs).
  returned: state is present
  type: float
late_ms:
  description: How late after O(at) the capture started, in milliseconds (0 without O(at)).
  returned: state is present
  type: float
dest:
  description: The archive written.
  returned: state is archived
  type: str
bytes:
  description: Size of the archive.
  returned: state is archived
  type: int
sha256:
  description: sha256 of the archive, computed while it was written.
  returned: state is archived
  type: str
files:
  description: Entries archived (files, directories and links).
  returned: state is archived
  type: int
raw_bytes:
  description: Size of the regular files archived, uncompressed.
  returned: state is archived
  type: int
skipped:
  description: Sockets found in the data directory and left out of the archive.
  returned: state is archived
  type: list
  elements: str
seconds:
  description: Time spent writing the archive.
  returned: state is archived
  type: float
throughput:
  description: Uncompressed data archived per second, in MB (10^6 bytes).
  returned: state is archived
  type: float
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
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.backup_set import BackupSetError, set_id_time
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import (
    Commands, SnapshotError, elapsed_ms, free_bytes, iso_utc, mount_of, tree_bytes, wait_until)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_btrfs import BtrfsSnapshot
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_fsfreeze import FsfreezeSnapshot
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_lock import LockHeld, NodeLock, held_message
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_lvm import LvmSnapshot
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_stopped import StoppedSnapshot
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_zfs import ZfsSnapshot

BACKENDS = dict((backend.name, backend) for backend in (BtrfsSnapshot, LvmSnapshot, ZfsSnapshot, FsfreezeSnapshot, StoppedSnapshot))
# An instant further ahead than this is more likely milliseconds or a wrong clock than a plan.
MAX_AHEAD_SECONDS = 3600


def taken_result(state: dict) -> dict:
    """What present returns, from the lock: the same on the run that took the snapshot and on later runs."""
    keys = ('set_id', 'backend', 'taken_at', 'taken_at_iso', 'took_ms', 'freeze_ms', 'late_ms')
    return dict(dict((key, state[key]) for key in keys), snapshot=state['plan'])


def backend_of(state: dict, commands: Commands):
    """The backend that took the snapshot a lock records, with its plan."""
    return BACKENDS[state['backend']](state['plan'], commands)


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


def planned_backend(module, data_dir: str, commands: Commands):
    """The backend chosen for data_dir with its plan, or SnapshotError saying why it cannot serve."""
    backend_class = BACKENDS[module.params['backend']]
    plan = backend_class.make_plan(data_dir, module.params['set_id'], module.params, commands)
    return backend_class(plan, commands)


def space_needs(module, backend, data_bytes: int) -> list[dict]:
    """Free space per filesystem that the snapshot writes to: the staging copy and the archive."""
    needs = []
    if backend is not None and backend.copies:
        needs.append(os.path.dirname(backend.plan['copy']))
    if module.params['dest']:
        needs.append(existing_ancestor(os.path.dirname(os.path.abspath(module.params['dest']))))
    by_filesystem: dict = {}
    for path in needs:
        mount = mount_of(path)
        need = by_filesystem.setdefault(mount.device, dict(path=path, mountpoint=mount.mountpoint, needed=0, available=free_bytes(path)))
        need['needed'] += data_bytes if module.params['min_free_bytes'] is None else module.params['min_free_bytes']
    return list(by_filesystem.values())


def existing_ancestor(path: str) -> str:
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


def check(module, data_dir: str, lock: NodeLock, commands: Commands) -> dict:
    now = time.time()
    problems = []
    holder = lock.read()
    if holder is not None and holder['set_id'] != module.params['set_id']:
        problems.append(held_message(lock.path, holder))
    backend = None
    try:
        backend = planned_backend(module, data_dir, commands)
        problems.extend(backend.problems())
    except SnapshotError as exc:
        problems.append(str(exc))
    data_bytes = tree_bytes(data_dir)
    free_space = space_needs(module, backend, data_bytes)
    problems.extend('%s needs %d free bytes on %s, which has %d.' % (need['path'], need['needed'], need['mountpoint'], need['available'])
                    for need in free_space if need['needed'] > need['available'])
    result = dict(changed=False, now=now, now_iso=iso_utc(now), problems=problems, data_bytes=data_bytes,
                  free_space=free_space, lock=holder, backend=module.params['backend'],
                  snapshot=backend.plan if backend else None)
    if problems:
        module.fail_json(msg='Cannot take a %s snapshot of %s: %s' % (module.params['backend'], data_dir, ' '.join(problems)), **result)
    return result


def present(module, data_dir: str, lock: NodeLock, commands: Commands) -> dict:
    params = module.params
    holder = lock.read()
    if holder is not None:
        if holder['set_id'] == params['set_id'] and holder.get('phase') == 'taken':
            return dict(changed=False, **taken_result(holder))
        own_lock(lock, params['set_id'])
    backend = planned_backend(module, data_dir, commands)
    problems = backend.problems()
    if problems:
        raise SnapshotError(' '.join(problems))
    if params['at'] is not None and params['at'] - time.time() > MAX_AHEAD_SECONDS:
        raise SnapshotError('at (%s) is %.0f seconds ahead of this node\'s clock: give seconds since the epoch, a few seconds ahead.'
                            % (params['at'], params['at'] - time.time()))
    if module.check_mode:
        return dict(changed=True, backend=backend.name, snapshot=backend.plan,
                    msg='Would take a %s snapshot of %s for set %s.' % (backend.name, data_dir, params['set_id']))
    lock.acquire(dict(set_id=params['set_id'], pid=os.getpid(), host=socket.gethostname(), backend=backend.name,
                      data_dir=data_dir, created_at=iso_utc(time.time()), plan=backend.plan, phase='taking'))
    try:
        backend.prepare(params['at'], lock.update)
        late_ms = wait_until(params['at']) if params['at'] is not None else 0.0
        started = time.monotonic()
        taken = backend.take(lock.update)
        took_ms = elapsed_ms(started)
    except (SnapshotError, OSError) as exc:
        raise release_after_failure(backend, lock, exc)
    state = lock.update(phase='taken', taken_at=taken['taken_at'], taken_at_iso=iso_utc(taken['taken_at']), took_ms=took_ms,
                        freeze_ms=taken['freeze_ms'], late_ms=round(late_ms, 3))
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


def archived(module, lock: NodeLock, commands: Commands) -> dict:
    params = module.params
    state = own_lock(lock, params['set_id'])
    dest = os.path.abspath(params['dest'])
    recorded = state.get('archive')
    if recorded and recorded['dest'] == dest and os.path.isfile(dest) and archive.sha256_file(dest)[0] == recorded['sha256']:
        return dict(changed=False, backend=state['backend'], **recorded)
    read_path = backend_of(state, commands).read_path()
    needed = tree_bytes(read_path) if params['min_free_bytes'] is None else params['min_free_bytes']
    available = free_bytes(existing_ancestor(os.path.dirname(dest)))
    if needed > available:
        raise SnapshotError('Not enough space for %s: %d bytes free, %d needed.' % (dest, available, needed))
    if module.check_mode:
        return dict(changed=True, backend=state['backend'], dest=dest, msg='Would archive %s into %s.' % (read_path, dest))
    os.makedirs(os.path.dirname(dest), 0o700, exist_ok=True)
    result = archive.create(read_path, dest, level=params['level'], threads=params['threads'])
    result.update(dest=dest, throughput=round(result['raw_bytes'] / 1e6 / result['seconds'], 1) if result['seconds'] else None)
    lock.update(archive=result)
    return dict(changed=True, backend=state['backend'], **result)


def absent(module, lock: NodeLock, commands: Commands) -> dict:
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
    module = AnsibleModule(
        argument_spec=dict(
            data_dir=dict(type='path', required=True),
            set_id=dict(type='str', required=True),
            state=dict(type='str', default='present', choices=['check', 'present', 'archived', 'absent']),
            backend=dict(type='str', choices=sorted(BACKENDS)),
            at=dict(type='float'),
            staging_dir=dict(type='path'),
            freeze_timeout=dict(type='float', default=300),
            stop_command=dict(type='list', elements='str'),
            start_command=dict(type='list', elements='str'),
            lvm_snapshot_size=dict(type='str', default='20%ORIGIN'),
            dest=dict(type='path'),
            level=dict(type='int', default=archive.DEFAULT_LEVEL),
            threads=dict(type='int', default=0),
            min_free_bytes=dict(type='int'),
        ),
        required_if=[('state', 'check', ['backend']), ('state', 'present', ['backend']), ('state', 'archived', ['dest'])],
        supports_check_mode=True,
    )
    params = module.params
    if archive.ZSTANDARD_IMPORT_ERROR is not None and params['state'] == 'archived':
        module.fail_json(msg=missing_required_lib('zstandard'), exception=archive.ZSTANDARD_IMPORT_ERROR)
    try:
        set_id_time(params['set_id'])
    except BackupSetError as exc:
        module.fail_json(msg='set_id: %s.' % exc)
    data_dir = os.path.realpath(params['data_dir'])
    if params['state'] in ('check', 'present') and not os.path.isdir(data_dir):
        module.fail_json(msg='data_dir %s is not a directory.' % params['data_dir'])
    if params['staging_dir']:
        params['staging_dir'] = os.path.realpath(params['staging_dir'])
        if params['staging_dir'] == data_dir or params['staging_dir'].startswith(data_dir + '/'):
            module.fail_json(msg='staging_dir %s is inside data_dir %s: choose a directory outside it.' % (params['staging_dir'], data_dir))
    lock = NodeLock(data_dir)
    commands = Commands(module.run_command)
    steps = dict(check=lambda: check(module, data_dir, lock, commands), present=lambda: present(module, data_dir, lock, commands),
                 archived=lambda: archived(module, lock, commands), absent=lambda: absent(module, lock, commands))
    try:
        result = steps[params['state']]()
    except SnapshotError as exc:
        module.fail_json(msg=str(exc), lock_file=lock.path, **exc.details)
    except archive.ArchiveError as exc:
        module.fail_json(msg='Cannot archive the snapshot: %s.' % exc, lock_file=lock.path)
    except OSError as exc:
        module.fail_json(msg='%s: %s.' % (exc.filename or 'snapshot', exc.strerror or exc), lock_file=lock.path)
    module.exit_json(lock_file=lock.path, **result)


if __name__ == '__main__':
    main()
