#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: incremental
short_description: Back up the documents of append-only RethinkDB tables that a chain does not hold yet
version_added: 0.3.0
description:
  - Incremental backup without a daemon, for teams that run backups from cron or CI; the same catch-up that
    closes the follower's gaps (see the collection's docs/continuous-backup.md).
  - Continues the newest chain that incremental backups wrote on the newest complete dump set that holds every
    table in O(tables) (the base, or O(base_set)), or begins a new chain on that base.
  - Reads every primary key of each table (only keys cross the wire), compares them with the keys the chain
    holds (its base and its segments, kept in a local index in O(cache_dir), rebuilt from the repository when
    missing), fetches the documents the chain lacks and seals them as segments of at most O(seal_documents)
    records, each committed by a record written last that names the one before it.
  - A key the chain holds that the table no longer has is recorded as a C(missing) alarm and never applied, since
    the tables are append-only.
  - Runs on a host that can reach both the cluster and the repository (C(path:), C(s3://), or a directory of
    that host).
extends_documentation_fragment:
  - bigchaindb.rethinkdb.login
  - bigchaindb.rethinkdb.repository
options:
  repository:
    required: true
  cluster:
    required: true
  tables:
    description:
      - The append-only tables to back up, as C(database.table).
    type: list
    elements: str
    default: [bigchain.bigchain, bigchain.votes]
  base_set:
    description:
      - The dump set to continue, instead of the newest complete one that holds the tables.
    type: str
  chain_id:
    description:
      - The chain to continue, instead of the newest one incremental backups wrote on the base.
    type: str
  take_base:
    description:
      - When no dump set can be the base, take one first (C(rethinkdb dump) of the tables, committed as an
        ordinary dump set). Without it, the module fails and asks for a dump backup.
    type: bool
    default: false
  cache_dir:
    description:
      - Where the index of what the chain holds is kept between runs (one SQLite file per chain, readable by its
        owner only). A missing or stale index is rebuilt, reading the base set's archive once.
    type: path
    default: ~/.cache/bigchaindb-rethinkdb
  seal_documents:
    description:
      - Records per segment at most; more documents make more segments, so memory stays bounded.
    type: int
    default: 5000
attributes:
  check_mode:
    support: partial
    description: Reports the base set it would continue; reads no table and writes nothing.
    details:
      - The documents the chain lacks are not counted in check mode (that reads every key of the tables).
      - With O(take_base), check mode fails when there is no base set, as it takes none.
  diff_mode:
    support: none
    description: The documents backed up are not shown.
  idempotent:
    support: full
    description: A second run with no new documents finds none and writes a segment only to record the catch-up.
notes:
  - The time a document was received, which a point-in-time restore compares, is the time of the run that
    found it; a restore to a moment between two runs holds what the earlier run found.
seealso:
  - module: bigchaindb.rethinkdb.catalog_info
  - module: bigchaindb.rethinkdb.chain_restore
requirements:
  - rethinkdb (the Python driver, 2.4) on the host that runs the module
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Back up what the chain does not hold yet (cron, every hour)
  bigchaindb.rethinkdb.incremental:
    repository: path:/mnt/backups/rethinkdb
    cluster: bigchaindb
    tables: [bigchain.bigchain, bigchain.votes]
    login_password_file: /etc/rethinkdb/admin-password
  register: incremental

- name: Continue a given chain on a given base, from a node reached over TLS, into an S3 bucket
  bigchaindb.rethinkdb.incremental:
    repository: s3://backups/rethinkdb
    cluster: bigchaindb
    base_set: 20261124T120000Z-dump-77aa
    chain_id: "{{ incremental.chain_id }}"
    cache_dir: /var/cache/bigchaindb-rethinkdb
    seal_documents: 2000
    login_host: db1.example.net
    login_port: 28015
    login_user: backup
    login_password: "{{ vault_rethinkdb_backup_password }}"
    tls_ca_file: /etc/rethinkdb/ca.pem
    connect_timeout: 20
    s3_endpoint_url: https://s3.example.net
    s3_region: eu-west-1
    s3_credentials_file: /etc/rethinkdb/s3-credentials
    s3_profile: backups
    s3_ca_bundle: /etc/ssl/certs/example-ca.pem

- name: The first run of a new cluster, where no dump set can be the base yet
  bigchaindb.rethinkdb.incremental:
    repository: path:/mnt/backups/rethinkdb
    cluster: bigchaindb
    take_base: true
    login_password_file: /etc/rethinkdb/admin-password

- name: Say what it saved
  ansible.builtin.debug:
    msg: "{{ incremental.documents }} documents into chain {{ incremental.chain_id }}"
'''

RETURN = r'''
chain_id:
  description: The chain written to.
  returned: always
  type: str
  sample: 20261124T163000Z-3f9a
began:
  description: Whether the chain was begun by this run.
  returned: always
  type: bool
  sample: false
base_set_id:
  description: The chain's base set.
  returned: always
  type: str
  sample: 20261124T120000Z-dump-77aa
took_base:
  description: Whether this run took the base set (O(take_base)).
  returned: always
  type: bool
  sample: false
segments:
  description: The segments sealed by this run, each with C(seq), C(records), C(documents), C(alarms), C(bytes) and C(sealed_at).
  returned: success
  type: list
  elements: dict
  sample: [{"seq": 12, "records": 340, "documents": 340, "alarms": 0, "bytes": 81234, "sealed_at": "2026-11-24T17:00:03.120Z"}]
documents:
  description: Documents the chain lacked and now holds, all tables.
  returned: success
  type: int
  sample: 340
tables:
  description: Per table, C(keys) read, C(found) (documents the chain lacked), C(missing) (documents gone, alarms) and C(seconds).
  returned: success
  type: dict
  sample: {"bigchain.votes": {"keys": 90340, "found": 340, "missing": 0, "seconds": 1.9}}
alarms:
  description: Documents the chain holds that a table no longer has, found by this run.
  returned: success
  type: int
  sample: 0
index:
  description: What was done to bring the local index up to the chain.
  returned: success
  type: str
  sample: index up to date
totals:
  description: The chain's totals after this run (C(segments), C(documents), C(alarms), C(gaps), C(inserted) by table).
  returned: success
  type: dict
  sample: {"segments": 12, "documents": 4100, "alarms": 0, "gaps": 24, "inserted": {"bigchain.votes": 3000}}
seconds:
  description: How long the run took.
  returned: success
  type: float
  sample: 2.4
'''

import os
import socket
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_base import choose_base, open_chain, sync_index, take_base
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_format import ChainFormatError, check_chain_id, split_table
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_index import HeldIndex, HeldIndexError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_source import SourceError, catch_up, close_quietly, cluster_facts
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_store import ChainError, ChainStore, ChainWriter
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import (
    MissingLibraryError, RepositoryError, repository_argument_spec, repository_from_params)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import (
    LOGIN_MUTUALLY_EXCLUSIVE, ReqlError, connect, error_text, login_password, rethinkdb_common_argument_spec)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import FormatError, check_cluster, format_time, utc_now

DEFAULT_TABLES = ['bigchain.bigchain', 'bigchain.votes']


def sentence(text: str) -> str:
    text = text.rstrip('.')
    return text[:1].upper() + text[1:] + '.'


def check_options(module) -> None:
    params = module.params
    check_cluster(params['cluster'])
    if not params['tables'] or len(set(params['tables'])) != len(params['tables']):
        module.fail_json(msg='tables must name each append-only table (database.table) once.')
    for name in params['tables']:
        split_table(name)
    if params['chain_id']:
        check_chain_id(params['chain_id'])
    if params['seal_documents'] < 1:
        module.fail_json(msg='seal_documents must be at least 1, not %d.' % params['seal_documents'])


def base_of(module, repository, r, connection) -> tuple:
    """(entry, manifest, taken) of the base set: the one asked for or the newest usable; taken when none is."""
    params = module.params
    try:
        return choose_base(repository, params['cluster'], params['tables'], params['base_set']) + (False,)
    except ChainError:
        if not params['take_base'] or params['base_set'] or module.check_mode:
            raise
    login = dict(host=params['login_host'], port=params['login_port'], user=params['login_user'], password=login_password(module),
                 tls_ca_file=params['tls_ca_file'])
    facts = cluster_facts(r, connection, params['tables'])
    return take_base(repository, params['cluster'], login, params['tables'], facts, module.tmpdir, 'incremental', module) + (True,)


def back_up(module, repository, r, connection) -> dict:
    params = module.params
    started = time.monotonic()
    store = ChainStore(repository, params['cluster'])
    base_entry, manifest, took = base_of(module, repository, r, connection)
    if module.check_mode:
        return dict(changed=True, chain_id=params['chain_id'], began=False, base_set_id=base_entry['set_id'], took_base=False,
                    msg='Would back up the documents of %s that the chain on base set %s lacks.' % (', '.join(params['tables']), base_entry['set_id']))
    chain, content, head = open_chain(store, base_entry, manifest, params['tables'], 'incremental', params['chain_id'])
    index = HeldIndex(os.path.join(params['cache_dir'], 'index-%s-%s.sqlite' % (params['cluster'], chain['chain_id'])))
    try:
        done = sync_index(index, store, chain, content, head, manifest)
        writer = ChainWriter(store, chain, head, index, dict(kind='incremental', host=socket.gethostname()), params['seal_documents'],
                             float('inf'))
        sealed = []

        def make_room() -> None:
            sealed.append(writer.seal())

        opened_at = store.read_segment_record(chain['chain_id'], head.seq)[0]['sealed_at'] if head.seq else manifest['started_at']
        tables = {}
        for table in chain['tables']:
            name = '%s.%s' % (table['db'], table['name'])
            result = catch_up(r, connection, table, writer, make_room)
            writer.add_gap(dict(table=name, reason='incremental backup', opened_at=opened_at, closed_at=format_time(utc_now()),
                                found=result.found, missing=result.missing), time.monotonic())
            tables[name] = result._asdict()
        sealed.append(writer.seal())
    finally:
        index.close()
    segments = [dict(seq=record['seq'], records=record['records'], documents=sum(counts['insert'] for counts in record['tables'].values()),
                     alarms=sum(sum(counts.values()) - counts['insert'] for counts in record['tables'].values()), bytes=record['data']['bytes'],
                     sealed_at=record['sealed_at']) for record in sealed if record is not None]
    documents = sum(result['found'] for result in tables.values())
    return dict(changed=True, chain_id=chain['chain_id'], began=head.seq == 0, base_set_id=chain['base']['set_id'], took_base=took,
                segments=segments, documents=documents, tables=tables, alarms=sum(result['missing'] for result in tables.values()),
                index=done, totals=writer.head.totals, seconds=round(time.monotonic() - started, 3),
                msg='Backed up %d document(s) into chain %s (%d segment(s)).' % (documents, chain['chain_id'], len(segments)))


def main():
    argument_spec = rethinkdb_common_argument_spec()
    argument_spec.update(repository_argument_spec())
    argument_spec['repository']['required'] = True
    argument_spec['cluster']['required'] = True
    argument_spec.update(
        tables=dict(type='list', elements='str', default=DEFAULT_TABLES),
        base_set=dict(type='str'),
        chain_id=dict(type='str'),
        take_base=dict(type='bool', default=False),
        cache_dir=dict(type='path', default='~/.cache/bigchaindb-rethinkdb'),
        seal_documents=dict(type='int', default=5000),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=LOGIN_MUTUALLY_EXCLUSIVE, supports_check_mode=True)
    try:
        check_options(module)
        repository = repository_from_params(module.params)
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.import_traceback)
    except (ChainFormatError, FormatError, RepositoryError) as exc:
        module.fail_json(msg=sentence(str(exc)))
    r, connection = connect(module)
    try:
        result = back_up(module, repository, r, connection)
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.import_traceback)
    except (ChainError, ChainFormatError, FormatError, HeldIndexError, RepositoryError, SourceError) as exc:
        module.fail_json(msg=sentence(str(exc)))
    except ReqlError as exc:
        module.fail_json(msg='Reading the tables of the cluster failed: %s.' % error_text(exc))
    except OSError as exc:
        where = ' (%s)' % exc.filename if exc.filename else ''
        module.fail_json(msg='Cannot back up into %s: %s%s.' % (module.params['repository'], exc.strerror or exc, where))
    finally:
        close_quietly(connection)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
