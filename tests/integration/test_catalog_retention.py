"""Retention keeps what a restore needs, through the catalog modules run by ansible-playbook on real sets: only
sets that pass a full check count, per method, never the set a backup just made, never a set dated in the
future; and the newest complete set chosen for a restore says which newer sets it passed over."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import (
    build_manifest, dump_part_path, manifest_bytes, new_set_id, node_part_path, utc_now)
from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import Ansible

CLUSTER = 'rethinkdb'
TOPOLOGY = dict(version='2.4.4', version_string='rethinkdb 2.4.4', servers=[dict(name='node1', tags=['default'])],
                tables={'bigchain.votes': dict(config=dict(shards=[dict(replicas=['node1'], primary_replica='node1')]))},
                issues=[], documents_after=None)
TABLE = dict(db='bigchain', name='votes', documents=3, primary_key='id', indexes=[], shards=1, replicas=1, primary_replicas=['node1'])


def make_set(repository: LocalRepository, method: str, hours_ago: float) -> dict:
    """A committed set of one small part, made `hours_ago` hours ago (negative: in the future)."""
    set_id = new_set_id(method, utc_now() - datetime.timedelta(hours=hours_ago))
    repository.begin(CLUSTER, set_id, {})
    path = dump_part_path() if method == 'dump' else node_part_path('node1')
    with repository.part_writer(CLUSTER, set_id, path) as writer:
        writer.stream.write(b'%s of %s' % (method.encode(), set_id.encode()))
        stored = writer.finish()
    part = dict(path=path, bytes=stored['bytes'], sha256=stored['sha256'], raw_bytes=100, compression='gzip' if method == 'dump' else 'zstd',
                server=None if method == 'dump' else 'node1', host='node1')
    snapshot = None if method == 'dump' else dict(backend='btrfs', barrier_at='2026-11-24T16:30:00.000Z', skew_ms=0.0,
                                                  nodes=[dict(server='node1', host='node1', taken_at='2026-11-24T16:30:00.001Z', freeze_ms=0.0)])
    manifest = build_manifest(set_id, CLUSTER, dict(rethinkdb_version='2.4.4', tables=[TABLE], snapshot=snapshot, topology=TOPOLOGY), [part])
    location = repository.commit(CLUSTER, set_id, manifest_bytes(manifest))
    return dict(set_id=set_id, part=Path(location) / path)


def rot(made: dict) -> None:
    """Change a part's bytes, keeping its size: only a full check sees it."""
    data = bytearray(made['part'].read_bytes())
    data[0] ^= 0xff
    made['part'].write_bytes(bytes(data))


@pytest.fixture(name='catalog')
def fixture_catalog(tmp_path):
    inventory = tmp_path / 'inventory.yml'
    controller = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
    inventory.write_text(yaml.safe_dump({'all': {'hosts': {'controller': controller}}}))
    repository = LocalRepository(str(tmp_path / 'backups'))
    ansible = Ansible(tmp_path, inventory)

    def run(module: str, **options) -> dict:
        return ansible.module(module, dict(options, repository=repository.root, cluster=CLUSTER), host='controller')
    return repository, run


def test_a_newer_set_that_fails_its_check_never_pushes_out_the_only_good_set(catalog):
    repository, run = catalog
    good = make_set(repository, 'dump', 30)
    rotten = make_set(repository, 'dump', 2)
    rot(rotten)

    pruned = run('catalog', operation='prune', keep_last=1)

    assert pruned['pruned'] == []
    kept = dict((verdict['set_id'], verdict['why']) for verdict in pruned['kept'])
    assert kept[good['set_id']] == 'one of the newest 1 dump sets that pass their check'
    assert kept[rotten['set_id']].startswith('kept but not counted: it fails its check (part dump/rethinkdb_dump.tar.gz has sha256 ')
    assert good['part'].exists()


def test_a_backup_never_prunes_the_set_it_made_and_a_set_dated_in_the_future_is_neither_latest_nor_pruned(catalog):
    """After a controller clock jump, a set dated a day ahead: the set a backup just made stays, and a restore's
    `latest` passes over the future set, saying so."""
    repository, run = catalog
    future = make_set(repository, 'dump', -24)
    older = make_set(repository, 'dump', 50)
    made_now = make_set(repository, 'dump', 0)

    pruned = run('catalog', operation='prune', keep_last=1, protect=[made_now['set_id']])
    chosen = run('catalog_info', select=True)

    assert [verdict['set_id'] for verdict in pruned['pruned']] == [older['set_id']]
    kept = dict((verdict['set_id'], verdict['why']) for verdict in pruned['kept'])
    assert kept == {future['set_id']: 'dated in the future: never pruned nor counted; check the clocks', made_now['set_id']: 'made by this run'}
    assert chosen['set']['set_id'] == made_now['set_id']
    assert chosen['notes'] == ['passed over %s: it is dated in the future (a wrong clock when it was made?)' % future['set_id']]


def test_keep_last_counts_each_method_apart(catalog):
    """Dump backups every hour never delete the only snapshot set, and the reverse."""
    repository, run = catalog
    snapshot = make_set(repository, 'snapshot', 72)
    dumps = [make_set(repository, 'dump', hours) for hours in (30, 20, 10)]

    pruned = run('catalog', operation='prune', keep_last=2)

    assert [verdict['set_id'] for verdict in pruned['pruned']] == [dumps[0]['set_id']]
    assert snapshot['set_id'] in [verdict['set_id'] for verdict in pruned['kept']]


def test_latest_passes_over_an_invalid_newer_set_and_says_which(catalog):
    repository, run = catalog
    good = make_set(repository, 'snapshot', 5)
    broken = make_set(repository, 'snapshot', 1)
    broken['part'].unlink()

    chosen = run('catalog_info', select=True)

    assert chosen['set']['set_id'] == good['set_id']
    assert chosen['notes'] == ['passed over %s: part nodes/node1/data.tar.zst is missing' % broken['set_id']]
