#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: client_backup
short_description: Save the BigchainDB blocks and votes that hold a client's transactions into a small client set
version_added: 0.3.0
description:
  - A BigchainDB client keeps its own copy of what concerns it, with its own credentials (a user that may read
    the C(bigchain) and C(votes) tables), namely the blocks that hold the transactions O(transaction_ids) (index
    C(transaction_id)), the blocks with an output to one of O(public_keys) (index C(outputs)) and those that spend
    such an output (index C(inputs)), and every vote on those blocks (index C(block_and_voter)).
  - Writes them as a client set, the directory O(dest), C(rethinkdb_dump.tar.gz) (the layout of C(rethinkdb dump),
    so that M(bigchaindb.rethinkdb.restore) loads it and M(bigchaindb.rethinkdb.chain_check) checks it) and
    C(client-set.json) (what was asked, what was found for each, the blocks saved, the archive's size and sha256).
  - The set is written to C(<dest>.writing) and renamed to O(dest) once complete, so O(dest) is complete or absent.
  - Signatures make the set verifiable; blocks are signed by federation nodes and votes by the nodes that cast
    them. The C(bigchaindb.rethinkdb.client_backup) playbook runs the chain check on the new set, and
    C(bigchaindb.rethinkdb.client_merge) merges several sets into an empty cluster and names the blocks that
    the votes link to but no set holds.
extends_documentation_fragment:
  - bigchaindb.rethinkdb.login
options:
  dest:
    description:
      - The client set's directory, which must not exist; its parent must.
    type: path
    required: true
  db:
    description:
      - The database that holds BigchainDB's tables.
    type: str
    default: bigchain
  transaction_ids:
    description:
      - Ids of the transactions whose blocks to save.
    type: list
    elements: str
    default: []
  public_keys:
    description:
      - Base58 public keys whose outputs and spends to save.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Reads the cluster and reports what would be saved; writes nothing.
  diff_mode:
    support: none
    description: What was saved is in the result.
  idempotent:
    support: none
    description: Every run saves the blocks as they are now into a new set; an existing O(dest) is an error.
notes:
  - A transaction still in the backlog (not yet in a block) is not found, and RV(not_found) names it.
  - The C(.info) files hold each table's description and secondary indexes, as C(rethinkdb dump) writes them,
    without write hooks (BigchainDB sets none).
seealso:
  - module: bigchaindb.rethinkdb.chain_check
  - module: bigchaindb.rethinkdb.restore
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Save what concerns two transactions and a key
  bigchaindb.rethinkdb.client_backup:
    login_host: bigchaindb1.example.net
    login_user: wallet
    login_password_file: ~/.config/wallet/rethinkdb-password
    transaction_ids:
      - 8d8a5c5b6a7f59c5c6f0a9e7dc0bdf5e4c1c9c27a1e0d0e0f5a9c1d2b3e4f5a6
    public_keys: [3pbxpD6U7P1CjURzvT1WCKpBqERUAqT3uPmrk6kyn5Kz]
    dest: /srv/wallet-backups/2026-12-02
  register: saved

- name: Save a key's blocks from a node reached over TLS, the password from a vault
  bigchaindb.rethinkdb.client_backup:
    login_host: bigchaindb1.example.net
    login_port: 28015
    login_user: wallet
    login_password: "{{ vault_wallet_rethinkdb_password }}"
    tls_ca_file: /etc/ssl/certs/bigchaindb-ca.pem
    connect_timeout: 10
    db: bigchain
    public_keys: "{{ saved.found.public_keys | list }}"
    dest: /srv/wallet-backups/2026-12-02-tls
'''

RETURN = r'''
path:
  description: The client set's directory.
  returned: success, not in check mode
  type: str
  sample: /srv/wallet-backups/2026-12-02
archive:
  description: The archive's path in the set, size and sha256.
  returned: success, not in check mode
  type: dict
  sample: {path: rethinkdb_dump.tar.gz, bytes: 18342, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
set_id:
  description: The set's id (the time it was made), which also names the archive's top directory.
  returned: success, not in check mode
  type: str
  sample: client_20261202T051500Z
blocks:
  description: Ids of the blocks saved, sorted.
  returned: always
  type: list
  elements: str
  sample: [3c0b5a4b0e1f8e2d9c7a6b5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f]
votes:
  description: How many votes were saved.
  returned: always
  type: int
  sample: 3
found:
  description: For each transaction id, the ids of the blocks that hold it; for each public key, C(received_in)
    and C(spent_in), the blocks with an output to it and those that spend one.
  returned: always
  type: dict
  sample:
    transaction_ids: {8d8a5c5b6a7f59c5c6f0a9e7dc0bdf5e4c1c9c27a1e0d0e0f5a9c1d2b3e4f5a6: [3c0b5a...]}
    public_keys: {3pbxpD6U7P1CjURzvT1WCKpBqERUAqT3uPmrk6kyn5Kz: {received_in: [3c0b5a...], spent_in: []}}
not_found:
  description: The transaction ids in no block, and the public keys with no output.
  returned: always
  type: dict
  sample: {transaction_ids: [], public_keys: []}
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.bigchaindb_client_set import ClientSetError, collect, write_client_set
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import NAME_PATTERN
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import (
    LOGIN_MUTUALLY_EXCLUSIVE,
    ReqlError,
    connect,
    endpoint,
    error_text,
    rethinkdb_common_argument_spec,
)


def argument_spec() -> dict:
    spec = rethinkdb_common_argument_spec()
    spec.update(
        dest=dict(type='path', required=True),
        db=dict(type='str', default='bigchain'),
        transaction_ids=dict(type='list', elements='str', default=[]),
        public_keys=dict(type='list', elements='str', default=[]),
    )
    return spec


def asked(module) -> dict:
    """What the client asks for, checked and without repeats, in the order given."""
    params = module.params
    if not NAME_PATTERN.match(params['db']):
        module.fail_json(msg="db '%s' is not a RethinkDB database name (letters, digits, _ and -)." % params['db'])
    if not params['transaction_ids'] and not params['public_keys']:
        module.fail_json(msg='Give transaction_ids or public_keys: the transactions, or the keys, whose blocks to save.')
    wanted = dict(transaction_ids=list(dict.fromkeys(params['transaction_ids'])), public_keys=list(dict.fromkeys(params['public_keys'])))
    if not all(value.strip() for values in wanted.values() for value in values):
        module.fail_json(msg='transaction_ids and public_keys must not hold empty strings.')
    return wanted


def main():
    module = AnsibleModule(argument_spec=argument_spec(), mutually_exclusive=LOGIN_MUTUALLY_EXCLUSIVE, supports_check_mode=True)
    params = module.params
    wanted = asked(module)
    if os.path.lexists(params['dest']):
        module.fail_json(msg='%s already exists: give another dest, or remove it.' % params['dest'])
    r, connection = connect(module)
    try:
        collected = collect(r, connection, params['db'], wanted['transaction_ids'], wanted['public_keys'])
    except ReqlError as exc:
        module.fail_json(msg='Reading the blocks and votes of %s at %s as %s failed: %s.'
                         % (params['db'], endpoint(module), params['login_user'], error_text(exc)))
    finally:
        connection.close()
    result = dict(blocks=[block['id'] for block in collected['blocks']], votes=len(collected['votes']), found=collected['found'],
                  not_found=collected['not_found'])
    if module.check_mode:
        module.exit_json(changed=True, **result)
    try:
        record = write_client_set(params['dest'], params['db'], wanted, collected, dict(endpoint=endpoint(module), user=params['login_user']))
    except ClientSetError as exc:
        module.fail_json(msg=str(exc), **result)
    except OSError as exc:
        module.fail_json(msg='Cannot write the client set %s: %s.' % (params['dest'], exc.strerror or exc), **result)
    module.exit_json(changed=True, path=params['dest'], archive=record['archive'], set_id=record['set_id'], **result)


if __name__ == '__main__':
    main()
