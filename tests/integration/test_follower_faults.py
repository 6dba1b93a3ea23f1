"""The follower under faults: a writer inserts blocks and votes throughout and logs every acknowledged document;
after each fault and its recovery, every acknowledged document is in the chain (none missing), none is in it twice,
a restore of the chain holds each exactly once, and the follower recorded the gap it closed.

One 3-node cluster serves the whole module; each test has a database of its own and a repository of its own."""

from __future__ import annotations

import os
import secrets
import time

import pytest
from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import open_repository
from ansible_collections.bigchaindb.rethinkdb.tests.harness import loopfs, s3server
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import Cluster, wait_for
from ansible_collections.bigchaindb.rethinkdb.tests.harness.follower import (
    FollowerProcess, Writer, chain_contents, cluster_whereabouts, follower_config, restore_into)

r = RethinkDB()
CLUSTER_NAME = 'rethinkdb'


@pytest.fixture(scope='module', name='shared')
def fixture_shared(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp('follower-cluster'), size=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.teardown()


class Case:
    """One test's database on the shared cluster, its writer, its repository and its follower."""

    def __init__(self, cluster, workdir, replicas: int = 1, primary: str = 'node1'):
        self.cluster = cluster
        self.workdir = workdir
        self.db = 'f_%s' % secrets.token_hex(3)
        self.repository_url = str(workdir / 'backups')
        with cluster.connect() as connection:
            r.db_create(self.db).run(connection)
            for table in ('bigchain', 'votes'):
                r.db(self.db).table_create(table, replicas=replicas).run(connection)
                if replicas == 1:
                    r.db(self.db).table(table).config().update({'shards': [{'primary_replica': primary, 'replicas': [primary]}]}).run(connection)
            r.db(self.db).wait(timeout=60).run(connection)
        self.writer = Writer(cluster, db=self.db, rate=40)
        self.writer.write(self.writer.documents(40))
        self.follower = None

    def repository(self):
        return open_repository(self.repository_url)

    def start_follower(self, **settings) -> FollowerProcess:
        config = follower_config(self.cluster, self.repository_url, self.workdir / 'state', db=self.db, **settings)
        self.follower = FollowerProcess(self.workdir / 'follower', config).start()
        self.follower.wait_following()
        return self.follower

    def contents(self):
        return chain_contents(self.repository(), CLUSTER_NAME)

    def settle(self):
        """Stop the writer; wait until every acknowledged document is durable; stop the follower."""
        self.writer.stop()
        acked = self.writer.acknowledged()
        self.follower.wait_durable(acked, self.contents, whereabouts=cluster_whereabouts(self.cluster, self.db))
        assert self.follower.stop() == 0, self.follower.log()[-3000:]
        return acked

    def check(self, acked: dict):
        """None missing, none twice in the chain, and a restore of it holds each acknowledged document once."""
        contents = self.contents()
        assert set(acked) - set(contents.documents) == set()
        assert contents.repeated() == {}
        restored = restore_into(self.cluster, self.repository(), CLUSTER_NAME, self.db, self.db + '_restored')
        expected = dict((table, len([key for key in acked if key[0] == table])) for table in ('bigchain', 'votes'))
        assert restored == expected
        return contents

    def drop(self):
        with self.cluster.connect() as connection:
            for db in (self.db, self.db + '_restored'):
                if db in r.db_list().run(connection):
                    r.db_drop(db).run(connection)


@pytest.fixture(name='case_factory')
def fixture_case_factory(shared, tmp_path):
    made = []

    def make(**options) -> Case:
        case = Case(shared, tmp_path, **options)
        made.append(case)
        return case

    yield make
    for case in made:
        if case.follower is not None:
            case.follower.__exit__(None, None, None)
        case.writer.stop()
        case.drop()


def gaps_after(contents, moment: float, reason: str = '') -> list:
    """The gaps closed after a moment whose reason says this."""
    closed_after = time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(moment))
    return [gap for gap in contents.gaps if gap['closed_at'] >= closed_after and reason in gap['reason']]


def test_killed_mid_segment_and_restarted(case_factory):
    case = case_factory()
    follower = case.start_follower(seal_seconds=4.0)
    case.writer.start()
    follower.wait(lambda status: status['seq'] >= 1 and status['pending_records'] > 0, 'an open segment after a sealed one')
    killed_at = time.time()
    follower.kill()
    time.sleep(1.5)
    follower.start()
    follower.wait_following()
    time.sleep(1)

    acked = case.settle()

    contents = case.check(acked)
    restarts = gaps_after(contents, killed_at, 'the follower started')
    assert len(restarts) == 2 and all(gap['found'] > 0 for gap in restarts if gap['table'].endswith('votes')), contents.gaps


def test_server_it_reads_from_stopped_and_started(case_factory, shared):
    case = case_factory(replicas=3)
    follower = case.start_follower(nodes=(2,))
    case.writer.start()
    time.sleep(1)
    stopped_at = time.time()
    shared.stop_node('node2')
    time.sleep(2)
    shared.start_node('node2')
    follower.wait_following()
    time.sleep(1)

    acked = case.settle()

    contents = case.check(acked)
    closed = gaps_after(contents, stopped_at)
    assert sorted(gap['table'].split('.')[1] for gap in closed) == ['bigchain', 'votes'], contents.gaps
    assert sum(gap['found'] for gap in closed) > 0


def test_table_reconfigured_while_followed(case_factory):
    case = case_factory(replicas=1, primary='node1')
    follower = case.start_follower()
    case.writer.start()
    time.sleep(1)
    reconfigured_at = time.time()
    with case.cluster.connect() as connection:
        for table in ('bigchain', 'votes'):
            r.db(case.db).table(table).config().update(
                {'shards': [{'primary_replica': 'node2', 'replicas': ['node1', 'node2', 'node3']}]}).run(connection)
        r.db(case.db).wait(wait_for='all_replicas_ready', timeout=60).run(connection)
    follower.wait_following()
    time.sleep(1)

    acked = case.settle()

    contents = case.check(acked)
    closed = gaps_after(contents, reconfigured_at, 'ended')
    assert sorted(gap['table'].split('.')[1] for gap in closed) == ['bigchain', 'votes'], contents.gaps
    with case.cluster.connect() as connection:
        assert [len(shard['replicas']) for shard in r.db(case.db).table('votes').config()['shards'].run(connection)] == [3]


@pytest.mark.skipif(os.geteuid() != 0, reason='a full filesystem needs a tmpfs (root)')
def test_repository_disk_full_for_a_while(case_factory, tmp_path):
    with loopfs.tmpfs(tmp_path / 'small', 3) as mountpoint:
        case = case_factory()
        case.repository_url = str(mountpoint / 'backups')
        follower = case.start_follower(seal_documents=40, changefeed_queue_size=30)
        case.writer.start()
        time.sleep(1)
        filler = mountpoint / 'filler'
        full_at = time.time()
        with open(filler, 'wb') as stream, pytest.raises(OSError):
            while True:
                stream.write(b'\0' * 65536)
        follower.wait(lambda status: status['counters']['seal_failures'] > 0, 'a seal failing on the full disk')
        time.sleep(2)
        filler.unlink()
        follower.wait_following()
        time.sleep(1)

        acked = case.settle()

        contents = case.check(acked)
        assert 'No space left on device' in follower.log()
        assert gaps_after(contents, full_at, 'dropped'), contents.gaps


def test_s3_store_stopped_for_a_while(case_factory, tmp_path):
    reason = s3server.unavailable()
    if reason:
        pytest.skip('S3 store: %s' % reason)
    with s3server.S3Store(tmp_path / 's3') as store:
        bucket = store.create_bucket()
        case = case_factory()
        options = dict(s3_endpoint_url=store.endpoint_url, s3_credentials_file=str(store.credentials_file), s3_region='us-east-1')
        case.repository_url = 's3://%s/backups' % bucket
        case.repository = lambda: open_repository(case.repository_url, dict(
            endpoint_url=options['s3_endpoint_url'], credentials_file=options['s3_credentials_file'], region='us-east-1'))
        follower = case.start_follower(**options)
        case.writer.start()
        time.sleep(1)
        store.stop()
        follower.wait(lambda status: status['counters']['seal_failures'] > 0, 'a seal failing with the store away', timeout=120)
        time.sleep(1)
        store.start()
        follower.wait(lambda status: status['counters']['segments'] > 2 and status['pending_records'] < 40, 'seals again', timeout=120)

        acked = case.settle()

        case.check(acked)
        assert 'cannot be reached' in follower.log()


def test_writer_faster_than_the_follower(case_factory):
    case = case_factory()
    follower = case.start_follower(changefeed_queue_size=10)
    case.writer.batch = 100
    case.writer.rate = 400
    started = time.time()
    case.writer.start()
    time.sleep(3)

    acked = case.settle()

    contents = case.check(acked)
    dropped = gaps_after(contents, started, 'dropped')
    assert dropped and all('its queue of 10 was full' in gap['reason'] for gap in dropped), contents.gaps
    assert sum(gap['found'] for gap in dropped) > 0
    assert follower.status()['counters']['catchups']['%s.votes' % case.db] > 1


def test_update_and_delete_are_alarms_and_nothing_is_lost(case_factory):
    case = case_factory()
    metrics = case.workdir / 'follower.prom'
    follower = case.start_follower(metrics_file=str(metrics))
    case.writer.start()
    time.sleep(1)
    acked = case.writer.acknowledged()
    block_id = sorted(key for key in acked if key[0] == 'bigchain')[0][1]
    vote_id = sorted(key for key in acked if key[0] == 'votes')[0][1]
    with case.cluster.connect() as connection:
        original_block = r.db(case.db).table('bigchain').get(block_id).run(connection)
        original_vote = r.db(case.db).table('votes').get(vote_id).run(connection)
        r.db(case.db).table('bigchain').get(block_id).update({'signature': 'forged'}).run(connection)
        r.db(case.db).table('votes').get(vote_id).delete().run(connection)
    follower.wait(lambda status: len(status['recent_alarms']) == 2, 'two alarms')
    prometheus = metrics.read_text()

    acked = case.settle()

    contents = case.check(acked)
    alarms = sorted((alarm['op'], alarm['table'].split('.')[1], alarm['key']) for alarm in contents.alarms)
    assert alarms == [('delete', 'votes', vote_id), ('update', 'bigchain', block_id)]
    update = [alarm for alarm in contents.alarms if alarm['op'] == 'update'][0]
    assert (update['old'], update['new']['signature']) == (original_block, 'forged')
    assert [alarm['old'] for alarm in contents.alarms if alarm['op'] == 'delete'] == [original_vote]
    assert 'rethinkdb_follower_alarms_total{cluster="rethinkdb",table="%s.bigchain",op="update"} 1' % case.db in prometheus
    assert 'rethinkdb_follower_alarms_total{cluster="rethinkdb",table="%s.votes",op="delete"} 1' % case.db in prometheus
    with case.cluster.connect() as connection:
        restored = r.db(case.db + '_restored')
        assert restored.table('bigchain').get(block_id).run(connection) == original_block
        assert restored.table('votes').get(vote_id).run(connection) == original_vote
    wait_for(lambda: 'ALARM update' in follower.log() and 'ALARM delete' in follower.log())
