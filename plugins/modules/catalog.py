#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: catalog
short_description: List, check, select, write and prune RethinkDB backup sets
version_added: 0.1.0
description:
  - Manages the backup sets of one cluster stored under O(root), as C(<root>/<cluster>/<set_id>/).
  - A set is complete only when its C(manifest.json) is valid and every part listed in it is present with
    the recorded size (and, when checked, sha256). Work in progress lives in C(<set_id>.partial/); a failed
    run leaves it marked failed.
  - O(operation=list), O(operation=check) and O(operation=select) read the sets; O(operation=prune)
    deletes sets by retention; O(operation=begin), O(operation=commit) and O(operation=fail) write a set
    step by step, for the backup role.
  - Runs where the backups are stored. The collection's roles run it on the controller, with
    C(delegate_to) set to C(localhost).
options:
  root:
    description:
      - The backup root directory. The sets of the cluster are under C(<root>/<cluster>/).
      - A root that does not exist yet holds no sets; O(operation=begin) creates it.
      - The cluster's directory and the set directories that the module creates are readable by their
        owner only (mode C(0700)), since a backup holds the whole database.
    type: path
    required: true
  cluster:
    description:
      - The cluster's name, the directory under O(root) that holds its sets.
      - Letters, digits, C(_), C(.) and C(-), starting with a letter or digit. The roles use the inventory
        group's name.
    type: str
    required: true
  operation:
    description:
      - V(list) returns every set of the cluster, complete or not, newest first. It is cheap, sizes are
        checked and nothing is hashed.
      - V(check) fully validates one set (manifest, every part's presence, size and sha256) and fails
        when it has problems, listing them. The set is O(set_id) when given, otherwise the one O(which)
        selects.
      - V(select) picks one complete set by O(which).
      - V(prune) deletes sets by O(keep_last), O(keep_days) and O(grace_hours). A set is first renamed
        to C(<name>.deleting), then removed, so an interrupted prune never leaves a half-deleted set that
        looks complete.
      - V(begin) creates C(<set_id>.partial/) with its C(dump/) or C(nodes/) directory, for O(method).
      - V(commit) checks the parts of a partial set, writes C(manifest.json) atomically and renames the
        set to its final name.
      - V(fail) marks a partial set failed with O(reason); it stays for inspection until O(grace_hours)
        have passed and a prune removes it.
    type: str
    choices: [list, check, select, prune, begin, commit, fail]
    default: list
  set_id:
    description:
      - The set to work on, like C(20261124T163000Z-snapshot-3f9a). Required for O(operation=commit) and
        O(operation=fail).
      - With O(operation=begin), create this id instead of a new one; running it again while the set is
        still partial changes nothing. Its method must be O(method).
      - With O(operation=check), the set to check, complete or not.
      - Mutually exclusive with O(which).
    type: str
  which:
    description:
      - The set that O(operation=select) and O(operation=check) choose. When unset, V(latest).
      - V(latest) is the newest complete set.
      - A set id chooses that set, which must be complete.
      - Anything else is a JMESPath query over the listing (the RV(sets) that O(operation=list)
        returns). It must return a list of sets or one set; of the sets it returns, the newest complete
        one is chosen. For example C([?method=='snapshot']), or
        C([?contains(tables, 'bigchain.votes') && started_at < '2026-11-01']).
      - A query that matches no set, or only incomplete ones, is an error that says so.
    type: str
  keep_last:
    description:
      - For O(operation=prune), keep the newest O(keep_last) complete sets.
      - A set is kept when O(keep_last) or O(keep_days) keeps it. With neither set, every complete set is
        kept and only incomplete sets past O(grace_hours) are deleted.
      - The newest complete set is never deleted, whatever the rules say.
    type: int
  keep_days:
    description:
      - For O(operation=prune), keep every complete set younger than O(keep_days) days, by the time in
        its set id.
    type: int
  grace_hours:
    description:
      - For O(operation=prune), incomplete sets (partial, failed or invalid) are deleted once they are
        older than this many hours, by the time in their set id.
      - Give a backup time to finish, since a backup still running after this long is deleted under it.
    type: int
    default: 24
  method:
    description:
      - The backup method of the set that O(operation=begin) creates. Required for O(operation=begin).
    type: str
    choices: [dump, snapshot]
  manifest:
    description:
      - For O(operation=commit), the manifest fields that the caller knows. The module adds C(format),
        C(set_id), C(cluster), C(method) and C(parts).
      - C(rethinkdb_version) (required) the servers' version, like C(2.4.4).
      - C(tables) (required) a list with, per table, C(db), C(name), C(documents), C(primary_key),
        C(indexes), C(shards), C(replicas) and C(primary_replicas).
      - C(started_at) and C(finished_at), ISO 8601 UTC with milliseconds (C(2026-11-24T16:30:00.123Z));
        by default the time in the set id and the time of the commit.
      - C(snapshot), for method C(snapshot) only (required there) C(backend), C(barrier_at), C(skew_ms)
        and C(nodes), a list of C(server), C(host), C(taken_at) and C(freeze_ms).
    type: dict
  parts:
    description:
      - For O(operation=commit), every file of the set that the manifest records. Each is checked before
        the commit; a missing file, another size, or (with O(verify_checksums=true)) another sha256 refuses
        the commit.
    type: list
    elements: dict
    suboptions:
      path:
        description:
          - The file's path relative to the set directory, with C(/), like C(dump/bigchain.tar.gz) or
            C(nodes/node1/data.tar.zst). Never absolute, never C(..).
        type: str
        required: true
      bytes:
        description: The file's size.
        type: int
        required: true
      sha256:
        description: The file's sha256, 64 lowercase hex digits.
        type: str
        required: true
      server:
        description: The RethinkDB server whose data the part holds (snapshot parts); null for dumps.
        type: str
      host:
        description: The inventory host that produced the part.
        type: str
  verify_checksums:
    description:
      - Hash every part (in 1 MiB chunks) when committing or checking, rather than checking sizes only.
    type: bool
    default: true
  reason:
    description:
      - For O(operation=fail), why the backup failed; kept in the set's C(FAILED) marker and shown by
        O(operation=list). Required for O(operation=fail).
    type: str
attributes:
  check_mode:
    support: full
    description:
      - V(list), V(check) and V(select) run as usual.
      - V(prune) reports what it would delete and deletes nothing.
      - V(begin), V(commit) and V(fail) change nothing and say what they would do; V(commit) still checks
        the parts.
  diff_mode:
    support: none
    description: The module returns no diff; RV(pruned) and RV(set) say what changed.
  idempotent:
    support: partial
    description: Running an operation twice changes nothing the second time, except V(begin) without a set id.
    details:
      - V(prune) a second time, V(fail) of a set already marked failed, V(commit) of a set already committed
        with the same parts, and V(begin) with the O(set_id) of a partial set report no change.
      - V(begin) without O(set_id) creates a new set each time.
notes:
  - Times in set ids and manifests are UTC. Retention ages are measured from the time in the set id.
  - A set's C(cluster.json) (the topology the backup role saves) is not one of its parts and is not checked
    here.
seealso:
  - module: bigchaindb.rethinkdb.snapshot
requirements:
  - jmespath (Python library), only for O(which) queries
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: List the backup sets of the cluster
  bigchaindb.rethinkdb.catalog:
    root: /var/backups/rethinkdb
    cluster: rethinkdb
  delegate_to: localhost
  run_once: true
  register: catalog

- name: Show the incomplete ones and why
  ansible.builtin.debug:
    msg: "{{ item.set_id }}: {{ item.state }} ({{ item.reason }})"
  loop: "{{ catalog.sets | rejectattr('complete') }}"
  run_once: true

- name: Pick the newest complete snapshot set of November 2026
  bigchaindb.rethinkdb.catalog:
    root: /var/backups/rethinkdb
    cluster: rethinkdb
    operation: select
    which: "[?method=='snapshot' && starts_with(started_at, '2026-11')]"
  delegate_to: localhost
  run_once: true
  register: chosen

- name: Verify every part of the chosen set against its sha256
  bigchaindb.rethinkdb.catalog:
    root: /var/backups/rethinkdb
    cluster: rethinkdb
    operation: check
    set_id: "{{ chosen.set.set_id }}"
  delegate_to: localhost
  run_once: true

- name: Keep the newest 7 sets and every set of the last 30 days
  bigchaindb.rethinkdb.catalog:
    root: /var/backups/rethinkdb
    cluster: rethinkdb
    operation: prune
    keep_last: 7
    keep_days: 30
  delegate_to: localhost
  run_once: true
  register: pruned

# How the backup role writes a set: begin, write the parts, commit; mark it failed if anything fails.
- name: Write a dump set
  delegate_to: localhost
  run_once: true
  block:
    - name: Begin a dump set
      bigchaindb.rethinkdb.catalog:
        root: "{{ rethinkdb_backup_root }}"
        cluster: "{{ rethinkdb_backup_cluster }}"
        operation: begin
        method: dump
      register: backup

    - name: Dump the tables into the set
      ansible.builtin.debug:
        msg: "the dump writes {{ backup.set.path }}/dump/bigchain.tar.gz and registers dump"

    - name: Commit the set
      bigchaindb.rethinkdb.catalog:
        root: "{{ rethinkdb_backup_root }}"
        cluster: "{{ rethinkdb_backup_cluster }}"
        operation: commit
        set_id: "{{ backup.set.set_id }}"
        manifest:
          started_at: "{{ backup_started_at }}"
          rethinkdb_version: "{{ cluster_facts.version }}"
          tables: "{{ manifest_tables }}"
        parts:
          - path: dump/bigchain.tar.gz
            bytes: "{{ dump.bytes }}"
            sha256: "{{ dump.sha256 }}"
            host: "{{ inventory_hostname }}"
  rescue:
    - name: Mark the set failed
      bigchaindb.rethinkdb.catalog:
        root: "{{ rethinkdb_backup_root }}"
        cluster: "{{ rethinkdb_backup_cluster }}"
        operation: fail
        set_id: "{{ backup.set.set_id }}"
        reason: "{{ ansible_failed_task.name }}: {{ ansible_failed_result.msg | default('failed') }}"
      when: backup.set is defined

    - name: Stop here
      ansible.builtin.fail:
        msg: "Backup set {{ backup.set.set_id | default('(not begun)') }} failed."
'''

RETURN = r'''
sets:
  description: With O(operation=list), every set of the cluster, complete or not, newest first.
  returned: when operation is list
  type: list
  elements: dict
  contains:
    set_id:
      description: The set's id.
      type: str
    cluster:
      description: The cluster's name.
      type: str
    method:
      description: C(dump) or C(snapshot).
      type: str
    path:
      description: The set's directory (C(<set_id>), C(<set_id>.partial) or C(<set_id>.partial.deleting)).
      type: str
    complete:
      description: Whether the set can be restored (its state is C(complete)).
      type: bool
    state:
      description:
        - C(complete), C(partial) (not committed), C(failed) (marked failed) or C(invalid) (committed but
          broken, or left over from an interrupted prune).
      type: str
    started_at:
      description: When the backup started (the set id's time when the manifest is not readable).
      type: str
    finished_at:
      description: When the backup finished; null when the manifest is not readable.
      type: str
    bytes:
      description: Total size of the parts; of all files for an incomplete set.
      type: int
    tables:
      description: The tables in the set, as C(database.table).
      type: list
      elements: str
    documents:
      description: Documents in all tables of the set.
      type: int
    parts:
      description: How many parts the manifest records.
      type: int
    reason:
      description: Why the set is not complete; null when it is.
      type: str
  sample:
    - set_id: 20261124T163000Z-snapshot-3f9a
      cluster: rethinkdb
      method: snapshot
      path: /var/backups/rethinkdb/rethinkdb/20261124T163000Z-snapshot-3f9a
      complete: true
      state: complete
      started_at: "2026-11-24T16:30:00.123Z"
      finished_at: "2026-11-24T16:30:09.456Z"
      bytes: 734003200
      tables: [bigchain.backlog, bigchain.bigchain, bigchain.votes]
      documents: 48000
      parts: 3
      reason: null
    - set_id: 20261123T163000Z-dump-0b1c
      cluster: rethinkdb
      method: dump
      path: /var/backups/rethinkdb/rethinkdb/20261123T163000Z-dump-0b1c.partial
      complete: false
      state: failed
      started_at: "2026-11-23T16:30:00.000Z"
      finished_at: null
      bytes: 1048576
      tables: []
      documents: 0
      parts: 0
      reason: "the backup failed at 2026-11-23T16:31:02.001Z: node2 unreachable"
summary:
  description: With O(operation=list), one line per set, newest first, for people to read.
  returned: when operation is list
  type: list
  elements: str
  sample:
    - "20261124T163000Z-snapshot-3f9a  snapshot  complete      734.0 MB  3 tables  48,000 documents"
set:
  description:
    - The set that was checked, selected, begun, committed or marked failed, as one entry of RV(sets).
    - After a check that found problems, its state is C(invalid) and its reason the first problem.
    - With O(operation=begin) in check mode, only C(set_id), C(cluster), C(method) and C(path).
  returned: when operation is check, select, begin, commit or fail
  type: dict
  sample:
    set_id: 20261124T163000Z-dump-3f9a
    cluster: rethinkdb
    method: dump
    path: /var/backups/rethinkdb/rethinkdb/20261124T163000Z-dump-3f9a
    complete: true
    state: complete
    started_at: "2026-11-24T16:30:00.123Z"
    finished_at: "2026-11-24T16:30:09.456Z"
    bytes: 123456
    tables: [bigchain.bigchain, bigchain.votes]
    documents: 4800
    parts: 1
    reason: null
problems:
  description: With O(operation=check), every problem found; empty when the set is valid (the module fails otherwise).
  returned: when operation is check
  type: list
  elements: str
  sample: ["part nodes/node2/data.tar.zst has 1024 bytes, expected 99"]
pruned:
  description: The sets that O(operation=prune) deleted (would delete, in check mode), newest first.
  returned: when operation is prune
  type: list
  elements: dict
  contains:
    set_id:
      description: The set's id.
      type: str
    state:
      description: Its state before deletion.
      type: str
    path:
      description: Its directory.
      type: str
    bytes:
      description: The bytes its deletion frees.
      type: int
    why:
      description: The rule that let it go.
      type: str
  sample:
    - set_id: 20261020T163000Z-dump-77aa
      state: complete
      path: /var/backups/rethinkdb/rethinkdb/20261020T163000Z-dump-77aa
      bytes: 123456
      why: not one of the newest 7 complete sets and older than 30 days
pruned_bytes:
  description: The bytes freed by the deleted sets (that would be, in check mode).
  returned: when operation is prune
  type: int
  sample: 123456
kept:
  description: The sets that O(operation=prune) keeps, newest first, each with the rule that keeps it.
  returned: when operation is prune
  type: list
  elements: dict
  contains:
    set_id:
      description: The set's id.
      type: str
    state:
      description: Its state.
      type: str
    path:
      description: Its directory.
      type: str
    bytes:
      description: Its size.
      type: int
    why:
      description: The rule that keeps it.
      type: str
  sample:
    - set_id: 20261124T163000Z-snapshot-3f9a
      state: complete
      path: /var/backups/rethinkdb/rethinkdb/20261124T163000Z-snapshot-3f9a
      bytes: 734003200
      why: one of the newest 7 complete sets
'''

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import backup_set
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.backup_set import BackupSetError, MissingLibraryError

PART_IDENTITY = ('path', 'bytes', 'sha256')


def sentence(text: str) -> str:
    """A message from backup_set as one sentence of a result."""
    text = text.rstrip('.')
    return text[:1].upper() + text[1:] + '.'


def existing_set_dir(module, set_id: str) -> str:
    """The directory of a set by id: the final one, else the partial one; fail when neither exists."""
    paths = backup_set.set_paths(module.params['root'], module.params['cluster'], set_id)
    for set_dir in paths:
        if os.path.isdir(set_dir):
            return set_dir
    module.fail_json(msg='No backup set %s of cluster %s under %s.' % (set_id, module.params['cluster'], module.params['root']))


def set_line(entry: dict) -> str:
    """One set as a person reads it in a listing."""
    line = '%s  %-8s  %-8s  %9.1f MB  %d tables  %s documents' % (
        entry['set_id'], entry['method'], entry['state'], entry['bytes'] / 1e6, len(entry['tables']), format(entry['documents'], ','))
    return line + ('  (%s)' % entry['reason'] if entry['reason'] else '')


def run_list(module) -> dict:
    sets = backup_set.list_sets(module.params['root'], module.params['cluster'])
    return dict(changed=False, sets=sets, summary=[set_line(entry) for entry in sets])


def run_select(module) -> dict:
    sets = backup_set.list_sets(module.params['root'], module.params['cluster'])
    return dict(changed=False, set=backup_set.select(sets, module.params['which'] or 'latest'))


def run_check(module) -> dict:
    params = module.params
    if params['set_id']:
        set_dir = existing_set_dir(module, params['set_id'])
    else:
        set_dir = run_select(module)['set']['path']
    entry, problems = backup_set.inspect_set(set_dir, params['verify_checksums'])
    if problems:
        module.fail_json(msg='Backup set %s is not valid: %s.' % (entry['set_id'], '; '.join(problems)),
                         set=entry, problems=problems)
    return dict(changed=False, set=entry, problems=problems)


def run_prune(module) -> dict:
    params = module.params
    sets = backup_set.list_sets(params['root'], params['cluster'])
    plan = backup_set.plan_prune(sets, params['keep_last'], params['keep_days'], params['grace_hours'])
    if not module.check_mode:
        backup_set.prune(plan.delete)
    return dict(changed=bool(plan.delete), pruned=plan.delete, kept=plan.keep,
                pruned_bytes=sum(entry['bytes'] for entry in plan.delete))


def run_begin(module) -> dict:
    params = module.params
    root, cluster, method, set_id = params['root'], params['cluster'], params['method'], params['set_id']
    if set_id:
        backup_set.check_set_id_method(set_id, method)
        paths = backup_set.set_paths(root, cluster, set_id)
        if os.path.lexists(paths.final):
            module.fail_json(msg='Backup set %s already exists at %s: begin a new set.' % (set_id, paths.final))
        if os.path.isdir(paths.partial):
            entry = backup_set.describe_set(paths.partial)
            if entry['state'] == 'failed':
                module.fail_json(msg='Backup set %s was marked failed (%s): begin a new set.' % (set_id, entry['reason']), set=entry)
            return dict(changed=False, set=entry, msg='Backup set %s is already begun.' % set_id)
    if module.check_mode:
        set_id = set_id or backup_set.new_set_id(method)
        path = backup_set.set_paths(root, cluster, set_id).partial
        return dict(changed=True, set=dict(set_id=set_id, cluster=cluster, method=method, path=path),
                    msg='Would create backup set %s at %s.' % (set_id, path))
    set_id, partial_dir = backup_set.begin(root, cluster, method, set_id)
    return dict(changed=True, set=backup_set.describe_set(partial_dir), msg='Began backup set %s.' % set_id)


def committed_parts_match(final_dir: str, parts: list) -> bool:
    """Whether a committed set records exactly these parts (path, bytes, sha256)."""
    recorded = backup_set.read_manifest(final_dir).get('parts') or []
    identity = sorted(tuple(part.get(key) for key in PART_IDENTITY) for part in parts)
    return identity == sorted(tuple(part.get(key) for key in PART_IDENTITY) for part in recorded if isinstance(part, dict))


def run_commit(module) -> dict:
    params = module.params
    set_id = params['set_id']
    paths = backup_set.set_paths(params['root'], params['cluster'], set_id)
    if not os.path.isdir(paths.partial) and os.path.isdir(paths.final):
        if not committed_parts_match(paths.final, params['parts']):
            module.fail_json(msg='Backup set %s is already committed with other parts: begin a new set.' % set_id)
        return dict(changed=False, set=backup_set.describe_set(paths.final), msg='Backup set %s is already committed.' % set_id)
    if module.check_mode:
        backup_set.prepare_commit(paths.partial, params['manifest'], params['parts'], params['verify_checksums'])
        return dict(changed=True, set=backup_set.describe_set(paths.partial),
                    msg='Would commit backup set %s with %d part(s).' % (set_id, len(params['parts'])))
    final_dir = backup_set.commit(paths.partial, params['manifest'], params['parts'], params['verify_checksums'])
    return dict(changed=True, set=backup_set.describe_set(final_dir), msg='Committed backup set %s.' % set_id)


def run_fail(module) -> dict:
    params = module.params
    set_id = params['set_id']
    set_dir = existing_set_dir(module, set_id)
    entry = backup_set.describe_set(set_dir)
    if set_dir == backup_set.set_paths(params['root'], params['cluster'], set_id).final:
        module.fail_json(msg='Backup set %s is already committed (state %s): only a partial set can be marked failed.'
                         % (set_id, entry['state']), set=entry)
    if entry['state'] == 'failed':
        return dict(changed=False, set=entry, msg='Backup set %s is already marked failed.' % set_id)
    if module.check_mode:
        return dict(changed=True, set=entry, msg='Would mark backup set %s failed.' % set_id)
    backup_set.mark_failed(set_dir, params['reason'])
    return dict(changed=True, set=backup_set.describe_set(set_dir), msg='Marked backup set %s failed.' % set_id)


OPERATIONS = {
    'list': run_list,
    'check': run_check,
    'select': run_select,
    'prune': run_prune,
    'begin': run_begin,
    'commit': run_commit,
    'fail': run_fail,
}


def check_inputs(module) -> None:
    """Fail on inputs that no operation can use, with what to fix."""
    params = module.params
    root = params['root']
    if os.path.lexists(root) and not os.path.isdir(root):
        module.fail_json(msg='Backup root %s is not a directory: give the directory that holds the backup sets.' % root)
    for name in ('keep_last', 'keep_days', 'grace_hours'):
        if params[name] is not None and params[name] < 0:
            module.fail_json(msg='%s must be 0 or more, not %d.' % (name, params[name]))
    try:
        backup_set.check_cluster(params['cluster'])
        if params['set_id']:
            backup_set.set_id_time(params['set_id'])
    except BackupSetError as exc:
        module.fail_json(msg=sentence(str(exc)))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type='path', required=True),
            cluster=dict(type='str', required=True),
            operation=dict(type='str', default='list', choices=list(OPERATIONS)),
            set_id=dict(type='str'),
            which=dict(type='str'),
            keep_last=dict(type='int'),
            keep_days=dict(type='int'),
            grace_hours=dict(type='int', default=backup_set.DEFAULT_GRACE_HOURS),
            method=dict(type='str', choices=list(backup_set.METHODS)),
            manifest=dict(type='dict'),
            parts=dict(type='list', elements='dict', options=dict(
                path=dict(type='str', required=True),
                bytes=dict(type='int', required=True),
                sha256=dict(type='str', required=True),
                server=dict(type='str'),
                host=dict(type='str'),
            )),
            verify_checksums=dict(type='bool', default=True),
            reason=dict(type='str'),
        ),
        required_if=[
            ('operation', 'begin', ['method']),
            ('operation', 'commit', ['set_id', 'manifest', 'parts']),
            ('operation', 'fail', ['set_id', 'reason']),
        ],
        mutually_exclusive=[('set_id', 'which')],
        supports_check_mode=True,
    )
    check_inputs(module)
    operation = module.params['operation']
    try:
        result = OPERATIONS[operation](module)
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.import_traceback)
    except BackupSetError as exc:
        module.fail_json(msg=sentence(str(exc)))
    except OSError as exc:
        module.fail_json(msg='Cannot %s backup sets of cluster %s under %s: %s%s.'
                         % (operation, module.params['cluster'], module.params['root'], exc.strerror,
                            ' (%s)' % exc.filename if exc.filename else ''))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
