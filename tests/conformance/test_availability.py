"""A stopped server: replica states, readiness, current_issues, failing writes, wait timeouts, and catching up."""

from __future__ import annotations

import threading
import time

import pytest
from rethinkdb.errors import ReqlError, ReqlInternalError, ReqlOpFailedError

from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import wait_for


@pytest.fixture
def node3_down(r, cluster, conn, db):
    """Table `alone` only on node3 and table `spread` on all three; node3 stopped during the test."""
    r.db(db).table_create('alone').run(conn)
    r.db(db).table('alone').config().update({'shards': [{'primary_replica': 'node3', 'replicas': ['node3']}]}).run(conn)
    r.db(db).table_create('spread').run(conn)
    r.db(db).table('spread').config().update(
        {'shards': [{'primary_replica': 'node1', 'replicas': ['node1', 'node2', 'node3']}]}).run(conn)
    r.db(db).wait(timeout=60).run(conn)
    r.db(db).table('alone').insert([{'id': n} for n in range(10)]).run(conn)
    r.db(db).table('spread').insert([{'id': n} for n in range(10)]).run(conn)
    cluster.stop_node('node3')
    wait_for(lambda: r.db('rethinkdb').table('server_status').count().run(conn) == 2)
    yield db
    cluster.start_node('node3')
    r.db(db).wait(timeout=60).run(conn)


def _states(status: dict) -> dict:
    return {replica['server']: replica['state'] for replica in status['shards'][0]['replicas']}


def test_table_status_of_stopped_replicas(r, conn, node3_down):
    db = node3_down

    def disconnected():
        status = r.db(db).table('spread').status().run(conn)
        return status if _states(status).get('node3') == 'disconnected' else None
    spread = wait_for(disconnected)
    assert _states(spread) == {'node1': 'ready', 'node2': 'ready', 'node3': 'disconnected'}
    assert spread['shards'][0]['primary_replicas'] == ['node1']
    assert spread['status'] == {'all_replicas_ready': False, 'ready_for_outdated_reads': True,
                                'ready_for_reads': True, 'ready_for_writes': True}
    alone = r.db(db).table('alone').status().run(conn)
    assert alone['status'] == {'all_replicas_ready': False, 'ready_for_outdated_reads': False,
                               'ready_for_reads': False, 'ready_for_writes': False}


def test_current_issues_report_the_tables(r, conn, node3_down):
    db = node3_down

    def issues():
        rows = list(r.db('rethinkdb').table('current_issues').filter({'type': 'table_availability'}).run(conn))
        return {row['info']['table']: row for row in rows if row['info']['db'] == db} if len(rows) >= 2 else None
    by_table = wait_for(issues)
    spread = by_table['spread']
    assert set(spread) == {'critical', 'description', 'id', 'info', 'type'}
    assert spread['critical'] is False
    assert spread['description'] == ('Table `%s.spread` is available for all operations, but some replicas are not '
                                     'ready. The following servers are not reachable: node3' % db)
    assert spread['info']['status']['ready_for_writes'] is True
    alone = by_table['alone']
    assert alone['critical'] is True
    assert alone['description'] == ('Table `%s.alone` is not available for any operations. No servers are reachable '
                                    'for this table.' % db)


def test_writes_to_an_unreachable_table_fail(r, conn, node3_down):
    db = node3_down
    with pytest.raises(ReqlInternalError) as raised:
        r.db(db).table('alone').insert({'id': 100}).run(conn)
    assert raised.value.message == (
        'Unexpected exception: The attempt to read or modify the table\'s configuration failed because none of the '
        'servers were accessible.  If it was an attempt to modify, the modification did not take place.')
    with pytest.raises(ReqlOpFailedError) as raised:
        r.db(db).table('alone').get(1).run(conn)
    assert raised.value.message == 'Cannot perform read: primary replica for shard ["", +inf) not available'
    assert r.db(db).table('spread').insert({'id': 100}).run(conn)['inserted'] == 1


def test_wait_times_out(r, conn, node3_down):
    db = node3_down
    with pytest.raises(ReqlOpFailedError) as raised:
        r.db(db).table('alone').wait(timeout=1).run(conn)
    assert raised.value.message == 'Timed out while waiting for tables.'
    assert r.db(db).table('spread').wait(wait_for='ready_for_writes', timeout=10).run(conn) == {'ready': 1}


def test_table_config_of_unreachable_table(r, conn, node3_down):
    db = node3_down
    row = r.db('rethinkdb').table('table_config').filter({'db': db, 'name': 'alone'}).nth(0).run(conn)
    assert row['error'] == 'None of the replicas for this table are accessible.'
    assert set(row) == {'db', 'error', 'id', 'name'}


def test_restarted_replica_catches_up(r, cluster, conn, db):
    r.db(db).table_create('catchup').run(conn)
    table = r.db(db).table('catchup')
    table.config().update({'shards': [{'primary_replica': 'node1', 'replicas': ['node1', 'node2', 'node3']}]}).run(conn)
    table.wait(timeout=60).run(conn)
    table.insert([{'id': n, 'phase': 'before'} for n in range(50)]).run(conn)
    cluster.stop_node('node2')
    table.insert([{'id': n, 'phase': 'while away'} for n in range(50, 120)]).run(conn)
    table.get(0).delete().run(conn)
    cluster.start_node('node2')
    assert table.wait(timeout=60).run(conn) == {'ready': 1}
    with cluster.connect('node2') as connection:
        assert table.count().run(connection, read_mode='outdated') == 119
        assert table.get(0).run(connection, read_mode='outdated') is None
        assert table.get(100)['phase'].run(connection, read_mode='outdated') == 'while away'


def test_writes_acknowledged_while_the_primary_restarts_are_on_it_once_back(r, cluster, conn, db):
    """The configured primary stops and starts three times under a steady writer: every write acknowledged meanwhile
    (by the voters that took over) is in its copy once it is back, whichever server it reached first."""
    r.db(db).table_create('handback').run(conn)
    table = r.db(db).table('handback')
    table.config().update({'shards': [{'primary_replica': 'node2', 'replicas': ['node1', 'node2', 'node3']}]}).run(conn)
    table.wait(timeout=60).run(conn)
    acknowledged = []
    stop = threading.Event()

    def write():
        with cluster.connect('node1') as connection:
            number = 0
            while not stop.is_set():
                number += 1
                try:
                    if table.insert({'id': number}).run(connection)['inserted'] == 1:
                        acknowledged.append(number)
                except ReqlError:
                    time.sleep(0.05)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        for _round in range(3):
            time.sleep(0.5)
            cluster.stop_node('node2')
            time.sleep(1)
            cluster.start_node('node2')
            table.wait(timeout=60).run(conn)
    finally:
        stop.set()
        writer.join()
    assert len(acknowledged) > 30

    def missing_on_node2() -> set:
        with cluster.connect('node2') as connection:
            return set(acknowledged) - set(table.get_field('id').run(connection, read_mode='outdated'))
    deadline = time.monotonic() + 30
    while missing_on_node2() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert missing_on_node2() == set()


def test_indexes_with_a_stopped_replica(r, conn, node3_down):
    db = node3_down
    spread = r.db(db).table('spread')
    assert spread.index_create('id_copy', r.row['id']).run(conn) == {'created': 1}
    waited = spread.index_wait('id_copy').run(conn)
    assert [(status['index'], status['ready']) for status in waited] == [('id_copy', True)]
    assert spread.get_all(3, index='id_copy').count().run(conn) == 1


def test_reconfigure_with_a_stopped_server(r, conn, node3_down):
    """With node3 stopped the placement sees two servers: a reachable table gets the replica-count error (dry run
    or not), a table whose only server is stopped the unreachable error, which comes first."""
    db = node3_down
    too_many = ('Can\'t put 3 replicas on servers with the tag `default` because there are only 2 servers with the '
                'tag `default`. It\'s impossible to have more replicas of the data than there are servers.')
    unreachable = ('The server(s) hosting table `%s.alone` are currently unreachable. The table was not reconfigured. '
                   'If you do not expect the server(s) to recover, you can use `emergency_repair` to restore '
                   'availability of the table. <http://rethinkdb.com/api/javascript/reconfigure/#emergency-repair-mode>'
                   % db)
    for dry_run in (True, False):
        with pytest.raises(ReqlOpFailedError) as raised:
            r.db(db).table('spread').reconfigure(shards=1, replicas=3, dry_run=dry_run).run(conn)
        assert raised.value.message == too_many
        with pytest.raises(ReqlOpFailedError) as raised:
            r.db(db).table('alone').reconfigure(shards=1, replicas=3, dry_run=dry_run).run(conn)
        assert raised.value.message == unreachable
    planned = r.db(db).table('spread').reconfigure(shards=1, replicas=2, dry_run=True).run(conn)
    assert planned['reconfigured'] == 0
    assert sorted(planned['config_changes'][0]['new_val']['shards'][0]['replicas']) == ['node1', 'node2']
