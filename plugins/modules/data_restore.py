#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: data_restore
short_description: Put one node's RethinkDB data directory back from its part of a snapshot set
version_added: 0.1.0
description:
  - Restores one node's data directory from its part of a snapshot backup set (a C(tar.zst) archive made by
    M(bigchaindb.rethinkdb.snapshot)). The C(restore) role runs it on every node, because a snapshot set is
    only safe to restore on all nodes together, with the whole cluster stopped.
  - Every step is written to the node's restore journal, C(<data_dir>.restore-journal.json), before it is
    taken, so that a restore whose controller died is finished, or rolled back, by running it again with the
    same O(restore_id) (M(bigchaindb.rethinkdb.data_restore_info) reads the journal).
  - O(state=staged) reads the part once, from a file on the node (O(archive)) or straight from the
    repository, and in that one pass decrypts it (O(identity_file)), checks its sha256, the zstd checksum and
    every file against the set's file index, and unpacks it into C(<data_dir>.restore-<restore_id>) beside
    the data directory (every file fsynced); what does not match is removed and nothing else is touched. It
    runs while the server still runs, so that a bad part or a wrong key is found before anything is stopped.
  - O(state=swapped) moves the current data directory aside to C(<data_dir>.before-restore-<restore_id>)
    (a rename; the collection never deletes it) and renames the staged directory into place. The server must
    be stopped; the module refuses while a process has files open in the data directory.
  - O(state=finished) records that the restore was verified (the C(restore) role gives it after the
    document counts matched), once the data directory is the one this restore put in place.
  - O(state=rolled_back) puts the previous data back (the restored data is moved to
    C(<data_dir>.rolled-back-<restore_id>), kept), with the server stopped.
  - Unpacking is safe against hostile archives (no absolute names, no C(..), no devices or FIFOs, links only
    inside), keeps modes without set-id and sticky bits (RV(special_bits) names members that had them; an
    archive of a data directory has none, so such an archive is suspect) and times, and gives every file
    one owner, O(owner) and O(group), or by default the owner of the current data directory.
extends_documentation_fragment:
  - bigchaindb.rethinkdb.repository
options:
  data_dir:
    description:
      - The RethinkDB server's data directory on this node. Symbolic links are resolved.
      - It must not be a mount point, which cannot be renamed; keep the data in a subdirectory of the mount.
      - It need not exist (a node rebuilt empty); then nothing is moved aside.
    type: path
    required: true
  restore_id:
    description:
      - The restore run, the same on every node (the C(restore) role makes one per restore, and reuses the
        id of an unfinished restore to finish it). Names the staged and moved-aside directories.
    type: str
    required: true
  set_id:
    description:
      - The backup set being restored. Required for O(state=staged).
    type: str
  state:
    description:
      - What to do, see the description.
    type: str
    choices: [staged, swapped, finished, rolled_back]
    default: staged
  part:
    description:
      - For O(state=staged), this node's part as the set's manifest records it (C(path) and C(sha256) are
        required; C(raw_bytes) is checked against the free space first; C(files), the file index, is checked
        while unpacking; C(encryption) says which recipients it is encrypted to).
    type: dict
  archive:
    description:
      - For O(state=staged), the part as a file on this node (the C(restore) role hands it over so for a
        repository of kind C(controller)). Without it, the part is read from O(repository).
    type: path
  identity_file:
    description:
      - For O(state=staged) of an encrypted part, a file on this node holding the age identity (private
        key) of one of the part's recipients. Checked against the recipients before anything is read.
    type: path
  run:
    description:
      - Who runs the restore, kept in the journal (the C(restore) role gives the
        C(bigchaindb.rethinkdb.controller_run) lookup).
    type: dict
    default: {}
  owner:
    description:
      - User (name or uid) to own every unpacked file. Default the owner of the current data directory (of the
        directory that holds it, when there is none).
    type: str
  group:
    description:
      - Group (name or gid) to own every unpacked file. Default the group of the current data directory.
    type: str
notes:
  - Needs root to give the files their owner, and room for the unpacked data on the data directory's
    filesystem while the current data directory still exists (the old data is moved aside, not deleted).
  - A journal of another restore in which nothing was swapped yet (only staged) is taken over by a new
    restore, and what it had unpacked is removed; a journal of another restore that moved data is never
    taken over; finish that restore or roll it back first.
seealso:
  - module: bigchaindb.rethinkdb.data_restore_info
  - module: bigchaindb.rethinkdb.snapshot
  - module: bigchaindb.rethinkdb.catalog_info
attributes:
  check_mode:
    support: full
    description: Checks the journal, the key and the free space, then reports what it would do, and changes nothing.
  diff_mode:
    support: none
    description: Reports what it moved and unpacked in its result instead.
  idempotent:
    support: full
    description: Each state again for the same O(restore_id) reports no change.
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Choose the newest complete snapshot set
  bigchaindb.rethinkdb.catalog_info:
    repository: s3://backups/rethinkdb
    cluster: rethinkdb
    s3_credentials_file: /etc/rethinkdb/s3-credentials
    query: "[?method=='snapshot']"
  delegate_to: localhost
  run_once: true
  register: chosen

- name: Name this restore run, the same on every node
  ansible.builtin.set_fact:
    restore_id: "{{ now(utc=true).strftime('%Y%m%dT%H%M%SZ') }}"
  run_once: true

- name: Unpack each node's part straight from the repository while the cluster still runs
  bigchaindb.rethinkdb.data_restore:
    state: staged
    data_dir: /var/lib/rethinkdb/default
    restore_id: "{{ restore_id }}"
    set_id: "{{ chosen.set.set_id }}"
    part: "{{ chosen.manifest.parts | selectattr('server', 'equalto', inventory_hostname) | first }}"
    repository: s3://backups/rethinkdb
    cluster: rethinkdb
    s3_endpoint_url: https://s3.example.net
    s3_region: eu-west-1
    s3_credentials_file: /etc/rethinkdb/s3-credentials
    s3_profile: backups
    s3_ca_bundle: /etc/ssl/certs/example-ca.pem
    identity_file: /run/rethinkdb-restore/identity.txt
    run: "{{ lookup('bigchaindb.rethinkdb.controller_run') }}"

- name: Unpack a part handed over as a file, owned by the rethinkdb user
  bigchaindb.rethinkdb.data_restore:
    state: staged
    data_dir: /var/lib/rethinkdb/default
    restore_id: "{{ restore_id }}"
    set_id: "{{ chosen.set.set_id }}"
    part: "{{ chosen.manifest.parts | selectattr('server', 'equalto', inventory_hostname) | first }}"
    archive: /var/tmp/rethinkdb-restore/data.tar.zst
    owner: rethinkdb
    group: rethinkdb

- name: With every server stopped, put the data in place
  bigchaindb.rethinkdb.data_restore:
    state: swapped
    data_dir: /var/lib/rethinkdb/default
    restore_id: "{{ restore_id }}"
  register: swapped

- name: Once the cluster is verified, close the journal
  bigchaindb.rethinkdb.data_restore:
    state: finished
    data_dir: /var/lib/rethinkdb/default
    restore_id: "{{ restore_id }}"

- name: Or put the previous data back
  bigchaindb.rethinkdb.data_restore:
    state: rolled_back
    data_dir: /var/lib/rethinkdb/default
    restore_id: "{{ restore_id }}"
'''

RETURN = r'''
journal:
  description: The node's restore journal after this step (restore id, set, phase and its history, the
    directories it names, what was unpacked).
  returned: always
  type: dict
  sample: {"restore_id": "20261202T051500Z-a1b2", "set_id": "20261124T163000Z-snapshot-3f9a", "phase": "swapped",
           "staged": "/var/lib/rethinkdb/default.restore-20261202T051500Z-a1b2",
           "aside": "/var/lib/rethinkdb/default.before-restore-20261202T051500Z-a1b2"}
staged_dir:
  description: Where the part is (or was) unpacked before being put in place.
  returned: always
  type: str
  sample: /var/lib/rethinkdb/default.restore-20261202T051500Z-a1b2
moved_aside_to:
  description: Where the previous data directory was moved; null if there was none (or not yet).
  returned: always
  type: str
  sample: /var/lib/rethinkdb/default.before-restore-20261202T051500Z-a1b2
entries:
  description: Entries unpacked (files, directories and links).
  returned: state is staged
  type: int
  sample: 12
raw_bytes:
  description: Size of the regular files unpacked.
  returned: state is staged
  type: int
  sample: 1048576
special_bits:
  description: Members that carried set-uid, set-gid or sticky bits, restored without them.
  returned: state is staged
  type: list
  elements: str
  sample: []
superseded:
  description: An earlier restore that had only staged, whose unpacked data this one removed; else null.
  returned: state is staged
  type: str
  sample: 20261201T230000Z-0c0c
rolled_back:
  description: What O(state=rolled_back) moved.
  returned: state is rolled_back
  type: list
  elements: str
  sample: ["moved the restored data /var/lib/rethinkdb/default to /var/lib/rethinkdb/default.rolled-back-20261202T051500Z-a1b2"]
seconds:
  description: Time this run spent.
  returned: always
  type: float
  sample: 4.2
'''

import grp
import os
import pwd
import shutil
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import archive, encryption
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.fault_points import checkpoint
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import fsync_dir, free_bytes
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import (
    MissingLibraryError, RepositoryError, part_source, repository_argument_spec)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.restore_journal import (
    UNTOUCHED, Journal, JournalError, Paths, data_dir_inode, finish_swap, is_unfinished, undo_swap)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import SHA256_RE, FormatError, set_id_time
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import is_mount_point

# Room left beyond the unpacked size, for directories, metadata and rounding to blocks.
HEADROOM_BYTES = 64 * 1024 * 1024


def owner_ids(params: dict, data_dir: str) -> tuple:
    """(uid, gid) to own every unpacked file: the options, else the current data directory's (or its
    parent's) owner; (None, None) when not root, since only root can give files away."""
    if os.geteuid() != 0:
        return None, None
    current = os.stat(data_dir if os.path.isdir(data_dir) else os.path.dirname(data_dir))
    uid = _account_id(params['owner'], lambda name: pwd.getpwnam(name).pw_uid, 'User')
    gid = _account_id(params['group'], lambda name: grp.getgrnam(name).gr_gid, 'Group')
    return (current.st_uid if uid is None else uid), (current.st_gid if gid is None else gid)


def _account_id(value, lookup, kind: str):
    """The id of a user or group given by name or number; None for None."""
    if value is None:
        return None
    try:
        return lookup(value)
    except KeyError:
        if value.isdigit():
            return int(value)
        raise JournalError('%s %r does not exist on this node.' % (kind, value)) from None


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


def unfinished_message(record: dict) -> str:
    return ('This node has an unfinished restore %s of set %s (phase %s): run the restore of set %s again to finish it, or roll '
            'it back (restore_rollback=true in the restore role; data_restore state=rolled_back).'
            % (record['restore_id'], record['set_id'], record['phase'], record['set_id']))


def own_record(journal: Journal, restore_id: str) -> dict:
    """The journal of this restore; JournalError when the node's latest restore is another."""
    record = journal.read()
    if record is None:
        raise JournalError('No restore %s on this node (no journal %s): stage it first.' % (restore_id, journal.path))
    if record['restore_id'] != restore_id:
        raise JournalError(unfinished_message(record) if is_unfinished(record) else
                           'The latest restore on this node is %s, not %s: stage this one first.' % (record['restore_id'], restore_id))
    return record


def superseded_by(record: dict | None, restore_id: str) -> str | None:
    """The earlier restore a new one takes over (one that only staged), or None; JournalError for an unfinished
    one that moved data."""
    if not record or record['restore_id'] == restore_id or not is_unfinished(record):
        return None
    if record['phase'] not in UNTOUCHED:
        raise JournalError(unfinished_message(record))
    return record['restore_id']


def remove_unpacked(paths: Paths) -> None:
    """Remove what a restore unpacked and never put in place (it can be unpacked again from its set)."""
    for directory in (paths.unpacking, paths.staged):
        if os.path.isdir(directory):
            shutil.rmtree(directory)


def identities_for(params: dict, part: dict):
    """The identities that decrypt the part, checked against its recipients before anything is read."""
    recipients = (part.get('encryption') or {}).get('recipients')
    if not recipients:
        return None
    if not params['identity_file']:
        raise JournalError('Part %s is encrypted to %s: give identity_file, the age identity of one of them.'
                           % (part['path'], ', '.join(recipients)))
    identities = encryption.read_identities(params['identity_file'])
    encryption.check_identities(identities, recipients, 'part %s' % part['path'])
    return identities


def stage(module, journal: Journal, paths: Paths) -> dict:
    params = module.params
    part = params['part']
    record = journal.read()
    if record and record['restore_id'] == params['restore_id'] and record['phase'] != 'staging':
        if record['phase'] == 'rolled_back':
            raise JournalError('Restore %s was rolled back on this node: start a new restore.' % params['restore_id'])
        if record['sha256'] != part['sha256']:
            raise JournalError('Restore %s staged another part here (sha256 %s, not %s): give a new restore_id.'
                               % (params['restore_id'], record['sha256'], part['sha256']))
        return dict(changed=False, journal=record)
    identities = identities_for(params, part)
    parent = os.path.dirname(paths.data_dir)
    if not os.path.isdir(parent):
        raise JournalError('%s, the directory that holds data_dir, does not exist.' % parent)
    if part.get('raw_bytes') is not None and part['raw_bytes'] + HEADROOM_BYTES > free_bytes(parent):
        raise JournalError('Not enough space to unpack part %s beside %s: %d bytes free, %d needed.'
                           % (part['path'], paths.data_dir, free_bytes(parent), part['raw_bytes'] + HEADROOM_BYTES))
    owner = owner_ids(params, paths.data_dir)
    superseded = superseded_by(record, params['restore_id'])
    if module.check_mode:
        return dict(changed=True, journal=record, superseded=superseded, msg='Would unpack part %s into %s.' % (part['path'], paths.staged))
    if superseded:
        remove_unpacked(Paths(paths.data_dir, superseded))
    # A run of this restore that died before its journal said staged left these half done.
    remove_unpacked(paths)
    record = journal.record(dict(restore_id=params['restore_id'], set_id=params['set_id'], run=params['run'], data_dir=paths.data_dir,
                                 staged=paths.staged, aside=None, sha256=part['sha256'], part=part['path']), 'staging')
    checkpoint('data_restore:staging')
    source = part_source(params, part['path'])
    try:
        unpacked = archive.extract(source, paths.unpacking, sha256=part['sha256'], index=part.get('files'), owner=owner,
                                   identities=identities)
    finally:
        source.close()
    os.rename(paths.unpacking, paths.staged)
    fsync_dir(parent)
    record = journal.record(record, 'staged', entries=unpacked['entries'], raw_bytes=unpacked['raw_bytes'],
                            special_bits=unpacked['special_bits'])
    checkpoint('data_restore:staged')
    if unpacked['special_bits']:
        module.warn('Part %s had set-uid, set-gid or sticky bits on %s, which a data directory never needs; they were left '
                    'out. Check where this backup came from.' % (part['path'], ', '.join(unpacked['special_bits'][:5])))
    return dict(changed=True, journal=record, superseded=superseded, entries=unpacked['entries'], raw_bytes=unpacked['raw_bytes'],
                special_bits=unpacked['special_bits'])


def swap(module, journal: Journal, paths: Paths) -> dict:
    record = own_record(journal, module.params['restore_id'])
    if record['phase'] in ('swapped', 'finished'):
        return dict(changed=False, journal=record)
    if record['phase'] not in ('staged', 'swapping'):
        raise JournalError('Restore %s is %s on this node, so its data cannot be put in place: stage it first.' % (record['restore_id'], record['phase']))
    if os.path.isdir(paths.data_dir):
        users = processes_using(paths.data_dir)
        if users:
            raise JournalError('%s is in use by %s: stop the RethinkDB server first.' % (paths.data_dir, ', '.join(users)))
    if record['phase'] == 'staged':
        if os.path.lexists(paths.aside):
            raise JournalError('%s already exists, made by hand or by something else: move it elsewhere (the collection never '
                               'deletes it), then run again.' % paths.aside)
        if module.check_mode:
            return dict(changed=True, journal=record, msg='Would move %s aside to %s and put %s in its place.'
                        % (paths.data_dir, paths.aside, paths.staged))
        record = journal.record(record, 'swapping', aside=paths.aside if os.path.lexists(paths.data_dir) else None)
    elif module.check_mode:
        return dict(changed=True, journal=record, msg='Would finish putting %s in place.' % paths.staged)
    checkpoint('data_restore:swapping')
    finish_swap(paths, record)
    checkpoint('data_restore:renamed')
    record = journal.record(record, 'swapped', data_dir_inode=data_dir_inode(paths.data_dir))
    checkpoint('data_restore:swapped')
    return dict(changed=True, journal=record)


def finish(module, journal: Journal, paths: Paths) -> dict:
    record = own_record(journal, module.params['restore_id'])
    if record['phase'] == 'finished':
        return dict(changed=False, journal=record)
    if record['phase'] != 'swapped':
        raise JournalError('Restore %s is %s on this node, not swapped: it cannot be finished.' % (record['restore_id'], record['phase']))
    if data_dir_inode(paths.data_dir) != record['data_dir_inode']:
        raise JournalError('%s is not the directory restore %s put in place: something replaced it since. Look at it before '
                           'anything else.' % (paths.data_dir, record['restore_id']))
    if module.check_mode:
        return dict(changed=True, journal=record, msg='Would record restore %s as finished.' % record['restore_id'])
    return dict(changed=True, journal=journal.record(record, 'finished'))


def roll_back(module, journal: Journal, paths: Paths) -> dict:
    record = own_record(journal, module.params['restore_id'])
    if record['phase'] == 'rolled_back':
        return dict(changed=False, journal=record, rolled_back=[])
    if os.path.isdir(paths.data_dir) and record['phase'] not in ('staging', 'staged'):
        users = processes_using(paths.data_dir)
        if users:
            raise JournalError('%s is in use by %s: stop the RethinkDB server first.' % (paths.data_dir, ', '.join(users)))
    if module.check_mode:
        return dict(changed=True, journal=record, rolled_back=[], msg='Would put the data from before restore %s back.' % record['restore_id'])
    done = [] if record['phase'] in ('staging', 'staged') else undo_swap(paths, record)
    return dict(changed=True, journal=journal.record(record, 'rolled_back'), rolled_back=done)


def readable(journal: Journal) -> dict | None:
    """The journal for a failed result, or None when it is what failed."""
    try:
        return journal.read()
    except JournalError:
        return None


def main():
    argument_spec = repository_argument_spec()
    argument_spec.update(
        data_dir=dict(type='path', required=True),
        restore_id=dict(type='str', required=True),
        set_id=dict(type='str'),
        state=dict(type='str', default='staged', choices=['staged', 'swapped', 'finished', 'rolled_back']),
        part=dict(type='dict'),
        archive=dict(type='path'),
        identity_file=dict(type='path'),
        run=dict(type='dict', default={}),
        owner=dict(type='str'),
        group=dict(type='str'),
    )
    module = AnsibleModule(argument_spec=argument_spec, required_if=[('state', 'staged', ['set_id', 'part'])],
                           mutually_exclusive=[('archive', 'repository')], required_by={'repository': 'cluster'},
                           supports_check_mode=True)
    params = module.params
    started = time.monotonic()
    if params['state'] == 'staged':
        if archive.ZSTANDARD_IMPORT_ERROR is not None:
            module.fail_json(msg=missing_required_lib('zstandard'), exception=archive.ZSTANDARD_IMPORT_ERROR)
        if (params['part'].get('encryption') or {}).get('recipients') and encryption.PYRAGE_IMPORT_ERROR is not None:
            module.fail_json(msg=missing_required_lib('pyrage'), exception=encryption.PYRAGE_IMPORT_ERROR)
        if not isinstance(params['part'].get('path'), str) or not SHA256_RE.fullmatch(str(params['part'].get('sha256')).lower()):
            module.fail_json(msg='part needs path and sha256 (64 hex digits), as the set\'s manifest records them.')
        if not params['archive'] and not (params['repository'] and params['cluster']):
            module.fail_json(msg='state=staged needs archive (a file on this node), or repository and cluster.')
        try:
            set_id_time(params['set_id'])
        except FormatError as exc:
            module.fail_json(msg='set_id: %s.' % exc)
    data_dir = os.path.realpath(params['data_dir'])
    if is_mount_point(data_dir):
        module.fail_json(msg='data_dir %s is a mount point, which cannot be moved aside: keep the data in a subdirectory '
                             'of the mount (and point RethinkDB at it).' % data_dir)
    journal = Journal(data_dir)
    paths = Paths(data_dir, params['restore_id'])
    steps = dict(staged=stage, swapped=swap, finished=finish, rolled_back=roll_back)
    try:
        result = steps[params['state']](module, journal, paths)
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.import_traceback)
    except JournalError as exc:
        module.fail_json(msg=str(exc), journal=readable(journal))
    except (archive.ArchiveError, encryption.EncryptionError, RepositoryError) as exc:
        module.fail_json(msg='Cannot restore part %s here: %s. Nothing was changed.' % ((params['part'] or {}).get('path'), str(exc).rstrip('.')))
    except OSError as exc:
        module.fail_json(msg='%s: %s.' % (exc.filename or data_dir, exc.strerror or exc))
    record = result.get('journal') or {}
    result.update(staged_dir=paths.staged, moved_aside_to=record.get('aside') if record.get('phase') in ('swapped', 'finished') else None,
                  seconds=round(time.monotonic() - started, 3))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
