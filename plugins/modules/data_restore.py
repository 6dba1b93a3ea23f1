#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: data_restore
short_description: Put one node's RethinkDB data directory back from its snapshot archive
version_added: 0.1.0
description:
  - Restores one node's data directory from its part of a snapshot backup set (a C(tar.zst) archive made by
    M(bigchaindb.rethinkdb.snapshot)). The C(restore) role runs it on every node, because a snapshot set is
    only safe to restore on all nodes together, with the whole cluster stopped.
  - O(state=staged) verifies the archive's sha256 and reads its unpacked size in one pass, checks the free
    space for it, and unpacks it into C(<data_dir>.restore-<set_id>) beside the data directory (every file
    fsynced). It runs while the server still runs, so that a bad part is found before anything is stopped.
  - O(state=present) stages first if needed, then moves the current data directory aside to
    C(<data_dir>.before-restore-<set_id>) (a rename; the collection never deletes it) and renames the staged
    directory into place. The server must be stopped; the module refuses while a process has files open in
    the data directory.
  - Unpacking is safe against hostile archives (no absolute names, no C(..), no devices or FIFOs, links only
    inside) and keeps modes, times and, as root, numeric owners (see O(owner) and O(group)).
  - A record of the restore, C(<data_dir>.restore-<set_id>.json), lets a run that was interrupted between the
    two renames finish, and a repeated run report no change.
options:
  archive:
    description:
      - The node's archive of the set, on the node. Required unless the set is already staged or restored.
    type: path
  sha256:
    description:
      - The archive's expected sha256, from the set's manifest. Checked before anything is unpacked.
      - Optional, but the C(restore) role always gives it.
    type: str
  data_dir:
    description:
      - The RethinkDB server's data directory on this node. Symbolic links are resolved.
      - It must not be a mount point, which cannot be renamed; keep the data in a subdirectory of the mount.
      - It need not exist (a node rebuilt empty); then nothing is moved aside.
    type: path
    required: true
  set_id:
    description:
      - The backup set being restored; it names the staged and the moved-aside directories.
    type: str
    required: true
  state:
    description:
      - V(staged) unpacks the archive beside the data directory and stops there.
      - V(present) puts the unpacked data in place of the data directory.
    type: str
    choices: [staged, present]
    default: present
  owner:
    description:
      - User (name or uid) to own every unpacked file, instead of the owners recorded in the archive. Use it
        when the node's RethinkDB user has another uid than when the backup was taken.
    type: str
  group:
    description:
      - Group (name or gid) to own every unpacked file, instead of the groups recorded in the archive.
    type: str
notes:
  - Needs root to restore the recorded owners, and room for the unpacked data on the data directory's
    filesystem while the current data directory still exists (the old data is moved aside, not deleted).
seealso:
  - module: bigchaindb.rethinkdb.snapshot
  - module: bigchaindb.rethinkdb.catalog
attributes:
  check_mode:
    support: full
    description: Verifies the archive's checksum and the free space (it reads the archive), then reports what
      it would unpack and move, and changes nothing.
  diff_mode:
    support: none
    description: Reports what it moved and unpacked in its result instead.
  idempotent:
    support: full
    description: Staging a staged set, or restoring a restored one, reports no change.
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Unpack each node's part while the cluster still runs
  bigchaindb.rethinkdb.data_restore:
    state: staged
    archive: /var/tmp/rethinkdb-restore/data.tar.zst
    sha256: "{{ part.sha256 }}"
    data_dir: /var/lib/rethinkdb/default
    set_id: "{{ set_id }}"

- name: With every server stopped, put the data in place
  bigchaindb.rethinkdb.data_restore:
    state: present
    archive: /var/tmp/rethinkdb-restore/data.tar.zst
    sha256: "{{ part.sha256 }}"
    data_dir: /var/lib/rethinkdb/default
    set_id: "{{ set_id }}"
    owner: rethinkdb
    group: rethinkdb
  register: restored

- name: Say where the previous data went
  ansible.builtin.debug:
    msg: "The previous data directory is now {{ restored.moved_aside_to }}"
'''

RETURN = r'''
staged_dir:
  description: Where the archive is (or was) unpacked before being put in place.
  returned: always
  type: str
  sample: /var/lib/rethinkdb/default.restore-20261124T163000Z-snapshot-3f9a
moved_aside_to:
  description: Where the previous data directory was moved (V(present)); null if there was none.
  returned: state is present
  type: str
  sample: /var/lib/rethinkdb/default.before-restore-20261124T163000Z-snapshot-3f9a
files:
  description: Entries unpacked (files, directories and links).
  returned: always
  type: int
raw_bytes:
  description: Size of the regular files unpacked.
  returned: always
  type: int
sha256:
  description: The archive's sha256 the data was unpacked from.
  returned: always
  type: str
seconds:
  description: Time this run spent.
  returned: always
  type: float
'''

import grp
import os
import pwd
import shutil
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import archive
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.backup_set import SHA256_RE, BackupSetError, set_id_time, write_json_atomic
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import SnapshotError, free_bytes, is_mount_point, read_json

# Room left beyond the unpacked size, for directories, metadata and rounding to blocks.
HEADROOM_BYTES = 64 * 1024 * 1024


class Restore:
    """The paths and the record of one node's restore of one set."""

    def __init__(self, data_dir: str, set_id: str):
        self.data_dir = data_dir
        self.set_id = set_id
        self.staged = '%s.restore-%s' % (data_dir, set_id)
        self.partial = self.staged + '.partial'
        self.aside = '%s.before-restore-%s' % (data_dir, set_id)
        self.record_path = self.staged + '.json'

    def record(self) -> dict:
        return read_json(self.record_path) or {}

    def save(self, record: dict) -> None:
        write_json_atomic(self.record_path, record)

    def is_done(self, record: dict) -> bool:
        """Whether data_dir is the directory this restore put in place (same inode as recorded)."""
        return (record.get('phase') == 'done' and os.path.isdir(self.data_dir)
                and os.stat(self.data_dir).st_ino == record.get('data_dir_inode'))

    def is_staged(self, record: dict) -> bool:
        return record.get('phase') in ('staged', 'moving') and os.path.isdir(self.staged)


def owner_ids(module) -> tuple:
    """(uid, gid) overrides from owner and group; None where unset."""
    return (_account_id(module.params['owner'], lambda name: pwd.getpwnam(name).pw_uid, 'User'),
            _account_id(module.params['group'], lambda name: grp.getgrnam(name).gr_gid, 'Group'))


def _account_id(value, lookup, kind: str):
    """The id of a user or group given by name or number; None for None."""
    if value is None:
        return None
    try:
        return lookup(value)
    except KeyError:
        if value.isdigit():
            return int(value)
        raise SnapshotError('%s %r does not exist on this node.' % (kind, value))


def processes_using(directory: str) -> list[str]:
    """Processes with a file or their working directory under directory ('pid (command)'), from /proc."""
    users = []
    prefix = directory + '/'
    for pid in filter(str.isdigit, os.listdir('/proc')):
        if any(target == directory or target.startswith(prefix) for target in _open_paths(pid)):
            users.append('%s (%s)' % (pid, _command(pid)))
    return users


def _open_paths(pid: str):
    """The working directory and open files of a process; what vanishes or is not ours to read is left out."""
    try:
        links = ['/proc/%s/cwd' % pid] + ['/proc/%s/fd/%s' % (pid, fd) for fd in os.listdir('/proc/%s/fd' % pid)]
    except OSError:
        return
    for link in links:
        try:
            yield os.readlink(link)
        except OSError:
            continue


def _command(pid: str) -> str:
    try:
        with open('/proc/%s/comm' % pid, encoding='utf-8') as comm:
            return comm.read().strip()
    except OSError:
        return '?'


def stage(module, restore: Restore, record: dict) -> tuple[dict, bool]:
    """Verify and unpack the archive beside the data directory; return the record and whether it changed."""
    params = module.params
    if restore.is_staged(record) or restore.is_done(record):
        if params['sha256'] and record['sha256'] != params['sha256'].lower():
            raise SnapshotError('%s was unpacked from another archive (sha256 %s, not %s): remove it and %s to stage this one.'
                                % (restore.staged, record['sha256'], params['sha256'].lower(), restore.record_path))
        return record, False
    owner = owner_ids(module)
    if not params['archive']:
        raise SnapshotError('archive is required: set %s is not staged on this node yet.' % restore.set_id)
    if not os.path.isfile(params['archive']):
        raise SnapshotError('The archive %s does not exist on this node.' % params['archive'])
    parent = os.path.dirname(restore.data_dir)
    if not os.path.isdir(parent):
        raise SnapshotError('%s, the directory that holds data_dir, does not exist.' % parent)
    raw_bytes, sha256 = archive.survey(params['archive'], params['sha256'])
    needed = raw_bytes + HEADROOM_BYTES
    available = free_bytes(parent)
    if needed > available:
        raise SnapshotError('Not enough space to unpack %s beside %s: %d bytes free, %d needed.'
                            % (params['archive'], restore.data_dir, available, needed))
    if module.check_mode:
        return dict(record, sha256=sha256, files=None, raw_bytes=raw_bytes), True
    if os.path.lexists(restore.partial):
        shutil.rmtree(restore.partial)
    unpacked = archive.extract(params['archive'], restore.partial, owner=owner)
    record = dict(set_id=restore.set_id, phase='staged', archive=params['archive'],
                  sha256=sha256,
                  files=unpacked['files'], raw_bytes=unpacked['raw_bytes'])
    restore.save(record)
    os.rename(restore.partial, restore.staged)
    archive.fsync_dir(parent)
    return record, True


def put_in_place(module, restore: Restore, record: dict) -> tuple[dict, bool]:
    """Move the data directory aside and the staged one into its place; resume after an interruption."""
    if restore.is_done(record):
        return record, False
    if record.get('phase') == 'moving':
        return finish_move(restore, record), True
    if os.path.lexists(restore.aside):
        raise SnapshotError('%s already exists, from an earlier restore or made by hand: move it elsewhere (the collection '
                            'never deletes it), then run again.' % restore.aside)
    record, dummy = stage(module, restore, record)
    if os.path.isdir(restore.data_dir):
        users = processes_using(restore.data_dir)
        if users:
            raise SnapshotError('%s is in use by %s: stop the RethinkDB server first.' % (restore.data_dir, ', '.join(users)))
    moved_aside_to = restore.aside if os.path.lexists(restore.data_dir) else None
    if module.check_mode:
        return dict(record, moved_aside_to=moved_aside_to), True
    record = dict(record, phase='moving', moved_aside_to=moved_aside_to)
    restore.save(record)
    return finish_move(restore, record), True


def finish_move(restore: Restore, record: dict) -> dict:
    """The two renames, each done only if not done yet, then the record says done."""
    if record['moved_aside_to'] and not os.path.lexists(restore.aside):
        os.rename(restore.data_dir, restore.aside)
    if os.path.isdir(restore.staged):
        if os.path.lexists(restore.data_dir):
            raise SnapshotError('%s appeared while it was being restored; the staged data is still in %s.'
                                % (restore.data_dir, restore.staged))
        os.rename(restore.staged, restore.data_dir)
    archive.fsync_dir(os.path.dirname(restore.data_dir))
    record = dict(record, phase='done', data_dir_inode=os.stat(restore.data_dir).st_ino)
    restore.save(record)
    return record


def main():
    module = AnsibleModule(
        argument_spec=dict(
            archive=dict(type='path'),
            sha256=dict(type='str'),
            data_dir=dict(type='path', required=True),
            set_id=dict(type='str', required=True),
            state=dict(type='str', default='present', choices=['staged', 'present']),
            owner=dict(type='str'),
            group=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    started = time.monotonic()
    if archive.ZSTANDARD_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib('zstandard'), exception=archive.ZSTANDARD_IMPORT_ERROR)
    try:
        set_id_time(params['set_id'])
    except BackupSetError as exc:
        module.fail_json(msg='set_id: %s.' % exc)
    if params['sha256'] and not SHA256_RE.fullmatch(params['sha256'].lower()):
        module.fail_json(msg='sha256 %r is not a sha256 in hex (64 characters).' % params['sha256'])
    data_dir = os.path.realpath(params['data_dir'])
    if is_mount_point(data_dir):
        module.fail_json(msg='data_dir %s is a mount point, which cannot be moved aside: keep the data in a subdirectory '
                             'of the mount (and point RethinkDB at it).' % data_dir)
    restore = Restore(data_dir, params['set_id'])
    try:
        record = restore.record()
        if params['state'] == 'staged':
            record, changed = stage(module, restore, record)
        else:
            record, changed = put_in_place(module, restore, record)
    except SnapshotError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except archive.ArchiveError as exc:
        module.fail_json(msg='Cannot restore from %s: %s.' % (params['archive'], exc))
    except OSError as exc:
        module.fail_json(msg='%s: %s.' % (exc.filename or data_dir, exc.strerror or exc))
    result = dict(changed=changed, staged_dir=restore.staged, files=record.get('files'), raw_bytes=record.get('raw_bytes'),
                  sha256=record.get('sha256'), seconds=round(time.monotonic() - started, 3))
    if params['state'] == 'present':
        result['moved_aside_to'] = record.get('moved_aside_to')
    if module.check_mode and changed:
        result['msg'] = describe_plan(restore, record, params['state'])
    module.exit_json(**result)


def describe_plan(restore: Restore, record: dict, state: str) -> str:
    """What a check-mode run would do, in one sentence."""
    steps = []
    if not restore.is_staged(record):
        steps.append('unpack the verified archive into %s' % restore.staged)
    if state == 'present':
        if record.get('moved_aside_to'):
            steps.append('move %s aside to %s' % (restore.data_dir, restore.aside))
        steps.append('rename %s to %s' % (restore.staged, restore.data_dir))
    return 'Would %s.' % ', then '.join(steps)


if __name__ == '__main__':
    main()
