#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: chain_check
short_description: Prove that a dump archive or a cluster holds a valid BigchainDB chain
version_added: 0.2.0
description:
  - Checks BigchainDB's C(bigchain) (blocks) and C(votes) tables as BigchainDB 0.9 and 0.10 wrote them into
    RethinkDB, in a C(rethinkdb dump) archive or on a live cluster (a restored backup set included).
  - Every block's C(id) must be the SHA3-256 of its serialised C(block), its C(signature) the Ed25519 signature of
    C(block.node_pubkey), and, with O(federation), that key one of the federation's. Every transaction's C(id)
    and the fulfillment of each of its inputs (crypto-conditions Ed25519 and threshold) must be right.
  - Every vote must carry its node's signature, name a block that is there and lists the voter among its
    C(voters), and name a C(previous_block) that is there; each voter votes once per block; every block but the
    genesis block has at least one vote.
  - Reports how many documents of each kind were checked and, for each kind of failure, how many and the first
    ids (in sorted order). Fails when anything failed, unless O(report_only=true).
  - Reads the source once, streaming; worker processes on the host's cores do the signature checks. Memory
    stays bounded whatever the tables' size; a scratch SQLite file in O(temp_dir) holds the links between
    blocks and votes, about 250 bytes of disk per vote (its index included) and 50 per block.
  - See C(docs/chain-check.md) for what each check proves and what no check of the data can.
extends_documentation_fragment:
  - bigchaindb.rethinkdb.login
options:
  source:
    description:
      - Where the tables are read from.
      - V(archive) reads the C(tar.gz) that C(rethinkdb dump) (or the M(bigchaindb.rethinkdb.dump) module) wrote, at
        O(archive), on the host the module runs on; the login options are not used.
      - V(cluster) reads the tables of O(db) through the driver with the login options, every vote first, then
        the blocks.
    type: str
    choices: [archive, cluster]
    required: true
  archive:
    description:
      - Path of the dump archive, when O(source=archive).
    type: path
  db:
    description:
      - The database that holds BigchainDB's tables.
    type: str
    default: bigchain
  federation:
    description:
      - The base58 public keys of the federation's nodes. A block signed by any other key fails with
        C(block_signer_outside_federation).
      - When unset, that check is left out (the result says so in RV(not_checked)), and RV(signers) lists the keys
        that signed blocks and votes.
    type: list
    elements: str
  workers:
    description:
      - Worker processes for the checks; V(0) means one for each CPU core the module may run on.
    type: int
    default: 0
  failure_ids:
    description:
      - How many ids to report for each kind of failure (the smallest, sorted).
    type: int
    default: 10
  recent_unvoted_seconds:
    description:
      - A block without votes whose C(timestamp) is within this many seconds of the newest block's is counted
        as still awaiting its votes (RV(counts.blocks_awaiting_votes)), not as a failure. For a live cluster
        that BigchainDB is still writing to; V(0) makes every block without votes a failure.
    type: int
    default: 0
  report_only:
    description:
      - Report failures without failing the task.
    type: bool
    default: false
  temp_dir:
    description:
      - Directory for the scratch SQLite file of the link checks, removed at the end.
      - Defaults to the system's temporary directory.
    type: path
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
  idempotent:
    support: full
    description: Checking changes nothing.
requirements:
  - PyNaCl and base58 on the host that runs the module
  - rethinkdb (the Python driver) for O(source=cluster)
notes:
  - On a live cluster that BigchainDB is writing to, the newest blocks may not have their votes yet; see
    O(recent_unvoted_seconds). Votes are read before blocks, so a vote written during the check never names a
    block that seems missing.
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Check the chain in a dump archive, signed by the federation's three nodes only
  bigchaindb.rethinkdb.chain_check:
    source: archive
    archive: /var/backups/rethinkdb/bigchain.tar.gz
    federation:
      - 8hPa1kAeTqBfuhyLQfbUQvDz5wZsKBZyKnW8JmXqrVgu
      - 3jpvUEBHuAT6kH2uZzH8Ao4PHqQNbfRKUTXrWNWDqXDH
      - EDkwYHFmvoG6ZP9Nb9udqHkWdcPnEDGXRnudhrpPEy9o
    temp_dir: /srv/scratch
    workers: 2
  delegate_to: localhost

- name: Check the chain of a restored cluster, failing on any failure
  bigchaindb.rethinkdb.chain_check:
    source: cluster
    db: bigchain
    login_password_file: /etc/rethinkdb/admin-password
  run_once: true

- name: Report on a live cluster over TLS without failing, allowing a minute for the newest blocks' votes
  bigchaindb.rethinkdb.chain_check:
    source: cluster
    login_host: db1.example.org
    login_port: 28015
    login_user: admin
    login_password: "{{ lookup('ansible.builtin.file', '/etc/rethinkdb/admin-password') }}"
    tls_ca_file: /etc/rethinkdb/ca.pem
    connect_timeout: 10
    recent_unvoted_seconds: 60
    failure_ids: 50
    report_only: true
  delegate_to: localhost
  run_once: true
  register: chain

- name: Show what the check found
  ansible.builtin.debug:
    msg: "{{ chain.summary }}"
  run_once: true
'''

RETURN = r'''
ok:
  description: Whether no check failed.
  returned: always
  type: bool
  sample: true
source:
  description: What was read, as O(source) says.
  returned: always
  type: str
  sample: archive
archive:
  description: The archive read, when O(source=archive).
  returned: when O(source=archive)
  type: str
  sample: /var/backups/rethinkdb/bigchain.tar.gz
endpoint:
  description: The server read from (host:port), when O(source=cluster).
  returned: when O(source=cluster)
  type: str
  sample: localhost:28015
counts:
  description: What was checked.
  returned: always
  type: dict
  contains:
    documents:
      description: Blocks and votes read.
      type: int
    blocks:
      description: Documents of the blocks table.
      type: int
    genesis_blocks:
      description: Blocks whose first transaction is BigchainDB's GENESIS transaction (no node votes on them).
      type: int
    chain_blocks:
      description: Well-formed blocks other than genesis blocks.
      type: int
    transactions:
      description: Transactions in the blocks.
      type: int
    fulfillments:
      description: Transaction inputs whose fulfillment was checked.
      type: int
    fulfillments_unverifiable:
      description: Inputs with a crypto-condition type other than Ed25519 and threshold, which BigchainDB did not
        sign with; counted, not verified, not failed.
      type: int
    votes:
      description: Documents of the votes table.
      type: int
    votes_declaring_invalid:
      description: Votes that say their block is invalid (a node's decision, not a failure of the check).
      type: int
    blocks_awaiting_votes:
      description: Blocks without votes counted as still awaiting them (see O(recent_unvoted_seconds)).
      type: int
  sample:
    documents: 100001
    blocks: 25001
    genesis_blocks: 1
    chain_blocks: 25000
    transactions: 50001
    fulfillments: 50001
    fulfillments_unverifiable: 0
    votes: 75000
    votes_declaring_invalid: 0
    blocks_awaiting_votes: 0
failures:
  description:
    - Every kind of failure, each with how many were found and the first O(failure_ids) ids in sorted order
      (block ids, transaction ids, or vote ids as RethinkDB keyed them).
    - C(block_malformed), C(transaction_malformed), C(vote_malformed) a document without the fields BigchainDB
      wrote; C(block_id) a block whose id is not the hash of its content; C(block_signature) a block whose
      signature is not its node's; C(block_signer_outside_federation) a block signed by a key not in
      O(federation); C(transaction_id) a transaction whose id is not the hash of its content;
      C(transaction_signature) a transaction with an input whose fulfillment does not sign it;
      C(vote_signature) a vote whose signature is not its node's; C(vote_for_unknown_block) a vote for a block
      that is not there; C(vote_voter_not_listed) a vote by a key not among the voted block's voters;
      C(vote_duplicate) the votes of a node that voted more than once for a block; C(block_missing) a block
      that votes name as their previous block but that is not there; C(block_without_votes) a block other than
      the genesis block that no vote is for.
  returned: always
  type: dict
  sample:
    block_id: {count: 1, ids: [fdcd218e635e46c8d203e86260956b53b3aea4a3c3625d6d6f3bcdb0a5e6097e]}
    block_missing: {count: 0, ids: []}
    vote_signature: {count: 0, ids: []}
failure_count:
  description: The sum of the failure counts.
  returned: always
  type: int
  sample: 0
federation_checked:
  description: Whether block signers were checked against O(federation).
  returned: always
  type: bool
  sample: true
signers:
  description:
    - The keys that signed blocks and votes, with how many of each and whether the key is in O(federation)
      (null when no federation was given); the 100 keys with the most signatures.
  returned: always
  type: dict
  sample:
    8hPa1kAeTqBfuhyLQfbUQvDz5wZsKBZyKnW8JmXqrVgu: {blocks: 8334, votes: 25000, in_federation: true}
not_checked:
  description: Checks left out, and why.
  returned: always
  type: list
  elements: str
  sample:
    - "block_signer_outside_federation: no federation given; signers lists the keys that signed"
workers:
  description: Worker processes used.
  returned: always
  type: int
  sample: 2
seconds:
  description: How long the check took.
  returned: always
  type: float
  sample: 9.8
summary:
  description: The outcome as a person reads it, one line each.
  returned: always
  type: list
  elements: str
  sample:
    - "passed: 25001 blocks (50001 transactions, 50001 fulfillments), 75000 votes checked in 9.8 s by 2 workers"
'''

import concurrent.futures
import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.bigchaindb_chain import (
    ChainCheckError,
    Options,
    available_cores,
    check_archive,
    check_cluster,
    summary_lines,
)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.bigchaindb_signing import REQUIRED_LIBRARIES, SIGNING_IMPORT_ERROR
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import NAME_PATTERN
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import (
    LOGIN_MUTUALLY_EXCLUSIVE,
    connect_arguments,
    endpoint,
    ensure_driver,
    rethinkdb_common_argument_spec,
)


def argument_spec() -> dict:
    spec = rethinkdb_common_argument_spec()
    spec.update(
        source=dict(type='str', required=True, choices=['archive', 'cluster']),
        archive=dict(type='path'),
        db=dict(type='str', default='bigchain'),
        federation=dict(type='list', elements='str'),
        workers=dict(type='int', default=0),
        failure_ids=dict(type='int', default=10),
        recent_unvoted_seconds=dict(type='int', default=0),
        report_only=dict(type='bool', default=False),
        temp_dir=dict(type='path'),
    )
    return spec


def check_options(module) -> Options:
    """The check's options, or a one-line failure that says which option to fix."""
    params = module.params
    if params['source'] == 'archive' and not params['archive']:
        module.fail_json(msg='source=archive needs archive: the path of a rethinkdb dump archive (tar.gz).')
    if params['source'] == 'archive' and not os.path.isfile(params['archive']):
        module.fail_json(msg='archive %s is not a file.' % params['archive'])
    if not NAME_PATTERN.match(params['db']):
        module.fail_json(msg="db '%s' is not a RethinkDB database name (letters, digits, _ and -)." % params['db'])
    for name in ('workers', 'failure_ids', 'recent_unvoted_seconds'):
        if params[name] < 0:
            module.fail_json(msg='%s must be 0 or more, got %d.' % (name, params[name]))
    if params['temp_dir'] and not os.path.isdir(params['temp_dir']):
        module.fail_json(msg='temp_dir %s is not a directory.' % params['temp_dir'])
    federation = params['federation']
    if federation is not None and not all(key.strip() for key in federation):
        module.fail_json(msg='federation holds an empty key; give the base58 public keys of the federation nodes.')
    return Options(db=params['db'], federation=None if federation is None else frozenset(federation),
                   workers=params['workers'] or available_cores(), failure_ids=params['failure_ids'],
                   recent_unvoted_seconds=params['recent_unvoted_seconds'], temp_dir=params['temp_dir'])


def run_check(module, options: Options) -> dict:
    """The outcome of the check of the chosen source, with where it was read from."""
    params = module.params
    try:
        if params['source'] == 'archive':
            return dict(check_archive(params['archive'], options), source='archive', archive=params['archive'])
        ensure_driver(module)
        return dict(check_cluster(connect_arguments(module), options), source='cluster', endpoint=endpoint(module))
    except ChainCheckError as exc:
        module.fail_json(msg=str(exc))
    except concurrent.futures.process.BrokenProcessPool:
        module.fail_json(msg='A worker process of the check died (out of memory?); try fewer workers.', exception=traceback.format_exc())
    except OSError as exc:
        module.fail_json(msg='The check could not use its scratch file in %s: %s.' % (params['temp_dir'] or 'the temporary directory', exc.strerror or exc))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), mutually_exclusive=LOGIN_MUTUALLY_EXCLUSIVE, supports_check_mode=True)
    if SIGNING_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib(REQUIRED_LIBRARIES), exception=SIGNING_IMPORT_ERROR)
    outcome = run_check(module, check_options(module))
    outcome['summary'] = summary_lines(outcome)
    if not outcome['ok'] and not module.params['report_only']:
        failed = ', '.join('%s %d' % (kind, entry['count']) for kind, entry in outcome['failures'].items() if entry['count'])
        module.fail_json(msg='The chain check found %d failure(s): %s.' % (outcome['failure_count'], failed), changed=False, **outcome)
    module.exit_json(changed=False, **outcome)


if __name__ == '__main__':
    main()
