# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of a chain: the dump set it continues. Choosing it, reading the documents it holds, taking one; and the
chain a writer continues on it, with the index of what that chain holds.

A chain must know exactly which documents its base holds (a catch-up fetches every other one), so the base's
archive is read once, document by document, for their primary keys. Only dump sets that are complete, not
encrypted and hold every followed table can be bases. When there is none, the follower takes one the way the
dump method does: `rethinkdb dump` (the driver's tool), committed as an ordinary dump set.
"""

from __future__ import annotations

import gzip
import os
import socket
import tarfile
import tempfile
from typing import Iterator

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import set_catalog
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_format import (
    CHAIN_RECORD, INSERT, document_digest, key_text, new_chain_id, sha256_hex)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_index import HeldIndex
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_store import ChainError, ChainStore, Head, list_chains
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.driver_tools import ToolFailure, check_password, password_file, run_tool, tool_argv
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import DumpArchiveError, read_documents, read_dump_archive
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import Repository
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import (
    MANIFEST, build_manifest, dump_part_path, format_time, manifest_bytes, manifest_tables, new_set_id, topology_record, utc_now)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import CHUNK_BYTES, HashingReader


def usable_base(entry: dict, tables: list) -> bool:
    """Whether a listed set can be the base of a chain of these tables."""
    return (entry['method'] == 'dump' and entry['complete'] and not entry['future'] and not entry['encrypted']
            and set(tables) <= set(entry['tables']))


def choose_base(repository: Repository, cluster: str, tables: list, set_id: str | None = None) -> tuple[dict, dict]:
    """(listing entry, manifest) of the newest usable base set (or of set_id); ChainError when there is none."""
    entries = set_catalog.newest_first(set_catalog.list_sets(repository, cluster))
    candidates = [entry for entry in entries if usable_base(entry, tables) and set_id in (None, entry['set_id'])]
    if not candidates:
        named = 'set %s' % set_id if set_id else 'no complete dump set'
        raise ChainError('%s in %s can be the base of a chain of %s (a complete, unencrypted dump set holding every table): '
                         'take a dump backup first' % (named if set_id else named.capitalize(), repository.describe(), ', '.join(tables)))
    manifest, problems = set_catalog.read_manifest(repository, cluster, candidates[0]['set_id'])
    if problems:
        raise ChainError('base set %s: %s' % (candidates[0]['set_id'], '; '.join(problems)))
    return candidates[0], manifest


def base_record(repository: Repository, cluster: str, manifest: dict, tables: list) -> tuple[dict, list]:
    """What chain.json says of its base (set id, when it finished, its manifest's sha256, its counts), and the
    followed tables with their primary keys, from the base's manifest."""
    by_name = dict(('%s.%s' % (table['db'], table['name']), table) for table in manifest['tables'])
    content = repository.read_file(cluster, manifest['set_id'], MANIFEST)
    base = dict(set_id=manifest['set_id'], finished_at=manifest['finished_at'], manifest_sha256=sha256_hex(content),
                documents=dict((name, by_name[name]['documents']) for name in tables))
    followed = [dict(db=by_name[name]['db'], name=by_name[name]['name'], primary_key=by_name[name]['primary_key']) for name in tables]
    return base, followed


def _unpacked(stream, compression: str):
    if compression == 'zstd':
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    return gzip.GzipFile(fileobj=stream, mode='rb')


def archive_documents(stream, compression: str, tables: list, sha256: str | None = None, label: str = 'the base archive') -> Iterator[tuple]:
    """(table, primary key, document) of every document of the chain's tables in a dump archive (a forward-only
    stream), one at a time; ChainError when the archive's sha256 (checked at the end) is not the recorded one."""
    keys = dict(('%s.%s' % (table['db'], table['name']), table['primary_key']) for table in tables)
    hashing = HashingReader(stream)
    try:
        with _unpacked(hashing, compression) as unpacked:
            with tarfile.open(fileobj=unpacked, mode='r|', bufsize=CHUNK_BYTES) as archive:
                for member in archive:
                    parts = member.name.split('/')
                    if not member.isreg() or len(parts) != 3 or not parts[2].endswith('.json'):
                        continue
                    table = '%s.%s' % (parts[1], parts[2][:-len('.json')])
                    if table not in keys:
                        continue
                    for document in read_documents(archive.extractfile(member), '%s of %s' % (member.name, label)):
                        if keys[table] not in document:
                            raise ChainError('a document of %s in %s has no primary key %s' % (table, label, keys[table]))
                        yield table, document[keys[table]], document
            while unpacked.read(CHUNK_BYTES):
                continue
        hashing.drain()
    except DumpArchiveError as exc:
        raise ChainError(str(exc)) from None
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise ChainError('%s cannot be read: %s' % (label, exc)) from None
    if sha256 and hashing.hexdigest() != sha256:
        raise ChainError('%s has sha256 %s, but its set records %s' % (label, hashing.hexdigest(), sha256))


def base_documents(repository: Repository, cluster: str, manifest: dict, tables: list) -> Iterator[tuple]:
    """The documents of the chain's tables in its base set, read from the repository; counted against the
    manifest at the end."""
    parts = [part for part in manifest['parts'] if part['path'].startswith('dump/')]
    if len(parts) != 1:
        raise ChainError('base set %s has %d dump archives, not one' % (manifest['set_id'], len(parts)))
    part = parts[0]
    expected = dict(('%s.%s' % (table['db'], table['name']), table['documents']) for table in manifest['tables'])
    found = dict.fromkeys(('%s.%s' % (table['db'], table['name']) for table in tables), 0)
    stream = repository.open_part(cluster, manifest['set_id'], part['path'])
    try:
        for table, key, document in archive_documents(stream, part.get('compression', 'gzip'), tables, part['sha256'],
                                                      'the archive of base set %s' % manifest['set_id']):
            found[table] += 1
            yield table, key, document
    finally:
        stream.close()
    wrong = ['%s has %d documents, its manifest %d' % (name, count, expected[name]) for name, count in sorted(found.items()) if count != expected[name]]
    if wrong:
        raise ChainError('the archive of base set %s does not hold what its manifest says: %s' % (manifest['set_id'], '; '.join(wrong)))


# --- taking a base -------------------------------------------------------------------------------------------

def _run_dump(runner, login: dict, tables: list, archive_path: str, scratch: str) -> None:
    """`rethinkdb dump` of the tables into archive_path, the password in a file only its owner reads, through
    runner.run_command (an AnsibleModule, or the follower program's own runner)."""
    check_password(login.get('password') or '')
    with password_file(login.get('password') or '', scratch) as password_path:
        argv = tool_argv('dump', dict(login_host=login['host'], login_port=login['port'], login_user=login['user'], password_file=password_path,
                                      tls_ca_file=login.get('tls_ca_file'), file=archive_path, temp_dir=scratch, clients=2,
                                      read_outdated=False, tables=tables))
        run_tool(runner, argv).check('dump', 'writing to %s' % scratch, 'free some space in %s' % os.path.dirname(scratch),
                                     '%s:%s' % (login['host'], login['port']))


def take_base(repository: Repository, cluster: str, login: dict, tables: list, cluster_info: dict, scratch_parent: str,
              writer: str, runner) -> tuple[dict, dict]:
    """Take a dump of the tables and commit it as a dump set (begun, written, committed; marked failed when any
    step fails); returns (listing entry, manifest). cluster_info: the facts a manifest records (chain_source);
    runner: what runs the dump tool (run_command(argv, environ_update=...), as an AnsibleModule has)."""
    set_id = new_set_id('dump')
    started_at = format_time(utc_now())
    repository.begin(cluster, set_id, dict(writer=writer, host=socket.gethostname(), pid=os.getpid(), set_id=set_id, begun_at=started_at))
    try:
        with tempfile.TemporaryDirectory(prefix='.rethinkdb-follower-base-', dir=scratch_parent) as scratch:
            archive_path = os.path.join(scratch, 'rethinkdb_dump.tar.gz')
            _run_dump(runner, login, tables, archive_path, scratch)
            archive = read_dump_archive(archive_path, parse_documents=False)
            missing = sorted(set(tables) - set(archive.tables))
            if missing:
                raise ChainError('rethinkdb dump wrote no %s' % ', '.join(missing))
            with repository.part_writer(cluster, set_id, dump_part_path('gzip'), os.path.getsize(archive_path)) as part_writer:
                with open(archive_path, 'rb') as source:
                    for chunk in iter(lambda: source.read(CHUNK_BYTES), b''):
                        part_writer.stream.write(chunk)
                facts = part_writer.finish()
        part = dict(path=dump_part_path('gzip'), bytes=facts['bytes'], sha256=facts['sha256'], raw_bytes=archive.raw_bytes,
                    compression='gzip', store_checksum=facts['store_checksum'], host=socket.gethostname())
        counts = dict((name, table.documents) for name, table in archive.tables.items())
        manifest = build_manifest(set_id, cluster, dict(started_at=started_at, rethinkdb_version=cluster_info['version'],
                                                        tables=manifest_tables(cluster_info, tables, counts),
                                                        topology=topology_record(cluster_info)), [part])
        repository.commit(cluster, set_id, manifest_bytes(manifest))
    except (ChainError, DumpArchiveError, ToolFailure, OSError, ValueError) as exc:
        repository.mark_failed(cluster, set_id, 'the base a %s took: %s' % (writer, exc), format_time(utc_now()))
        raise ChainError('taking a base set failed: %s' % exc) from None
    return choose_base(repository, cluster, tables, set_id)


# --- a writer's chain and its index ---------------------------------------------------------------------------

def open_chain(store: ChainStore, base_entry: dict, manifest: dict, tables: list, writer_kind: str,
               chain_id: str | None = None) -> tuple[dict, bytes, Head]:
    """The chain a writer continues: chain_id, or else the newest whole chain of this kind of writer on this base
    and these tables; a new one on the base when there is none. Returns (record, its bytes, head)."""
    base, followed = base_record(store.repository, store.cluster, manifest, tables)
    if chain_id is None:
        for entry in list_chains(store):
            if (entry['base_set_id'], entry['writer'], entry['tables'], entry['state']) == (base_entry['set_id'], writer_kind, list(tables), 'complete'):
                chain_id = entry['chain_id']
                break
    if chain_id is None:
        chain, head = store.begin(base, followed, dict(kind=writer_kind, host=socket.gethostname()), new_chain_id())
        return chain, store.repository.read_chain_object(store.cluster, chain['chain_id'], CHAIN_RECORD), head
    chain, content = store.read_chain(chain_id)
    if chain['base']['set_id'] != base_entry['set_id'] or chain['tables'] != followed:
        raise ChainError('chain %s continues set %s with %s, not set %s with %s' % (
            chain_id, chain['base']['set_id'], ', '.join(entry['db'] + '.' + entry['name'] for entry in chain['tables']),
            base_entry['set_id'], ', '.join(tables)))
    return chain, content, store.head(chain_id, content, chain['tables'])


def sync_index(index: HeldIndex, store: ChainStore, chain: dict, chain_content: bytes, head: Head, manifest: dict) -> str:
    """Bring the index up to the chain's head: rebuilt (base archive, then every segment) when it is of another
    chain or knows segments the chain does not, else the segments it lacks taken in. Returns what was done."""
    meta = index.meta()
    seq = int(meta.get('seq', '0'))
    rebuild = (meta.get('chain_id') != chain['chain_id'] or meta.get('base_done') != '1' or seq > head.seq)
    if not rebuild and seq > 0:
        _record, content = store.read_segment_record(chain['chain_id'], seq)
        rebuild = sha256_hex(content) != meta.get('sha256')
    done = 'index up to date'
    if rebuild:
        index.reset(chain['chain_id'], chain['base']['set_id'], sha256_hex(chain_content))
        base_count = index.add_base(base_documents(store.repository, store.cluster, manifest, chain['tables']))
        seq = 0
        done = 'index rebuilt: %d documents of base set %s' % (base_count, chain['base']['set_id'])
    for number in range(seq + 1, head.seq + 1):
        record, content = store.read_segment_record(chain['chain_id'], number)
        inserted, gone, back = [], [], []
        for data in store.data_records(chain['chain_id'], record):
            text = key_text(data['key'])
            if data['op'] == INSERT:
                inserted.append((data['table'], text, document_digest(data['doc'])))
            elif data['op'] in ('delete', 'missing'):
                gone.append((data['table'], text))
            elif data['op'] == 'reinsert':
                back.append((data['table'], text))
        index.absorb(number, sha256_hex(content), inserted, gone, back)
    if head.seq > seq:
        done += '; segments %d to %d taken in' % (seq + 1, head.seq)
    return done
