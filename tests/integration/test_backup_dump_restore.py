"""Logical backup and restore through the backup and restore playbooks (method dump), on a 3-node cluster."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import set_catalog
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import sha256_file
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository
from ansible_collections.bigchaindb.rethinkdb.tests.harness.loopfs import tmpfs
from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import Ansible
from ansible_collections.bigchaindb.rethinkdb.tests.integration.helpers import counts, load_bigchain, table_config

r = RethinkDB()
TABLES = ('bigchain', 'votes')
CHOOSE_TASK = 'Choose the backup set and check it before touching the cluster (manifest, topology, sizes, store checksums)'
RESTORE_TASK = 'Restore the tables (the archive is checked before anything is written)'


def sets_in(backups) -> list:
    """The cluster's backup sets in a repository on the controller, newest first."""
    return set_catalog.list_sets(LocalRepository(str(backups)), 'rethinkdb')


def sets_of(ansible) -> list:
    return sets_in(ansible.workdir / 'backups')


def documents(cluster, table: str) -> list:
    """Every document of a bigchain table, sorted by id."""
    with cluster.connect() as connection:
        return sorted(r.db('bigchain').table(table).run(connection), key=lambda document: document['id'])


def test_backup_damage_restore_brings_back_data_and_layout(cluster, ansible):
    loaded = load_bigchain(cluster, blocks=40, replicas=2)
    votes_before = documents(cluster, 'votes')
    metrics = ansible.workdir / 'rethinkdb_backup.prom'

    backup = ansible.playbook('bigchaindb.rethinkdb.backup', {'backup_metrics_file': str(metrics)})

    [complete] = sets_of(ansible)
    set_dir = Path(complete['path'])
    manifest = json.loads((set_dir / 'manifest.json').read_text())
    assert (complete['state'], complete['method']) == ('complete', 'dump')
    assert [(table['name'], table['documents'], table['replicas']) for table in manifest['tables']] == [
        ('bigchain', loaded['bigchain'], 2), ('votes', loaded['votes'], 2)]
    [part] = manifest['parts']
    assert sha256_file(str(set_dir / part['path'])) == (part['sha256'], part['bytes'])
    topology = manifest['topology']
    assert sorted(server['name'] for server in topology['servers']) == ['node1', 'node2', 'node3']
    assert 'bigchain.votes' in topology['tables']
    assert (manifest['format'], part['compression'], part['encryption']) == (2, 'gzip', None)
    report = json.loads((set_dir.parent / 'reports' / (manifest['set_id'] + '.json')).read_text())
    assert report['documents'] == loaded['bigchain'] + loaded['votes'] and report['set_id'] == manifest['set_id']
    assert 'rethinkdb_backup_last_documents{cluster="rethinkdb",method="dump"} %d' % report['documents'] in metrics.read_text()
    summary = backup.result('Say what was saved')['msg']
    assert summary[0].startswith('backup set %s (dump) committed at ' % manifest['set_id'])
    assert not list((ansible.workdir / 'node-dirs').rglob('*.tar.gz')), 'the node copy is removed after the transfer'

    with cluster.connect() as connection:
        r.db('bigchain').table_drop('votes').run(connection)
    restore = ansible.playbook('bigchaindb.rethinkdb.restore', {'restore_tables': ['bigchain.votes']})

    assert documents(cluster, 'votes') == votes_before
    assert [len(shard['replicas']) for shard in table_config(cluster, 'votes')['shards']] == [2]
    assert counts(cluster, node=3) == loaded
    lines = restore.result('Say what was restored')['msg']
    assert lines[0].startswith('restored backup set %s (dump)' % manifest['set_id'])
    assert '  bigchain.votes: %s documents (set: %s) ok' % (format(loaded['votes'], ','), format(loaded['votes'], ',')) in lines
    [restore_report] = (set_dir.parent / 'reports').glob('restore-*-%s.json' % manifest['set_id'])
    report = json.loads(restore_report.read_text())
    assert (report['set_id'], report['method'], report['moved_aside']) == (manifest['set_id'], 'dump', {})
    assert [(count['table'], count['ok']) for count in report['counts']] == [('bigchain.votes', True)]
    assert isinstance(report['seconds'], float) and report['seconds'] > 0


def test_restore_refuses_existing_tables_unless_forced(cluster, ansible):
    loaded = load_bigchain(cluster, blocks=10)
    ansible.playbook('bigchaindb.rethinkdb.backup')
    with cluster.connect() as connection:
        r.db('bigchain').table('votes').limit(5).delete().run(connection)

    refused = ansible.playbook('bigchaindb.rethinkdb.restore', expect_rc=2)
    forced = ansible.playbook('bigchaindb.rethinkdb.restore', {'force': True})

    [(task, host, message)] = refused.failures()
    assert task == RESTORE_TASK
    assert 'bigchain.bigchain' in message and 'force' in message
    assert forced.result(RESTORE_TASK)['changed'] is True
    assert counts(cluster) == loaded


def test_a_failed_backup_is_marked_failed_and_never_chosen(cluster, ansible):
    load_bigchain(cluster, blocks=5)
    ansible.playbook('bigchaindb.rethinkdb.backup')

    failed = ansible.playbook('bigchaindb.rethinkdb.backup', {'backup_tables': ['bigchain.blocks']}, expect_rc=2)

    newest, older = sets_of(ansible)
    assert (newest['state'], older['state']) == ('failed', 'complete')
    assert 'Table bigchain.blocks does not exist' in newest['reason']
    assert 'Table bigchain.blocks does not exist' in failed.failures()[-1][2]
    chosen = ansible.module('catalog_info', {'repository': str(ansible.workdir / 'backups'), 'cluster': 'rethinkdb', 'select': True})
    assert chosen['set']['set_id'] == older['set_id']


def test_a_set_without_manifest_is_incomplete_and_latest_skips_it(cluster, ansible):
    load_bigchain(cluster, blocks=5)
    ansible.playbook('bigchaindb.rethinkdb.backup')
    ansible.playbook('bigchaindb.rethinkdb.backup')
    newest, older = sets_of(ansible)
    os.remove(os.path.join(newest['path'], 'manifest.json'))

    listed = ansible.module('catalog_info', {'repository': str(ansible.workdir / 'backups'), 'cluster': 'rethinkdb'})
    restored = ansible.playbook('bigchaindb.rethinkdb.restore', {'force': True})

    assert [entry['complete'] for entry in listed['sets']] == [False, True]
    chosen = restored.result(CHOOSE_TASK)
    assert chosen['set']['set_id'] == older['set_id']
    assert chosen['notes'] == ['passed over %s: manifest.json is missing' % newest['set_id']]


@pytest.mark.parametrize('damage, refused_by', [
    # Same size, other bytes: the restore module proves the archive (sha256) before anything is written.
    ('corrupt', RESTORE_TASK),
    # Another size: the catalogue no longer counts the set as complete, so there is nothing to choose.
    ('truncate', CHOOSE_TASK),
])
def test_a_damaged_archive_is_refused_before_the_cluster_is_touched(cluster, ansible, damage, refused_by):
    load_bigchain(cluster, blocks=5)
    ansible.playbook('bigchaindb.rethinkdb.backup')
    [entry] = sets_of(ansible)
    [archive] = Path(entry['path']).glob('dump/*.tar.gz')
    if damage == 'corrupt':
        with open(archive, 'r+b') as stream:
            stream.seek(100)
            stream.write(b'\0' * 16)
    else:
        os.truncate(archive, archive.stat().st_size // 2)
    with cluster.connect() as connection:
        r.db('bigchain').table_drop('votes').run(connection)

    refused = ansible.playbook('bigchaindb.rethinkdb.restore', expect_rc=2)

    [(task, host, message)] = refused.failures()
    assert task == refused_by
    assert ('has sha256' in message and 'it is not the archive that was recorded, or it was damaged' in message
            if damage == 'corrupt' else entry['set_id'] in message and 'has %d bytes' % (archive.stat().st_size) in message), message
    if refused_by == CHOOSE_TASK:
        assert refused.results(RESTORE_TASK) == []
    with cluster.connect() as connection:
        assert r.db('bigchain').table_list().run(connection) == ['backlog', 'bigchain']


def test_a_query_that_matches_nothing_is_a_clear_error(cluster, ansible):
    load_bigchain(cluster, blocks=5)
    ansible.playbook('bigchaindb.rethinkdb.backup')

    refused = ansible.playbook('bigchaindb.rethinkdb.restore', {'set': "[?method=='snapshot']"}, expect_rc=2)

    [(task, host, message)] = refused.failures()
    assert task == CHOOSE_TASK
    assert 'matches no' in message or 'no backup set' in message.lower()
    assert '\n' not in message


def test_wrong_password_and_unreachable_server_fail_cleanly(cluster_factory, tmp_path):
    from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import write_inventory
    cluster = cluster_factory(2, password='s3cret pass')
    load_bigchain(cluster, blocks=5)
    (tmp_path / 'wrong').mkdir()
    wrong_password = tmp_path / 'wrong' / 'password'
    wrong_password.write_text('not it\n')
    wrong = Ansible(tmp_path / 'wrong', write_inventory(cluster, tmp_path / 'wrong' / 'inventory.yml',
                                                        rethinkdb_backup_root=str(tmp_path / 'backups'),
                                                        rethinkdb_backup_node_dir=str(tmp_path / 'nodes'),
                                                        rethinkdb_login_password_file=str(wrong_password)))
    denied = wrong.playbook('bigchaindb.rethinkdb.backup', expect_rc=2)
    cluster.stop_node('node1')
    down = Ansible(tmp_path, write_inventory(cluster, tmp_path / 'inventory.yml', rethinkdb_backup_root=str(tmp_path / 'backups'),
                                             rethinkdb_backup_node_dir=str(tmp_path / 'nodes')))
    unreachable = down.playbook('bigchaindb.rethinkdb.backup', expect_rc=2)

    assert 'Wrong password' in denied.failures()[0][2]
    assert 'not it' not in denied.output and 's3cret pass' not in denied.output
    assert 'Cannot connect to RethinkDB at localhost:%d' % cluster.node(1).driver_port in unreachable.failures()[0][2]
    assert [entry['state'] for entry in sets_in(tmp_path / 'backups')] == ['failed', 'failed']


def test_a_full_node_filesystem_fails_the_dump_and_leaves_no_partial_archive(cluster, ansible, tmp_path):
    if os.geteuid() != 0:
        pytest.skip('mounting a small tmpfs needs root')
    load_bigchain(cluster, blocks=60)
    with tmpfs(tmp_path / 'small', 0.0625) as small:
        failed = ansible.playbook('bigchaindb.rethinkdb.backup', {'backup_node_dir': str(small)}, expect_rc=2)
        left = [path.name for path in small.rglob('*') if path.is_file()]

    assert 'space' in failed.failures()[0][2].lower()
    assert left == []
    assert [entry['state'] for entry in sets_of(ansible)] == ['failed']


def test_retention_keeps_the_newest_sets(cluster, ansible):
    load_bigchain(cluster, blocks=3)
    for _run in range(3):
        ansible.playbook('bigchaindb.rethinkdb.backup', {'backup_keep_last': 2})

    assert [entry['state'] for entry in sets_of(ansible)] == ['complete', 'complete']


def test_a_dump_with_a_node_that_takes_no_part_in_it_unreachable_succeeds(cluster, tmp_path):
    """node3 cannot be reached at all (SSH to a closed port): a dump runs on node1 only, so the set is committed
    and the run ends well; nothing connects to node3."""
    load_bigchain(cluster, blocks=5)
    inventory = cluster.inventory()
    node3 = inventory['all']['children']['rethinkdb']['hosts']['node3']
    node3.update(ansible_connection='ssh', ansible_host='127.0.0.1', ansible_port=1)
    inventory['all']['children']['rethinkdb']['vars'] = dict(rethinkdb_backup_repository=str(tmp_path / 'backups'),
                                                             rethinkdb_backup_node_dir=str(tmp_path / 'node-dirs'))
    path = tmp_path / 'cut-off.yml'
    path.write_text(yaml.safe_dump(inventory))

    run = Ansible(tmp_path, path).playbook('bigchaindb.rethinkdb.backup')

    assert run.rc == 0
    assert [entry['state'] for entry in sets_in(tmp_path / 'backups')] == ['complete']
    assert [entry['status'] for entry in run.records if entry['host'] == 'node3' and entry['status'] not in ('ok', 'skipped')] == []
