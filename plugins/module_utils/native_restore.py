# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The native restore engine: a dump archive loaded in one forward-only pass, in parallel batches.

The archive must have been proved first (dump_archive.prove_dump, a pass of its own): its sha256 is known
only at its end, and `rethinkdb dump` adds a table's .info and .json in whatever order the directory listed
them, so the primary keys, indexes and write hooks come from that pass. This pass reads the archive again,
front to back, and hands each table's document lines, as they are, in batches of up to BATCH_BYTES to
worker threads, which insert them with `r.json()` (the server parses them: the client neither decodes nor
encodes a document of an archive in the tools' layout) on connections to the table's primary replica, with
soft durability; then every table is synced, its secondary indexes are created (after the documents, as
`rethinkdb restore` does) and built, and its write hook set. The queue of batches is bounded, so memory
holds at most two batches a worker whatever the size of a table.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import HashingReader
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import STREAM_ERRORS, DumpArchiveError, table_documents
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.native_cluster import RAW, NativeError, OrjsonEncoder, best_servers, lost
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import ReqlError

BATCH_BYTES = 2 * 1024 * 1024
# RethinkDB's default array limit is 100,000 elements.
BATCH_DOCUMENTS = 20000
READY_TIMEOUT = 120
ADVICE = 'check that the server runs and the table is available'


class _Batch:
    """Document lines of one table, inserted with one query."""

    def __init__(self, label: str, lines: list):
        self.label = label
        self.lines = lines


def batches(label: str, lines, batch_bytes: int = BATCH_BYTES):
    """Group a table's document lines into batches of about batch_bytes."""
    pending: list = []
    size = 0
    for line in lines:
        pending.append(line)
        size += len(line) + 1
        if size >= batch_bytes or len(pending) >= BATCH_DOCUMENTS:
            yield _Batch(label, pending)
            pending, size = [], 0
    if pending:
        yield _Batch(label, pending)


class _Loader:
    """Worker threads that insert batches from a bounded queue, each on its own connections."""

    def __init__(self, r, connector, servers: dict, workers: int, conflict: str, durability: str):
        self.r = r
        self.connector = connector
        self.servers = servers
        self.conflict = conflict
        self.durability = durability
        self.queue: queue.Queue = queue.Queue(maxsize=2 * workers)
        self.failure: NativeError | None = None
        self.inserted: dict = {}
        self.outstanding: dict = {}
        self.lock = threading.Condition()
        self.threads = [threading.Thread(target=self._work, args=(number,), name='restore-%d' % number, daemon=True)
                        for number in range(workers)]
        for thread in self.threads:
            thread.start()

    def put(self, batch: _Batch) -> None:
        """Queue a batch, waiting for room; raise the first worker's failure instead, once there is one."""
        if batch is not None:
            with self.lock:
                self.outstanding[batch.label] = self.outstanding.get(batch.label, 0) + 1
        while self.failure is None:
            try:
                self.queue.put(batch, timeout=0.2)
                return
            except queue.Full:
                continue
        raise self.failure

    def wait_table(self, label: str) -> None:
        """Return once every queued batch of a table is written; raise the first failure instead."""
        with self.lock:
            while self.outstanding.get(label) and self.failure is None:
                self.lock.wait(0.2)
        if self.failure is not None:
            raise self.failure

    def finish(self) -> None:
        """Wait for every queued batch; raise the first failure."""
        for dummy in self.threads:
            self.put(None)
        for thread in self.threads:
            thread.join()
        if self.failure is not None:
            raise self.failure

    def abandon(self) -> None:
        """Stop the workers without loading what is queued."""
        if self.failure is None:
            self.failure = NativeError('the restore was stopped')
        for thread in self.threads:
            thread.join()

    def _next(self) -> _Batch | None:
        """The next batch; None at the end, or once any worker failed or the loading was abandoned."""
        while self.failure is None:
            try:
                return self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
        return None

    def _work(self, number: int) -> None:
        connections: dict = {}
        try:
            while True:
                batch = self._next()
                if batch is None:
                    return
                servers = self.servers.get(batch.label) or [None]
                server = servers[number % len(servers)]
                if server not in connections:
                    connections[server] = self.connector.connect(server)
                self._insert(batch, *connections[server])
        except NativeError as exc:
            self.failure = self.failure or exc
        except (ReqlError, OSError) as exc:
            self.failure = self.failure or lost('Connecting', self.connector.login, exc, ADVICE)
        finally:
            for connection, dummy in connections.values():
                connection.close(noreply_wait=False)
            if self.failure is not None:
                self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                return

    def _insert(self, batch: _Batch, connection, address) -> None:
        db, table = batch.label.split('.', 1)
        text = (b'[' + b','.join(batch.lines) + b']').decode('utf-8')
        query = self.r.db(db).table(table).insert(self.r.json(text), durability=self.durability, conflict=self.conflict)
        try:
            result = query.run(connection, json_encoder=OrjsonEncoder)
        except ReqlError as exc:
            raise lost('Loading %s' % batch.label, address, exc, ADVICE)
        written = result['inserted'] + result['replaced'] + result['unchanged']
        if result['errors'] or written != len(batch.lines):
            raise NativeError('Loading %s on server %s failed: %s; the archive may hold a document twice, or the table changed meanwhile.'
                              % (batch.label, address, (result.get('first_error') or '%d of %d documents written' % (written, len(batch.lines))).rstrip('.')))
        with self.lock:
            self.inserted[batch.label] = self.inserted.get(batch.label, 0) + written
            self.outstanding[batch.label] -= 1
            self.lock.notify_all()


def prepare_tables(r, connection, archive, names: list, existing: dict) -> None:
    """Create the databases and tables that do not exist, with the archive's primary keys, and wait until
    every table can take writes."""
    databases = set(r.db_list().run(connection))
    for name in names:
        db, table = name.split('.', 1)
        if db not in databases:
            r.db_create(db).run(connection)
            databases.add(db)
        if name not in existing:
            r.db(db).table_create(table, primary_key=archive.tables[name].primary_key).run(connection)
    for name in names:
        db, table = name.split('.', 1)
        r.db(db).table(table).wait(wait_for='ready_for_writes', timeout=READY_TIMEOUT).run(connection)


def start_indexes(r, connection, info: dict, name: str, create_indexes: bool) -> list:
    """Sync a loaded table, create its secondary indexes (replacing ones of the same name, as the tool does)
    and set its write hook; the names of the indexes, which the server goes on building."""
    db, table_name = name.split('.', 1)
    table = r.db(db).table(table_name)
    table.sync().run(connection)
    indexes = info.get('indexes') or [] if create_indexes else []
    existing = set(table.index_list().run(connection)) if indexes else set()
    for index in indexes:
        if index['index'] in existing:
            table.index_drop(index['index']).run(connection)
        table.index_create(index['index'], index['function']).run(connection)
    hook = info.get('write_hook')
    if hook:
        table.set_write_hook(hook['function']).run(connection)
    return [index['index'] for index in indexes]


class _Finisher:
    """Starts each table's indexes on a thread of its own once all its documents are written, so that the
    server builds them while the next tables load."""

    def __init__(self, r, connector, archive, create_indexes: bool, loader: _Loader):
        self.r = r
        self.connector = connector
        self.archive = archive
        self.create_indexes = create_indexes
        self.loader = loader
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix='restore-indexes')
        self.connection = None
        self.started: dict = {}

    def table_loaded(self, name: str) -> None:
        self.started[name] = self.pool.submit(self._start, name)

    def _start(self, name: str) -> list:
        self.loader.wait_table(name)
        try:
            if self.connection is None:
                self.connection = self.connector.connect_login()
            return start_indexes(self.r, self.connection, self.archive.tables[name].info, name, self.create_indexes)
        except (ReqlError, OSError) as exc:
            raise lost('Building the indexes of %s' % name, self.connector.login, exc, ADVICE)

    def indexes(self) -> dict:
        """The indexes started, by table; the first failure of a table's start."""
        return dict((name, started.result()) for name, started in self.started.items())

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.connection is not None:
            self.connection.close(noreply_wait=False)


def load_dump(r, connector, source, archive, names: list, existing: dict, create_indexes: bool = True, workers: int = 4,
              durability: str = 'soft') -> dict:
    """Load the tables `names` ('db.table') of a proved archive (a dump_archive.DumpArchive) from `source`,
    a stream of the same archive read front to back (read() only); return seconds per step and, by table,
    the documents loaded and the indexes created. NativeError (one line) on failure: the tables may then be
    partly loaded (drop them, or restore again with force: true).

    existing: the chosen tables that exist (their documents with the archive's keys are replaced).
    """
    started = time.monotonic()
    try:
        control = connector.connect_login()
    except (ReqlError, OSError) as exc:
        raise lost('Connecting', connector.login, exc, ADVICE)
    try:
        try:
            connector.learn(control, r)
            prepare_tables(r, control, archive, names, existing)
            statuses = dict(('%s.%s' % (row['db'], row['name']), row) for row in r.db('rethinkdb').table('table_status').run(control, **RAW))
        except ReqlError as exc:
            raise lost('Creating the tables to restore', connector.login, exc, ADVICE)
        servers = dict((name, best_servers(statuses.get(name, {}), 'single')) for name in names)
        prepared = time.monotonic()
        loader = _Loader(r, connector, servers, workers, 'replace' if existing else 'error', durability)
        finisher = _Finisher(r, connector, archive, create_indexes, loader)
        try:
            loaded = _load(source, archive, names, loader, finisher)
            indexes = finisher.indexes()
        finally:
            finisher.close()
        loaded_at = time.monotonic()
        try:
            for name, built in indexes.items():
                db, table = name.split('.', 1)
                if built:
                    r.db(db).table(table).index_wait(*built).run(control)
        except ReqlError as exc:
            raise lost('Building the indexes of the restored tables', connector.login, exc, ADVICE)
    finally:
        control.close(noreply_wait=False)
    tables = dict((name, dict(documents=loaded.get(name, 0), indexes=indexes[name])) for name in names)
    return dict(tables=tables, seconds=dict(prepare=round(prepared - started, 3), load=round(loaded_at - prepared, 3),
                                            indexes=round(time.monotonic() - loaded_at, 3)))


def _load(source, archive, names: list, loader: _Loader, finisher: _Finisher) -> dict:
    """Stream the archive's chosen tables into the loader, each table's indexes started once it is written;
    the documents written, by table."""
    hashing = HashingReader(source)
    try:
        for name, lines in table_documents(hashing):
            if name in names:
                for batch in batches(name, lines):
                    loader.put(batch)
                finisher.table_loaded(name)
        hashing.drain()
    except (DumpArchiveError,) + STREAM_ERRORS as exc:
        loader.abandon()
        raise NativeError('Archive %s could not be read again after it was proved (%s).'
                          % (archive.path, str(exc).rstrip('.') or type(exc).__name__))
    except BaseException:
        loader.abandon()
        raise
    loader.finish()
    if hashing.digest.hexdigest() != archive.sha256:
        raise NativeError('Archive %s changed while it was restored (sha256 %s, proved %s).'
                          % (archive.path, hashing.digest.hexdigest(), archive.sha256))
    return loader.inserted
