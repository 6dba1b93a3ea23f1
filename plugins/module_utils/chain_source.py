# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster side of continuous backup: connections, the catch-up that closes a gap, and the feeds.

A feed alone loses data (no resume token, rethinkdb/rethinkdb#3471; changes past its queue are dropped; it dies
with its connection or its table's primaries), so every gap is closed by a catch-up that does not trust the feed:
a diff of the table's primary keys against the keys the chain holds (only keys cross the wire), run after a new
feed has said it is ready, so that a write is either among the keys the diff reads or in the new feed.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
import traceback
from typing import Callable, NamedTuple

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_format import key_text

try:
    from rethinkdb import RethinkDB
    from rethinkdb.errors import ReqlError, ReqlTimeoutError
except ImportError:
    RETHINKDB_IMPORT_ERROR: str | None = traceback.format_exc()

    class ReqlError(Exception):  # type: ignore[no-redef]
        """Stands in for the driver's base error so that except clauses still compile."""

    class ReqlTimeoutError(ReqlError):  # type: ignore[no-redef]
        """Stands in for the driver's timeout."""
else:
    RETHINKDB_IMPORT_ERROR = None

# Documents as stored: times and binaries as their JSON pseudo-types, so that they go back unchanged.
RAW = {'time_format': 'raw', 'binary_format': 'raw'}
KEY_BATCH = 1000
FETCH_BATCH = 1000
OVERFLOW_RE = re.compile(r'Changefeed cache over array size limit, skipped (\d+) elements')
VERSION_RE = re.compile(r'rethinkdb (\d+\.\d+\.\d+)')


class SourceError(Exception):
    """The cluster cannot be reached or read; the message says what to fix."""


class Login(NamedTuple):
    """Where and how to log in to one server (the password itself, read from its file, never logged)."""

    host: str
    port: int
    user: str
    password: str
    tls_ca_file: str | None
    timeout: float

    def describe(self) -> str:
        return '%s:%d' % (self.host, self.port)


def connect(login: Login):
    """(r, connection) to one server; SourceError naming it when it cannot be reached."""
    if RETHINKDB_IMPORT_ERROR is not None:
        raise SourceError('the Python library rethinkdb is required on this host: install it (pip install rethinkdb)')
    r = RethinkDB()
    options = dict(host=login.host, port=login.port, user=login.user, password=login.password, timeout=login.timeout)
    if login.tls_ca_file:
        options['ssl'] = {'ca_certs': login.tls_ca_file}
    try:
        return r, r.connect(**options)
    except (ReqlError, OSError) as exc:
        raise SourceError('cannot connect to RethinkDB at %s as %s: %s' % (login.describe(), login.user, one_line(exc))) from None


def one_line(exc: BaseException) -> str:
    message = getattr(exc, 'message', None) or str(exc) or type(exc).__name__
    return ' '.join(str(message).split())[:300]


def close_quietly(connection) -> None:
    """Close a connection whose server may be gone (the driver's close() raises then)."""
    try:
        connection.close(noreply_wait=False)
    except (ReqlError, OSError):
        return


def table_query(r, table: dict):
    return r.db(table['db']).table(table['name'])


# --- what a manifest records of the cluster ------------------------------------------------------------------

def cluster_facts(r, connection, names: list) -> dict:
    """The facts a backup set's manifest records (version, servers, the tables' layout, issues), in the shape the
    info module returns them, for a base that the follower takes itself."""
    def rows(table: str) -> list:
        return list(r.db('rethinkdb').table(table).run(connection, **RAW))

    configs = dict(('%s.%s' % (row['db'], row['name']), row) for row in rows('table_config'))
    statuses = dict((row['id'], row) for row in rows('table_status'))
    missing = [name for name in names if name not in configs]
    if missing:
        raise SourceError('table %s does not exist on the cluster' % ', '.join(missing))
    tags = dict((row['id'], row.get('tags', [])) for row in rows('server_config'))
    server_status = rows('server_status')
    version_string = server_status[0]['process']['version'] if server_status else ''
    version = VERSION_RE.search(version_string)
    tables = {}
    for name in names:
        config, status = configs[name], statuses.get(configs[name]['id'], {})
        shards = config.get('shards') or []
        tables[name] = dict(db=config['db'], name=config['name'], id=config['id'], primary_key=config['primary_key'],
                            shards=len(shards), replicas=min(len(shard['replicas']) for shard in shards) if shards else 0,
                            primary_replicas=[shard['primary_replica'] for shard in shards], indexes=sorted(config.get('indexes', [])),
                            config=config, status=status)
    return dict(version=version.group(1) if version else version_string, version_string=version_string,
                servers=sorted((dict(name=row['name'], id=row['id'], tags=tags.get(row['id'], [])) for row in server_status),
                               key=lambda server: server['name']),
                tables=tables, issues=rows('current_issues'))


# --- the catch-up --------------------------------------------------------------------------------------------

class CatchUp(NamedTuple):
    """What one catch-up of a table did: keys read, documents found that the chain lacked, documents the chain
    holds that are gone, and how long it took."""

    keys: int
    found: int
    missing: int
    seconds: float


def catch_up(r, connection, table: dict, writer, make_room: Callable[[], None], monotonic: Callable[[], float] = time.monotonic) -> CatchUp:
    """Close a gap of one table: read every primary key the table has (in batches, keys only), fetch the documents
    whose keys the chain holds neither sealed nor in its open segment, and raise a `missing` alarm for every key
    the chain holds that the table no longer has. make_room() is called whenever the open segment is full (it
    seals it, waiting for the repository if it must), so memory stays bounded whatever the gap."""
    started = monotonic()
    name = '%s.%s' % (table['db'], table['name'])
    index = writer.index
    index.begin_scan()
    keys = found = missing = 0
    try:
        cursor = table_query(r, table).get_field(table['primary_key']).run(connection, max_batch_rows=KEY_BATCH, **RAW)
        batch = []
        for key in cursor:
            batch.append(key)
            if len(batch) >= KEY_BATCH:
                found += _take_batch(r, connection, table, name, batch, writer, make_room, monotonic)
                keys += len(batch)
                batch = []
        found += _take_batch(r, connection, table, name, batch, writer, make_room, monotonic)
        keys += len(batch)
        for text in index.unseen(name):
            writer.add_alarm(name, 'missing', json.loads(text), 'catchup', monotonic())
            missing += 1
            if writer.full():
                make_room()
    except ReqlError as exc:
        raise SourceError('the catch-up of %s failed: %s' % (name, one_line(exc))) from None
    return CatchUp(keys, found, missing, round(monotonic() - started, 3))


def _take_batch(r, connection, table: dict, name: str, keys: list, writer, make_room: Callable[[], None], monotonic) -> int:
    """Note a batch of the table's keys as seen, and take in the documents of those the chain lacks."""
    if not keys:
        return 0
    texts = [key_text(key) for key in keys]
    writer.index.saw(texts)
    held = writer.holds(name, texts)
    lacking = [key for key, text in zip(keys, texts) if text not in held]
    taken = 0
    for start in range(0, len(lacking), FETCH_BATCH):
        documents = table_query(r, table).get_all(*lacking[start:start + FETCH_BATCH]).run(connection, **RAW)
        for document in documents:
            if writer.add_document(name, document[table['primary_key']], document, 'catchup', monotonic(), lacking=True) == 'inserted':
                taken += 1
            if writer.full():
                make_room()
    return taken


# --- feeds ---------------------------------------------------------------------------------------------------

class FeedReader(threading.Thread):
    """Follows one table and hands what it reads to the follower's queue, as events:

      ('ready', table, None)            a new feed is live: everything written from now on comes through it
      ('change', table, change)         a change, as the feed gave it (include_types)
      ('gap', table, reason)            the feed stopped (an error, a dropped-changes error, the connection,
                                        a server that stopped answering): a catch-up must close it

    After a gap it opens a new feed at once (trying each server in turn, backing off while none answers). The
    queue is bounded: when the follower cannot keep up, put() waits, the server's queue for the feed fills, and the
    server drops changes and says so, which is a gap like any other."""

    def __init__(self, logins: list, table: dict, events: queue.Queue, stop: threading.Event, queue_size: int,
                 liveness_seconds: float = 10.0):
        super().__init__(name='feed-%s.%s' % (table['db'], table['name']), daemon=True)
        self.logins = logins
        self.table = table
        self.full_name = '%s.%s' % (table['db'], table['name'])
        self.events = events
        self.stop_event = stop
        self.queue_size = queue_size
        self.liveness_seconds = liveness_seconds
        self.server = None

    def put(self, event: tuple) -> None:
        while not self.stop_event.is_set():
            try:
                self.events.put(event, timeout=0.2)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        attempt = 0
        while not self.stop_event.is_set():
            login = self.logins[attempt % len(self.logins)]
            reason = self._follow(login)
            if self.stop_event.is_set():
                return
            self.put(('gap', self.full_name, reason))
            attempt += 1
            if attempt % len(self.logins) == 0:
                self.stop_event.wait(min(5.0, 0.5 * (attempt // len(self.logins))))

    def _follow(self, login: Login) -> str:
        """Follow the table through one server until the feed stops; returns why it stopped."""
        try:
            r, connection = connect(login)
        except SourceError as exc:
            return str(exc)
        self.server = login.describe()
        try:
            feed = table_query(r, self.table).changes(include_initial=False, include_states=True, include_types=True,
                                                      changefeed_queue_size=self.queue_size).run(connection, **RAW)
            return self._read(feed, login)
        except (ReqlError, OSError) as exc:
            return 'the feed through %s ended: %s' % (login.describe(), one_line(exc))
        finally:
            close_quietly(connection)

    def _read(self, feed, login: Login) -> str:
        quiet_since = time.monotonic()
        while not self.stop_event.is_set():
            try:
                change = feed.next(wait=1.0)
            except ReqlTimeoutError:
                if time.monotonic() - quiet_since >= self.liveness_seconds:
                    problem = self._alive(login)
                    if problem:
                        return problem
                    quiet_since = time.monotonic()
                continue
            quiet_since = time.monotonic()
            if 'error' in change:
                overflow = OVERFLOW_RE.search(str(change['error']))
                return ('the feed through %s dropped %s changes (its queue of %d was full)' % (login.describe(), overflow.group(1), self.queue_size)
                        if overflow else 'the feed through %s sent an error: %s' % (login.describe(), change['error']))
            if change.get('type') == 'state':
                if change.get('state') == 'ready':
                    self.put(('ready', self.full_name, login.describe()))
                continue
            self.put(('change', self.full_name, change))
        return 'stopped'

    def _alive(self, login: Login) -> str | None:
        """Why the server stopped answering (a new connection and a trivial query, within its timeout), or None."""
        try:
            r, connection = connect(login._replace(timeout=min(login.timeout, 5.0)))
        except SourceError as exc:
            return 'the server of the feed stopped answering (%s)' % exc
        try:
            r.expr(1).run(connection)
        except (ReqlError, OSError) as exc:
            return 'the server of the feed stopped answering: %s' % one_line(exc)
        finally:
            close_quietly(connection)
        return None
