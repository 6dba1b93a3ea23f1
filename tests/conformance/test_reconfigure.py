"""reconfigure(): result shapes, dry runs, replica counts and tags, and the real error texts; wait() timeouts."""

from __future__ import annotations

import pytest
from rethinkdb.errors import ReqlOpFailedError, ReqlQueryLogicError


@pytest.fixture
def table(r, conn, db):
    """A one-replica table with a few documents."""
    r.db(db).table_create('votes').run(conn)
    handle = r.db(db).table('votes')
    handle.insert([{'id': n} for n in range(20)]).run(conn)
    return handle


def replicas_of(config: dict) -> list:
    return sorted(config['shards'][0]['replicas'])


def test_replicas_one_three_two(r, conn, table):
    grown = table.reconfigure(shards=1, replicas=3).run(conn)
    assert set(grown) == {'config_changes', 'reconfigured', 'status_changes'}
    assert grown['reconfigured'] == 1
    change = grown['config_changes'][0]
    assert len(change['old_val']['shards'][0]['replicas']) == 1
    assert replicas_of(change['new_val']) == ['node1', 'node2', 'node3']
    assert set(grown['status_changes'][0]) == {'old_val', 'new_val'}
    assert table.wait(wait_for='all_replicas_ready', timeout=60).run(conn) == {'ready': 1}
    status = table.status().run(conn)
    assert sorted(replica['server'] for replica in status['shards'][0]['replicas']) == ['node1', 'node2', 'node3']
    assert {replica['state'] for replica in status['shards'][0]['replicas']} == {'ready'}
    assert table.count().run(conn, read_mode='outdated') == 20

    shrunk = table.reconfigure(shards=1, replicas=2).run(conn)
    assert shrunk['reconfigured'] == 1
    assert len(replicas_of(shrunk['config_changes'][0]['new_val'])) == 2
    table.wait(timeout=60).run(conn)
    assert len(table.config()['shards'][0]['replicas'].run(conn)) == 2
    assert table.count().run(conn) == 20


def test_dry_run_changes_nothing(r, conn, table):
    before = table.config().run(conn)
    result = table.reconfigure(shards=1, replicas=3, dry_run=True).run(conn)
    assert set(result) == {'config_changes', 'reconfigured'}
    assert result['reconfigured'] == 0
    assert result['config_changes'][0]['old_val'] == before
    assert replicas_of(result['config_changes'][0]['new_val']) == ['node1', 'node2', 'node3']
    assert table.config().run(conn) == before


def test_more_shards_for_empty_and_small_tables(r, conn, db, table):
    r.db(db).table_create('backlog').run(conn)
    empty = r.db(db).table('backlog')
    planned = empty.reconfigure(shards=2, replicas=3, dry_run=True).run(conn)
    assert [len(shard['replicas']) for shard in planned['config_changes'][0]['new_val']['shards']] == [3, 3]
    assert len(empty.config()['shards'].run(conn)) == 1
    assert empty.reconfigure(shards=2, replicas=1).run(conn)['reconfigured'] == 1
    assert table.reconfigure(shards=3, replicas=1).run(conn)['reconfigured'] == 1
    assert r.db(db).wait(timeout=60).run(conn) == {'ready': 2}
    assert empty.rebalance().run(conn)['rebalanced'] == 0
    assert len(empty.status()['shards'].run(conn)) == 2
    assert table.count().run(conn) == 20
    assert sorted(table['id'].coerce_to('array').run(conn)) == list(range(20))


def test_replicas_by_tag_with_primary_tag(r, conn, table):
    result = table.reconfigure(shards=1, replicas={'alpha': 1, 'beta': 2}, primary_replica_tag='alpha').run(conn)
    new = result['config_changes'][0]['new_val']['shards'][0]
    assert new['primary_replica'] == 'node1'
    assert sorted(new['replicas']) == ['node1', 'node2', 'node3']
    table.wait(timeout=60).run(conn)


def test_too_many_replicas(r, conn, table):
    with pytest.raises(ReqlOpFailedError) as raised:
        table.reconfigure(shards=1, replicas=5).run(conn)
    assert raised.value.message == (
        'Can\'t put 5 replicas on servers with the tag `default` because there are only 3 servers with the tag '
        '`default`. It\'s impossible to have more replicas of the data than there are servers.')


def test_tag_no_server_has(r, conn, table):
    with pytest.raises(ReqlOpFailedError) as raised:
        table.reconfigure(shards=1, replicas={'gamma': 1}, primary_replica_tag='gamma').run(conn)
    assert raised.value.message == 'Could not find any servers with server tag `gamma`.'


def test_zero_replicas(r, conn, table):
    with pytest.raises(ReqlOpFailedError) as raised:
        table.reconfigure(shards=1, replicas=0).run(conn)
    assert raised.value.message == (
        'You must set `replicas` to at least one. `replicas` includes the primary replica; if there are zero '
        'replicas, there is nowhere to put the data.')


def test_missing_arguments_and_tables(r, conn, db, table):
    with pytest.raises(ReqlQueryLogicError) as raised:
        table.reconfigure(replicas=1).run(conn)
    assert raised.value.message == 'Missing required argument `shards`.'
    with pytest.raises(ReqlOpFailedError) as raised:
        r.db(db).table('absent').reconfigure(shards=1, replicas=1).run(conn)
    assert raised.value.message == 'Table `%s.absent` does not exist.' % db


def test_table_config_update_moves_the_primary(r, conn, table):
    result = table.config().update({'shards': [{'primary_replica': 'node3', 'replicas': ['node3']}]}).run(conn)
    assert result['replaced'] == 1
    table.wait(timeout=60).run(conn)
    assert table.config()['shards'][0].run(conn) == {'nonvoting_replicas': [], 'primary_replica': 'node3',
                                                     'replicas': ['node3']}
    assert table.status()['shards'][0]['primary_replicas'].run(conn) == ['node3']
    assert table.count().run(conn) == 20


def test_wait_returns_ready_count(r, conn, db, table):
    assert table.wait().run(conn) == {'ready': 1}
    assert r.db(db).wait(wait_for='ready_for_writes').run(conn) == {'ready': 1}
    with pytest.raises(ReqlQueryLogicError) as raised:
        table.wait(wait_for='soon').run(conn)
    assert raised.value.message.startswith("Unknown table readiness state: 'soon', must be one of")
