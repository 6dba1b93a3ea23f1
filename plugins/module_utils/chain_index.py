# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which documents a chain holds, as a local SQLite file: the primary keys of its base and of every sealed segment.

A catch-up compares the keys a table has with these, so it must never believe the chain holds a document it does
not: keys go in only after the segment that holds them is committed, in one transaction with the number and
sha256 of that segment's record. The file is a cache: when it is missing, belongs to another chain, or its last
segment is not the chain's, it is rebuilt from the repository (the base archive read once, then the segments).
Its memory is SQLite's page cache, whatever the size of the tables; a scan's keys go to a temporary table on disk.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Iterable, Iterator

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_format import document_digest, key_text

SCHEMA = (
    'CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID',
    'CREATE TABLE IF NOT EXISTS held (tbl TEXT NOT NULL, key TEXT NOT NULL, digest BLOB NOT NULL, gone INTEGER NOT NULL DEFAULT 0, '
    'PRIMARY KEY (tbl, key)) WITHOUT ROWID',
)
# Keys asked about in one statement (SQLite allows 32,766 parameters).
LOOKUP_BATCH = 500
INSERT_BATCH = 5000
CACHE_KIB = 16 * 1024


class HeldIndexError(Exception):
    """The index file cannot be used; the message names it."""


class HeldIndex:
    """The keys (and a digest of the content) of the documents a chain holds, by table; and which of them were
    found changed or gone (alarms already raised)."""

    def __init__(self, path: str):
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, 0o700, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute('PRAGMA journal_mode=WAL')
            self._db.execute('PRAGMA synchronous=NORMAL')
            self._db.execute('PRAGMA temp_store=FILE')
            self._db.execute('PRAGMA cache_size=-%d' % CACHE_KIB)
            for statement in SCHEMA:
                self._db.execute(statement)
            self._db.execute('CREATE TEMP TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY) WITHOUT ROWID')
            # A scan's keys are noted a batch at a time; a rollback journal on disk for each batch made that 4x slower.
            self._db.execute('PRAGMA temp.journal_mode=MEMORY')
        except sqlite3.Error as exc:
            raise HeldIndexError('the index %s cannot be used (%s): remove it, it is rebuilt from the repository' % (path, exc)) from None
        os.chmod(path, 0o600)

    def close(self) -> None:
        self._db.close()

    # --- what it is the index of ---------------------------------------------------------------------------

    def meta(self) -> dict:
        return dict(self._db.execute('SELECT name, value FROM meta'))

    def reset(self, chain_id: str, base_set_id: str, chain_sha256: str) -> None:
        """Forget everything: the index of a new chain, holding nothing yet (its base goes in with add_base)."""
        with self._transaction():
            self._db.execute('DELETE FROM held')
            self._db.execute('DELETE FROM meta')
            self._set_meta(chain_id=chain_id, base_set_id=base_set_id, base_done='0', seq='0', sha256=chain_sha256)

    def _set_meta(self, **values) -> None:
        self._db.executemany('INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)', sorted(values.items()))

    def add_base(self, documents: Iterable[tuple[str, object, dict]]) -> int:
        """Take in the base set's documents, (table, primary key, document), in one transaction; returns how many."""
        count = 0
        with self._transaction():
            batch = []
            for table, key, document in documents:
                batch.append((table, key_text(key), document_digest(document)))
                if len(batch) >= INSERT_BATCH:
                    count += self._insert(batch)
                    batch = []
            count += self._insert(batch)
            self._set_meta(base_done='1')
        return count

    def _insert(self, rows: list) -> int:
        self._db.executemany('INSERT OR IGNORE INTO held (tbl, key, digest) VALUES (?, ?, ?)', rows)
        return len(rows)

    def absorb(self, seq: int, record_sha256: str, inserted: list, gone: list, back: list) -> None:
        """A committed segment: the keys it inserted ((table, key text, digest)), the keys it found gone (deleted
        or missing) and the keys that came back, all with the segment's number and record sha256, at once."""
        with self._transaction():
            self._insert(inserted)
            self._db.executemany('UPDATE held SET gone = 1 WHERE tbl = ? AND key = ?', gone)
            self._db.executemany('UPDATE held SET gone = 0 WHERE tbl = ? AND key = ?', back)
            self._set_meta(seq=str(seq), sha256=record_sha256)

    # --- what a catch-up asks ------------------------------------------------------------------------------

    def lookup(self, table: str, keys: list[str]) -> dict:
        """key text -> (digest, gone) for the keys among these that the chain holds."""
        found = {}
        for start in range(0, len(keys), LOOKUP_BATCH):
            batch = keys[start:start + LOOKUP_BATCH]
            rows = self._db.execute('SELECT key, digest, gone FROM held WHERE tbl = ? AND key IN (%s)' % ','.join('?' * len(batch)),
                                    [table] + batch)
            found.update((key, (bytes(digest), bool(gone))) for key, digest, gone in rows)
        return found

    def begin_scan(self) -> None:
        """Start noting the keys a scan of one table sees."""
        self._db.execute('DELETE FROM temp.seen')

    def saw(self, keys: list[str]) -> None:
        self._db.executemany('INSERT OR IGNORE INTO temp.seen (key) VALUES (?)', [(key,) for key in keys])

    def unseen(self, table: str) -> Iterator[str]:
        """Keys the chain holds for a table (and has not found gone) that the scan did not see."""
        rows = self._db.execute('SELECT key FROM held WHERE tbl = ? AND gone = 0 AND key NOT IN (SELECT key FROM temp.seen) ORDER BY key',
                                (table,))
        return iter([key for (key,) in rows])

    def count(self, table: str) -> int:
        return self._db.execute('SELECT count(*) FROM held WHERE tbl = ?', (table,)).fetchone()[0]

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self):
        self._db.execute('BEGIN IMMEDIATE')
        return self

    def __exit__(self, exc_type, exc, traceback):
        self._db.execute('COMMIT' if exc_type is None else 'ROLLBACK')
