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
  - Also always returns the chains of continuous backup, RV(chains) (see the collection's
    docs/continuous-backup.md), each read cheaply (its listing, its record, its first and last segment records).
  - With O(chain), chooses a chain instead of a set and checks it in full (every segment record valid and
    numbered without a hole, each naming the sha256 of the one before it, every segment's data with its recorded
    size and sha256 and the records its record counts), failing when it has problems; returns it with its base
    set as RV(set) (checked like a chosen set), and what a restore to O(until) loads (RV(chain_plan)).
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
  chain:
    description:
      - Choose a chain of continuous backup, by id (like C(20261124T163000Z-3f9a)) or V(latest), and check it in
        full (see the description).
      - V(latest) with O(until) chooses, among the whole chains (on the base set O(set_id), when given), the one
        with the newest base that was already receiving at O(until); without O(until), the newest whole chain.
      - Mutually exclusive with O(query).
    type: str
  until:
    description:
      - With O(chain), the point in time a restore goes back to, ISO 8601 (C(2026-11-24T16:30:00Z); UTC when no
        zone is given). RV(chain_plan) counts the documents received up to it.
    type: str
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

- name: Choose the chain of continuous backup that reaches a second before an accident, checked in full
  bigchaindb.rethinkdb.catalog_info:
    repository: path:/mnt/backups/rethinkdb
    cluster: rethinkdb
    chain: latest
    until: "2026-11-25T08:41:59Z"
  delegate_to: localhost
  run_once: true
  register: chosen_chain

- name: Say what a restore to that second would load
  ansible.builtin.debug:
    msg: "{{ chosen_chain.chain.chain_id }} on {{ chosen_chain.chain.base_set_id }}: {{ chosen_chain.chain_plan }}"
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
  description: One line per set, newest first, then one per chain, for people to read.
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
chains:
  description: Every chain of continuous backup of the cluster, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    chain_id:
      description: The chain's id.
      type: str
    state:
      description: C(complete), C(invalid) (a hole, a damaged record) or C(deleting) (what an interrupted prune left).
      type: str
    complete:
      description: Whether the chain can be restored.
      type: bool
    base_set_id:
      description: The dump set the chain continues.
      type: str
    writer:
      description: C(follower) or C(incremental).
      type: str
    tables:
      description: The tables it follows, as C(database.table).
      type: list
      elements: str
    segments:
      description: How many segments it has.
      type: int
    first_received_at:
      description: When its first segment's first record was received (from when the chain can restore).
      type: str
    last_received_at:
      description: When its last segment's last record was received.
      type: str
    sealed_at:
      description: When its last segment was sealed.
      type: str
    documents:
      description: Documents its segments hold (beyond its base set).
      type: int
    alarms:
      description: Updates, deletions and other writes it recorded as alarms.
      type: int
    gaps:
      description: Gaps it closed (feeds that stopped, restarts, incremental runs).
      type: int
    holes:
      description: Numbers of the segments missing from it.
      type: list
      elements: int
    bytes:
      description: Its size in the repository.
      type: int
    reason:
      description: Why it is not complete; null when it is.
      type: str
  sample:
    - chain_id: 20261124T163000Z-3f9a
      state: complete
      complete: true
      base_set_id: 20261124T120000Z-dump-77aa
      writer: follower
      tables: [bigchain.bigchain, bigchain.votes]
      segments: 1410
      first_received_at: "2026-11-24T16:30:02.001Z"
      last_received_at: "2026-11-24T20:25:00.310Z"
      sealed_at: "2026-11-24T20:25:10.311Z"
      documents: 48210
      alarms: 0
      gaps: 4
      holes: []
      bytes: 30111222
      reason: null
chain:
  description: With O(chain), the chosen chain, as one entry of RV(chains).
  returned: when a chain is chosen
  type: dict
  sample: {"chain_id": "20261124T163000Z-3f9a", "state": "complete", "base_set_id": "20261124T120000Z-dump-77aa"}
chain_plan:
  description:
    - With O(chain), what a restore to O(until) loads, from the full check of the chain. C(inserted) the
      documents per table its segments received up to O(until), C(expected) the document count per table
      after the restore (the base set's plus those), C(alarms) the alarms recorded up to O(until) (the first
      100; C(alarm_count) how many), C(segments) the segments checked, C(chain_ends_at) when the chain's last
      record was received, and C(covers_until) whether that is at or after O(until).
  returned: when a chain is chosen
  type: dict
  sample: {"inserted": {"bigchain.votes": 120}, "expected": {"bigchain.votes": 3120}, "alarm_count": 0, "covers_until": true}
problems:
  description: With O(check=true), every problem found; empty when the set is valid (the module fails otherwise).
  returned: when check is true
  type: list
  elements: str
  sample: ["part nodes/node2/data.tar.zst has 1024 bytes, expected 99"]
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import chain_store, set_catalog
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_format import ChainFormatError, parse_until
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import (
    MissingLibraryError, RepositoryError, repository_argument_spec, repository_from_params)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_catalog import CatalogError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import FormatError, check_cluster, parse_time


def sentence(text: str) -> str:
    """A message of the module_utils as one sentence of a result."""
    text = text.rstrip('.')
    return text[:1].upper() + text[1:] + '.'


def set_line(entry: dict) -> str:
    """One set as a person reads it in a listing."""
    line = '%s  %-8s  %-8s  %9.1f MB  %d tables  %s documents' % (
        entry['set_id'], entry['method'], entry['state'], entry['bytes'] / 1e6, len(entry['tables']), format(entry['documents'], ','))
    return line + ('  (%s)' % entry['reason'] if entry['reason'] else '')


def choose(module, repository, entries: list, set_id: str | None = None) -> dict:
    """The chosen set (set_id, else the one the options name) with its manifest and topology, and, with check,
    its full check."""
    params = module.params
    cluster = params['cluster']
    chosen, notes = set_catalog.select(entries, set_id or params['set_id'], params['query'])
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


def choose_chain(module, repository, entries: list, chains: list) -> dict:
    """The chosen chain, checked in full, with its base set chosen (and checked) as a set is, and the restore plan."""
    params = module.params
    until = parse_until(params['until']) if params['until'] else None
    chosen = chain_store.choose_chain(chains, None if params['chain'] == 'latest' else params['chain'], until, params['set_id'])
    check = chain_store.check_chain(chain_store.ChainStore(repository, params['cluster']), chosen['chain_id'], until)
    if check.problems:
        module.fail_json(msg='Chain %s is not valid: %s.' % (chosen['chain_id'], '; '.join(check.problems)), chain=check.entry,
                         problems=check.problems, chains=chains)
    result = choose(module, repository, entries, chosen['base_set_id'])
    expected = dict((name, check.chain['base']['documents'][name] + count) for name, count in check.inserted.items())
    ends = chosen['last_received_at']
    result.update(chain=check.entry, chain_plan=dict(
        inserted=check.inserted, expected=expected, alarms=check.alarms[:100], alarm_count=len(check.alarms), segments=len(check.segments),
        chain_ends_at=ends, covers_until=until is None or (ends is not None and parse_time(ends) >= until)))
    return result


def chain_line(entry: dict) -> str:
    """One chain as a person reads it in a listing."""
    line = 'chain %s  %-11s  %-8s  base %s  %d segments  %s documents  %s to %s  %d gaps closed  %d alarms' % (
        entry['chain_id'], entry['writer'] or '?', entry['state'], entry['base_set_id'], entry['segments'], format(entry['documents'], ','),
        entry['first_received_at'] or '-', entry['last_received_at'] or '-', entry['gaps'], entry['alarms'])
    return line + ('  (%s)' % entry['reason'] if entry['reason'] else '')


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
        chain=dict(type='str'),
        until=dict(type='str'),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=[('set_id', 'query'), ('chain', 'query')],
                           required_by={'until': 'chain'}, supports_check_mode=True)
    params = module.params
    try:
        check_cluster(params['cluster'])
        repository = repository_from_params(params)
        entries = set_catalog.list_sets(repository, params['cluster'])
        chains = chain_store.list_chains(chain_store.ChainStore(repository, params['cluster']))
        result = dict(changed=False, sets=entries, chains=chains, summary=[set_line(entry) for entry in entries] + [chain_line(entry) for entry in chains])
        if params['chain']:
            result.update(choose_chain(module, repository, entries, chains))
        elif params['set_id'] or params['query'] or params['select'] or params['check']:
            result.update(choose(module, repository, entries))
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.import_traceback)
    except (CatalogError, FormatError, RepositoryError, chain_store.ChainError, ChainFormatError) as exc:
        module.fail_json(msg=sentence(str(exc)))
    except OSError as exc:
        module.fail_json(msg='Cannot read the backup sets of cluster %s in %s: %s%s.'
                         % (params['cluster'], params['repository'], exc.strerror, ' (%s)' % exc.filename if exc.filename else ''))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
