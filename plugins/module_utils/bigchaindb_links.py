# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The links between BigchainDB's blocks and votes, checked over the whole chain in bounded memory.

Blocks and votes arrive in any order (tables in any order, documents in key order), so their link records
go into a scratch SQLite file: about 250 bytes of disk per vote (its index included) and 50 per block, and a
fixed page cache in memory. Once everything is in, a few queries find votes for blocks that are not there,
blocks that votes name as previous but that are not there, voters not listed in the voted block, a voter's
second vote for the same block, and blocks that nobody voted on.
"""

from __future__ import annotations

import collections
import heapq
import os
import re
import sqlite3
import tempfile

BLOCK_MISSING = 'block_missing'
BLOCK_WITHOUT_VOTES = 'block_without_votes'
VOTE_FOR_UNKNOWN_BLOCK = 'vote_for_unknown_block'
VOTE_VOTER_NOT_LISTED = 'vote_voter_not_listed'
VOTE_DUPLICATE = 'vote_duplicate'
LINK_KINDS = (BLOCK_MISSING, BLOCK_WITHOUT_VOTES, VOTE_FOR_UNKNOWN_BLOCK, VOTE_VOTER_NOT_LISTED, VOTE_DUPLICATE)

# SQLite's page cache in KiB (a negative cache_size is KiB): what the link checks hold in memory at most.
CACHE_KIB = 16 * 1024
# Distinct voter lists remembered in memory; BigchainDB blocks carry the federation's list, so a few.
VOTER_LIST_CACHE = 1024
_HEX_ID = re.compile(r'^[0-9a-f]{64}$')
_SEPARATOR = '\n'

_SCHEMA = (
    'CREATE TABLE voter_lists (id INTEGER PRIMARY KEY, voters TEXT NOT NULL UNIQUE)',
    'CREATE TABLE blocks (id NOT NULL PRIMARY KEY, voters INTEGER, genesis INTEGER NOT NULL, timestamp INTEGER) WITHOUT ROWID',
    'CREATE TABLE votes (id TEXT NOT NULL, block NOT NULL, previous NOT NULL, voter TEXT NOT NULL)',
)
_QUERIES = {
    VOTE_FOR_UNKNOWN_BLOCK: 'SELECT v.id FROM votes v WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.id = v.block)',
    BLOCK_MISSING: 'SELECT DISTINCT v.previous FROM votes v WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.id = v.previous)',
    VOTE_VOTER_NOT_LISTED: ('SELECT v.id FROM votes v JOIN blocks b ON b.id = v.block JOIN voter_lists l ON l.id = b.voters '
                            "WHERE instr(l.voters, char(10) || v.voter || char(10)) = 0"),
    VOTE_DUPLICATE: ('SELECT v.id FROM votes v JOIN (SELECT block, voter FROM votes GROUP BY block, voter HAVING COUNT(*) > 1) d '
                     'ON d.block = v.block AND d.voter = v.voter'),
}
_UNVOTED = ('SELECT b.id, b.timestamp FROM blocks b WHERE b.genesis = 0 '
            'AND NOT EXISTS (SELECT 1 FROM votes v WHERE v.block = b.id)')


def block_key(block_id: str):
    """How an id is stored: a BigchainDB id (64 hex digits) as its 32 bytes, anything else as text (SQLite
    never finds text equal to bytes)."""
    return bytes.fromhex(block_id) if _HEX_ID.match(block_id) else block_id


def _shown(key) -> str:
    return key.hex() if isinstance(key, bytes) else str(key)


def smallest(rows, limit: int) -> tuple[int, list]:
    """(how many rows, the `limit` smallest first columns as text, sorted), holding no more than `limit` of them."""
    seen = [0]

    def shown_rows():
        for row in rows:
            seen[0] += 1
            yield _shown(row[0])

    remaining = shown_rows()
    kept = heapq.nsmallest(limit, remaining)
    collections.deque(remaining, maxlen=0)
    return seen[0], kept


class LinkLedger:
    """The scratch database of one check; close() removes its file."""

    def __init__(self, directory: str | None):
        descriptor, self.path = tempfile.mkstemp(prefix='chain-check-', suffix='.sqlite', dir=directory)
        os.close(descriptor)
        self._db = sqlite3.connect(self.path)
        for pragma in ('journal_mode = OFF', 'synchronous = OFF', 'temp_store = FILE', 'cache_size = -%d' % CACHE_KIB):
            self._db.execute('PRAGMA ' + pragma)
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._voter_lists: dict = {}

    def close(self) -> None:
        self._db.close()
        for suffix in ('', '-journal', '-wal', '-shm'):
            try:
                os.unlink(self.path + suffix)
            except FileNotFoundError:
                continue

    def _voter_list(self, voters: tuple | None) -> int | None:
        if voters is None:
            return None
        text = _SEPARATOR + _SEPARATOR.join(sorted(voters)) + _SEPARATOR
        known = self._voter_lists.get(text)
        if known is not None:
            return known
        self._db.execute('INSERT OR IGNORE INTO voter_lists (voters) VALUES (?)', (text,))
        (list_id,) = self._db.execute('SELECT id FROM voter_lists WHERE voters = ?', (text,)).fetchone()
        if len(self._voter_lists) >= VOTER_LIST_CACHE:
            self._voter_lists.clear()
        self._voter_lists[text] = list_id
        return list_id

    def add(self, blocks: list, votes: list) -> None:
        """Keep the link records of some blocks and votes (BlockLinks and VoteLinks, or the same as plain tuples);
        a block id seen twice is kept once."""
        self._db.executemany('INSERT OR IGNORE INTO blocks VALUES (?, ?, ?, ?)',
                             [(block_key(block_id), self._voter_list(voters), int(genesis), timestamp) for block_id, voters, genesis, timestamp in blocks])
        self._db.executemany('INSERT INTO votes VALUES (?, ?, ?, ?)',
                             [(vote_id, block_key(block), block_key(previous), voter) for vote_id, block, previous, voter in votes])

    def findings(self, limit: int, recent_unvoted_seconds: int) -> tuple[dict, int]:
        """Every link failure kind -> (count, the `limit` smallest ids), and how many blocks without votes are
        recent enough (within recent_unvoted_seconds of the newest block) to be taken as still awaiting them."""
        self._db.execute('CREATE INDEX votes_by_block ON votes (block, voter)')
        self._db.commit()
        found = dict((kind, smallest(self._db.execute(query), limit)) for kind, query in _QUERIES.items())
        newest = self._db.execute('SELECT MAX(timestamp) FROM blocks').fetchone()[0]
        recent_from = newest - recent_unvoted_seconds if recent_unvoted_seconds > 0 and newest is not None else None
        found[BLOCK_WITHOUT_VOTES] = smallest(self._db.execute(_UNVOTED + ' AND (? IS NULL OR b.timestamp IS NULL OR b.timestamp < ?)',
                                                               (recent_from, recent_from)), limit)
        (awaiting,) = self._db.execute('SELECT COUNT(*) FROM (%s AND b.timestamp >= ?)' % _UNVOTED, (recent_from,)).fetchone()
        return found, awaiting
