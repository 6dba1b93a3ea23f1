"""On-disk state of one server: the `metadata` file and one SQLite file per table replica, named by table UUID.

SQLite in WAL mode keeps every file crash-consistent, so a filesystem snapshot of a running server's directory
restores to a consistent server. Rows are keyed by the order-preserving encoding of their primary key
(`datum.encode_key`), so ordered scans and ranges are index range reads. Every row carries the version of the
write that produced it, and deletions leave a tombstone (doc NULL), so a replica that was away catches up by
asking for the rows newer than the newest it has.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading

PAGE_ROWS = 1000

_TABLE_SCHEMA = (
    'CREATE TABLE IF NOT EXISTS docs (key BLOB PRIMARY KEY, doc TEXT, ver INTEGER NOT NULL) WITHOUT ROWID',
    'CREATE INDEX IF NOT EXISTS docs_by_version ON docs (ver, key)',
    'CREATE TABLE IF NOT EXISTS sindex (name TEXT, ikey BLOB, key BLOB, PRIMARY KEY (name, ikey, key)) WITHOUT ROWID',
    'CREATE INDEX IF NOT EXISTS sindex_by_key ON sindex (key, name)',
    'CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID',
)


def _open(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute('PRAGMA journal_mode=WAL')
    connection.execute('PRAGMA synchronous=NORMAL')
    return connection


def _range_clause(column: str, lower: bytes | None, lower_open: bool, upper: bytes | None, upper_open: bool):
    """SQL conditions and parameters for a key range; None bounds are unbounded."""
    conditions, parameters = [], []
    if lower is not None:
        conditions.append('%s %s ?' % (column, '>' if lower_open else '>='))
        parameters.append(lower)
    if upper is not None:
        conditions.append('%s %s ?' % (column, '<' if upper_open else '<='))
        parameters.append(upper)
    return conditions, parameters


class KeyRange:
    """A range of encoded keys; None bounds are unbounded."""

    __slots__ = ('lower', 'lower_open', 'upper', 'upper_open')

    def __init__(self, lower: bytes | None = None, lower_open: bool = False, upper: bytes | None = None,
                 upper_open: bool = True):
        self.lower = lower
        self.lower_open = lower_open
        self.upper = upper
        self.upper_open = upper_open

    def contains(self, key: bytes) -> bool:
        """Whether an encoded key lies in the range."""
        if self.lower is not None and (key < self.lower or (self.lower_open and key == self.lower)):
            return False
        if self.upper is not None and (key > self.upper or (self.upper_open and key == self.upper)):
            return False
        return True

    def clause(self, column: str):
        """SQL conditions and parameters selecting the range in `column`."""
        return _range_clause(column, self.lower, self.lower_open, self.upper, self.upper_open)

    def intersect(self, other: KeyRange) -> KeyRange:
        """The keys in both ranges."""
        result = KeyRange(self.lower, self.lower_open, self.upper, self.upper_open)
        if other.lower is not None and (result.lower is None or other.lower > result.lower
                                        or (other.lower == result.lower and other.lower_open)):
            result.lower, result.lower_open = other.lower, other.lower_open
        if other.upper is not None and (result.upper is None or other.upper < result.upper
                                        or (other.upper == result.upper and other.upper_open)):
            result.upper, result.upper_open = other.upper, other.upper_open
        return result

    def is_empty(self) -> bool:
        """Whether no key can lie in the range."""
        if self.lower is None or self.upper is None:
            return False
        return self.lower > self.upper or (self.lower == self.upper and (self.lower_open or self.upper_open))


class TableStore:
    """One table replica's rows and secondary index entries in one SQLite file; safe to share between threads."""

    def __init__(self, path: str):
        self.path = path
        self.lock = threading.RLock()
        self._db = _open(path)
        for statement in _TABLE_SCHEMA:
            self._db.execute(statement)

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close."""
        with self.lock:
            self._db.execute('PRAGMA wal_checkpoint(TRUNCATE)')
            self._db.close()

    def get(self, key: bytes) -> str | None:
        """The JSON text of the row with this key, or None."""
        with self.lock:
            row = self._db.execute('SELECT doc FROM docs WHERE key = ?', (key,)).fetchone()
        return row[0] if row else None

    def get_many(self, keys: list) -> dict:
        """{key: JSON text} of the rows present among `keys`."""
        found = {}
        with self.lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                sql = 'SELECT key, doc FROM docs WHERE doc IS NOT NULL AND key IN (%s)' % ','.join('?' * len(chunk))
                found.update(self._db.execute(sql, chunk).fetchall())
        return found

    def scan(self, key_range: KeyRange, descending: bool = False, limit: int = PAGE_ROWS) -> list:
        """[(key, json text)] of live rows in the range, in key order."""
        conditions, parameters = key_range.clause('key')
        sql = 'SELECT key, doc FROM docs WHERE doc IS NOT NULL%s ORDER BY key %s LIMIT ?' % (
            ''.join(' AND ' + condition for condition in conditions), 'DESC' if descending else 'ASC')
        with self.lock:
            return self._db.execute(sql, parameters + [limit]).fetchall()

    def scan_index(self, name: str, index_range: KeyRange, after: tuple | None, descending: bool = False,
                   limit: int = PAGE_ROWS, key_range: KeyRange | None = None) -> list:
        """[(index key, key, json text)] of the entries of index `name` in the range, after `after`, in index order
        (only rows whose primary keys lie in `key_range`, when given: one shard's rows)."""
        conditions, parameters = index_range.clause('s.ikey')
        if key_range is not None:
            key_conditions, key_parameters = key_range.clause('s.key')
            conditions.extend(key_conditions)
            parameters.extend(key_parameters)
        if after is not None:
            conditions.append('(s.ikey, s.key) %s (?, ?)' % ('<' if descending else '>'))
            parameters.extend(after)
        order = 'DESC' if descending else 'ASC'
        sql = ('SELECT s.ikey, s.key, d.doc FROM sindex s JOIN docs d ON d.key = s.key '
               'WHERE s.name = ? AND d.doc IS NOT NULL%s ORDER BY s.ikey %s, s.key %s LIMIT ?') % (
            ''.join(' AND ' + condition for condition in conditions), order, order)
        with self.lock:
            return self._db.execute(sql, [name] + parameters + [limit]).fetchall()

    def count(self, key_range: KeyRange | None = None) -> int:
        """Number of live rows (in a range)."""
        conditions, parameters = key_range.clause('key') if key_range else ([], [])
        sql = 'SELECT count(*) FROM docs WHERE doc IS NOT NULL' + ''.join(' AND ' + c for c in conditions)
        with self.lock:
            return self._db.execute(sql, parameters).fetchone()[0]

    def max_version(self) -> int:
        """The version of the newest write this replica has."""
        with self.lock:
            row = self._db.execute('SELECT max(ver) FROM docs').fetchone()
        return row[0] or 0

    def rows_since(self, version: int, after: tuple | None, limit: int = PAGE_ROWS) -> list:
        """[(key, json text or None, version)] written after `version`, oldest first, paged by (version, key)."""
        if after is None:
            sql, parameters = 'SELECT key, doc, ver FROM docs WHERE ver > ?', [version]
        else:
            sql, parameters = 'SELECT key, doc, ver FROM docs WHERE ver > ? AND (ver, key) > (?, ?)', [version, after[0], after[1]]
        with self.lock:
            return self._db.execute(sql + ' ORDER BY ver, key LIMIT ?', parameters + [limit]).fetchall()

    def versions(self, keys: list) -> dict:
        """{key: version} of the rows (live or deleted) this replica has among `keys`."""
        found = {}
        with self.lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                sql = 'SELECT key, ver FROM docs WHERE key IN (%s)' % ','.join('?' * len(chunk))
                found.update(self._db.execute(sql, chunk).fetchall())
        return found

    def apply(self, rows: list, index_entries: dict, hard: bool, only_newer: bool = False,
              synced: int | None = None) -> list:
        """Write [(key, json text or None, version)] and their index entries {key: [(index, index key)]} atomically;
        returns the rows written.

        `hard` makes the commit synchronous (on disk before it returns). With `only_newer`, a row older than the one
        already stored is skipped (a backfill racing with live replication). `synced` raises the version up to which
        the replica is complete, in the same transaction.
        """
        with self.lock:
            if only_newer:
                current = self.versions([key for key, _doc, _version in rows])
                rows = [row for row in rows if current.get(row[0], -1) < row[2]]
            self._db.execute('PRAGMA synchronous=%s' % ('FULL' if hard else 'NORMAL'))
            self._db.execute('BEGIN')
            try:
                self._db.executemany('INSERT OR REPLACE INTO docs (key, doc, ver) VALUES (?, ?, ?)', rows)
                self._db.executemany('DELETE FROM sindex WHERE key = ?', [(row[0],) for row in rows])
                entries = [(name, ikey, key) for key, _doc, _version in rows for name, ikey in index_entries.get(key, ())]
                self._db.executemany('INSERT OR IGNORE INTO sindex (name, ikey, key) VALUES (?, ?, ?)', entries)
                if synced is not None:
                    self._db.execute("INSERT OR REPLACE INTO meta (name, value) SELECT 'synced', ? WHERE ? > "
                                     "coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE name = 'synced'), 0)",
                                     (json.dumps(synced), synced))
                self._db.execute('COMMIT')
            except BaseException:
                self._db.execute('ROLLBACK')
                raise
        return rows

    def delete_outside(self, key_ranges: list) -> None:
        """Drop the rows no longer in any of this replica's shard ranges (after a reconfiguration)."""
        with self.lock:
            doomed = [(key,) for (key,) in self._db.execute('SELECT key FROM docs')
                      if not any(key_range.contains(key) for key_range in key_ranges)]
            if doomed:
                self._db.execute('BEGIN')
                self._db.executemany('DELETE FROM docs WHERE key = ?', doomed)
                self._db.executemany('DELETE FROM sindex WHERE key = ?', doomed)
                self._db.execute('COMMIT')

    def all_docs(self, after: bytes | None, limit: int = PAGE_ROWS) -> list:
        """[(key, json text)] of live rows after `after`, for building an index."""
        if after is None:
            return self.scan(KeyRange(), limit=limit)
        return self.scan(KeyRange(after, True), limit=limit)

    def replace_index(self, name: str, entries: list, first: bool) -> None:
        """Store a page of a rebuilt index [(index key, key)]; the first page clears the old entries."""
        with self.lock:
            self._db.execute('BEGIN')
            if first:
                self._db.execute('DELETE FROM sindex WHERE name = ?', (name,))
            self._db.executemany('INSERT OR IGNORE INTO sindex (name, ikey, key) VALUES (?, ?, ?)',
                                 [(name, ikey, key) for ikey, key in entries])
            self._db.execute('COMMIT')

    def drop_index(self, name: str) -> None:
        """Forget an index's entries and build state."""
        with self.lock:
            self._db.execute('BEGIN')
            self._db.execute('DELETE FROM sindex WHERE name = ?', (name,))
            self._db.execute('DELETE FROM meta WHERE name = ?', ('index:' + name,))
            self._db.execute('COMMIT')

    def get_meta(self, name: str):
        """A value of the replica's own bookkeeping (JSON), or None."""
        with self.lock:
            row = self._db.execute('SELECT value FROM meta WHERE name = ?', (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, name: str, value) -> None:
        """Store a value of the replica's own bookkeeping, durably."""
        with self.lock:
            self._db.execute('PRAGMA synchronous=FULL')
            self._db.execute('INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)', (name, json.dumps(value)))


class MetadataStore:
    """The server's `metadata` file: its identity and the cluster metadata as it last knew it, as JSON values."""

    def __init__(self, directory: str):
        self._db = _open(os.path.join(directory, 'metadata'))
        self._db.execute('CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID')
        self._db.execute('PRAGMA synchronous=FULL')
        self.lock = threading.Lock()

    def load(self) -> dict:
        """Every stored value by name."""
        with self.lock:
            return {name: json.loads(value) for name, value in self._db.execute('SELECT name, value FROM kv')}

    def save(self, values: dict) -> None:
        """Store several values in one durable transaction."""
        with self.lock:
            self._db.execute('BEGIN')
            self._db.executemany('INSERT OR REPLACE INTO kv (name, value) VALUES (?, ?)',
                                 [(name, json.dumps(value, sort_keys=True)) for name, value in values.items()])
            self._db.execute('COMMIT')

    def close(self) -> None:
        """Checkpoint and close."""
        with self.lock:
            self._db.execute('PRAGMA wal_checkpoint(TRUNCATE)')
            self._db.close()
