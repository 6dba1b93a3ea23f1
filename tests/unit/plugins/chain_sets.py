"""Chains for the unit tests, made the way the follower makes them: a dump set whose archive has the layout
`rethinkdb dump` writes, committed in a repository of any kind, and chains written on it by a ChainWriter."""

from __future__ import annotations

import datetime
import gzip
import io
import json
import tarfile

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import set_format
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_base import choose_base, open_chain
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_index import HeldIndex
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_store import ChainStore, ChainWriter
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.backup_sets import CLUSTER, TABLE_NAMES, cluster_info

WRITER = {'kind': 'follower', 'host': 'db1'}


def dump_archive(documents: dict) -> bytes:
    """A tar.gz as rethinkdb dump writes it: <top>/<db>/<table>.info and .json (a JSON array, one document a line)."""
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode='wb', mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode='w|') as archive:
            for name, rows in sorted(documents.items()):
                db, table = name.split('.')
                info = json.dumps({'db': {'name': db}, 'name': table, 'primary_key': 'id', 'indexes': []}).encode()
                data = ('[\n' + ',\n'.join(json.dumps(row) for row in rows) + '\n]\n').encode() if rows else b'[]\n'
                for suffix, content in (('.info', info), ('.json', data)):
                    member = tarfile.TarInfo('rethinkdb_dump_2026_11_24/%s/%s%s' % (db, table, suffix))
                    member.size = len(content)
                    archive.addfile(member, io.BytesIO(content))
    return packed.getvalue()


def make_base(repository, documents: dict, at: datetime.datetime | None = None, cluster: str = CLUSTER) -> str:
    """Commit a dump set holding these documents (by database.table); returns its id."""
    moment = at or datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)
    set_id = set_format.new_set_id('dump', moment)
    repository.begin(cluster, set_id, {'host': 'controller'})
    content = dump_archive(documents)
    with repository.part_writer(cluster, set_id, set_format.dump_part_path()) as writer:
        writer.stream.write(content)
        stored = writer.finish()
    part = dict(path=set_format.dump_part_path(), bytes=stored['bytes'], sha256=stored['sha256'], raw_bytes=len(content) * 4,
                compression='gzip', store_checksum=stored['store_checksum'], host='db1')
    info = cluster_info()
    counts = dict((name, len(documents.get(name, []))) for name in TABLE_NAMES)
    fields = dict(started_at=set_format.format_time(moment), rethinkdb_version='2.4.4',
                  tables=set_format.manifest_tables(info, TABLE_NAMES, counts), topology=set_format.topology_record(info))
    manifest = set_format.build_manifest(set_id, cluster, fields, [part], now=moment + datetime.timedelta(seconds=5))
    repository.commit(cluster, set_id, set_format.manifest_bytes(manifest))
    return set_id


def votes(numbers) -> list:
    return [{'id': 'vote-%04d' % number, 'vote': {'n': number}} for number in numbers]


def blocks(numbers) -> list:
    return [{'id': 'block-%04d' % number, 'block': {'n': number}} for number in numbers]


def open_writer(repository, index_path, seal_documents: int = 100, kind: str = 'follower', base_set: str | None = None) -> ChainWriter:
    """A writer of the chain of this kind on the newest base (begun when there is none), its index synced."""
    from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_base import sync_index
    store = ChainStore(repository, CLUSTER)
    entry, manifest = choose_base(repository, CLUSTER, TABLE_NAMES, base_set)
    chain, content, head = open_chain(store, entry, manifest, TABLE_NAMES, kind)
    index = HeldIndex(str(index_path))
    sync_index(index, store, chain, content, head, manifest)
    return ChainWriter(store, chain, head, index, dict(WRITER, kind=kind), seal_documents, 5.0)


def seal_failing_once(writer, error: Exception) -> None:
    """Seal with the commit of the segment's record failing (raising `error`), as when the store goes away
    after the segment's data was written; the commit works again afterwards."""
    committing = writer.store.commit_segment

    def store_away(*_arguments):
        raise error

    writer.store.commit_segment = store_away
    try:
        writer.seal()
    finally:
        writer.store.commit_segment = committing
