#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: chain_restore
short_description: Restore append-only RethinkDB tables to a point in time from a chain of continuous backup
version_added: 0.3.0
description:
  - The steps of a point-in-time restore that are particular to chains (see the collection's
    docs/continuous-backup.md); the C(restore) role runs them around the dump restore of the chain's base set.
  - O(state=prepared) moves the chain's tables that exist aside, renaming each to
    C(<table>_before_<restore_id>) (never deleted), so that the restore starts from empty tables and nothing
    received after O(until) stays; and, with O(base_dest), copies the base set's dump archive there (checked by
    its sha256) for M(bigchaindb.rethinkdb.restore).
  - O(state=loaded), once the base is restored, loads the documents the chain's segments received up to
    O(until) (all of them without it), checking on the way that every segment names the sha256 of the record
    before it, has its recorded size and sha256 and holds the records its record counts. Documents go in with
    C(conflict=error), so a document the tables hold already (a chain that repeats its base, or itself) fails
    the restore instead of going in twice. Updates and deletions recorded as alarms are never applied.
  - Returns the document count each table must have, the base set's plus the documents loaded, for the
    C(restore) role to verify.
extends_documentation_fragment:
  - bigchaindb.rethinkdb.login
  - bigchaindb.rethinkdb.repository
options:
  repository:
    required: true
  cluster:
    required: true
  chain_id:
    description:
      - The chain to restore, like C(20261124T163000Z-3f9a).
    type: str
    required: true
  state:
    description:
      - V(prepared) moves the tables aside and copies the base; V(loaded) loads the segments.
    type: str
    choices: [prepared, loaded]
    required: true
  restore_id:
    description:
      - With O(state=prepared), the restore run, which names the tables moved aside.
    type: str
  base_dest:
    description:
      - With O(state=prepared), a file to copy the base set's dump archive to (its directory must exist).
    type: path
  until:
    description:
      - With O(state=loaded), the point in time, ISO 8601 (C(2026-11-24T16:30:00Z); UTC when no zone is given).
        Documents received after it are left out.
    type: str
  batch_size:
    description:
      - With O(state=loaded), documents per insert.
    type: int
    default: 200
attributes:
  check_mode:
    support: full
    description: V(prepared) says which tables it would move aside; V(loaded) checks the segments and counts what it would load.
  diff_mode:
    support: none
    description: The documents are not shown.
  idempotent:
    support: none
    description: Every run moves the tables there are aside, or loads the segments again (which fails on the documents loaded before).
seealso:
  - module: bigchaindb.rethinkdb.catalog_info
  - module: bigchaindb.rethinkdb.incremental
  - module: bigchaindb.rethinkdb.restore
requirements:
  - rethinkdb (the Python driver, 2.4) on the host that runs the module
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Move the tables aside before restoring
  bigchaindb.rethinkdb.chain_restore:
    repository: path:/mnt/backups/rethinkdb
    cluster: bigchaindb
    chain_id: 20261124T163000Z-3f9a
    state: prepared
    restore_id: 20261125T090000Z-1b2c
    base_dest: /var/tmp/rethinkdb-restore/base.tar.gz
    login_host: db1.example.net
    login_port: 28015
    login_user: admin
    login_password_file: /etc/rethinkdb/admin-password
    tls_ca_file: /etc/rethinkdb/ca.pem
    connect_timeout: 20

- name: Load the segments up to a second before the accident
  bigchaindb.rethinkdb.chain_restore:
    repository: path:/mnt/backups/rethinkdb
    cluster: bigchaindb
    chain_id: 20261124T163000Z-3f9a
    state: loaded
    until: "2026-11-25T08:41:59Z"
    batch_size: 500
    login_host: db1.example.net
    login_password: "{{ vault_rethinkdb_admin_password }}"
  register: loaded

- name: Load a whole chain kept in an S3 bucket
  bigchaindb.rethinkdb.chain_restore:
    repository: s3://backups/rethinkdb
    cluster: bigchaindb
    chain_id: 20261124T163000Z-3f9a
    state: loaded
    s3_endpoint_url: https://s3.example.net
    s3_region: eu-west-1
    s3_credentials_file: /etc/rethinkdb/s3-credentials
    s3_profile: backups
    s3_ca_bundle: /etc/ssl/certs/example-ca.pem
'''

RETURN = r'''
moved:
  description: With O(state=prepared), each table moved aside (C(database.table)) and its new name.
  returned: when state is prepared
  type: dict
  sample: {"bigchain.votes": "bigchain.votes_before_20261125T090000Z_1b2c"}
base_archive:
  description: With O(state=prepared) and O(base_dest), where the base set's archive was copied.
  returned: when state is prepared
  type: str
  sample: /var/tmp/bigchaindb-rethinkdb-backup/db1/restore/rethinkdb_dump.tar.gz
loaded:
  description: With O(state=loaded), the documents loaded per table.
  returned: when state is loaded
  type: dict
  sample: {"bigchain.votes": 120}
expected:
  description: With O(state=loaded), the documents each table must hold now (the base set's count plus those loaded).
  returned: when state is loaded
  type: dict
  sample: {"bigchain.votes": 3120}
expected_tables:
  description: With O(state=loaded), the same counts as RV(expected), as the C(tables) of a manifest (C(db), C(name), C(documents)),
    for the C(count_check) filter.
  returned: when state is loaded
  type: list
  elements: dict
  sample: [{"db": "bigchain", "name": "votes", "documents": 3120}]
segments:
  description: With O(state=loaded), how many segments were read.
  returned: when state is loaded
  type: int
  sample: 14
last_received_at:
  description: With O(state=loaded), when the newest document loaded was received; null when none was.
  returned: when state is loaded
  type: str
  sample: "2026-11-25T08:41:58.912Z"
chain_ends_at:
  description: With O(state=loaded), when the chain's newest record was received.
  returned: when state is loaded
  type: str
  sample: "2026-11-25T08:45:10.002Z"
alarms:
  description: With O(state=loaded), the alarms recorded up to O(until) (the first 100), each C(op), C(table), C(key), C(at) and C(seq).
  returned: when state is loaded
  type: list
  elements: dict
  sample: [{"op": "delete", "table": "bigchain.votes", "key": "3b1f...", "at": "2026-11-25T08:42:00.120Z", "seq": 14}]
alarm_count:
  description: With O(state=loaded), how many alarms were recorded up to O(until).
  returned: when state is loaded
  type: int
  sample: 1
gaps:
  description: With O(state=loaded), the gaps the chain closed up to O(until) (C(table), C(reason), C(opened_at), C(closed_at), C(found), C(missing)).
  returned: when state is loaded
  type: list
  elements: dict
  sample: [{"table": "bigchain.votes", "reason": "the follower started", "found": 12, "missing": 0}]
'''

import os
import re

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_format import (
    INSERT, ChainFormatError, check_chain_id, parse_until, sha256_hex)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_store import ChainError, ChainStore
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_source import RAW, close_quietly
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import (
    MissingLibraryError, RepositoryError, repository_argument_spec, repository_from_params)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import FileWriter
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import (
    LOGIN_MUTUALLY_EXCLUSIVE, ReqlError, connect, error_text, rethinkdb_common_argument_spec)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_catalog import read_manifest
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import FormatError, check_cluster, parse_time
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import CHUNK_BYTES

RESTORE_ID_RE = re.compile(r'[A-Za-z0-9_-]+')
ALARMS_SHOWN = 100


def sentence(text: str) -> str:
    text = text.rstrip('.')
    return text[:1].upper() + text[1:] + '.'


def aside_name(existing: set, name: str, restore_id: str) -> str:
    """A table name for the table moved aside that no table has yet."""
    stem = '%s_before_%s' % (name, restore_id.replace('-', '_'))
    candidate, number = stem, 1
    while candidate in existing:
        number += 1
        candidate = '%s_%d' % (stem, number)
    return candidate


def move_aside(module, r, connection, chain: dict) -> dict:
    """Rename each of the chain's tables that exists; returns {db.table: db.new_name}."""
    moved = {}
    for table in chain['tables']:
        existing = set(r.db(table['db']).table_list().run(connection)) if table['db'] in r.db_list().run(connection) else set()
        if table['name'] not in existing:
            continue
        new_name = aside_name(existing, table['name'], module.params['restore_id'])
        moved['%s.%s' % (table['db'], table['name'])] = '%s.%s' % (table['db'], new_name)
        if module.check_mode:
            continue
        result = r.db(table['db']).table(table['name']).config().update({'name': new_name}).run(connection)
        if result.get('errors'):
            module.fail_json(msg='Cannot move %s.%s aside to %s: %s.' % (table['db'], table['name'], new_name, result.get('first_error')), moved=moved)
    return moved


def copy_base(module, repository, chain: dict) -> str:
    """Copy the base set's dump archive to base_dest, checked by its sha256."""
    params = module.params
    manifest, problems = read_manifest(repository, params['cluster'], chain['base']['set_id'])
    if problems:
        raise ChainError('base set %s: %s' % (chain['base']['set_id'], '; '.join(problems)))
    part = [part for part in manifest['parts'] if part['path'].startswith('dump/')][0]
    source = repository.open_part(params['cluster'], manifest['set_id'], part['path'])
    try:
        with FileWriter(params['base_dest']) as destination:
            for chunk in iter(lambda: source.read(CHUNK_BYTES), b''):
                destination.stream.write(chunk)
            if destination.stream.hexdigest() != part['sha256']:
                raise ChainError('the archive of base set %s read from %s has sha256 %s, not %s' % (
                    manifest['set_id'], repository.describe(), destination.stream.hexdigest(), part['sha256']))
            destination.finish()
    finally:
        source.close()
    return params['base_dest']


def prepare(module, repository, r, connection, chain: dict) -> dict:
    params = module.params
    if not params['restore_id'] or not RESTORE_ID_RE.fullmatch(params['restore_id']):
        module.fail_json(msg='restore_id is required with state=prepared: letters, digits, _ and -.')
    moved = move_aside(module, r, connection, chain)
    base_archive = None
    if params['base_dest'] and not module.check_mode:
        base_archive = copy_base(module, repository, chain)
    verb = 'Would move' if module.check_mode else 'Moved'
    return dict(changed=bool(moved or base_archive), moved=moved, base_archive=base_archive,
                msg='%s aside %s.' % (verb, ', '.join('%s to %s' % item for item in sorted(moved.items())) or 'no table (none exists)'))


class Loader:
    """Inserts a chain's documents, table by table, in batches, never over a document already there."""

    def __init__(self, module, r, connection, chain: dict):
        self.module = module
        self.r = r
        self.connection = connection
        self.tables = dict(('%s.%s' % (table['db'], table['name']), table) for table in chain['tables'])
        self.batches = dict((name, []) for name in self.tables)
        self.loaded = dict.fromkeys(self.tables, 0)

    def add(self, name: str, document: dict) -> None:
        batch = self.batches[name]
        batch.append(document)
        if len(batch) >= self.module.params['batch_size']:
            self.flush(name)

    def flush(self, name: str) -> None:
        batch, self.batches[name] = self.batches[name], []
        if not batch:
            return
        if not self.module.check_mode:
            table = self.tables[name]
            result = self.r.db(table['db']).table(table['name']).insert(batch, conflict='error', durability='hard').run(self.connection, **RAW)
            if result.get('errors'):
                self.module.fail_json(msg='Loading %s stopped: %s (%d of %d documents of the batch refused). A document the table holds '
                                          'already means the chain repeats its base or itself; the table holds what was loaded so far.'
                                          % (name, result.get('first_error'), result['errors'], len(batch)), loaded=self.loaded)
        self.loaded[name] += len(batch)


def load(module, store: ChainStore, r, connection, chain: dict, content: bytes) -> dict:
    params = module.params
    until = parse_until(params['until']) if params['until'] else None
    loader = Loader(module, r, connection, chain)
    listing = store.listing(chain['chain_id'])
    last = max(listing.records) if listing.records else 0
    previous = sha256_hex(content)
    alarms, gaps, read, newest, chain_end = [], [], 0, None, None
    for seq in range(1, last + 1):
        segment, record_content = store.read_segment_record(chain['chain_id'], seq)
        if segment['previous_sha256'] != previous:
            raise ChainError('segment %d of chain %s does not follow the record before it (sha256 %s, not %s): the chain was changed'
                             % (seq, chain['chain_id'], segment['previous_sha256'], previous))
        previous = sha256_hex(record_content)
        chain_end = segment['last_received_at'] or chain_end
        gaps += [gap for gap in segment['gaps'] if until is None or parse_time(gap['closed_at']) <= until]
        if until is not None and segment['first_received_at'] and parse_time(segment['first_received_at']) > until:
            continue
        read += 1
        counted: dict = {}
        for data in store.data_records(chain['chain_id'], segment):
            counts = counted.setdefault(data['table'], {})
            counts[data['op']] = counts.get(data['op'], 0) + 1
            if until is not None and parse_time(data['at']) > until:
                continue
            if data['op'] == INSERT:
                loader.add(data['table'], data['doc'])
                newest = max(newest or data['at'], data['at'])
            else:
                alarms.append(dict(seq=seq, op=data['op'], table=data['table'], key=data['key'], at=data['at']))
        recorded = dict((table, dict((op, count) for op, count in counts.items() if count)) for table, counts in segment['tables'].items())
        if counted != dict((table, counts) for table, counts in recorded.items() if counts):
            raise ChainError('segment %d of chain %s holds records %s, but its record counts %s' % (seq, chain['chain_id'], counted, recorded))
    for name in loader.tables:
        loader.flush(name)
    expected = dict((name, chain['base']['documents'][name] + count) for name, count in loader.loaded.items())
    expected_tables = [dict(db=name.split('.')[0], name=name.split('.')[1], documents=count) for name, count in sorted(expected.items())]
    return dict(changed=not module.check_mode and any(loader.loaded.values()), loaded=loader.loaded, expected=expected,
                expected_tables=expected_tables, segments=read,
                last_received_at=newest, chain_ends_at=chain_end, alarms=alarms[:ALARMS_SHOWN], alarm_count=len(alarms), gaps=gaps,
                msg='%s %d document(s) of chain %s%s.' % ('Would load' if module.check_mode else 'Loaded', sum(loader.loaded.values()),
                                                          chain['chain_id'], ' received up to %s' % params['until'] if until else ''))


def main():
    argument_spec = rethinkdb_common_argument_spec()
    argument_spec.update(repository_argument_spec())
    argument_spec['repository']['required'] = True
    argument_spec['cluster']['required'] = True
    argument_spec.update(
        chain_id=dict(type='str', required=True),
        state=dict(type='str', required=True, choices=['prepared', 'loaded']),
        restore_id=dict(type='str'),
        base_dest=dict(type='path'),
        until=dict(type='str'),
        batch_size=dict(type='int', default=200),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=LOGIN_MUTUALLY_EXCLUSIVE, supports_check_mode=True)
    params = module.params
    try:
        check_cluster(params['cluster'])
        check_chain_id(params['chain_id'])
        if params['until']:
            parse_until(params['until'])
        if params['batch_size'] < 1:
            module.fail_json(msg='batch_size must be at least 1.')
        if params['base_dest'] and not os.path.isdir(os.path.dirname(os.path.abspath(params['base_dest']))):
            module.fail_json(msg='The directory of base_dest %s does not exist.' % params['base_dest'])
        repository = repository_from_params(params)
        store = ChainStore(repository, params['cluster'])
        chain, content = store.read_chain(params['chain_id'])
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.import_traceback)
    except (ChainError, ChainFormatError, FormatError, RepositoryError) as exc:
        module.fail_json(msg=sentence(str(exc)))
    r, connection = connect(module)
    try:
        result = prepare(module, repository, r, connection, chain) if params['state'] == 'prepared' else load(module, store, r, connection, chain, content)
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.import_traceback)
    except (ChainError, ChainFormatError, FormatError, RepositoryError) as exc:
        module.fail_json(msg=sentence(str(exc)))
    except ReqlError as exc:
        module.fail_json(msg='The restore of chain %s failed at the cluster: %s.' % (params['chain_id'], error_text(exc)))
    except OSError as exc:
        where = ' (%s)' % exc.filename if exc.filename else ''
        module.fail_json(msg='The restore of chain %s failed: %s%s.' % (params['chain_id'], exc.strerror or exc, where))
    finally:
        close_quietly(connection)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
