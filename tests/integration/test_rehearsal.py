"""Restore rehearsals through the verify playbook: a backup set restored into a scratch cluster started for the
purpose, its counts compared and its BigchainDB chains checked, the scratch cluster removed whatever happens.

The backed-up clusters hold a tampered chain (database bigchain: an altered transaction, a forged vote, a vote for
a missing block, a block signed outside the federation, a block deleted in the middle) and a clean one (database
clean). A dump set and a btrfs snapshot set are rehearsed; every test then checks that no process, port or
directory of the scratch cluster is left, and that the production cluster was not touched. The rehearsal killed
with its controller halfway is removed by its keeper, or by the next rehearsal when the keeper is gone too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import Cluster, server_binary, wait_for
from ansible_collections.bigchaindb.rethinkdb.tests.harness.loopfs import loop_filesystem
from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import Ansible, write_inventory
from ansible_collections.bigchaindb.rethinkdb.tests.integration.faults import kill_tree, run_interrupted, run_with_fault
from ansible_collections.bigchaindb.rethinkdb.tests.integration.helpers import NODES, needs

r = RethinkDB()
BACKUP = 'bigchaindb.rethinkdb.backup'
VERIFY = 'bigchaindb.rethinkdb.verify'
BLOCKS = 40
SEED = 5
PASSWORD = 'scratch needs the set password'
CHAIN_TABLES = ['bigchain.bigchain', 'bigchain.votes', 'clean.bigchain', 'clean.votes']
REPORT_TASK = 'Put the rehearsal report together'
LOAD_TASK = "Load the set's archive into the scratch server (its sha256 is checked first)"
COUNT_TASK = 'Count the documents once every replica is ready'
LEFTOVERS_TASK = 'Remove those of interrupted rehearsals'
START_TASK = 'Start the scratch server'
# The rehearsal alone, as the verify playbook runs it with --tags rehearsal (without the full check of the set).
REHEARSAL_ONLY = '''
- name: Rehearse a restore
  hosts: rethinkdb
  gather_facts: false
  tasks:
    - name: Rehearse
      ansible.builtin.include_role:
        name: bigchaindb.rethinkdb.restore
        tasks_from: rehearsal
'''
FEDERATION = [bigchaindb_data.Signer(SEED, 'node', index).public_key for index in range(bigchaindb_data.DEFAULT_VOTERS)]


def load_chains(cluster, replicas: int = 1) -> bigchaindb_data.Tampering:
    """The tampered chain into bigchain, the same seed's clean chain into clean; returns what was tampered with."""
    tampering = bigchaindb_data.Tampering(BLOCKS, seed=SEED)
    with cluster.connect() as connection:
        for db, damage in (('bigchain', tampering), ('clean', None)):
            bigchaindb_data.create_schema(r, connection, db=db, replicas=replicas)
            bigchaindb_data.load(r, connection, bigchaindb_data.generate(BLOCKS, seed=SEED, tampering=damage), db=db)
    return tampering


def dump_set(cluster, ansible: Ansible, backups: Path, tables: list) -> Path:
    """A committed dump set of the tables, as the backup role makes one: begun and committed by the catalog
    module, the archive written by the RethinkDB driver's own `rethinkdb dump`, the counts read by the info
    module. Returns the archive's path."""
    login = dict(login_port=cluster.node(1).driver_port)
    if cluster.password_file is not None:
        login['login_password_file'] = str(cluster.password_file)
    repository = dict(repository=str(backups), cluster='rethinkdb')
    begun = ansible.module('catalog', dict(repository, operation='begin', method='dump'))
    archive = Path(begun['path']) / 'dump' / 'rethinkdb_dump.tar.gz'
    archive.parent.mkdir()
    argv = [sys.executable, '-m', 'rethinkdb', 'dump', '--connect', '127.0.0.1:%d' % login['login_port'], '--file', str(archive)]
    argv += ['--password-file', str(cluster.password_file)] if cluster.password_file is not None else []
    for table in tables:
        argv += ['--export', table]
    subprocess.run(argv, check=True, capture_output=True, cwd=ansible.workdir)
    with tarfile.open(archive) as members:
        raw_bytes = sum(member.size for member in members)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    facts = ansible.module('info', dict(login, tables=tables, count=True))
    part = dict(path='dump/rethinkdb_dump.tar.gz', bytes=archive.stat().st_size, sha256=digest, raw_bytes=raw_bytes, compression='gzip',
                host='node1')
    committed = ansible.module('catalog', dict(repository, operation='commit', set_id=begun['set_id'], cluster_info=facts, tables=tables,
                                               parts=[part]))
    return Path(committed['path']) / part['path']


def rehearsal_vars(workdir: Path) -> dict:
    """Inventory variables that turn the rehearsal on, with the test's server binary and the federation's keys."""
    return dict(rethinkdb_binary=server_binary(), rethinkdb_rehearsal_dir=str(workdir / 'rehearsals'),
                rethinkdb_rehearsal_metrics_file=str(workdir / 'rehearsal.prom'), bigchaindb_federation_keys=FEDERATION)


def production_state(cluster) -> tuple:
    """The production servers' pids and every table's documents: a rehearsal changes neither."""
    with cluster.connect() as connection:
        documents = dict(('%s.%s' % (db, table), sorted(document['id'] for document in r.db(db).table(table).run(connection)))
                         for db in ('bigchain', 'clean') for table in ('bigchain', 'votes'))
    return [node.pid() for node in cluster.nodes], documents


def scratch_processes(rehearsal_dir: Path) -> list:
    """Processes whose command line names the rehearsal directory: scratch servers and keepers."""
    marker = os.fsencode(str(rehearsal_dir))
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            command = Path('/proc', pid, 'cmdline').read_bytes()
            state = Path('/proc', pid, 'stat').read_text().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if marker in command and state != 'Z':
            found.append(int(pid))
    return found


def listening(port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.settimeout(1)
        return probe.connect_ex(('127.0.0.1', port)) == 0


def assert_nothing_left(rehearsal_dir: Path, ports: list) -> None:
    """No scratch process, no port of the scratch servers listening, nothing in the rehearsal directory."""
    assert scratch_processes(rehearsal_dir) == []
    assert [port for port in ports if listening(port)] == []
    assert not rehearsal_dir.exists() or list(rehearsal_dir.iterdir()) == []


def report_of(run) -> dict:
    return run.result(REPORT_TASK)['ansible_facts']['restore_rehearsal_report']


def scratch_ports(report: dict) -> list:
    return [port for server in report['scratch']['servers'] for port in (server['driver_port'], server['cluster_port'])]


def kept_report(backups: Path, report: dict) -> dict:
    path = backups / 'rethinkdb' / 'reports' / ('rehearsal-%s-%s.json' % (report['rehearsal_id'], report['set_id']))
    return json.loads(path.read_text())


def metrics(path: Path) -> dict:
    """A textfile's samples: metric line (name and labels) -> value."""
    return dict(line.rsplit(' ', 1) for line in path.read_text().splitlines() if line and not line.startswith('#'))


def failures_named(outcome: dict) -> dict:
    return dict((kind, entry['ids']) for kind, entry in outcome['failures'].items())


def assert_tampering_found(report: dict, tampering: bigchaindb_data.Tampering, sources: dict) -> None:
    """The tampered chain fails with every change named, the clean chain passes, and so the rehearsal fails.
    sources: the report's keys of the chain checks (chain, chain_archive) and how its problems name them."""
    for source in sources:
        assert failures_named(report[source]['bigchain']) == tampering.expected_failures(), source
        assert report[source]['clean']['ok'] is True and report[source]['clean']['failures'] == {}, source
        assert report[source]['clean']['counts']['blocks'] == BLOCKS
    assert report['ok'] is False
    assert report['problems'] == ['chain bigchain (%s): 12 failure(s)' % label for label in sources.values()]


def test_a_dump_set_rehearsal_passes_for_a_clean_chain_and_names_every_tampering(cluster_factory, tmp_path):
    cluster = cluster_factory(1)
    tampering = load_chains(cluster)
    ansible = Ansible(tmp_path, write_inventory(cluster, tmp_path / 'inventory.yml', rethinkdb_backup_root=str(tmp_path / 'backups'),
                                                **rehearsal_vars(tmp_path)))
    dump_set(cluster, ansible, tmp_path / 'backups', CHAIN_TABLES)
    before = production_state(cluster)
    rehearsal_dir, metrics_file = tmp_path / 'rehearsals', tmp_path / 'rehearsal.prom'

    passed = ansible.playbook(VERIFY, dict(restore_rehearsal_databases=['clean']))

    report = report_of(passed)
    assert report['ok'] is True and report['method'] == 'dump' and report['problems'] == []
    assert [(check['table'], check['found'], check['ok']) for check in report['counts']] == [
        ('bigchain.bigchain', BLOCKS, True), ('bigchain.votes', 3 * (BLOCKS - 1) + 1, True), ('clean.bigchain', BLOCKS, True),
        ('clean.votes', 3 * (BLOCKS - 1), True)]
    assert report['chain']['clean']['ok'] and report['chain_archive']['clean']['ok']
    assert report['chain']['clean']['source'] == 'cluster' and report['chain_archive']['clean']['source'] == 'archive'
    assert [server['name'] for server in report['scratch']['servers']] == ['rehearsal']
    assert report['scratch']['removed'] is True and report['scratch']['stopped'] == ['rehearsal']
    assert sorted(report['steps']) == ['check', 'choose', 'remove', 'restore', 'wait_ready']
    assert kept_report(tmp_path / 'backups', report) == report
    samples = metrics(metrics_file)
    assert float(samples['rethinkdb_backup_last_verified_timestamp_seconds{cluster="rethinkdb"}']) == report['ended']
    assert samples['rethinkdb_backup_rehearsal_success{cluster="rethinkdb"}'] == '1'
    assert samples['rethinkdb_backup_rehearsal_failures{cluster="rethinkdb",db="clean",source="cluster",kind="block_id"}'] == '0'
    assert_nothing_left(rehearsal_dir, scratch_ports(report))

    failed = ansible.playbook(REHEARSAL_ONLY, dict(restore_rehearsal_databases=['bigchain', 'clean']), expect_rc=2)

    report = report_of(failed)
    assert_tampering_found(report, tampering, dict(chain='scratch cluster', chain_archive='archive'))
    assert [entry[0] for entry in failed.failures()] == ['Check that the rehearsal passed']
    assert 'The restore rehearsal of %s failed: chain bigchain (scratch cluster): 12 failure(s)' % report['set_id'] in failed.failures()[0][2]
    samples = metrics(metrics_file)
    assert float(samples['rethinkdb_backup_last_verified_timestamp_seconds{cluster="rethinkdb"}']) == report_of(passed)['ended']
    assert samples['rethinkdb_backup_rehearsal_success{cluster="rethinkdb"}'] == '0'
    assert samples['rethinkdb_backup_rehearsal_failures{cluster="rethinkdb",db="bigchain",source="archive",kind="vote_for_unknown_block"}'] == '4'
    assert samples['rethinkdb_backup_rehearsal_failures{cluster="rethinkdb",db="bigchain",source="cluster",kind="block_missing"}'] == '1'
    assert_nothing_left(rehearsal_dir, scratch_ports(report))
    assert production_state(cluster) == before


def test_a_rehearsal_failing_halfway_removes_its_scratch_cluster_and_reports_the_step(cluster_factory, tmp_path):
    """The set's archive is damaged under its recorded size, which only a full check finds, and the rehearsal runs
    alone: the scratch server is running when the load refuses the archive; the always section removes it, and the
    report names the step."""
    cluster = cluster_factory(1)
    load_chains(cluster)
    ansible = Ansible(tmp_path, write_inventory(cluster, tmp_path / 'inventory.yml', rethinkdb_backup_root=str(tmp_path / 'backups'),
                                                **rehearsal_vars(tmp_path)))
    archive = dump_set(cluster, ansible, tmp_path / 'backups', CHAIN_TABLES)
    with open(archive, 'r+b') as damaged:
        damaged.seek(200)
        damaged.write(b'\0' * 64)

    failed = ansible.playbook(REHEARSAL_ONLY, expect_rc=2)

    report = report_of(failed)
    assert report['ok'] is False and report['ready'] is False and report['chain'] == {}
    assert report['failure'].startswith('%s: Archive %s has sha256 ' % (LOAD_TASK, archive))
    assert [server['name'] for server in report['scratch']['servers']] == ['rehearsal']
    assert report['scratch']['removed'] is True and report['scratch']['stopped'] == ['rehearsal']
    assert metrics(tmp_path / 'rehearsal.prom')['rethinkdb_backup_rehearsal_failures{cluster="rethinkdb",db="",source="",kind="step"}'] == '1'
    assert_nothing_left(tmp_path / 'rehearsals', scratch_ports(report))


def keeper_of(rehearsal_dir: Path) -> dict:
    """The record of the one scratch cluster in the rehearsal directory."""
    [run_file] = rehearsal_dir.glob('*/run.json')
    return json.loads(run_file.read_text())


def test_a_rehearsal_killed_halfway_is_removed_by_its_keeper_or_by_the_next_rehearsal(cluster_factory, tmp_path):
    cluster = cluster_factory(1)
    load_chains(cluster)
    ansible = Ansible(tmp_path, write_inventory(cluster, tmp_path / 'inventory.yml', rethinkdb_backup_root=str(tmp_path / 'backups'),
                                                **rehearsal_vars(tmp_path)))
    dump_set(cluster, ansible, tmp_path / 'backups', CHAIN_TABLES)
    rehearsal_dir = tmp_path / 'rehearsals'

    killed = run_interrupted(ansible, REHEARSAL_ONLY, dict(restore_rehearsal_databases=['clean']), before_task=COUNT_TASK)

    [server] = killed.result(START_TASK)['servers']
    wait_for(lambda: scratch_processes(rehearsal_dir) == [], timeout=30)
    assert_nothing_left(rehearsal_dir, [server['driver_port'], server['cluster_port']])

    def orphan() -> None:
        """The keeper dies first (as one on another host than the controller, which waits for the end of the
        cluster's lifetime), then the controller, whose process the scratch cluster's record names."""
        record = keeper_of(rehearsal_dir)
        os.kill(record['keeper']['pid'], signal.SIGKILL)
        kill_tree(record['run']['pid'])

    orphaned = run_with_fault(ansible, REHEARSAL_ONLY, dict(restore_rehearsal_databases=['clean']), COUNT_TASK, orphan)

    assert orphaned.rc == -signal.SIGKILL
    record = keeper_of(rehearsal_dir)
    ports = [port for server_ports in record['ports'].values() for port in server_ports.values()]
    assert all(listening(port) for port in ports), 'the scratch server outlived its controller and keeper'

    next_run = ansible.playbook(REHEARSAL_ONLY, dict(restore_rehearsal_databases=['clean']))

    [cleared] = next_run.result(LEFTOVERS_TASK)['results']
    assert (cleared['item'], cleared['stopped'], cleared['killed']) == (record['name'], ['rehearsal'], [])
    assert report_of(next_run)['ok'] is True
    assert_nothing_left(rehearsal_dir, ports + scratch_ports(report_of(next_run)))


# btrfs: the backed-up cluster's data directories on btrfs subvolumes, each on a loop filesystem of its own; the
# cluster has an admin password, which its snapshot set's data directories keep.

@needs('losetup', 'mkfs.btrfs', 'btrfs')
def test_a_snapshot_set_rehearsal_restores_every_server_and_names_every_tampering(tmp_path):
    """First with a wrong password for the set's admin, which fails once the servers run; then as configured."""
    with contextlib.ExitStack() as mounted:
        data_dirs = {}
        for name in NODES:
            subvolume = mounted.enter_context(loop_filesystem(tmp_path / ('btrfs-' + name), 'btrfs', 200)) / 'rethinkdb'
            subprocess.run(['btrfs', 'subvolume', 'create', str(subvolume)], check=True, stdout=subprocess.DEVNULL)
            data_dirs[name] = subvolume / 'default'
        cluster = Cluster(tmp_path / 'cluster', size=3, data_dirs=data_dirs, password=PASSWORD)
        mounted.callback(cluster.teardown)
        cluster.start()
        tampering = load_chains(cluster, replicas=3)
        ansible = Ansible(tmp_path, write_inventory(cluster, tmp_path / 'inventory.yml', rethinkdb_backup_root=str(tmp_path / 'backups'),
                                                    **rehearsal_vars(tmp_path)))
        ansible.playbook(BACKUP, dict(method='snapshot', backend='btrfs', backup_barrier_delay=5))
        before = production_state(cluster)

        refused = ansible.playbook(REHEARSAL_ONLY, dict(restore_rehearsal_password_file='', restore_rehearsal_password='not the set password'),
                                   expect_rc=2)

        report = report_of(refused)
        assert report['failure'].startswith('Start the scratch servers from the restored data: Cannot log in to scratch server ')
        assert 'as admin: Wrong password; give the password that user had in the backed-up cluster.' in report['failure']
        assert report['scratch']['removed'] is True and sorted(report['scratch']['stopped']) == list(NODES)
        assert_nothing_left(tmp_path / 'rehearsals', [])

        failed = ansible.playbook(VERIFY, dict(restore_rehearsal_databases=['bigchain', 'clean']), expect_rc=2)

        report = report_of(failed)
        assert report['method'] == 'snapshot'
        assert sorted(server['name'] for server in report['scratch']['servers']) == list(NODES)
        assert all(check['ok'] for check in report['counts']) and len(report['counts']) == 6
        assert_tampering_found(report, tampering, dict(chain='scratch cluster'))
        assert report['chain_archive'] == {}
        assert report['scratch']['removed'] is True and sorted(report['scratch']['stopped']) == list(NODES)
        assert_nothing_left(tmp_path / 'rehearsals', scratch_ports(report))
        assert production_state(cluster) == before
        assert PASSWORD not in failed.output
