"""Continuous backup through the playbooks: a point-in-time restore to a second before an accident, incremental
backups from cron (method incremental) restored whole, and the follower role starting, checking and stopping the
follower (process mode; the systemd unit is the same command)."""

from __future__ import annotations

import datetime
import json
import os
import time
from pathlib import Path

from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository
from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data
from ansible_collections.bigchaindb.rethinkdb.tests.harness.follower import FollowerProcess, Writer, chain_contents, follower_config
from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import Ansible, write_inventory

r = RethinkDB()
RESTORE = 'bigchaindb.rethinkdb.restore'
BACKUP = 'bigchaindb.rethinkdb.backup'


def iso(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'


def schema(cluster, blocks: int = 10) -> dict:
    with cluster.connect() as connection:
        bigchaindb_data.create_schema(r, connection, replicas=2)
        return bigchaindb_data.load(r, connection, bigchaindb_data.generate(blocks))


def ids(cluster, table: str, db: str = 'bigchain') -> set:
    with cluster.connect() as connection:
        return set(r.db(db).table(table).get_field('id').run(connection))


def ansible_for(cluster, tmp_path: Path) -> Ansible:
    inventory = write_inventory(cluster, tmp_path / 'inventory.yml', rethinkdb_backup_root=str(tmp_path / 'backups'),
                                rethinkdb_backup_node_dir=str(tmp_path / 'node-dirs'))
    return Ansible(tmp_path, inventory)


def test_point_in_time_restore_to_a_second_before_an_accident(cluster, tmp_path):
    schema(cluster)
    ansible = ansible_for(cluster, tmp_path)
    repository = LocalRepository(str(tmp_path / 'backups'))
    writer = Writer(cluster, rate=30)
    with FollowerProcess(tmp_path / 'follower', follower_config(cluster, str(tmp_path / 'backups'), tmp_path / 'state')) as follower:
        follower.wait_following()
        writer.start()
        time.sleep(3)
        accident_at = time.time()
        with cluster.connect() as connection:
            deleted = r.db('bigchain').table('votes').limit(5).get_field('id').run(connection)
            r.db('bigchain').table('votes').get_all(*deleted).delete().run(connection)
            r.db('bigchain').table('votes').insert([{'id': 'forged-%d' % number, 'vote': {}} for number in range(10)]).run(connection)
        time.sleep(1.5)
        writer.stop()
        follower.wait_durable(writer.acknowledged(), lambda: chain_contents(repository, 'rethinkdb'))
        assert follower.stop() == 0
    until = iso(accident_at - 1)
    contents = chain_contents(repository, 'rethinkdb')
    wanted = set(key for key, held in contents.documents.items() if held['at'] is None or held['at'] <= until)
    damaged = ids(cluster, 'votes')

    run = ansible.playbook(RESTORE, {'restore_until': until})

    restored = dict((table, ids(cluster, table)) for table in ('bigchain', 'votes'))
    assert restored['votes'] == set(key for table, key in wanted if table == 'votes')
    assert restored['bigchain'] == set(key for table, key in wanted if table == 'bigchain')
    assert set(deleted) <= restored['votes'] and not any(key.startswith('forged-') for key in restored['votes'])
    acked_before = set(key for key, moment in writer.acknowledged().items() if moment < accident_at - 2)
    assert acked_before and acked_before <= set((table, key) for table in restored for key in restored[table])
    lines = run.result('Say what was restored')['msg']
    assert lines[0].startswith('restored chain %s on base set ' % contents.chains[0]['chain_id']) and ' to %s ' % until in lines[0]
    assert [line.endswith(' ok') for line in lines if '(chain: ' in line] == [True, True]
    with cluster.connect() as connection:
        [aside] = [name for name in r.db('bigchain').table_list().run(connection) if name.startswith('votes_before_')]
        assert set(r.db('bigchain').table(aside).get_field('id').run(connection)) == damaged
    [report] = (tmp_path / 'backups' / 'rethinkdb' / 'reports').glob('restore-*-chain-*.json')
    recorded = json.loads(report.read_text())
    assert (recorded['until'], recorded['moved_aside']['bigchain.votes']) == (until, 'bigchain.' + aside)
    assert all(count['ok'] for count in recorded['counts'])


def test_incremental_backups_from_cron_and_a_restore_of_all_they_hold(cluster, tmp_path):
    loaded = schema(cluster, blocks=30)
    ansible = ansible_for(cluster, tmp_path)
    cache = tmp_path / 'cache'
    metrics = tmp_path / 'backup.prom'
    options = {'backup_incremental_cache_dir': str(cache), 'backup_metrics_file': str(metrics)}

    first = ansible.playbook(BACKUP, dict(options, backup_method='incremental', backup_incremental_take_base=True))
    writer = Writer(cluster)
    writer.write(writer.documents(8))
    second = ansible.playbook(BACKUP, dict(options, backup_method='incremental'))
    for index in cache.glob('*.sqlite*'):
        index.unlink()
    third = ansible.playbook(BACKUP, dict(options, backup_method='incremental'))

    results = [run.result('Back up the documents the chain does not hold yet', 'node1') for run in (first, second, third)]
    assert [(result['took_base'], result['began'], result['documents']) for result in results] == [(True, True, 0), (False, False, 8), (False, False, 0)]
    assert len(set(result['chain_id'] for result in results)) == 1
    assert results[2]['index'].startswith('index rebuilt: %d documents of base set ' % (loaded['bigchain'] + loaded['votes']))
    assert 'rethinkdb_backup_last_documents{cluster="rethinkdb",method="incremental"} 0' in metrics.read_text()
    assert second.result('Say what was saved')['msg'][0] == 'Backed up 8 document(s) into chain %s (1 segment(s)).' % results[0]['chain_id']
    listing = ansible.module('catalog_info', {'repository': str(tmp_path / 'backups'), 'cluster': 'rethinkdb', 'chain': 'latest',
                                              'check': True})
    assert (listing['chain']['writer'], listing['chain']['documents'], listing['chain']['gaps'], listing['chain']['segments']) == ('incremental', 8, 6, 3)
    assert listing['chain_plan']['expected'] == {'bigchain.bigchain': loaded['bigchain'] + 2, 'bigchain.votes': loaded['votes'] + 6}

    ansible.playbook(RESTORE, {'restore_chain': 'latest'})

    with cluster.connect() as connection:
        counts = dict((table, r.db('bigchain').table(table).count().run(connection)) for table in ('bigchain', 'votes'))
        tables = r.db('bigchain').table_list().run(connection)
    assert counts == {'bigchain': loaded['bigchain'] + 2, 'votes': loaded['votes'] + 6}
    assert len([name for name in tables if '_before_' in name]) == 2


def test_follower_role_starts_checks_and_stops_the_follower(cluster_factory, tmp_path):
    cluster = cluster_factory(3, password='s3cret-follower-pw')
    schema(cluster, blocks=5)
    ansible = ansible_for(cluster, tmp_path)
    role_vars = {'follower_service_manager': 'process', 'follower_install_dir': str(tmp_path / 'opt'), 'follower_config_dir': str(tmp_path / 'etc'),
                 'follower_state_dir': str(tmp_path / 'state'), 'follower_metrics_file': str(tmp_path / 'follower.prom'),
                 'follower_seal_seconds': 1}

    started = ansible.playbook('bigchaindb.rethinkdb.follower', role_vars)
    again = ansible.playbook('bigchaindb.rethinkdb.follower', role_vars)
    status = json.loads((tmp_path / 'state' / 'status.json').read_text())
    pid = status['pid']
    writer = Writer(cluster)
    writer.write(writer.documents(12))
    repository = LocalRepository(str(tmp_path / 'backups'))
    deadline = time.monotonic() + 60
    while set(writer.acknowledged()) - set(chain_contents(repository, 'rethinkdb').documents):
        assert time.monotonic() < deadline, (tmp_path / 'state' / 'follower.log').read_text()[-3000:]
        time.sleep(0.5)
    with open('/proc/%d/cmdline' % pid, 'rb') as stream:
        command = stream.read()
    stopped = ansible.playbook('bigchaindb.rethinkdb.follower', dict(role_vars, follower_state='stopped'))

    assert started.result('Start the process', 'node1')['changed'] is True
    assert again.results('Start the process', 'node1') == [] and json.loads((tmp_path / 'state' / 'status.json').read_text())['pid'] == pid
    assert started.result('Say what the follower does', 'node1')['msg'][0].startswith('following bigchain.bigchain, bigchain.votes of rethinkdb')
    assert not os.path.exists('/proc/%d' % pid) or b'follower' not in Path('/proc/%d/cmdline' % pid).read_bytes()
    assert stopped.result('Stop the process (it seals what is open first)', 'node1')['changed'] is True
    assert json.loads((tmp_path / 'state' / 'status.json').read_text())['state'] == 'stopped'
    for text in (command, (tmp_path / 'etc' / 'rethinkdb.json').read_bytes(), (tmp_path / 'state' / 'follower.log').read_bytes(),
                 (tmp_path / 'follower.prom').read_bytes(), (tmp_path / 'state' / 'status.json').read_bytes()):
        assert b's3cret-follower-pw' not in text
    assert 'rethinkdb_follower_up{cluster="rethinkdb"} 0' in (tmp_path / 'follower.prom').read_text()
