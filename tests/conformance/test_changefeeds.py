"""Changefeeds: what a follower of a table reads (states, initial values, change types, squashing, the queue limit),
the cursor on the wire (response types and notes, CONTINUE waiting for changes, STOP), and how feeds end when
servers go away or the table is reconfigured."""

from __future__ import annotations

import json
import struct
import time

import pytest
from rethinkdb.ast import ReQLEncoder
from rethinkdb.errors import ReqlDriverError, ReqlOpFailedError, ReqlQueryLogicError, ReqlTimeoutError

from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import wait_for

START, CONTINUE, STOP = 1, 2, 3
SUCCESS_ATOM, SUCCESS_SEQUENCE, SUCCESS_PARTIAL = 1, 2, 3
SEQUENCE_FEED, ATOM_FEED, INCLUDES_STATES = 1, 2, 5
ABORTED = 'Changefeed aborted (unavailable).'


class Wire:
    """Raw queries and responses on a fresh driver connection's socket, to see response types and notes, and to
    leave a feed unread while writes arrive (the driver asks for the next batch by itself)."""

    def __init__(self, connection):
        self.connection = connection
        self.socket = connection._instance._socket  # pylint: disable=protected-access

    def send(self, token: int, message: list) -> None:
        payload = ReQLEncoder().encode(message).encode('utf-8')
        self.socket.sendall(struct.pack('<qL', token, len(payload)) + payload)

    def start(self, token: int, query) -> None:
        self.send(token, [START, query, {}])

    def receive(self, timeout: float = 30.0) -> tuple:
        deadline = time.time() + timeout
        token, length = struct.unpack('<qL', self.socket.recvall(12, deadline))
        return token, json.loads(self.socket.recvall(length, deadline).decode('utf-8'))


@pytest.fixture
def events(r, conn, db):
    """Table `events` with three rows."""
    r.db(db).table_create('events').run(conn)
    table = r.db(db).table('events')
    table.insert([{'id': 1, 'n': 1}, {'id': 2, 'n': 2}, {'id': 3, 'n': 3}]).run(conn)
    return table


@pytest.fixture
def on_node1(r, conn, events):
    """`events` with its one replica on node1, the server the tests query: the changes a test reads at once
    are all there when its writes have returned."""
    events.config().update({'shards': [{'primary_replica': 'node1', 'replicas': ['node1']}]}).run(conn)
    events.wait(timeout=60).run(conn)
    return events


@pytest.fixture
def wire(cluster):
    """A connection to node1 used through its socket."""
    connection = cluster.connect('node1')
    yield Wire(connection)
    connection.close(noreply_wait=False)


def test_changes_of_a_table_in_order(r, conn, events):
    with events.changes().run(conn) as feed:
        events.insert({'id': 4, 'n': 4}).run(conn)
        events.get(1).update({'n': 10}).run(conn)
        events.get(2).delete().run(conn)
        events.get(3).update({'n': 3}).run(conn)
        events.get(3).replace({'id': 3, 'n': 30}).run(conn)
        assert [next(feed) for _change in range(4)] == [
            {'new_val': {'id': 4, 'n': 4}, 'old_val': None},
            {'new_val': {'id': 1, 'n': 10}, 'old_val': {'id': 1, 'n': 1}},
            {'new_val': None, 'old_val': {'id': 2, 'n': 2}},
            {'new_val': {'id': 3, 'n': 30}, 'old_val': {'id': 3, 'n': 3}},
        ]


def test_initial_values_states_and_types(r, conn, events):
    with events.changes(include_initial=True, include_states=True, include_types=True).run(conn) as feed:
        assert next(feed) == {'state': 'initializing', 'type': 'state'}
        initial = [next(feed) for _row in range(3)]
        assert sorted(initial, key=lambda change: change['new_val']['id']) == [
            {'new_val': {'id': key, 'n': key}, 'type': 'initial'} for key in (1, 2, 3)]
        assert next(feed) == {'state': 'ready', 'type': 'state'}
        events.insert({'id': 4, 'n': 4}).run(conn)
        events.get(4).update({'n': 5}).run(conn)
        events.get(4).delete().run(conn)
        assert [next(feed) for _change in range(3)] == [
            {'new_val': {'id': 4, 'n': 4}, 'old_val': None, 'type': 'add'},
            {'new_val': {'id': 4, 'n': 5}, 'old_val': {'id': 4, 'n': 4}, 'type': 'change'},
            {'new_val': None, 'old_val': {'id': 4, 'n': 5}, 'type': 'remove'},
        ]


def test_states_without_initial_values(r, conn, events):
    with events.changes(include_states=True).run(conn) as feed:
        assert next(feed) == {'state': 'ready'}
        events.get(1).update({'n': 7}).run(conn)
        assert next(feed) == {'new_val': {'id': 1, 'n': 7}, 'old_val': {'id': 1, 'n': 1}}


def test_point_feed(r, conn, events):
    with events.get(2).changes(include_initial=True, include_types=True).run(conn) as feed:
        assert next(feed) == {'new_val': {'id': 2, 'n': 2}, 'type': 'initial'}
        events.get(1).update({'n': 100}).run(conn)
        events.get(2).update({'n': 20}).run(conn)
        assert next(feed) == {'new_val': {'id': 2, 'n': 20}, 'old_val': {'id': 2, 'n': 2}, 'type': 'change'}
    with events.get(9).changes(include_initial=True).run(conn) as feed:
        assert next(feed) == {'new_val': None}
        events.insert({'id': 9}).run(conn)
        assert next(feed) == {'new_val': {'id': 9}, 'old_val': None}


def test_feed_cursor_on_the_wire(r, conn, events, wire):
    """The first response comes at once (SUCCESS_PARTIAL, feed note); a CONTINUE is answered when a change comes;
    STOP ends the feed: the waiting CONTINUE and the STOP are both answered with an empty SUCCESS_SEQUENCE."""
    wire.start(1, events.changes())
    token, first = wire.receive()
    assert (token, first['t'], first['r'], first['n']) == (1, SUCCESS_PARTIAL, [], [SEQUENCE_FEED])
    wire.send(1, [CONTINUE])
    with pytest.raises(ReqlTimeoutError):
        wire.receive(timeout=0.5)
    events.get(1).update({'n': 11}).run(conn)
    token, batch = wire.receive()
    assert (token, batch['t'], batch['n']) == (1, SUCCESS_PARTIAL, [SEQUENCE_FEED])
    assert batch['r'] == [{'new_val': {'id': 1, 'n': 11}, 'old_val': {'id': 1, 'n': 1}}]
    wire.send(1, [CONTINUE])
    wire.send(1, [STOP])
    answers = [wire.receive(), wire.receive()]
    assert [(token, answer['t'], answer['r']) for token, answer in answers] == [(1, SUCCESS_SEQUENCE, [])] * 2

    wire.start(2, events.get(1).changes(include_states=True))
    token, first = wire.receive()
    assert (token, first['t'], first['n']) == (2, SUCCESS_PARTIAL, [ATOM_FEED, INCLUDES_STATES])
    assert first['r'] == [{'state': 'ready'}]
    wire.send(2, [STOP])
    assert wire.receive()[1]['t'] == SUCCESS_SEQUENCE


def test_squash_merges_the_changes_of_a_key(r, conn, on_node1, wire):
    events = on_node1
    wire.start(1, events.changes(squash=True))
    assert wire.receive()[1]['t'] == SUCCESS_PARTIAL
    events.get(1).update({'n': 5}).run(conn)
    events.get(1).update({'n': 6}).run(conn)
    events.get(2).delete().run(conn)
    events.insert({'id': 2, 'n': 2}).run(conn)
    events.insert({'id': 8}).run(conn)
    wire.send(1, [CONTINUE])
    _token, batch = wire.receive()
    assert batch['r'] == [{'new_val': {'id': 1, 'n': 6}, 'old_val': {'id': 1, 'n': 1}},
                          {'new_val': {'id': 8}, 'old_val': None}]
    wire.send(1, [STOP])
    wire.receive()


def test_queue_overflow_skips_changes(r, conn, on_node1, wire):
    """Past `changefeed_queue_size` unread changes the queue is dropped; the reader gets one error document
    counting them, then the changes that came after."""
    events = on_node1
    wire.start(1, events.changes(changefeed_queue_size=5))
    assert wire.receive()[1]['t'] == SUCCESS_PARTIAL
    for key in range(10, 20):
        events.insert({'id': key}).run(conn)
    wire.send(1, [CONTINUE])
    _token, batch = wire.receive()
    assert batch['t'] == SUCCESS_PARTIAL
    assert batch['r'] == [{'error': 'Changefeed cache over array size limit, skipped 6 elements.'}]
    wire.send(1, [CONTINUE])
    _token, batch = wire.receive()
    assert batch['r'] == [{'new_val': {'id': key}, 'old_val': None} for key in range(16, 20)]
    wire.send(1, [STOP])
    wire.receive()


def test_optional_argument_errors(r, conn, events):
    with pytest.raises(ReqlQueryLogicError) as raised:
        events.changes(squash='soon').run(conn)
    assert raised.value.message == 'Expected BOOL or NUMBER but found STRING.'
    with pytest.raises(ReqlQueryLogicError) as raised:
        events.changes(squash=-1).run(conn)
    assert raised.value.message == 'Expected BOOL or a positive NUMBER but found a negative NUMBER.'
    with pytest.raises(ReqlQueryLogicError) as raised:
        events.changes(changefeed_queue_size=0).run(conn)
    assert raised.value.message == 'Illegal changefeed queue size `0`.  (Must be >= 1.)'


def test_feed_aborts_when_the_tables_server_stops(r, cluster, conn, db):
    r.db(db).table_create('remote').run(conn)
    table = r.db(db).table('remote')
    table.config().update({'shards': [{'primary_replica': 'node3', 'replicas': ['node3']}]}).run(conn)
    table.wait(timeout=60).run(conn)
    try:
        with table.changes().run(conn) as feed:
            table.insert({'id': 1}).run(conn)
            assert next(feed) == {'new_val': {'id': 1}, 'old_val': None}
            cluster.stop_node('node3')
            with pytest.raises(ReqlOpFailedError) as raised:
                feed.next(wait=60)
            assert raised.value.message == ABORTED
    finally:
        cluster.start_node('node3')
        table.wait(timeout=60).run(conn)


def test_feed_ends_when_its_server_stops(r, cluster, conn, events):
    connection = cluster.connect('node2')
    try:
        feed = events.changes().run(connection)
        events.insert({'id': 5}).run(conn)
        assert next(feed) == {'new_val': {'id': 5}, 'old_val': None}
        cluster.stop_node('node2')
        with pytest.raises(ReqlDriverError):
            feed.next(wait=60)
    finally:
        cluster.start_node('node2')
        connection.close(noreply_wait=False)
    wait_for(lambda: r.db('rethinkdb').table('server_status').count().run(conn) == 3)


def test_subscribing_needs_the_primaries(r, cluster, conn, db):
    r.db(db).table_create('remote').run(conn)
    table = r.db(db).table('remote')
    table.config().update({'shards': [{'primary_replica': 'node3', 'replicas': ['node3']}]}).run(conn)
    table.wait(timeout=60).run(conn)
    cluster.stop_node('node3')
    try:
        wait_for(lambda: r.db('rethinkdb').table('server_status').count().run(conn) == 2)
        with pytest.raises(ReqlOpFailedError) as raised:
            table.changes().run(conn)
        assert raised.value.message == ('cannot subscribe to table `%s.remote`: primary replica for shard '
                                        '["", +inf) not available' % db)
    finally:
        cluster.start_node('node3')
        table.wait(timeout=60).run(conn)


def test_feed_survives_more_replicas(r, conn, on_node1):
    with on_node1.changes().run(conn) as feed:
        on_node1.config().update(
            {'shards': [{'primary_replica': 'node1', 'replicas': ['node1', 'node2', 'node3']}]}).run(conn)
        on_node1.wait(timeout=60).run(conn)
        on_node1.get(1).update({'n': 12}).run(conn)
        assert feed.next(wait=60) == {'new_val': {'id': 1, 'n': 12}, 'old_val': {'id': 1, 'n': 1}}


def test_feed_aborts_on_a_reshard(r, conn, on_node1):
    with on_node1.changes().run(conn) as feed:
        assert on_node1.reconfigure(shards=2, replicas=1).run(conn)['reconfigured'] == 1
        on_node1.wait(timeout=60).run(conn)
        with pytest.raises(ReqlOpFailedError) as raised:
            feed.next(wait=60)
        assert raised.value.message == ABORTED


def test_feed_aborts_when_the_primary_moves(r, conn, on_node1):
    with on_node1.changes().run(conn) as feed:
        on_node1.config().update({'shards': [{'primary_replica': 'node2', 'replicas': ['node1', 'node2']}]}).run(conn)
        on_node1.wait(timeout=60).run(conn)
        with pytest.raises(ReqlOpFailedError) as raised:
            feed.next(wait=60)
        assert raised.value.message == ABORTED


def test_feed_aborts_when_the_table_is_dropped(r, conn, db, events):
    with events.changes().run(conn) as feed:
        r.db(db).table_drop('events').run(conn)
        with pytest.raises(ReqlOpFailedError) as raised:
            feed.next(wait=60)
        assert raised.value.message == ABORTED
