#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: restore
short_description: Restore RethinkDB tables from a dump archive
version_added: 0.1.0
description:
  - Loads tables from an archive made by M(bigchaindb.rethinkdb.dump) (or by C(rethinkdb dump)) into a
    cluster, then counts the documents of every restored table and fails unless they match the archive.
  - With O(engine=native) (the default), the module loads the archive itself, in one more pass over it,
    batches of documents inserted in parallel on connections to each table's primary replica with soft
    durability; once a table's documents are in, it is synced to disk, its secondary indexes are created (after
    the documents, as C(rethinkdb restore) does) and its write hook set, while the next tables load; then the
    module waits until every index is built. It reads gzip archives (its own and the tool's) and
    zstd ones. See the collection's docs/native-engine.md.
  - With O(engine=tool), runs C(rethinkdb restore), the tool of the RethinkDB Python driver, which unpacks the
    chosen tables into O(temp_dir) and inserts batches of 200 documents.
  - Nothing touches the cluster before the archive is proven good. In this order, the module checks that the
    archive exists, that its sha256 is O(sha256) when given, and that it reads to the end as a dump archive, with
    only C(<top>/<db>/<table>.json) and C(.info) files with safe names, every table with both, every
    C(.json) a JSON array of documents. A truncated or damaged archive fails here, with a one-line reason.
    Then it checks the free space for the unpacked tables (O(engine=tool)), and refuses tables that already
    exist unless O(force=true).
  - Tables are created with one replica; the tool does not restore shards, replicas or primary replicas.
    The C(restore) role puts the saved configuration back afterwards with M(bigchaindb.rethinkdb.replicas).
  - Runs on any host that has the driver and can reach a server of the cluster, a node or the controller.
extends_documentation_fragment:
  - bigchaindb.rethinkdb.login
  - bigchaindb.rethinkdb.repository
options:
  archive:
    description:
      - The dump archive (C(tar.gz) or C(tar.zst)) on the host that runs the module.
      - Give O(archive), or O(repository), O(cluster), O(set_id) and O(part), to read the part straight from
        a backup set.
    type: path
  sha256:
    description:
      - The archive's expected sha256 (as stored, of the encrypted bytes for an encrypted part), in hex, for
        example from a backup set's manifest. Checked before anything else is done with the archive.
      - Default C(sha256) of O(part).
    type: str
  set_id:
    description:
      - With O(repository), the committed backup set whose part to restore.
    type: str
  part:
    description:
      - With O(repository), the dump part as the set's manifest records it (C(path) and C(sha256) are required;
        C(encryption) says which age recipients it is encrypted to).
      - With O(archive), its C(encryption) says the file is encrypted.
    type: dict
  identity_file:
    description:
      - For an encrypted part, a file on this host holding the age identity (private key) of one of its
        recipients. Checked against the recipients before anything is read.
    type: path
  tables:
    description:
      - The tables to restore, as C(database.table) names; a bare C(database) name restores every table of that
        database in the archive.
      - Every table in the archive when unset. A name that is not in the archive is an error.
    type: list
    elements: str
  force:
    description:
      - Restore into tables that already exist. Documents of the archive replace the table's documents with the
        same primary key; the table's other documents stay. The table's primary key must be the archive's.
      - Without it, a table that exists is an error and nothing is restored.
    type: bool
    default: false
  create_indexes:
    description:
      - Create the archive's secondary indexes on the restored tables, and wait until they are built.
      - V(false) restores the documents without their indexes. Write hooks are restored either way.
    type: bool
    default: true
  engine:
    description:
      - V(native) loads the archive itself, in parallel batches (needs the Python library orjson, and zstandard
        for zstd archives).
      - V(tool) runs the driver's C(rethinkdb restore); it reads gzip archives only.
    type: str
    choices: [native, tool]
    default: native
  clients:
    description:
      - How many connections write at the same time, each with a batch of documents.
    type: int
    default: 3
  hard_durability:
    description:
      - Write with hard durability (each batch on disk before it is acknowledged). Slower, uses less memory.
        The counts are checked either way; a native restore with soft durability syncs every table to disk
        before it returns.
    type: bool
    default: false
  temp_dir:
    description:
      - With O(engine=tool), directory in which the tool unpacks the chosen tables, uncompressed, before loading
        them. The module checks that it has room for them, makes a private directory inside it and removes it
        afterwards. O(engine=native) unpacks nothing.
      - Defaults to the system's temporary directory.
    type: path
attributes:
  check_mode:
    support: full
    description: >-
      Runs every check of the archive, the free space and the existing tables, and reports what would be
      restored; changes nothing.
  diff_mode:
    support: none
    description: The documents loaded are not shown.
  idempotent:
    support: none
    description: >-
      Every run loads the archive and reports a change. A second run fails on the tables the first one created,
      unless O(force=true), which replaces their documents with the archive's again.
notes:
  - A restore that fails halfway (a server lost, the module killed) may leave tables created and partly loaded;
    the failure names them. Drop them, or run again with O(force=true), which loads every document again.
  - The native engine reads the archive twice, front to back both times, once to prove it before anything
    touches the cluster (its sha256 is known only at its end, and the tool adds a table's description after
    or before its documents in whatever order its directory listed them), once to load it. It fails if the
    archive changed between the two. From a repository, that is two reads of the part (two GETs from S3);
    decrypting as it reads.
  - O(engine=tool) needs the archive as a plain file; a part from a repository, or an encrypted one, is first
    written (decrypted) to O(temp_dir), its sha256 checked on the way.
  - O(connect_timeout) applies to the module's own connections; the tool itself waits up to the driver's
    default of 20 seconds to connect.
seealso:
  - module: bigchaindb.rethinkdb.dump
  - module: bigchaindb.rethinkdb.replicas
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Restore BigchainDB's tables from an archive, proving its sha256 first
  bigchaindb.rethinkdb.restore:
    login_password_file: /etc/rethinkdb/admin-password
    archive: /var/backups/rethinkdb/bigchain.tar.gz
    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
  run_once: true
  register: restored

- name: Put only the votes back into the existing table, replacing documents with the same key
  bigchaindb.rethinkdb.restore:
    archive: /var/backups/rethinkdb/bigchain.tar.gz
    tables: [bigchain.votes]
    force: true
    engine: tool
    temp_dir: /srv/scratch

- name: Choose the newest complete dump set in S3
  bigchaindb.rethinkdb.catalog_info:
    repository: s3://backups/rethinkdb
    cluster: rethinkdb
    s3_credentials_file: /etc/rethinkdb/s3-credentials
    query: "[?method=='dump']"
  delegate_to: localhost
  run_once: true
  register: chosen

- name: Restore it straight from S3 over TLS, decrypting it, without building the indexes
  bigchaindb.rethinkdb.restore:
    repository: s3://backups/rethinkdb
    cluster: rethinkdb
    s3_endpoint_url: https://s3.example.net
    s3_region: eu-west-1
    s3_credentials_file: /etc/rethinkdb/s3-credentials
    s3_profile: backups
    s3_ca_bundle: /etc/ssl/certs/example-ca.pem
    set_id: "{{ chosen.set.set_id }}"
    part: "{{ chosen.manifest.parts[0] }}"
    identity_file: /run/rethinkdb-restore/identity.txt
    create_indexes: false
    clients: 6
    hard_durability: true
    login_host: db1.example.org
    login_port: 28015
    login_user: admin
    login_password: "{{ lookup('ansible.builtin.file', '/etc/rethinkdb/admin-password') }}"
    tls_ca_file: /etc/rethinkdb/ca.pem
    connect_timeout: 10
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
tables:
  description: The restored tables (in check mode, the tables that would be restored) by C(database.table) name.
  returned: always
  type: dict
  contains:
    documents:
      description: Documents of the table in the archive.
      type: int
    documents_after:
      description: Documents in the table after the restore; null in check mode.
      type: int
    existed:
      description: Whether the table existed before the restore (only possible with O(force=true)).
      type: bool
  sample:
    bigchain.votes: {documents: 3000, documents_after: 3000, existed: false}
documents:
  description: Documents in the archive over the restored tables.
  returned: always
  type: int
  sample: 4200
seconds:
  description: Seconds the restore took, from the start of the loading until the counts were checked.
  returned: success, not in check mode
  type: float
  sample: 12.5
summary:
  description: The tool's summary line, or the same line for a native restore.
  returned: success, not in check mode
  type: str
  sample: 4200 rows imported to 2 tables in 11.92 secs
steps:
  description: Seconds of each step of a native restore, creating the tables, loading the documents (and starting the indexes), waiting for the indexes.
  returned: success with O(engine=native), not in check mode
  type: dict
  sample: {prepare: 0.4, load: 30.2, indexes: 12.1}
engine:
  description: The engine that loaded the archive.
  returned: always
  type: str
  sample: native
compression:
  description: The archive's compression, V(gzip) or V(zstd).
  returned: always
  type: str
  sample: gzip
sha256:
  description: The archive's sha256, in hex.
  returned: always
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
cmd:
  description: The tool's argv. A password reaches the tool through a temporary file, whose path is shown.
  returned: when the tool ran
  type: list
  elements: str
  sample: [/usr/bin/python3, -m, rethinkdb, restore, /var/backups/rethinkdb/bigchain.tar.gz, --host-name, localhost]
rc:
  description: The tool's exit status.
  returned: when the tool failed
  type: int
  sample: 1
stdout:
  description: The tool's output, progress bars reduced to their last state.
  returned: when the tool failed
  type: str
  sample: "[========================================] 100%\n3000 rows imported to 1 table\n"
stderr:
  description: The tool's error output, without Python tracebacks.
  returned: when the tool failed
  type: str
  sample: "Error: Could not connect to localhost:28015"
'''

import contextlib
import os
import re
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import encryption
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import GZIP, DumpArchiveError, prove_dump
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.encryption import PYRAGE_IMPORT_ERROR, EncryptionError, decrypting
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import CHUNK_BYTES, free_bytes
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import (
    MissingLibraryError, RepositoryError, part_source, repository_argument_spec)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import HashingReader, StreamError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.native_cluster import NativeError, module_connector
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.native_restore import load_dump
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.driver_tools import (
    RESTORE_SUMMARY,
    ToolFailure,
    check_password,
    make_scratch_dir,
    os_failure,
    parse_selector,
    password_file,
    run_tool,
    scratch_dirs,
    tool_argv,
    writable_directory,
)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import (
    close,
    query_failure,
    LOGIN_MUTUALLY_EXCLUSIVE,
    NotReadyError,
    ReqlError,
    connect,
    endpoint,
    error_text,
    login_password,
    rethinkdb_common_argument_spec,
    split_table_name,
    system_rows,
    wait_ready,
)

SHA256_PATTERN = re.compile(r'^[0-9A-Fa-f]{64}$')
OUT_OF_SPACE_ADVICE = 'free some space there, or set temp_dir to a directory with more room'
READY_TIMEOUT = 120


def check_options(module) -> str:
    """Fail on options that cannot work, before reading the archive; return the directory to unpack in."""
    params = module.params
    if not params['archive'] and not (params['repository'] and params['cluster'] and params['set_id'] and params['part']):
        module.fail_json(msg='Give archive (a file on this host), or repository, cluster, set_id and part (a part of a backup set).')
    if params['archive'] and not os.path.isfile(params['archive']):
        module.fail_json(msg='Archive %s does not exist or is not a file.' % params['archive'])
    if params['part'] is not None and not isinstance(params['part'].get('path'), str):
        module.fail_json(msg='part needs path (and sha256), as the set\'s manifest records them.')
    params['sha256'] = params['sha256'] or (params['part'] or {}).get('sha256')
    if params['sha256'] and not SHA256_PATTERN.match(params['sha256']):
        module.fail_json(msg='sha256 %r is not a sha256 in hex (64 characters).' % params['sha256'])
    for selector in params['tables'] or ():
        try:
            parse_selector(selector)
        except ValueError as exc:
            module.fail_json(msg='tables: %s.' % exc)
    if params['tables'] == []:
        module.fail_json(msg='tables is empty: name the tables to restore, or leave it unset to restore them all.')
    if params['clients'] < 1:
        module.fail_json(msg='clients must be at least 1, got %d.' % params['clients'])
    unpack_parent = params['temp_dir'] or tempfile.gettempdir()
    problem = writable_directory(unpack_parent)
    if problem:
        module.fail_json(msg='temp_dir %s %s.' % (unpack_parent, problem))
    try:
        check_password(login_password(module))
    except ValueError as exc:
        module.fail_json(msg='Cannot restore: %s.' % exc)
    return unpack_parent


def chosen_tables(module, archive) -> list:
    """The archive's tables to restore ('db.table' names), or fail naming what the archive lacks."""
    selectors = module.params['tables']
    if not selectors:
        return list(archive.tables)
    known = ', '.join(archive.tables)
    chosen: dict = {}
    for selector in selectors:
        db, table = parse_selector(selector)
        names = [name for name in archive.tables if name == selector or (table is None and name.partition('.')[0] == db)]
        if not names:
            module.fail_json(msg='%s %s is not in the archive %s (tables: %s).'
                             % ('Table' if table else 'Database', selector, archive.path, known))
        chosen.update((name, True) for name in names)
    return list(chosen)


def check_free_space(module, archive, names: list, unpack_parent: str) -> None:
    """Fail unless the unpack directory has room for the chosen tables, uncompressed."""
    needed = sum(archive.tables[name].raw_bytes for name in names)
    free = free_bytes(unpack_parent)
    if free < needed:
        module.fail_json(msg='Not enough space in %s to unpack the archive: it needs %d bytes, %d are free; %s.'
                         % (unpack_parent, needed, free, OUT_OF_SPACE_ADVICE))


def existing_tables(module, r, connection, archive, names: list) -> dict:
    """The chosen tables that exist on the cluster, with their primary keys; fail where restoring cannot go on."""
    try:
        configs = system_rows(r, connection, 'table_config')
    except ReqlError as exc:
        module.fail_json(msg=query_failure(module, 'Reading the tables of the cluster', exc))
    keys = dict(('%s.%s' % (row['db'], row['name']), row['primary_key']) for row in configs)
    existing = dict((name, keys[name]) for name in names if name in keys)
    if existing and not module.params['force']:
        pronoun = 'it' if len(existing) == 1 else 'them'
        missing = [name for name in names if name not in existing]
        module.fail_json(msg='%s already exist%s on the cluster at %s: set force: true to restore into %s (documents with the same '
                             'primary key are replaced), drop %s first%s.'
                             % (', '.join(existing), 's' if len(existing) == 1 else '', endpoint(module), pronoun, pronoun,
                                ', or restore only the missing table%s with tables: %s' % ('' if len(missing) == 1 else 's', ', '.join(missing))
                                if missing else ''))
    for name, primary_key in existing.items():
        if primary_key != archive.tables[name].primary_key:
            module.fail_json(msg="%s exists on the cluster at %s with primary key %s, but the archive's is %s: drop the table to restore it."
                             % (name, endpoint(module), primary_key, archive.tables[name].primary_key))
    return existing


def created_tables(r, connection, existing: dict, names: list) -> list:
    """Which of the chosen tables exist now that did not before, after a failed restore; [] when the cluster
    cannot tell, so that the restore's own failure is what the task reports."""
    try:
        configs = system_rows(r, connection, 'table_config')
    except ReqlError:
        return []
    present = set('%s.%s' % (row['db'], row['name']) for row in configs)
    return [name for name in names if name in present and name not in existing]


def count_restored(module, names: list, restorer: str = 'rethinkdb restore') -> dict:
    """Documents in each restored table once it is ready for reads."""
    r, connection = connect(module)
    try:
        tables = [split_table_name(name) for name in names]
        wait_ready(r, connection, tables, 'ready_for_reads', READY_TIMEOUT)
        return dict((name, r.db(db).table(table).count().run(connection)) for name, (db, table) in zip(names, tables))
    except (ReqlError, NotReadyError) as exc:
        raise ToolFailure('%s finished, but the restored tables cannot be counted on the cluster at %s: %s.'
                          % (restorer, endpoint(module), error_text(exc)))
    finally:
        close(connection)


def count_problems(plan: dict) -> list:
    """A sentence for each table whose count after the restore does not fit the archive's."""
    problems = []
    for name, table in plan.items():
        after, expected = table['documents_after'], table['documents']
        if (after < expected) if table['existed'] else (after != expected):
            problems.append('%s has %d documents after the restore, the archive holds %d' % (name, after, expected))
    return problems


def native_restore(module, source: Source, archive, plan: dict, existing: dict) -> dict:
    """Load the archive with the native engine, then count every restored table on a new connection.
    Raises ToolFailure."""
    params = module.params
    started = time.monotonic()
    names = list(plan)
    r, connector = module_connector(module)
    try:
        with source.plain() as stream:
            loaded = load_dump(r, connector, stream, archive, names, existing, params['create_indexes'], params['clients'],
                               'hard' if params['hard_durability'] else 'soft')
    except NativeError as exc:
        raise ToolFailure(str(exc), loaded=True)
    except (OSError, RepositoryError, StreamError, DumpArchiveError) as exc:
        raise ToolFailure('Cannot read archive %s again: %s.' % (source.label, getattr(exc, 'strerror', None) or exc), loaded=True)
    for name, documents in count_restored(module, names, 'the native restore').items():
        plan[name]['documents_after'] = documents
    problems = count_problems(plan)
    if problems:
        raise ToolFailure('The restore did not load the archive fully: %s.' % '; '.join(problems), tables=plan)
    seconds = round(time.monotonic() - started, 3)
    documents = sum(table['documents'] for table in plan.values())
    return dict(
        tables=plan,
        documents=documents,
        seconds=seconds,
        steps=loaded['seconds'],
        summary='%d row%s imported to %d table%s in %.2f secs' % (documents, '' if documents == 1 else 's', len(plan),
                                                                  '' if len(plan) == 1 else 's', seconds),
        sha256=archive.sha256,
        engine='native',
        compression=archive.compression,
    )


def run_restore(module, scratch: list, source: Source, archive, plan: dict, unpack_parent: str) -> dict:
    """Run the tool, then count every restored table on a new connection. Raises ToolFailure; the caller
    removes the directories this function adds to scratch."""
    params = module.params
    started = time.monotonic()
    try:
        scratch.append(make_scratch_dir(unpack_parent, 'rethinkdb-restore-'))
    except OSError as exc:
        raise os_failure('create a temporary directory in %s' % unpack_parent, exc, OUT_OF_SPACE_ADVICE)
    names = list(plan)
    archive_path = params['archive']
    if source.identities or not archive_path:
        try:
            archive_path = source.materialize(scratch[0])
        except (OSError, RepositoryError, StreamError, DumpArchiveError) as exc:
            raise ToolFailure('Cannot copy archive %s to %s: %s.' % (source.label, scratch[0], getattr(exc, 'strerror', None) or exc))
    with password_file(login_password(module), module.tmpdir) as password_path:
        argv = tool_argv('restore', dict(params, temp_dir=scratch[0], tables=names if params['tables'] else [], password_file=password_path),
                         positional=(archive_path,))
        run = run_tool(module, argv)
    run.check('restore', 'unpacking in %s' % unpack_parent, OUT_OF_SPACE_ADVICE, endpoint(module))
    for name, documents in count_restored(module, names).items():
        plan[name]['documents_after'] = documents
    problems = count_problems(plan)
    if problems:
        raise ToolFailure('The restore did not load the archive fully: %s.' % '; '.join(problems), tables=plan, cmd=argv)
    return dict(
        tables=plan,
        documents=sum(table['documents'] for table in plan.values()),
        seconds=round(time.monotonic() - started, 3),
        summary=run.summary(RESTORE_SUMMARY),
        sha256=archive.sha256,
        engine='tool',
        compression=archive.compression,
        cmd=argv,
    )


class Source:
    """The archive to restore, as the engines read it: a file or a repository's part, decrypted where it is
    encrypted, its stored bytes hashed on the way (identities decrypt; None when it is not encrypted)."""

    def __init__(self, params: dict, identities: list | None):
        self.params = params
        self.identities = identities
        path = (params['part'] or {}).get('path')
        self.label = params['archive'] or '%s part %s of set %s' % (params['repository'], path, params['set_id'])

    @contextlib.contextmanager
    def plain(self):
        """A read of the whole archive, front to back; on leaving, the stored bytes' sha256 is checked
        (DumpArchiveError) where the engine could not check it itself, through the decryption."""
        raw = part_source(self.params, (self.params['part'] or {}).get('path'))
        stored = HashingReader(raw)
        decrypted = decrypting(stored, self.identities) if self.identities else None
        try:
            yield decrypted or stored
            if decrypted is not None:
                decrypted.read()
                stored.drain()
                if self.params['sha256'] and stored.hexdigest() != self.params['sha256'].lower():
                    raise DumpArchiveError('Archive %s has sha256 %s, expected %s: it is not the archive that was recorded, or it was '
                                           'damaged' % (self.label, stored.hexdigest(), self.params['sha256'].lower()))
        finally:
            if decrypted is not None:
                decrypted.close()
            raw.close()

    def plain_sha256(self) -> str | None:
        """The sha256 the engine checks on what it reads: the stored bytes', unless it reads them decrypted."""
        return None if self.identities else self.params['sha256']

    def prove(self):
        """One pass that proves the archive usable (DumpArchiveError otherwise)."""
        with self.plain() as stream:
            return prove_dump(stream, self.label, self.plain_sha256())

    def materialize(self, directory: str) -> str:
        """The archive as a plain file in directory (for the tool), its sha256 checked on the way."""
        path = os.path.join(directory, 'rethinkdb_dump.tar.gz')
        with self.plain() as stream, open(path, 'xb') as copy:
            checked = HashingReader(stream)
            for chunk in iter(lambda: checked.read(CHUNK_BYTES), b''):
                copy.write(chunk)
            if self.plain_sha256() and checked.hexdigest() != self.plain_sha256().lower():
                raise DumpArchiveError('Archive %s has sha256 %s, expected %s: it is not the archive that was recorded, or it was damaged'
                                       % (self.label, checked.hexdigest(), self.plain_sha256().lower()))
        return path


def read_identities(module) -> list | None:
    """The identities that decrypt the part, checked against its recipients; None for a part not encrypted."""
    params = module.params
    recipients = ((params['part'] or {}).get('encryption') or {}).get('recipients')
    if not recipients:
        return None
    if PYRAGE_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib('pyrage'), exception=PYRAGE_IMPORT_ERROR)
    if not params['identity_file']:
        module.fail_json(msg='The archive is encrypted to %s: give identity_file, the age identity of one of them.' % ', '.join(recipients))
    try:
        identities = encryption.read_identities(params['identity_file'])
        encryption.check_identities(identities, recipients, 'The archive')
    except EncryptionError as exc:
        module.fail_json(msg='%s.' % str(exc).rstrip('.'))
    return identities


def main():
    argument_spec = rethinkdb_common_argument_spec()
    argument_spec.update(repository_argument_spec())
    argument_spec.update(
        archive=dict(type='path'),
        sha256=dict(type='str'),
        set_id=dict(type='str'),
        part=dict(type='dict'),
        identity_file=dict(type='path'),
        tables=dict(type='list', elements='str'),
        force=dict(type='bool', default=False),
        create_indexes=dict(type='bool', default=True),
        engine=dict(type='str', choices=['native', 'tool'], default='native'),
        clients=dict(type='int', default=3),
        hard_durability=dict(type='bool', default=False),
        temp_dir=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=LOGIN_MUTUALLY_EXCLUSIVE + [('archive', 'repository')],
                           required_by={'repository': ('cluster', 'set_id', 'part')}, supports_check_mode=True)
    if module.params['archive']:
        module.params['archive'] = os.path.abspath(module.params['archive'])
    unpack_parent = check_options(module)
    source = Source(module.params, read_identities(module))
    try:
        archive = source.prove()
    except DumpArchiveError as exc:
        module.fail_json(msg='%s.' % str(exc).rstrip('.'))
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.import_traceback)
    except (RepositoryError, StreamError) as exc:
        module.fail_json(msg='Cannot read archive %s: %s.' % (source.label, str(exc).rstrip('.')))
    names = chosen_tables(module, archive)
    engine = module.params['engine']
    if engine == 'tool':
        if archive.compression != GZIP:
            module.fail_json(msg='Archive %s is compressed with %s, which rethinkdb restore cannot read: use engine: native.'
                             % (archive.path, archive.compression))
        check_free_space(module, archive, names, unpack_parent)
    r, connection = connect(module)
    try:
        existing = existing_tables(module, r, connection, archive, names)
        plan = dict((name, dict(documents=archive.tables[name].documents, documents_after=None, existed=name in existing)) for name in names)
        if module.check_mode:
            module.exit_json(changed=True, tables=plan, documents=sum(table['documents'] for table in plan.values()), sha256=archive.sha256,
                             engine=engine, compression=archive.compression)
        with scratch_dirs(module) as scratch:
            try:
                if engine == 'native':
                    outcome = native_restore(module, source, archive, plan, existing)
                else:
                    outcome = run_restore(module, scratch, source, archive, plan, unpack_parent)
            except ToolFailure as exc:
                outcome = exc
                created = created_tables(r, connection, existing, names) if ('rc' in exc.details or 'loaded' in exc.details) else []
                if created:
                    outcome = ToolFailure('%s Tables it created: %s; drop them, or restore again with force: true.' % (exc, ', '.join(created)),
                                          **exc.details)
                elif 'loaded' in exc.details and existing:
                    outcome = ToolFailure('%s Restore again with force: true.' % exc, **exc.details)
    finally:
        close(connection)
    if isinstance(outcome, ToolFailure):
        details = dict((key, value) for key, value in outcome.details.items() if key != 'loaded')
        module.fail_json(msg=str(outcome), changed='cmd' in details or 'loaded' in outcome.details, engine=engine, **details)
    module.exit_json(changed=True, **outcome)


if __name__ == '__main__':
    main()
