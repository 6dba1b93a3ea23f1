#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: dump
short_description: Dump RethinkDB tables into an archive that rethinkdb restore reads
version_added: 0.1.0
description:
  - Dumps the chosen tables (BigchainDB's C(bigchain) and C(votes) by default) into the archive O(dest), in the
    layout of C(rethinkdb dump), the tool of the RethinkDB Python driver, a tar of
    C(<top>/<db>/<table>.json) (the documents) and C(<top>/<db>/<table>.info) (primary key, secondary indexes
    with their functions, write hook). Checks first that every table exists.
  - With O(engine=native) (the default), the module reads each table itself, in parallel ranges of its
    primary key from the servers holding them, and writes the archive as one stream, compressed on other
    cores; gzip archives are read by C(rethinkdb restore) as its own. It returns each table's document count,
    primary key and index names, and the archive's size and sha256, all counted while writing. See the
    collection's docs/native-engine.md.
  - With O(engine=tool), runs C(rethinkdb dump) and reads its archive back in one pass, following the file as
    the tool writes it, and fails unless it holds exactly the chosen tables, each with its data and its
    description; the counts and names returned are those found in the archive.
  - The archive is written to a temporary name beside O(dest), in a hidden C(.<name>.*.partial) directory,
    and renamed to O(dest) only once it is complete and flushed to disk. O(dest) never holds a partial dump,
    and a failed run removes every partial file.
  - A dump holds documents, primary keys, secondary indexes and write hooks, but not the cluster's
    configuration (shards, replicas, primary replicas, server tags). The C(backup) role stores that
    configuration beside the dump.
  - Runs on any host that has the driver and can reach a server of the cluster, a node or the controller.
extends_documentation_fragment:
  - bigchaindb.rethinkdb.login
  - bigchaindb.rethinkdb.repository
options:
  tables:
    description:
      - The tables to dump, as C(database.table) names; a bare C(database) name dumps every table of that
        database.
      - A name that is not a table (or a database with tables) of the cluster is an error.
      - BigchainDB's C(backlog) table holds transactions not yet in a block and is left out by default.
    type: list
    elements: str
    default: [bigchain.bigchain, bigchain.votes]
  dest:
    description:
      - Path of the archive to write on this host, for example C(/var/backups/rethinkdb/bigchain.tar.gz).
      - Its directory must exist and be writable. The archive is written as C(<dest>.writing), renamed once
        complete and fsynced, and given to the owner of its directory (so that a login user can fetch what a
        module run with become wrote).
      - Give O(dest), or O(repository), O(cluster) and O(set_id).
    type: path
  set_id:
    description:
      - With O(repository), the backup set (begun by M(bigchaindb.rethinkdb.catalog)) to write the archive into,
        as its part C(dump/rethinkdb_dump.tar.gz) (C(.tar.zst) for zstd), streamed as it is produced.
    type: str
  recipients:
    description:
      - Encrypt the archive with age to these public keys (C(age1...)) while it streams; only the holders of
        the matching identities can restore it.
    type: list
    elements: str
    default: []
  force:
    description:
      - Replace O(dest) if it exists. Without it, an existing O(dest) is an error and is left alone.
    type: bool
    default: false
  engine:
    description:
      - V(native) reads the tables in parallel key ranges and writes the archive itself (needs the Python
        library orjson, and zstandard for O(compression=zstd)).
      - V(tool) runs the driver's C(rethinkdb dump), which reads each table in one query and compresses with
        gzip at level 9.
    type: str
    choices: [native, tool]
    default: native
  compression:
    description:
      - How a native dump is compressed. V(gzip) is the tools' format, which C(rethinkdb restore) reads.
        V(zstd) compresses faster and smaller, but only M(bigchaindb.rethinkdb.restore) with
        O(bigchaindb.rethinkdb.restore#module:engine=native) (or C(zstd -d)) reads it.
      - O(engine=tool) always writes gzip.
    type: str
    choices: [gzip, zstd]
    default: gzip
  compression_level:
    description:
      - The compression level of a native dump, 1 to 9 for gzip, 1 to 19 for zstd. Defaults to 4 for gzip,
        which takes a third of the time of the tool's 9 for an archive a few percent larger, and 3 for zstd.
    type: int
  clients:
    description:
      - How many ranges of a table the native engine reads at the same time (each on its own connection and
        thread), or how many tables the tool reads at the same time.
    type: int
    default: 3
  read_outdated:
    description:
      - Read with RethinkDB's C(outdated) read mode, which also works when a table has no primary replica
        available, but may miss the latest writes. The native engine then reads from any ready replica.
    type: bool
    default: false
  temp_dir:
    description:
      - With O(engine=tool), directory for the tool's uncompressed export, which needs room for the tables' JSON
        (several times the archive's size).
      - With O(engine=native), directory for each table's ranges, compressed, until the table is written to the
        archive, room for the compressed table being written, at most the archive's size.
      - The module makes a private directory inside it and removes it afterwards. Defaults to the directory of
        O(dest), or the system's temporary directory when writing into a repository.
    type: path
attributes:
  check_mode:
    support: full
    description: Checks the tables and O(dest) and reports what would be dumped; writes nothing.
  diff_mode:
    support: none
    description: A new archive has no meaningful before and after.
  idempotent:
    support: none
    description: >-
      Every run takes a new dump of the data as it is now and reports a change. An existing O(dest) is
      an error unless O(force=true).
notes:
  - Both engines read each table in primary-key order while writes may go on (the native engine each range of
    it with one query), so a dump is consistent per document, not a snapshot of one instant of a table, nor of
    several tables together. Stop the writers (BigchainDB) first when that matters.
  - A native read cut off by a lost connection, a failover or a reshard resumes after the last key it read,
    for about 30 seconds, through the login server when the server it read from does not come back; then the
    dump fails with one line naming the server.
  - O(connect_timeout) applies to the module's own connections; the tool itself waits up to the driver's
    default of 20 seconds to connect.
  - If the module is killed, C(<dest>.writing) and a hidden C(.rethinkdb-dump-*) directory in O(temp_dir) (or
    beside O(dest)) may stay; they hold nothing else and can be deleted. Written into a repository, the set
    stays partial and a prune removes it.
seealso:
  - module: bigchaindb.rethinkdb.restore
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Dump BigchainDB's blocks and votes
  bigchaindb.rethinkdb.dump:
    login_password_file: /etc/rethinkdb/admin-password
    dest: /var/backups/rethinkdb/bigchain.tar.gz
    force: true
  register: dumped

- name: Show what was dumped
  ansible.builtin.debug:
    msg: "{{ dumped.documents }} documents, {{ dumped.bytes }} bytes, sha256 {{ dumped.sha256 }}"

- name: Dump a whole database with zstd, for restores by this collection only
  bigchaindb.rethinkdb.dump:
    login_host: db1.example.org
    tables: [bigchain]
    dest: /srv/backups/bigchain-full.tar.zst
    compression: zstd

- name: Dump with the driver's own tool, staging its uncompressed export on a larger disk
  bigchaindb.rethinkdb.dump:
    engine: tool
    dest: /srv/backups/bigchain.tar.gz
    temp_dir: /srv/scratch
    read_outdated: true
    clients: 2

- name: Begin a dump set in S3
  bigchaindb.rethinkdb.catalog:
    repository: s3://backups/rethinkdb
    cluster: rethinkdb
    s3_credentials_file: /etc/rethinkdb/s3-credentials
    operation: begin
    method: dump
  delegate_to: localhost
  run_once: true
  register: begun

- name: Dump straight into the set, encrypted, from the controller over TLS
  bigchaindb.rethinkdb.dump:
    repository: s3://backups/rethinkdb
    cluster: rethinkdb
    s3_endpoint_url: https://s3.example.net
    s3_region: eu-west-1
    s3_credentials_file: /etc/rethinkdb/s3-credentials
    s3_profile: backups
    s3_ca_bundle: /etc/ssl/certs/example-ca.pem
    set_id: "{{ begun.set_id }}"
    recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]
    compression: zstd
    compression_level: 6
    login_host: db1.example.org
    login_port: 28015
    login_user: admin
    login_password: "{{ lookup('ansible.builtin.file', '/etc/rethinkdb/admin-password') }}"
    tls_ca_file: /etc/rethinkdb/ca.pem
    connect_timeout: 10
  delegate_to: localhost
  run_once: true
  register: dumped
'''

RETURN = r'''
dest:
  description: The archive's path, when written to O(dest).
  returned: when dest is given
  type: str
  sample: /var/backups/rethinkdb/bigchain.tar.gz
part:
  description: The archive as a backup set records its part (C(host) is the caller's to add).
  returned: success, not in check mode
  type: dict
  contains:
    path:
      description: The part's path in the set.
      type: str
    bytes:
      description: Its size as stored (compressed, and encrypted with O(recipients)).
      type: int
    sha256:
      description: The sha256 of the stored bytes, computed while they were written.
      type: str
    raw_bytes:
      description: The archive's unpacked size.
      type: int
    compression:
      description: C(gzip) or C(zstd).
      type: str
    encryption:
      description: Null, or C(format) C(age) and the C(recipients).
      type: dict
    store_checksum:
      description: The store's own checksum of the part (S3), or null.
      type: str
  sample: {"path": "dump/rethinkdb_dump.tar.gz", "bytes": 1048576, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
           "raw_bytes": 8388608, "compression": "gzip", "encryption": null, "store_checksum": null, "files": null, "server": null}
location:
  description: Where the archive was written (O(dest), or where the repository keeps the part).
  returned: success, not in check mode
  type: str
  sample: /var/backups/rethinkdb/bigchain.tar.gz
bytes:
  description: The archive's size in bytes, as stored.
  returned: success, not in check mode
  type: int
  sample: 1048576
sha256:
  description: The archive's sha256, in hex, as stored.
  returned: success, not in check mode
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
tables:
  description:
    - The dumped tables by C(database.table) name, as found in the archive.
    - In check mode, the tables that would be dumped, with their primary key and indexes from the cluster and
      no document count.
  returned: always
  type: dict
  contains:
    documents:
      description: Documents of the table in the archive.
      type: int
    primary_key:
      description: The table's primary key.
      type: str
    indexes:
      description: Names of the table's secondary indexes, sorted.
      type: list
      elements: str
  sample:
    bigchain.votes: {documents: 3000, primary_key: id, indexes: [block_and_voter]}
documents:
  description: Documents in the archive, over all tables.
  returned: success, not in check mode
  type: int
  sample: 4200
seconds:
  description: Seconds the dump took, from its start until the archive was in place.
  returned: success, not in check mode
  type: float
  sample: 9.33
summary:
  description: The tool's summary line, or the same line for a native dump.
  returned: success, not in check mode
  type: str
  sample: 4200 rows exported from 2 tables, with 3 secondary indexes, and 0 hook functions
engine:
  description: The engine that wrote the archive.
  returned: always
  type: str
  sample: native
compression:
  description: The archive's compression, V(gzip) or V(zstd).
  returned: success, not in check mode
  type: str
  sample: gzip
compression_level:
  description: The compression level of a native dump.
  returned: success with O(engine=native), not in check mode
  type: int
  sample: 4
cmd:
  description: The tool's argv. A password reaches the tool through a temporary file, whose path is shown.
  returned: when the tool ran
  type: list
  elements: str
  sample: [/usr/bin/python3, -m, rethinkdb, dump, --host-name, localhost, --driver-port, "28015", --user, admin]
rc:
  description: The tool's exit status.
  returned: when the tool failed
  type: int
  sample: 1
stdout:
  description: The tool's output, progress bars reduced to their last state.
  returned: when the tool failed
  type: str
  sample: "[========================================] 100%\n3000 rows exported from 1 table, with 0 secondary indexes, and 0 hook functions\n"
stderr:
  description: The tool's error output, without Python tracebacks.
  returned: when the tool failed
  type: str
  sample: "Error: Could not connect to localhost:28015"
'''

import concurrent.futures
import os
import tempfile
import threading
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.encryption import PYRAGE_IMPORT_ERROR, EncryptionError, encrypting
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import CHUNK_BYTES
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import (
    MissingLibraryError, RepositoryError, part_destination, repository_argument_spec)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import dump_part_path
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import StreamError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import (
    ZSTANDARD_IMPORT_ERROR,
    ZSTD,
    DumpArchiveError,
    read_dump_archive,
)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.native_cluster import NativeError, module_connector
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.native_dump import LEVELS, write_dump
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.driver_tools import (
    DUMP_SUMMARY,
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
    ReqlError,
    connect,
    endpoint,
    login_password,
    rethinkdb_common_argument_spec,
    system_rows,
)

DEFAULT_TABLES = ['bigchain.bigchain', 'bigchain.votes']
OUT_OF_SPACE_ADVICE = 'free some space there, or choose another dest or temp_dir'


def check_options(module) -> list:
    """Fail on options that cannot work, before connecting; return the table selectors without repeats."""
    params = module.params
    selectors = list(dict.fromkeys(params['tables']))
    if not selectors:
        module.fail_json(msg='tables is empty: name the tables (database.table) or databases to dump.')
    for selector in selectors:
        try:
            parse_selector(selector)
        except ValueError as exc:
            module.fail_json(msg='tables: %s.' % exc)
    if params['clients'] < 1:
        module.fail_json(msg='clients must be at least 1, got %d.' % params['clients'])
    if not params['dest'] and not (params['repository'] and params['cluster'] and params['set_id']):
        module.fail_json(msg='Give dest (a file on this host), or repository, cluster and set_id (a backup set begun there).')
    if params['recipients'] and PYRAGE_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib('pyrage'), exception=PYRAGE_IMPORT_ERROR)
    check_compression(module)
    dest = params['dest']
    if dest and os.path.isdir(dest):
        module.fail_json(msg='dest %s is a directory: give the path of the archive file to write.' % dest)
    if dest and os.path.lexists(dest) and not params['force']:
        module.fail_json(msg='dest %s already exists: set force: true to replace it, or choose another dest.' % dest)
    for option, directory in (('dest', os.path.dirname(dest or '')), ('temp_dir', params['temp_dir'])):
        problem = directory and writable_directory(directory)
        if problem:
            module.fail_json(msg='The directory %s of %s %s.' % (directory, option, problem))
    try:
        check_password(login_password(module))
    except ValueError as exc:
        module.fail_json(msg='Cannot dump: %s.' % exc)
    return selectors


def scratch_parent(module) -> str:
    """Where the module's private scratch directory goes: temp_dir, else beside dest, else the system's."""
    params = module.params
    return params['temp_dir'] or (os.path.dirname(params['dest']) if params['dest'] else tempfile.gettempdir())


def check_compression(module) -> None:
    """Fail on a compression the engine cannot write, or a level out of its range."""
    params = module.params
    if params['engine'] == 'tool':
        if params['compression'] != 'gzip' or params['compression_level'] is not None:
            module.fail_json(msg='engine: tool writes gzip at level 9 only: leave compression and compression_level unset, or use engine: native.')
        return
    if params['compression'] == ZSTD and ZSTANDARD_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib('zstandard'), exception=ZSTANDARD_IMPORT_ERROR)
    levels = LEVELS[params['compression']]
    if params['compression_level'] is not None and params['compression_level'] not in levels:
        module.fail_json(msg='compression_level must be %d to %d for %s, got %d.'
                         % (levels[0], levels[-1], params['compression'], params['compression_level']))


def chosen_tables(module, selectors: list, table_configs: list) -> dict:
    """The table_config rows of the chosen tables by 'db.table', or fail naming what does not exist."""
    by_name = dict(('%s.%s' % (row['db'], row['name']), row) for row in table_configs)
    known = ', '.join(sorted(by_name)) or 'none'
    chosen = {}
    for selector in selectors:
        db, table = parse_selector(selector)
        if table is None:
            names = [name for name in sorted(by_name) if by_name[name]['db'] == db]
            if not names:
                module.fail_json(msg='Database %s has no tables on the cluster at %s (tables: %s).' % (db, endpoint(module), known))
        elif selector in by_name:
            names = [selector]
        else:
            module.fail_json(msg='Table %s does not exist on the cluster at %s (tables: %s).' % (selector, endpoint(module), known))
        chosen.update((name, by_name[name]) for name in names)
    return chosen


def layout_problem(archived: dict, chosen: dict, selectors: list) -> str | None:
    """Why the archive's tables are not the ones asked for, or None. Tables created during the dump in a
    database dumped whole are expected."""
    missing = sorted(set(chosen) - set(archived))
    if missing:
        return 'it lacks %s' % ', '.join(missing)
    whole_databases = set(db for db, table in map(parse_selector, selectors) if table is None)
    extra = sorted(name for name in archived if name not in chosen and name.partition('.')[0] not in whole_databases)
    if extra:
        return 'it holds tables that were not asked for: %s' % ', '.join(extra)
    return None


def add_scratch_dir(module, scratch: list) -> None:
    """Create the dump's scratch directory and add it to scratch; raises ToolFailure."""
    try:
        scratch.append(make_scratch_dir(scratch_parent(module), '.rethinkdb-dump-'))
    except OSError as exc:
        raise os_failure('create a temporary directory for the dump', exc, OUT_OF_SPACE_ADVICE)


def take_dump(module, scratch: list, selectors: list, chosen: dict) -> dict:
    """Run the tool into a scratch directory, check its archive, and stream it to its destination.

    Raises ToolFailure; the caller removes the directories this function adds to scratch, whatever happens.
    """
    params = module.params
    started = time.monotonic()
    add_scratch_dir(module, scratch)
    partial = os.path.join(scratch[0], 'rethinkdb_dump.tar.gz')
    tool_done = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as helpers:
        # The archive is read back while the tool writes it, so checking it adds little time of its own.
        read_back = helpers.submit(read_dump_archive, partial, parse_documents=False, writer_done=tool_done)
        try:
            with password_file(login_password(module), module.tmpdir) as password_path:
                argv = tool_argv('dump', dict(params, file=partial, temp_dir=scratch[0], tables=selectors, password_file=password_path))
                run = run_tool(module, argv)
        finally:
            tool_done.set()
        run.check('dump', 'writing to %s' % scratch_parent(module), OUT_OF_SPACE_ADVICE, endpoint(module))
        try:
            archive = read_back.result()
        except DumpArchiveError as exc:
            raise ToolFailure('rethinkdb dump wrote an archive that does not check out: %s.' % exc, cmd=argv)
    problem = layout_problem(archive.tables, chosen, selectors)
    if problem:
        raise ToolFailure('rethinkdb dump wrote an archive that does not match the tables asked for: %s.' % problem, cmd=argv)
    tables = dict((name, table.facts()) for name, table in archive.tables.items())

    def copy(sink) -> None:
        with open(partial, 'rb') as stream:
            for chunk in iter(lambda: stream.read(CHUNK_BYTES), b''):
                sink.write(chunk)

    stored = write_part(module, copy, 'gzip', archive.raw_bytes)
    return dict(stored, tables=tables, documents=sum(table['documents'] for table in tables.values()),
                seconds=round(time.monotonic() - started, 3), summary=run.summary(DUMP_SUMMARY), engine='tool', cmd=argv)


def write_part(module, produce, compression: str, raw_bytes: int) -> dict:
    """Write the archive that produce(sink) writes into its destination (dest, or the set in the repository),
    through age encryption with recipients; return the part and the result keys that describe it."""
    params = module.params
    path = dump_part_path(compression)
    try:
        with part_destination(params, path) as writer:
            encryptor = encrypting(writer.stream, params['recipients']) if params['recipients'] else None
            try:
                produce(encryptor or writer.stream)
                if encryptor is not None:
                    encryptor.close()
            except BaseException:
                if encryptor is not None:
                    encryptor.abort()
                raise
            stored = writer.finish()
    except OSError as exc:
        raise os_failure('write the archive', exc, OUT_OF_SPACE_ADVICE)
    part = dict(path=path, bytes=stored['bytes'], sha256=stored['sha256'], raw_bytes=raw_bytes, compression=compression,
                encryption=dict(format='age', recipients=sorted(params['recipients'])) if params['recipients'] else None,
                store_checksum=stored['store_checksum'], files=None, server=None)
    result = dict(part=part, location=writer.location, bytes=stored['bytes'], sha256=stored['sha256'], compression=compression)
    if params['dest']:
        result['dest'] = params['dest']
    return result


def native_summary(tables: dict, hooks: int) -> str:
    """The tool's summary line, for a native dump."""
    indexes = sum(len(table['indexes']) for table in tables.values())
    documents = sum(table['documents'] for table in tables.values())
    return '%d row%s exported from %d table%s, with %d secondary ind%s, and %d hook function%s' % (
        documents, '' if documents == 1 else 's', len(tables), '' if len(tables) == 1 else 's',
        indexes, 'ex' if indexes == 1 else 'exes', hooks, '' if hooks == 1 else 's')


def take_native_dump(module, scratch: list, chosen: dict) -> dict:
    """Write the archive with the native engine straight into its destination, its ranges spooled in a
    scratch directory. Raises ToolFailure; the caller removes the directories this function adds to scratch."""
    params = module.params
    started = time.monotonic()
    add_scratch_dir(module, scratch)
    r, connector = module_connector(module)
    written = {}

    def produce(sink) -> None:
        written.update(write_dump(r, connector, list(chosen), sink, params['compression'], params['compression_level'],
                                  params['clients'], 'outdated' if params['read_outdated'] else 'single', scratch[0]))

    try:
        stored = write_part(module, produce, params['compression'], 0)
    except NativeError as exc:
        raise ToolFailure(str(exc))
    stored['part']['raw_bytes'] = written['raw_bytes']
    tables = dict((name, dict((key, table[key]) for key in ('documents', 'primary_key', 'indexes'))) for name, table in written['tables'].items())
    hooks = sum(1 for table in written['tables'].values() if table['write_hook'])
    return dict(stored, tables=tables, documents=written['documents'], seconds=round(time.monotonic() - started, 3),
                summary=native_summary(tables, hooks), engine='native', compression_level=written['level'])


def main():
    argument_spec = rethinkdb_common_argument_spec()
    argument_spec.update(repository_argument_spec())
    argument_spec.update(
        tables=dict(type='list', elements='str', default=DEFAULT_TABLES),
        dest=dict(type='path'),
        set_id=dict(type='str'),
        recipients=dict(type='list', elements='str', default=[], no_log=False),
        force=dict(type='bool', default=False),
        engine=dict(type='str', choices=['native', 'tool'], default='native'),
        compression=dict(type='str', choices=['gzip', 'zstd'], default='gzip'),
        compression_level=dict(type='int'),
        clients=dict(type='int', default=3),
        read_outdated=dict(type='bool', default=False),
        temp_dir=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=LOGIN_MUTUALLY_EXCLUSIVE + [('dest', 'repository')],
                           required_by={'repository': ('cluster', 'set_id')}, supports_check_mode=True)
    if module.params['dest']:
        module.params['dest'] = os.path.abspath(module.params['dest'])
    selectors = check_options(module)
    r, connection = connect(module)
    try:
        chosen = chosen_tables(module, selectors, system_rows(r, connection, 'table_config'))
    except ReqlError as exc:
        module.fail_json(msg=query_failure(module, 'Reading the tables of the cluster', exc))
    finally:
        close(connection)
    if module.check_mode:
        planned = dict((name, dict(primary_key=row['primary_key'], indexes=sorted(row.get('indexes', [])))) for name, row in chosen.items())
        module.exit_json(changed=True, tables=planned, engine=module.params['engine'],
                         **(dict(dest=module.params['dest']) if module.params['dest'] else {}))
    with scratch_dirs(module) as scratch:
        try:
            if module.params['engine'] == 'native':
                outcome = take_native_dump(module, scratch, chosen)
            else:
                outcome = take_dump(module, scratch, selectors, chosen)
        except ToolFailure as exc:
            outcome = exc
        except MissingLibraryError as exc:
            module.fail_json(msg=missing_required_lib(exc.library), exception=exc.import_traceback)
        except (RepositoryError, EncryptionError, StreamError) as exc:
            outcome = ToolFailure('Cannot write the archive: %s.' % str(exc).rstrip('.'))
    if isinstance(outcome, ToolFailure):
        module.fail_json(msg=str(outcome), engine=module.params['engine'], **outcome.details)
    module.exit_json(changed=True, **outcome)


if __name__ == '__main__':
    main()
