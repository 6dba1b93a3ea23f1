#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: catalog
short_description: Write RethinkDB backup sets into a repository, and prune them by retention
version_added: 0.1.0
description:
  - Writes the backup sets of one cluster in a repository (a directory, a shared path or an S3-compatible
    store), step by step, for the C(backup) role, and deletes sets by retention.
  - O(operation=begin) creates a set as partial (nothing reads it as complete), recording who writes it.
  - O(operation=commit) builds the set's manifest from what the backup found (the cluster's facts, the
    document counts, the parts, the snapshot captures), checks every part in the repository, and writes the
    manifest last, atomically, so that the set is visible as complete at once and never before.
  - O(operation=fail) marks a partial set failed, with a reason (a full repository cannot keep it from being
    marked; a directory set is renamed).
  - O(operation=prune) deletes sets by O(keep_last), O(keep_days) and O(grace_hours), per backup method,
    and what interrupted writers left (S3 multipart uploads). Only sets that pass a full check count as kept,
    the newest one that passes is never deleted, and neither are the sets in O(protect) nor sets dated in
    the future. A set's manifest goes first, so an interrupted prune never leaves a set that looks complete.
  - O(operation=report) keeps a run's report (a JSON document) with the cluster's sets, as
    C(<cluster>/reports/<name>) in the repository.
  - Reading sets (list, choose, check) is M(bigchaindb.rethinkdb.catalog_info)'s.
extends_documentation_fragment:
  - bigchaindb.rethinkdb.repository
options:
  repository:
    required: true
  cluster:
    required: true
  operation:
    description:
      - What to do, see the description.
    type: str
    choices: [begin, commit, fail, prune, report]
    required: true
  set_id:
    description:
      - The set to commit or mark failed, like C(20261124T163000Z-snapshot-3f9a). Required for
        O(operation=commit) and O(operation=fail).
      - With O(operation=begin), create this id instead of a new one; running it again while the set is
        still partial changes nothing. Its method must be O(method).
    type: str
  method:
    description:
      - The backup method of the set that O(operation=begin) creates. Required for O(operation=begin).
    type: str
    choices: [dump, snapshot]
  run:
    description:
      - For O(operation=begin), who writes the set, kept with it as C(run.json) (the roles give the
        controller's host name, the ansible-playbook process and when it started, from
        the C(bigchaindb.rethinkdb.controller_run) lookup), so that a later run can tell an interrupted
        backup from a running one.
    type: dict
    default: {}
  started_at:
    description:
      - For O(operation=commit), when the backup started, in seconds since the epoch (default the time in
        the set id).
    type: float
  cluster_info:
    description:
      - For O(operation=commit), the result of M(bigchaindb.rethinkdb.info) taken for the backup; the
        manifest records its version, tables and topology (servers, table configuration and status, issues).
      - Required for O(operation=commit).
    type: dict
  tables:
    description:
      - For O(operation=commit), the tables the set holds, as C(database.table). Default every table in
        O(cluster_info).
    type: list
    elements: str
  counts:
    description:
      - For O(operation=commit), each table's document count in the set, by C(database.table) (a number, or
        a mapping with C(documents), as M(bigchaindb.rethinkdb.dump) reports its tables). Default the counts
        in O(cluster_info).
    type: dict
  documents_after:
    description:
      - For O(operation=commit) of a snapshot set, each table's document count just after the snapshot;
        a restore accepts any count between O(counts) and these.
    type: dict
  snapshot:
    description:
      - For O(operation=commit) of a snapshot set, the captures; the module computes the skew.
    type: dict
    suboptions:
      backend:
        description: The snapshot backend.
        type: str
        required: true
      barrier_at:
        description: The shared instant, in seconds since the epoch.
        type: float
        required: true
      nodes:
        description: Each node's C(server), C(host), C(taken_at) (seconds since the epoch) and C(freeze_ms).
        type: list
        elements: dict
        required: true
  parts:
    description:
      - For O(operation=commit), every part of the set, as the modules that wrote them return them. Each is
        checked in the repository before the commit; a missing part, another size, another store checksum or
        (with O(verify_checksums=true)) another sha256 refuses the commit.
    type: list
    elements: dict
    suboptions:
      path:
        description: The part's path in the set, like C(dump/rethinkdb_dump.tar.gz) or C(nodes/node1/data.tar.zst).
        type: str
        required: true
      bytes:
        description: The part's size as stored.
        type: int
        required: true
      sha256:
        description: The sha256 of the part as stored, 64 lowercase hex digits.
        type: str
        required: true
      raw_bytes:
        description: Its unpacked size (what a restore needs free).
        type: int
        required: true
      compression:
        description: How the archive is compressed.
        type: str
        choices: [gzip, zstd]
        required: true
      encryption:
        description: Null, or C(format) (C(age)) and C(recipients) (the public keys it is encrypted to).
        type: dict
      store_checksum:
        description: The store's own checksum of the part (S3), or null.
        type: str
      files:
        description: For a snapshot part, each file's C(path), C(bytes) and C(sha256), checked when it is unpacked.
        type: list
        elements: dict
      server:
        description: The RethinkDB server whose data the part holds (snapshot parts); null for dumps.
        type: str
      host:
        description: The inventory host that produced the part.
        type: str
  verify_checksums:
    description:
      - For O(operation=commit), compare the sha256 of every part in the repository, reading it once where
        the store keeps no checksum of its own. The C(backup) role leaves it off, since each part was hashed
        as it was written and checked on arrival.
    type: bool
    default: false
  reason:
    description:
      - For O(operation=fail), why the backup failed; shown by M(bigchaindb.rethinkdb.catalog_info).
    type: str
    default: the backup run did not say why
  keep_last:
    description:
      - For O(operation=prune), keep the newest O(keep_last) complete sets of each method that pass a full
        check (the sha256 of every part, read once where the store keeps no checksum; this reads those sets,
        but only when the prune would delete something).
      - A set is kept when O(keep_last) or O(keep_days) keeps it. With neither set, every complete set is
        kept and only incomplete sets past O(grace_hours) are deleted.
      - The newest set of each method that passes its check is never deleted, whatever the rules say.
    type: int
  keep_days:
    description:
      - For O(operation=prune), keep every complete set younger than O(keep_days) days, by the time in its id.
    type: int
  grace_hours:
    description:
      - For O(operation=prune), incomplete sets (partial, failed or invalid) and leftovers of interrupted
        uploads are deleted once they are older than this many hours.
      - Give a backup time to finish, since a backup still running after this long is deleted under it.
    type: int
    default: 24
  protect:
    description:
      - For O(operation=prune), set ids never to delete (the C(backup) role protects the set it just made,
        whatever its date).
    type: list
    elements: str
    default: []
  name:
    description:
      - For O(operation=report), the report's file name, like C(20261124T163000Z-dump-3f9a.json), of letters,
        digits, C(_), C(.) and C(-), ending in C(.json). Required for O(operation=report).
    type: str
  report:
    description:
      - For O(operation=report), the report. Required for O(operation=report).
    type: dict
attributes:
  check_mode:
    support: full
    description:
      - V(report) writes nothing.
      - V(prune) reports what it would delete and deletes nothing.
      - V(begin), V(commit) and V(fail) change nothing and say what they would do; V(commit) still checks
        the parts and builds the manifest.
  diff_mode:
    support: none
    description: The module returns no diff; RV(pruned) and RV(set_id) say what changed.
  idempotent:
    support: partial
    description: Running an operation twice changes nothing the second time, except V(begin) without a set id.
    details:
      - V(prune) a second time, V(fail) of a set already marked failed, V(commit) of a set already committed
        with the same parts, and V(begin) with the O(set_id) of a partial set report no change.
      - V(begin) without O(set_id) creates a new set each time.
notes:
  - Times in set ids and manifests are UTC. Retention ages are measured from the time in the set id.
seealso:
  - module: bigchaindb.rethinkdb.catalog_info
  - module: bigchaindb.rethinkdb.snapshot
  - module: bigchaindb.rethinkdb.dump
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
# How the backup role writes a dump set: begin, dump into it, commit; mark it failed if anything fails.
- name: Write a dump set
  delegate_to: localhost
  run_once: true
  block:
    - name: Begin a dump set
      bigchaindb.rethinkdb.catalog:
        repository: /var/backups/rethinkdb
        cluster: rethinkdb
        operation: begin
        method: dump
        run: "{{ lookup('bigchaindb.rethinkdb.controller_run') }}"
      register: begun

    - name: Read the cluster's facts
      bigchaindb.rethinkdb.info:
        tables: [bigchain.bigchain, bigchain.votes]
      register: facts

    - name: Dump the tables into the set
      bigchaindb.rethinkdb.dump:
        tables: [bigchain.bigchain, bigchain.votes]
        repository: /var/backups/rethinkdb
        cluster: rethinkdb
        set_id: "{{ begun.set_id }}"
      register: dumped

    - name: Commit the set
      bigchaindb.rethinkdb.catalog:
        repository: /var/backups/rethinkdb
        cluster: rethinkdb
        operation: commit
        set_id: "{{ begun.set_id }}"
        started_at: "{{ begun.started_at }}"
        cluster_info: "{{ facts }}"
        tables: [bigchain.bigchain, bigchain.votes]
        counts: "{{ dumped.tables }}"
        parts: ["{{ dumped.part }}"]
        verify_checksums: true
  rescue:
    - name: Mark the set failed
      bigchaindb.rethinkdb.catalog:
        repository: /var/backups/rethinkdb
        cluster: rethinkdb
        operation: fail
        set_id: "{{ begun.set_id }}"
        reason: "{{ ansible_failed_task.name }}: {{ ansible_failed_result.msg | default('failed') }}"
      when: begun.set_id is defined

# How the backup role commits a snapshot set: the first node registered the cluster's facts before the
# snapshot (facts_before) and after it (facts_after) with the info module; every node noted its capture as
# capture (server, host, and the snapshot module's taken_at and freeze_ms) and registered its part
# (state=archived) as archived.
- name: Commit a snapshot set from each node's capture and part
  vars:
    first_host: "{{ ansible_play_hosts_all | first }}"
    names: "{{ hostvars[first_host].facts_before.tables.keys() | list }}"
    after: "{{ hostvars[first_host].facts_after.tables }}"
  bigchaindb.rethinkdb.catalog:
    repository: s3://backups/rethinkdb
    cluster: rethinkdb
    s3_endpoint_url: https://s3.example.net
    s3_region: eu-west-1
    s3_credentials_file: /etc/rethinkdb/s3-credentials
    s3_profile: backups
    s3_ca_bundle: /etc/ssl/certs/example-ca.pem
    operation: commit
    set_id: "{{ begun.set_id }}"
    started_at: "{{ begun.started_at }}"
    cluster_info: "{{ hostvars[first_host].facts_before }}"
    documents_after: "{{ dict(names | zip(names | map('extract', after, 'documents'))) }}"
    snapshot:
      backend: btrfs
      barrier_at: "{{ hostvars[first_host].barrier_at }}"
      nodes: "{{ ansible_play_hosts_all | map('extract', hostvars, 'capture') | list }}"
    parts: "{{ ansible_play_hosts_all | map('extract', hostvars, ['archived', 'part']) | list }}"
  delegate_to: localhost
  run_once: true

- name: Keep the newest 7 sets of each method and every set of the last 30 days
  bigchaindb.rethinkdb.catalog:
    repository: /var/backups/rethinkdb
    cluster: rethinkdb
    operation: prune
    keep_last: 7
    keep_days: 30
    grace_hours: 24
    protect: ["{{ begun.set_id }}"]
  delegate_to: localhost
  run_once: true
  register: pruned

- name: Keep the run's report with the sets
  bigchaindb.rethinkdb.catalog:
    repository: /var/backups/rethinkdb
    cluster: rethinkdb
    operation: report
    name: "{{ begun.set_id }}.json"
    report: {set_id: "{{ begun.set_id }}", seconds: 42.1}
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
set_id:
  description: The set that was begun, committed or marked failed.
  returned: when operation is begin, commit or fail
  type: str
  sample: 20261124T163000Z-dump-3f9a
path:
  description: Where the set is stored now.
  returned: when operation is begin, commit or fail
  type: str
  sample: /var/backups/rethinkdb/rethinkdb/20261124T163000Z-dump-3f9a
started_at:
  description: With O(operation=begin), when the set was begun, in seconds since the epoch (the time in its id).
  returned: when operation is begin
  type: float
  sample: 1795537800.0
manifest:
  description: With O(operation=commit), the manifest written (would be written, in check mode).
  returned: when operation is commit
  type: dict
  sample: {"format": 2, "set_id": "20261124T163000Z-dump-3f9a", "method": "dump", "parts": []}
pruned:
  description: The sets that O(operation=prune) deleted (would delete, in check mode), newest first.
  returned: when operation is prune
  type: list
  elements: dict
  contains:
    set_id:
      description: The set's id.
      type: str
    method:
      description: Its backup method.
      type: str
    state:
      description: Its state before deletion.
      type: str
    path:
      description: Where it was stored.
      type: str
    bytes:
      description: The bytes its deletion frees.
      type: int
    why:
      description: The rule that let it go.
      type: str
  sample:
    - set_id: 20261020T163000Z-dump-77aa
      method: dump
      state: complete
      path: /var/backups/rethinkdb/rethinkdb/20261020T163000Z-dump-77aa
      bytes: 123456
      why: not one of the newest 7 dump sets that pass their check and older than 30 days
pruned_bytes:
  description: The bytes freed by the deleted sets and chains (that would be, in check mode).
  returned: when operation is prune
  type: int
  sample: 123456
kept:
  description: The sets that O(operation=prune) keeps, newest first, each with the rule that keeps it.
  returned: when operation is prune
  type: list
  elements: dict
  sample:
    - set_id: 20261124T163000Z-snapshot-3f9a
      method: snapshot
      state: complete
      path: /var/backups/rethinkdb/rethinkdb/20261124T163000Z-snapshot-3f9a
      bytes: 734003200
      why: one of the newest 7 snapshot sets that pass their check
report_path:
  description: With O(operation=report), where the report was written.
  returned: when operation is report
  type: str
  sample: /var/backups/rethinkdb/rethinkdb/reports/20261124T163000Z-dump-3f9a.json
pruned_chains:
  description: The chains of continuous backup that O(operation=prune) deleted (would delete), each with its C(chain_id),
    C(base_set_id), C(state), C(segments), C(bytes) and the rule that let it go (C(why)).
  returned: when operation is prune
  type: list
  elements: dict
  sample: [{"chain_id": "20261020T163000Z-77aa", "base_set_id": "20261020T120000Z-dump-0b1c", "state": "complete",
            "segments": 8640, "bytes": 9123456, "why": "its base set 20261020T120000Z-dump-0b1c is pruned"}]
kept_chains:
  description: The chains that O(operation=prune) keeps, each with the rule that keeps it.
  returned: when operation is prune
  type: list
  elements: dict
  sample: [{"chain_id": "20261124T163000Z-3f9a", "base_set_id": "20261124T120000Z-dump-77aa", "why": "its base set 20261124T120000Z-dump-77aa is kept"}]
leftovers:
  description: What O(operation=prune) removed (would remove) of interrupted writers, such as S3 multipart uploads and data of
    chain segments that no segment record names.
  returned: when operation is prune
  type: list
  elements: str
  sample: ["multipart upload of rethinkdb/20261124T163000Z-snapshot-3f9a/nodes/node1/data.tar.zst begun 2026-11-24T16:30:04Z"]
'''

import datetime
import json
import re

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import chain_store, set_catalog
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import (
    MissingLibraryError, RepositoryError, repository_argument_spec, repository_from_params)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_catalog import CatalogError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import (
    METHODS, FormatError, build_manifest, check_cluster, format_time, iso_from_epoch, manifest_bytes, manifest_tables,
    new_set_id, set_id_method, set_id_time, snapshot_record, topology_record, utc_now)

PART_IDENTITY = ('path', 'bytes', 'sha256')
REPORT_NAME_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*\.json')


def sentence(text: str) -> str:
    """A message of the module_utils as one sentence of a result."""
    text = text.rstrip('.')
    return text[:1].upper() + text[1:] + '.'


def stored_states(repository, cluster: str, set_id: str) -> dict:
    """The stored copies of a set id, by state."""
    return dict((stored.state, stored) for stored in repository.list_sets(cluster) if stored.set_id == set_id)


def run_begin(module, repository) -> dict:
    params = module.params
    cluster, method, set_id = params['cluster'], params['method'], params['set_id']
    if set_id:
        if set_id_method(set_id) != method:
            module.fail_json(msg='Set id %s names method %s, not %s.' % (set_id, set_id_method(set_id), method))
        states = stored_states(repository, cluster, set_id)
        if 'committed' in states:
            module.fail_json(msg='Backup set %s is already committed at %s: begin a new set.' % (set_id, states['committed'].location))
        if 'failed' in states:
            module.fail_json(msg='Backup set %s was marked failed: begin a new set.' % set_id)
        if 'partial' in states:
            return dict(changed=False, set_id=set_id, path=states['partial'].location,
                        started_at=set_id_time(set_id).timestamp(), msg='Backup set %s is already begun.' % set_id)
    set_id = set_id or new_set_id(method)
    started_at = set_id_time(set_id).timestamp()
    if module.check_mode:
        return dict(changed=True, set_id=set_id, path=None, started_at=started_at,
                    msg='Would begin backup set %s in %s.' % (set_id, repository.describe()))
    run = dict(params['run'], set_id=set_id, begun_at=format_time(utc_now()))
    path = repository.begin(cluster, set_id, run)
    return dict(changed=True, set_id=set_id, path=path, started_at=started_at, msg='Began backup set %s.' % set_id)


def build(module) -> dict:
    """The manifest of the set to commit, from what the backup found."""
    params = module.params
    info = params['cluster_info']
    names = params['tables'] if params['tables'] is not None else sorted(info.get('tables', {}))
    counts = params['counts'] if params['counts'] is not None else dict(
        (name, table.get('documents')) for name, table in info.get('tables', {}).items())
    snapshot = params['snapshot']
    fields = dict(
        rethinkdb_version=info.get('version'),
        tables=manifest_tables(info, names, counts),
        snapshot=snapshot_record(snapshot['backend'], snapshot['barrier_at'], snapshot['nodes']) if snapshot else None,
        topology=topology_record(info, params['documents_after']),
    )
    if params['started_at'] is not None:
        fields['started_at'] = iso_from_epoch(params['started_at'])
    return build_manifest(params['set_id'], params['cluster'], fields, params['parts'])


def run_commit(module, repository) -> dict:
    params = module.params
    cluster, set_id = params['cluster'], params['set_id']
    states = stored_states(repository, cluster, set_id)
    if 'committed' in states and 'partial' not in states:
        manifest, problems = set_catalog.read_manifest(repository, cluster, set_id)
        recorded = sorted(tuple(part.get(key) for key in PART_IDENTITY) for part in (manifest or {}).get('parts', []))
        if problems or recorded != sorted(tuple(part.get(key) for key in PART_IDENTITY) for part in params['parts']):
            module.fail_json(msg='Backup set %s is already committed with other parts: begin a new set.' % set_id)
        return dict(changed=False, set_id=set_id, path=states['committed'].location, manifest=manifest,
                    msg='Backup set %s is already committed.' % set_id)
    if 'partial' not in states:
        module.fail_json(msg='Backup set %s is not being written in %s%s: begin a new set.'
                         % (set_id, repository.describe(), ' (it was marked failed)' if 'failed' in states else ''))
    manifest = build(module)
    problems = set_catalog.part_problems(repository, cluster, set_id, manifest['parts'], params['verify_checksums'], committed=False)
    if problems:
        module.fail_json(msg='Cannot commit backup set %s: %s.' % (set_id, '; '.join(problems)), problems=problems)
    if module.check_mode:
        return dict(changed=True, set_id=set_id, path=states['partial'].location, manifest=manifest,
                    msg='Would commit backup set %s with %d part(s).' % (set_id, len(manifest['parts'])))
    path = repository.commit(cluster, set_id, manifest_bytes(manifest))
    return dict(changed=True, set_id=set_id, path=path, manifest=manifest, msg='Committed backup set %s.' % set_id)


def run_fail(module, repository) -> dict:
    params = module.params
    set_id = params['set_id']
    states = stored_states(repository, params['cluster'], set_id)
    if 'failed' in states:
        return dict(changed=False, set_id=set_id, path=states['failed'].location, msg='Backup set %s is already marked failed.' % set_id)
    if 'partial' not in states:
        if 'committed' in states:
            module.fail_json(msg='Backup set %s is already committed: only a partial set can be marked failed.' % set_id)
        module.fail_json(msg='No backup set %s of cluster %s in %s.' % (set_id, params['cluster'], repository.describe()))
    if module.check_mode:
        return dict(changed=True, set_id=set_id, path=states['partial'].location, msg='Would mark backup set %s failed.' % set_id)
    repository.mark_failed(params['cluster'], set_id, params['reason'] or 'the backup run did not say why', format_time(utc_now()))
    path = stored_states(repository, params['cluster'], set_id)['failed'].location
    return dict(changed=True, set_id=set_id, path=path, msg='Marked backup set %s failed.' % set_id)


def run_prune(module, repository) -> dict:
    params = module.params
    cluster = params['cluster']
    now = utc_now()
    stored_by_path = dict((stored.location, stored) for stored in repository.list_sets(cluster))
    entries = [set_catalog.inspect(repository, cluster, stored, now=now).entry for stored in stored_by_path.values()]

    def verify(entry: dict) -> list:
        return set_catalog.inspect(repository, cluster, stored_by_path[entry['path']], verify_checksums=True, now=now).problems

    plan = set_catalog.plan_prune(entries, verify, params['keep_last'], params['keep_days'], params['grace_hours'],
                                  tuple(params['protect']), now)
    store = chain_store.ChainStore(repository, cluster)
    chains_deleted, chains_kept = chain_store.plan_chain_retention(chain_store.list_chains(store), entries, plan, params['grace_hours'], now)
    older_than = now - datetime.timedelta(hours=params['grace_hours'])
    if module.check_mode:
        leftovers = repository.leftovers(cluster, older_than)
    else:
        for verdict in chains_deleted:
            store.delete(verdict['chain_id'])
        set_catalog.prune(repository, cluster, plan.delete, stored_by_path)
        leftovers = repository.remove_leftovers(cluster, older_than)
    for verdict in chains_kept:
        orphans = store.orphans(verdict['chain_id'])
        if orphans and not module.check_mode:
            repository.delete_chain_objects(cluster, verdict['chain_id'], orphans)
        leftovers += ['%s of chain %s (data no segment record names)' % (name, verdict['chain_id']) for name in orphans]
    return dict(changed=bool(plan.delete or chains_deleted or leftovers), pruned=plan.delete, kept=plan.keep, leftovers=leftovers,
                pruned_chains=chains_deleted, kept_chains=chains_kept,
                pruned_bytes=sum(entry['bytes'] for entry in plan.delete) + sum(entry['bytes'] for entry in chains_deleted))


def run_report(module, repository) -> dict:
    params = module.params
    if not REPORT_NAME_RE.fullmatch(params['name']):
        module.fail_json(msg="name %r is not a report name: use letters, digits, '_', '.' and '-', ending in .json." % params['name'])
    if module.check_mode:
        return dict(changed=True, report_path=None, msg='Would write report %s.' % params['name'])
    data = (json.dumps(params['report'], indent=2, sort_keys=True, default=str) + '\n').encode('utf-8')
    return dict(changed=True, report_path=repository.write_report(params['cluster'], params['name'], data))


OPERATIONS = {'begin': run_begin, 'commit': run_commit, 'fail': run_fail, 'prune': run_prune, 'report': run_report}


def main():
    argument_spec = repository_argument_spec()
    argument_spec['repository']['required'] = True
    argument_spec['cluster']['required'] = True
    argument_spec.update(
        operation=dict(type='str', required=True, choices=list(OPERATIONS)),
        set_id=dict(type='str'),
        method=dict(type='str', choices=list(METHODS)),
        run=dict(type='dict', default={}),
        started_at=dict(type='float'),
        cluster_info=dict(type='dict'),
        tables=dict(type='list', elements='str'),
        counts=dict(type='dict'),
        documents_after=dict(type='dict'),
        snapshot=dict(type='dict', options=dict(
            backend=dict(type='str', required=True),
            barrier_at=dict(type='float', required=True),
            nodes=dict(type='list', elements='dict', required=True),
        )),
        parts=dict(type='list', elements='dict', options=dict(
            path=dict(type='str', required=True),
            bytes=dict(type='int', required=True),
            sha256=dict(type='str', required=True),
            raw_bytes=dict(type='int', required=True),
            compression=dict(type='str', required=True, choices=['gzip', 'zstd']),
            encryption=dict(type='dict'),
            store_checksum=dict(type='str'),
            files=dict(type='list', elements='dict'),
            server=dict(type='str'),
            host=dict(type='str'),
        )),
        verify_checksums=dict(type='bool', default=False),
        reason=dict(type='str', default='the backup run did not say why'),
        keep_last=dict(type='int'),
        keep_days=dict(type='int'),
        grace_hours=dict(type='int', default=set_catalog.DEFAULT_GRACE_HOURS),
        protect=dict(type='list', elements='str', default=[]),
        name=dict(type='str'),
        report=dict(type='dict'),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[
            ('operation', 'begin', ['method']),
            ('operation', 'commit', ['set_id', 'cluster_info', 'parts']),
            ('operation', 'fail', ['set_id']),
            ('operation', 'report', ['name', 'report']),
        ],
        supports_check_mode=True,
    )
    params = module.params
    try:
        check_cluster(params['cluster'])
        if params['set_id']:
            set_id_time(params['set_id'])
        set_catalog.check_retention_options(params['keep_last'], params['keep_days'], params['grace_hours'])
        repository = repository_from_params(params)
        result = OPERATIONS[params['operation']](module, repository)
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.import_traceback)
    except (CatalogError, FormatError, RepositoryError, chain_store.ChainError) as exc:
        module.fail_json(msg=sentence(str(exc)))
    except OSError as exc:
        module.fail_json(msg='Cannot %s backup sets of cluster %s in %s: %s%s.'
                         % (params['operation'], params['cluster'], params['repository'], exc.strerror,
                            ' (%s)' % exc.filename if exc.filename else ''))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
