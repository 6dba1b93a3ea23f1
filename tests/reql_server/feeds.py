"""Changefeeds: `table.changes()` and `table.get(key).changes()` as the real 2.4 server has them.

A feed lives on the server its client queries. When it starts it asks the primary replica of each shard of the
table for the changes of that shard's keys (the real feed subscribes to the changefeed servers of the primaries'
copies); from then on each of those servers sends it the old and new row of every write it applies in those ranges
(as primary, or from a primary that has not yet learnt that it took the lead back), in the order it applies them.
The feed keeps what its client has not read in a queue of at most `changefeed_queue_size` changes. When a change
would overflow the queue, the queue is emptied and the client reads `{"error": "Changefeed cache over array size
limit, skipped N elements."}` before the changes that come after. A followed server that goes away, or stops
holding the table, ends the feed with "Changefeed aborted (unavailable)."
"""

from __future__ import annotations

import collections
import threading
import time
import uuid

from . import datum, errors
from .cluster import PeerLost
from .replication import layout
from .routing import shard_name
from .storage import KeyRange
from .values import Sequence

DEFAULT_QUEUE_SIZE = 100000
ABORTED = 'Changefeed aborted (unavailable).'
SEQUENCE_FEED = 1
ATOM_FEED = 2
INCLUDES_STATES = 5
BATCH_ROWS = 1000
WAIT_SLICE = 0.2


class FeedOptions:
    """The optional arguments of `changes()`, checked."""

    def __init__(self, squash=False, include_initial: bool = False, include_states: bool = False,
                 include_types: bool = False, queue_size: int = DEFAULT_QUEUE_SIZE):
        self.squash = squash is not False
        self.squash_seconds = float(squash) if datum.is_number(squash) else 0.0
        self.include_initial = include_initial
        self.include_states = include_states
        self.include_types = include_types
        self.queue_size = queue_size


def check_squash(value):
    """`squash`: a boolean or a number of seconds (the real messages otherwise)."""
    if datum.is_number(value):
        if value < 0:
            raise errors.logic('Expected BOOL or a positive NUMBER but found a negative NUMBER.')
        return value
    if not isinstance(value, bool):
        raise errors.logic('Expected BOOL or NUMBER but found %s.' % datum.type_name(value))
    return value


def check_queue_size(value: int) -> int:
    """`changefeed_queue_size`, as the real server checks limits."""
    if value < 1:
        raise errors.logic('Illegal changefeed queue size `%d`.  (Must be >= 1.)' % value)
    return value


def _typed(doc: dict, kind: str, options: FeedOptions) -> dict:
    if options.include_types:
        doc['type'] = kind
    return doc


def change_doc(old, new, options: FeedOptions) -> dict:
    """What the client reads for one change of a row."""
    kind = 'add' if old is None else 'remove' if new is None else 'change'
    return _typed({'new_val': new, 'old_val': old}, kind, options)


class ChangeQueue:
    """The changes a feed's client has not read yet; with `squash`, one entry per key (first old, last new)."""

    def __init__(self, squash: bool):
        self._squash = squash
        self._entries: collections.OrderedDict = collections.OrderedDict()
        self._serial = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, key: str, old, new) -> None:
        """Queue a change; a squashing queue merges it with the key's queued one, or drops both if they cancel."""
        if not self._squash:
            self._serial += 1
            self._entries[self._serial] = (old, new)
            return
        if key in self._entries:
            old = self._entries.pop(key)[0]
            if (old is None and new is None) or (old is not None and new is not None and datum.equal(old, new)):
                return
        self._entries[key] = (old, new)

    def pop(self) -> tuple:
        """The oldest queued (old, new)."""
        return self._entries.popitem(last=False)[1]

    def clear(self) -> None:
        """Drop every queued change."""
        self._entries.clear()


class Feed(Sequence):
    """One client's feed: its queue, what it sends before the changes (states, initial values), how it ends."""

    kind = 'STREAM'

    def __init__(self, hub: FeedHub, table, options: FeedOptions, point_key=datum.MINVAL):
        self.hub = hub
        self.id = uuid.uuid4().hex
        self.table_id = table.id
        self.options = options
        self.point = point_key is not datum.MINVAL
        self.point_key = point_key
        self.note = ATOM_FEED if self.point else SEQUENCE_FEED
        self.followed: dict = {}
        self.display_name = table.display_name
        self._table = table
        self._changes = ChangeQueue(options.squash)
        self._skipped = 0
        self._error: errors.ReqlError | None = None
        self._closed = False
        self._prelude = None
        self._cond = threading.Condition()

    def notes(self) -> list:
        """The response notes the driver expects of this feed."""
        return [self.note, INCLUDES_STATES] if self.options.include_states else [self.note]

    def key_ranges(self, shard) -> list:
        """The keys of a shard this feed follows (one key for a point feed)."""
        if not self.point:
            return [shard.key_range]
        encoded = datum.encode_key(self.point_key)
        return [KeyRange(encoded, False, encoded, False)] if shard.key_range.contains(encoded) else []

    # -- what the publishers and the hub tell the feed

    def deliver(self, changes: list) -> None:
        """Changes from a followed server: [[key, old, new], ...] in the order it applied them."""
        with self._cond:
            if self._closed or self._error is not None:
                return
            for key, old, new in changes:
                self._changes.add(key, old, new)
                if len(self._changes) > self.options.queue_size:
                    self._skipped += len(self._changes)
                    self._changes.clear()
            self._cond.notify_all()

    def abort(self, error: errors.ReqlError) -> None:
        """End the feed with an error its client reads next."""
        with self._cond:
            if self._error is None and not self._closed:
                self._error = error
            self._cond.notify_all()

    def close(self) -> None:
        """The client stopped the feed (or went away): wake a waiting read, stop following."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self.hub.close(self)

    # -- reading

    def start(self) -> None:
        """Follow the table's primaries, then prepare what comes before the changes."""
        self.hub.open(self)
        self._prelude = self._prelude_batches()

    def _prelude_batches(self):
        options = self.options
        if options.include_initial and options.include_states:
            yield [_typed({'state': 'initializing'}, 'state', options)]
        if options.include_initial:
            if self.point:
                yield [_typed({'new_val': self._table.get(self.point_key)}, 'initial', options)]
            else:
                for rows in self._table.batches():
                    yield [_typed({'new_val': row}, 'initial', options) for row in rows]
        if options.include_states:
            yield [_typed({'state': 'ready'}, 'state', options)]

    def next_batch(self, wait: bool) -> list | None:
        """The next documents for the client: without `wait` what is there now (maybe nothing), else at least one
        (or the error the feed ended with); None once the client stopped the feed."""
        documents = self._take_prelude()
        if documents:
            return documents
        with self._cond:
            if wait:
                self._wait_for_changes()
            if self._closed:
                return None
            if self._error is not None:
                raise self._error
            if self._skipped:
                skipped, self._skipped = self._skipped, 0
                return [{'error': 'Changefeed cache over array size limit, skipped %d elements.' % skipped}]
            while len(self._changes) and len(documents) < BATCH_ROWS:
                old, new = self._changes.pop()
                documents.append(change_doc(old, new, self.options))
        return documents

    def _take_prelude(self) -> list:
        documents: list = []
        while self._prelude is not None and len(documents) < BATCH_ROWS:
            batch = next(self._prelude, None)
            if batch is None:
                self._prelude = None
                break
            documents.extend(batch)
        return documents

    def _wait_for_changes(self) -> None:
        """Wait (holding the condition) until there is something to read; with a squash interval, also let
        changes gather for that long unless the queue is half full."""
        stopping = self.hub.node.stopping

        def ready() -> bool:
            return self._closed or self._error is not None or self._skipped > 0 or len(self._changes) > 0
        while not ready() and not stopping.is_set():
            self._cond.wait(WAIT_SLICE)
        if self.options.squash_seconds > 0 and not (self._closed or self._error is not None):
            deadline = time.monotonic() + self.options.squash_seconds
            while (time.monotonic() < deadline and not stopping.is_set() and not self._closed
                   and len(self._changes) <= self.options.queue_size // 2):
                self._cond.wait(min(WAIT_SLICE, max(0.0, deadline - time.monotonic())))
        if stopping.is_set() and not ready():
            raise errors.op_indeterminate('Server is shutting down.')

    def batches(self):
        raise errors.logic('The ReQL test server serves a changefeed only as the whole query (`changes()` last).')


class FeedHub:
    """A server's side of changefeeds: the feeds of its clients, and the servers following its writes."""

    def __init__(self, node):
        self.node = node
        self._lock = threading.Lock()
        self._feeds: dict = {}
        self._followers: dict = {}

    # -- the subscriber side

    def open(self, feed: Feed) -> None:
        """Register a feed and have the primary of each shard of its table send it the changes of its keys."""
        table = self.node.metadata.get('table/' + feed.table_id)
        if table is None:
            raise errors.op_failed('Table `%s` does not exist.' % feed.display_name)
        ranges_by_server: dict = {}
        for shard in layout(table):
            ranges = feed.key_ranges(shard)
            if not ranges:
                continue
            primary = self.node.replicas.primary_of(feed.table_id, table, shard)
            if primary is None:
                raise errors.op_failed('cannot subscribe to table `%s`: primary replica for shard %s not available'
                                       % (feed.display_name, shard_name(shard)))
            ranges_by_server.setdefault(primary, []).append((shard.key_range, ranges))
        with self._lock:
            self._feeds[feed.id] = feed
        try:
            for server, followed in ranges_by_server.items():
                wire = [[_wire(shard_range), [_wire(item) for item in ranges]] for shard_range, ranges in followed]
                if server == self.node.server_id:
                    self.follow(feed.table_id, server, feed.id, wire)
                else:
                    self.node.mesh.call(server, 'feed_follow', {'table': feed.table_id, 'feed': feed.id,
                                                                'ranges': wire})
                feed.followed[server] = wire
        except PeerLost:
            self.close(feed)
            raise errors.op_failed(ABORTED) from None

    def close(self, feed: Feed) -> None:
        """Forget a feed and tell the servers it followed."""
        with self._lock:
            self._feeds.pop(feed.id, None)
        for server in list(feed.followed):
            if server == self.node.server_id:
                self.unfollow(server, feed.id)
            else:
                self.node.mesh.send(server, {'t': 'feed_unfollow', 'feed': feed.id})

    def on_message(self, peer_id: str, message: dict) -> None:
        """A feed message from a peer: changes for a feed here, the end of one, or a follower leaving."""
        kind = message['t']
        if kind == 'feed_changes':
            self._deliver(message['feed'], message['changes'])
        elif kind == 'feed_stop':
            self._abort_feed(message['feed'])
        elif kind == 'feed_unfollow':
            self.unfollow(peer_id, message['feed'])

    def _deliver(self, feed_id: str, changes: list) -> None:
        with self._lock:
            feed = self._feeds.get(feed_id)
        if feed is not None:
            feed.deliver(changes)

    def _abort_feed(self, feed_id: str) -> None:
        with self._lock:
            feed = self._feeds.get(feed_id)
        if feed is not None:
            feed.abort(errors.op_failed(ABORTED))

    def peer_lost(self, peer_id: str) -> None:
        """A peer went away: the feeds following it end, and it follows nothing here any more."""
        with self._lock:
            feeds = [feed for feed in self._feeds.values() if peer_id in feed.followed]
            for followers in self._followers.values():
                for follower in [follower for follower in followers if follower[0] == peer_id]:
                    del followers[follower]
        for feed in feeds:
            feed.abort(errors.op_failed(ABORTED))

    # -- the publisher side

    def follow(self, table_id: str, subscriber: str, feed_id: str, wire_shards: list) -> bool:
        """A feed (here or on `subscriber`) wants the changes this server applies as primary of these shards
        ([[shard key range, [followed key ranges]]]), for as long as it stays their primary."""
        shards = [(_key_range(shard_range), [_key_range(item) for item in ranges]) for shard_range, ranges in wire_shards]
        with self._lock:
            self._followers.setdefault(table_id, {})[(subscriber, feed_id)] = shards
        return True

    def check_primaries(self) -> None:
        """End the feeds following shards this server no longer leads: the real primary's changefeed server goes
        with its primary role, so a reshard or a move of the primary ends them (a change of replicas does not)."""
        with self._lock:
            followed = {table_id: dict(followers) for table_id, followers in self._followers.items() if followers}
        for table_id, followers in followed.items():
            table = self.node.metadata.get('table/' + table_id)
            if table is None:
                continue
            current = {_range_key(shard.key_range): shard for shard in layout(table)}
            for follower, shards in followers.items():
                if not all(self._still_primary(table_id, table, current.get(_range_key(shard_range)))
                           for shard_range, _ranges in shards):
                    self._stop_follower(table_id, follower)

    def _still_primary(self, table_id: str, table: dict, shard) -> bool:
        if shard is None:
            return False
        primary = self.node.replicas.primary_of(table_id, table, shard)
        return primary in (None, self.node.server_id)

    def _stop_follower(self, table_id: str, follower: tuple) -> None:
        with self._lock:
            self._followers.get(table_id, {}).pop(follower, None)
        subscriber, feed_id = follower
        if subscriber == self.node.server_id:
            self._abort_feed(feed_id)
        else:
            self.node.mesh.send(subscriber, {'t': 'feed_stop', 'feed': feed_id})

    def unfollow(self, subscriber: str, feed_id: str) -> None:
        """Stop sending a feed changes."""
        with self._lock:
            for followers in self._followers.values():
                followers.pop((subscriber, feed_id), None)

    def followed(self, table_id: str) -> bool:
        """Whether feeds follow this server's changes of a table."""
        with self._lock:
            return bool(self._followers.get(table_id))

    def publish(self, table_id: str, changes: list) -> None:
        """Send the changes this server just applied, [(key, old, new)], to the feeds following their keys (called
        under the table's write lock, so in the order they were applied)."""
        with self._lock:
            followers = list(self._followers.get(table_id, {}).items())
        for (subscriber, feed_id), shards in followers:
            ranges = [key_range for _shard_range, shard_ranges in shards for key_range in shard_ranges]
            wanted = [[key.hex(), old, new] for key, old, new in changes
                      if any(key_range.contains(key) for key_range in ranges)]
            if not wanted:
                continue
            if subscriber == self.node.server_id:
                self._deliver(feed_id, wanted)
            else:
                self.node.mesh.send(subscriber, {'t': 'feed_changes', 'feed': feed_id, 'changes': wanted})

    def table_gone(self, table_id: str) -> None:
        """This server no longer holds the table: the feeds following it here end."""
        with self._lock:
            followers = list(self._followers.get(table_id, {}))
        for follower in followers:
            self._stop_follower(table_id, follower)


def _wire(key_range: KeyRange) -> list:
    return [_hex(key_range.lower), key_range.lower_open, _hex(key_range.upper), key_range.upper_open]


def _key_range(wire: list) -> KeyRange:
    lower, lower_open, upper, upper_open = wire
    return KeyRange(None if lower is None else bytes.fromhex(lower), lower_open,
                    None if upper is None else bytes.fromhex(upper), upper_open)


def _range_key(key_range: KeyRange) -> tuple:
    return (key_range.lower, key_range.lower_open, key_range.upper, key_range.upper_open)


def _hex(key: bytes | None):
    return None if key is None else key.hex()
