#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: catalog_info
short_description: List, choose and check the RethinkDB backup sets of a repository
version_added: 0.2.0
description:
  - Reads the backup sets of one cluster in a repository (a directory, a shared path or an S3-compatible
    store) and changes nothing.
  - Always returns the listing, RV(sets), newest first. It is cheap; sizes are checked and nothing is hashed.
  - With O(set_id), O(query) or O(select=true), also chooses one complete set and returns it with its
    manifest and the cluster topology recorded with it (RV(set), RV(manifest), RV(topology)).
  - With O(check=true), also checks the chosen set in full (manifest, topology, every part's size and
    sha256) and fails when it has problems, naming them.
  - A set is complete only when its manifest is valid, the topology a restore reads is usable, and every part
    it lists is present with the recorded size.
extends_documentation_fragment:
  - bigchaindb.rethinkdb.repository
options:
  repository:
    required: true
  cluster:
    required: true
  set_id:
    description:
      - Choose this set, like C(20261124T163000Z-snapshot-3f9a); it must be complete.
      - Mutually exclusive with O(query).
    type: str
  query:
    description:
      - Choose the newest complete set among those a JMESPath query over the listing (RV(sets)) returns,
        like C([?method=='snapshot']) or C([?contains(tables, 'bigchain.votes') && started_at < '2026-11-01']).
      - A query that matches no set, or only incomplete ones, is an error that says so.
    type: str
  select:
    description:
      - Choose the newest complete set (among those O(query) picks, when given).
      - Sets dated more than 10 minutes in the future (made under a wrong clock) and sets that are not
        complete are passed over, and RV(notes) names each one passed over.
      - Implied by O(set_id), O(query) and O(check).
    type: bool
    default: false
  check:
    description:
      - Check the chosen set in full and fail when it has problems.
    type: bool
    default: false
  verify_checksums:
    description:
      - With O(check=true), compare every part's sha256, by the store's own checksum where it keeps one
        (S3), otherwise by reading the part once. With V(false), sizes and store checksums only.
    type: bool
    default: true
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
notes:
  - Times in set ids and manifests are UTC.
seealso:
  - module: bigchaindb.rethinkdb.catalog
requirements:
  - jmespath (Python library), only for O(query)
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: List the backup sets of the cluster
  bigchaindb.rethinkdb.catalog_info:
    repository: /var/backups/rethinkdb
    cluster: rethinkdb
  delegate_to: localhost
  run_once: true
  register: catalog

- name: Show the incomplete ones and why
  ansible.builtin.debug:
    msg: "{{ item.set_id }}: {{ item.state }} ({{ item.reason }})"
  loop: "{{ catalog.sets | rejectattr('complete') }}"
  run_once: true

- name: Choose the newest complete snapshot set of November 2026 in an S3 bucket
  bigchaindb.rethinkdb.catalog_info:
    repository: s3://backups/rethinkdb
    cluster: rethinkdb
    s3_endpoint_url: https://s3.example.net
    s3_region: eu-west-1
    s3_credentials_file: /etc/rethinkdb/s3-credentials
    s3_profile: backups
    s3_ca_bundle: /etc/ssl/certs/example-ca.pem
    query: "[?method=='snapshot' && starts_with(started_at, '2026-11')]"
  delegate_to: localhost
  run_once: true
  register: chosen

- name: Check the newest complete set in full (sizes and sha256 of every part)
  bigchaindb.rethinkdb.catalog_info:
    repository: /var/backups/rethinkdb
    cluster: rethinkdb
    select: true
    check: true
    verify_checksums: true
  delegate_to: localhost
  run_once: true

- name: Check a set by id, sizes and store checksums only
  bigchaindb.rethinkdb.catalog_info:
    repository: path:/mnt/backups/rethinkdb
    cluster: rethinkdb
    set_id: 20261124T163000Z-snapshot-3f9a
    check: true
    verify_checksums: false
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
sets:
  description: Every set of the cluster, complete or not, newest first.
  returned: always
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
      description: Where the set is stored (a directory, or an C(s3://) URL).
      type: str
    complete:
      description: Whether the set can be restored (its state is C(complete)).
      type: bool
    state:
      description:
        - C(complete), C(partial) (not committed, still running or interrupted), C(failed) (marked failed)
          or C(invalid) (committed but broken, or left over from an interrupted prune).
      type: str
    format:
      description: The set format of its manifest (1 or 2); null when the manifest is not readable.
      type: int
    started_at:
      description: When the backup started (the set id's time when the manifest is not readable).
      type: str
    finished_at:
      description: When the backup finished; null when the manifest is not readable.
      type: str
    future:
      description: Whether the set is dated more than 10 minutes in the future (made under a wrong clock).
      type: bool
    bytes:
      description: Total size of the parts; of all stored files for an incomplete set.
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
    encrypted:
      description: Whether the set's parts are encrypted (age).
      type: bool
    run:
      description: For a partial or failed set, who was writing it (controller host, process, start time).
      type: dict
    pruning:
      description: Whether the set is what an interrupted prune left (the next prune removes it).
      type: bool
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
      format: 2
      started_at: "2026-11-24T16:30:00.123Z"
      finished_at: "2026-11-24T16:30:09.456Z"
      future: false
      bytes: 734003200
      tables: [bigchain.backlog, bigchain.bigchain, bigchain.votes]
      documents: 48000
      parts: 3
      encrypted: false
      run: null
      pruning: false
      reason: null
summary:
  description: One line per set, newest first, for people to read.
  returned: always
  type: list
  elements: str
  sample:
    - "20261124T163000Z-snapshot-3f9a  snapshot  complete      734.0 MB  3 tables  48,000 documents"
set:
  description: The chosen set, as one entry of RV(sets).
  returned: when a set is chosen
  type: dict
  sample:
    set_id: 20261124T163000Z-dump-3f9a
    cluster: rethinkdb
    method: dump
    path: /var/backups/rethinkdb/rethinkdb/20261124T163000Z-dump-3f9a
    complete: true
    state: complete
    format: 2
    started_at: "2026-11-24T16:30:00.123Z"
    finished_at: "2026-11-24T16:30:09.456Z"
    future: false
    bytes: 123456
    tables: [bigchain.bigchain, bigchain.votes]
    documents: 4800
    parts: 1
    encrypted: false
    run: null
    pruning: false
    reason: null
manifest:
  description: The chosen set's manifest (see the collection's backup set format).
  returned: when a set is chosen
  type: dict
  sample: {"format": 2, "set_id": "20261124T163000Z-dump-3f9a", "method": "dump", "parts": []}
topology:
  description: The cluster's topology recorded with the chosen set (servers, tables with their configuration
    and status, issues, and for a snapshot the document counts taken just after it).
  returned: when a set is chosen
  type: dict
  sample: {"version": "2.4.4", "servers": [], "tables": {}, "issues": [], "documents_after": null}
notes:
  description: The newer sets passed over when choosing, each with why.
  returned: when a set is chosen
  type: list
  elements: str
  sample: ["passed over 20261125T000000Z-dump-0a0a: part dump/rethinkdb_dump.tar.gz is missing"]
problems:
  description: With O(check=true), every problem found; empty when the set is valid (the module fails otherwise).
  returned: when check is true
  type: list
  elements: str
  sample: ["part nodes/node2/data.tar.zst has 1024 bytes, expected 99"]
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import set_catalog
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import (
    MissingLibraryError, RepositoryError, repository_argument_spec, repository_from_params)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_catalog import CatalogError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import FormatError, check_cluster


def sentence(text: str) -> str:
    """A message of the module_utils as one sentence of a result."""
    text = text.rstrip('.')
    return text[:1].upper() + text[1:] + '.'


def set_line(entry: dict) -> str:
    """One set as a person reads it in a listing."""
    line = '%s  %-8s  %-8s  %9.1f MB  %d tables  %s documents' % (
        entry['set_id'], entry['method'], entry['state'], entry['bytes'] / 1e6, len(entry['tables']), format(entry['documents'], ','))
    return line + ('  (%s)' % entry['reason'] if entry['reason'] else '')


def choose(module, repository, entries: list) -> dict:
    """The chosen set with its manifest and topology, and, with check, its full check."""
    params = module.params
    cluster = params['cluster']
    chosen, notes = set_catalog.select(entries, params['set_id'], params['query'])
    stored = set_catalog.find_set(repository, cluster, chosen['set_id'])
    inspection = set_catalog.inspect(repository, cluster, stored, verify_checksums=params['check'] and params['verify_checksums'])
    if inspection.problems:
        module.fail_json(msg='Backup set %s is not valid: %s.' % (chosen['set_id'], '; '.join(inspection.problems)),
                         set=inspection.entry, problems=inspection.problems, sets=entries)
    topology = set_catalog.read_topology(repository, cluster, inspection.manifest)[0]
    result = dict(set=inspection.entry, manifest=inspection.manifest, topology=topology, notes=notes)
    if params['check']:
        result['problems'] = []
    return result


def main():
    argument_spec = repository_argument_spec()
    argument_spec['repository']['required'] = True
    argument_spec['cluster']['required'] = True
    argument_spec.update(
        set_id=dict(type='str'),
        query=dict(type='str'),
        select=dict(type='bool', default=False),
        check=dict(type='bool', default=False),
        verify_checksums=dict(type='bool', default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=[('set_id', 'query')], supports_check_mode=True)
    params = module.params
    try:
        check_cluster(params['cluster'])
        repository = repository_from_params(params)
        entries = set_catalog.list_sets(repository, params['cluster'])
        result = dict(changed=False, sets=entries, summary=[set_line(entry) for entry in entries])
        if params['set_id'] or params['query'] or params['select'] or params['check']:
            result.update(choose(module, repository, entries))
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.import_traceback)
    except (CatalogError, FormatError, RepositoryError) as exc:
        module.fail_json(msg=sentence(str(exc)))
    except OSError as exc:
        module.fail_json(msg='Cannot read the backup sets of cluster %s in %s: %s%s.'
                         % (params['cluster'], params['repository'], exc.strerror, ' (%s)' % exc.filename if exc.filename else ''))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
