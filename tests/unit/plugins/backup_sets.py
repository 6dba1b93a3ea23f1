"""Backup sets for the unit tests, made the way the collection makes them: a cluster as the info module
reports it, and sets begun, written part by part and committed in a real LocalRepository."""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import os

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import set_format
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository

CLUSTER = 'rethinkdb'
VOTES_CONFIG = {'id': 't-votes', 'db': 'bigchain', 'name': 'votes', 'primary_key': 'id', 'indexes': ['block_and_voter'],
                'shards': [{'primary_replica': 'node1', 'replicas': ['node1', 'node2'], 'nonvoting_replicas': []}],
                'durability': 'hard', 'write_acks': 'majority', 'write_hook': None}
BLOCKS_CONFIG = {'id': 't-blocks', 'db': 'bigchain', 'name': 'bigchain', 'primary_key': 'id', 'indexes': ['transaction_id'],
                 'shards': [{'primary_replica': 'node2', 'replicas': ['node2', 'node1'], 'nonvoting_replicas': []}],
                 'durability': 'hard', 'write_acks': 'majority', 'write_hook': None}
# What the info module returns (the parts a backup records).
CLUSTER_INFO = {
    'version': '2.4.4',
    'version_string': 'rethinkdb 2.4.4~0bookworm (GCC 12.2.0)',
    'servers': [{'name': 'node1', 'id': 'id-1', 'tags': ['default', 'dc1']}, {'name': 'node2', 'id': 'id-2', 'tags': ['default', 'dc2']}],
    'tables': {
        'bigchain.votes': {'db': 'bigchain', 'name': 'votes', 'id': 't-votes', 'primary_key': 'id', 'shards': 1, 'replicas': 2,
                           'primary_replicas': ['node1'], 'indexes': ['block_and_voter'], 'documents': 897, 'config': VOTES_CONFIG},
        'bigchain.bigchain': {'db': 'bigchain', 'name': 'bigchain', 'id': 't-blocks', 'primary_key': 'id', 'shards': 1,
                              'replicas': 2, 'primary_replicas': ['node2'], 'indexes': ['transaction_id'], 'documents': 1200,
                              'config': BLOCKS_CONFIG},
    },
    'issues': [],
}
TABLE_NAMES = ['bigchain.bigchain', 'bigchain.votes']
RECIPIENT = 'age1' + 'q' * 58


def cluster_info() -> dict:
    """A fresh copy of CLUSTER_INFO for a test to change."""
    return copy.deepcopy(CLUSTER_INFO)


def manifest_fields(method: str, documents_after: dict | None = None) -> dict:
    """What a backup found, as build_manifest takes it."""
    info = cluster_info()
    counts = dict((name, table['documents']) for name, table in info['tables'].items())
    fields = dict(rethinkdb_version=info['version'], tables=set_format.manifest_tables(info, TABLE_NAMES, counts),
                  topology=set_format.topology_record(info, documents_after))
    if method == 'snapshot':
        fields['snapshot'] = set_format.snapshot_record('btrfs', 1795537807.142, [
            dict(server='node2', host='db2', taken_at=1795537807.16, freeze_ms=0.0),
            dict(server='node1', host='db1', taken_at=1795537807.15, freeze_ms=1.5)])
    return fields


def part_contents(method: str, marker: str) -> dict:
    """The parts of a set of a method: path -> bytes (small, different per set)."""
    if method == 'dump':
        return {set_format.dump_part_path(): b'dump of ' + marker.encode() + bytes(3000)}
    return dict((set_format.node_part_path(server), ('%s of %s' % (server, marker)).encode() + bytes(2000))
                for server in ('node1', 'node2'))


def write_parts(repository, cluster: str, set_id: str, contents: dict) -> list:
    """Write parts through the repository's part writers; return them as the manifest records them."""
    parts = []
    for path, content in contents.items():
        with repository.part_writer(cluster, set_id, path) as writer:
            writer.stream.write(content)
            stored = writer.finish()
        server = path.split('/')[1] if path.startswith('nodes/') else None
        parts.append(dict(path=path, bytes=stored['bytes'], sha256=stored['sha256'], raw_bytes=len(content) * 3,
                          compression='zstd' if server else 'gzip', store_checksum=stored['store_checksum'], server=server,
                          host='db' + server[-1] if server else 'db1'))
    return parts


def make_set(repository: LocalRepository, at: datetime.datetime, method: str = 'dump', commit: bool = True,
             cluster: str = CLUSTER) -> dict:
    """A set made at `at` in a repository: begun, its parts written, committed unless told otherwise.
    Returns set_id, location, parts and manifest (None when not committed)."""
    set_id = set_format.new_set_id(method, at)
    location = repository.begin(cluster, set_id, dict(host='controller', pid=4242))
    parts = write_parts(repository, cluster, set_id, part_contents(method, set_id))
    manifest = None
    if commit:
        manifest = set_format.build_manifest(set_id, cluster, manifest_fields(method), parts, now=at + datetime.timedelta(seconds=20))
        location = repository.commit(cluster, set_id, set_format.manifest_bytes(manifest))
    return dict(set_id=set_id, location=location, parts=parts, manifest=manifest)


def tree(root) -> list:
    """Every path under root with its size for files, to show that nothing changed."""
    entries = []
    for directory, subdirs, names in os.walk(str(root)):
        for name in sorted(subdirs + names):
            path = os.path.join(directory, name)
            size = os.lstat(path).st_size if os.path.isfile(path) else None
            entries.append((os.path.relpath(path, str(root)), size))
    return sorted(entries)


def make_format_1_set(repository: LocalRepository, at: datetime.datetime, cluster: str = CLUSTER) -> dict:
    """A dump set as format 1 stored it: its topology in cluster.json beside a manifest without one."""
    set_id = set_format.new_set_id('dump', at)
    set_dir = os.path.join(repository.root, cluster, set_id)
    os.makedirs(os.path.join(set_dir, 'dump'))
    content = b'format 1 dump of ' + set_id.encode()
    with open(os.path.join(set_dir, 'dump', 'rethinkdb_dump.tar.gz'), 'wb') as stream:
        stream.write(content)
    fields = manifest_fields('dump')
    topology = fields.pop('topology')
    part = dict(path='dump/rethinkdb_dump.tar.gz', bytes=len(content), sha256=hashlib.sha256(content).hexdigest(), server=None,
                host='db1')
    manifest = dict(format=1, set_id=set_id, cluster=cluster, method='dump', started_at=set_format.format_time(at),
                    finished_at=set_format.format_time(at + datetime.timedelta(seconds=5)), rethinkdb_version='2.4.4',
                    tables=fields['tables'], parts=[part], snapshot=None)
    with open(os.path.join(set_dir, 'manifest.json'), 'w', encoding='utf-8') as stream:
        json.dump(manifest, stream)
    cluster_json = dict(topology, cluster=cluster, set_id=set_id)
    del cluster_json['documents_after']
    with open(os.path.join(set_dir, 'cluster.json'), 'w', encoding='utf-8') as stream:
        json.dump(cluster_json, stream)
    return dict(set_id=set_id, location=set_dir, parts=[part], manifest=manifest, topology=topology)
