# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The chain check of BigchainDB's `bigchain` and `votes` tables, over a dump archive or a live cluster.

Worker processes (signature checks hold the GIL, so threads would not help) check the documents one batch at
a time and send back what they found and each document's link record; this process reads the source,
keeps a bounded number of batches in flight, merges the findings and puts the link records into the scratch
database that checks the links once everything is in. Memory stays bounded whatever the size of the tables;
the scratch database's disk space grows with the number of documents.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import math
import multiprocessing
import os
import tarfile
import time
import zlib
from collections.abc import Iterator
from typing import NamedTuple

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.bigchaindb_documents import DOCUMENT_KINDS, DocumentChecker, Findings
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.bigchaindb_links import LINK_KINDS, LinkLedger, smallest
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import DumpArchiveError, decode_document, table_line_batches
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import ReqlError, connect_failure, error_text

try:
    from rethinkdb import RethinkDB
except ImportError:
    RethinkDB = None

BLOCKS_TABLE = 'bigchain'
VOTES_TABLE = 'votes'
TABLE_KINDS = {BLOCKS_TABLE: 'block', VOTES_TABLE: 'vote'}
FAILURE_KINDS = tuple(sorted(DOCUMENT_KINDS + LINK_KINDS))
COUNT_KINDS = ('documents', 'blocks', 'chain_blocks', 'genesis_blocks', 'transactions', 'fulfillments', 'fulfillments_unverifiable',
               'votes', 'votes_declaring_invalid', 'blocks_awaiting_votes')
# Bytes of an archive's document lines in one batch for a worker.
BATCH_BYTES = 1024 * 1024
# Batches in flight per worker: enough to keep them busy, few enough to bound memory.
IN_FLIGHT_PER_WORKER = 2
# Documents of one key range of a table read from a cluster by one worker.
RANGE_DOCUMENTS = 10000
# Key ranges split on four hex digits: BigchainDB's block ids and RethinkDB's vote ids are hex.
MAX_RANGES = 4096
# Distinct signing keys counted; keys seen after that many are not (a federation has a handful).
SIGNER_LIMIT = 10000
# Signing keys reported, those with the most signatures first.
SIGNERS_REPORTED = 100


class ChainCheckError(Exception):
    """The check could not read its source; the message is one line that says what to fix."""


class Options(NamedTuple):
    """How the check runs: the database, the federation's keys (None: not checked), worker processes, ids
    reported per failure kind, how recent an unvoted block may be, and where the scratch database goes."""

    db: str = 'bigchain'
    federation: frozenset | None = None
    workers: int = 1
    failure_ids: int = 10
    recent_unvoted_seconds: int = 0
    temp_dir: str | None = None


def available_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


_WORKER: dict = {}


def start_worker(federation: frozenset | None, failure_ids: int, login: dict | None) -> None:
    """Set up a worker process: its checker, and the login for reading ranges of a cluster."""
    _WORKER.update(checker=DocumentChecker(federation), failure_ids=failure_ids, login=login, connection=None)


def _worker_connection():
    if _WORKER['connection'] is None:
        login = _WORKER['login']
        try:
            _WORKER['connection'] = RethinkDB().connect(**login)
        except (ReqlError, OSError) as exc:
            raise ChainCheckError('Cannot connect to RethinkDB at %s:%s as %s: %s.' % (login['host'], login['port'], login['user'], connect_failure(exc)))
    return _WORKER['connection']


def _range_documents(db: str, table: str, lower, upper) -> Iterator[dict]:
    r = RethinkDB()
    bound = dict(minval=r.minval, maxval=r.maxval)
    query = r.db(db).table(table).between(bound.get(lower, lower), bound.get(upper, upper))
    try:
        yield from query.run(_worker_connection())
    except ReqlError as exc:
        raise ChainCheckError('Reading %s.%s from the cluster failed: %s.' % (db, table, error_text(exc)))


def _line_documents(lines: bytes, label: str) -> Iterator[dict]:
    try:
        for line in lines.split(b'\n'):
            yield decode_document(line)
    except (ValueError, RecursionError) as exc:
        raise ChainCheckError('%s has a line that is not one JSON document (%s): the archive is not in the layout rethinkdb dump writes.'
                              % (label, str(exc).splitlines()[0]))


def check_batch(task: tuple) -> tuple:
    """Check one batch in a worker: ('lines', table, lines, label) from an archive or ('range', table, db,
    lower, upper) from a cluster. Returns what was found, in plain tuples that pickle quickly."""
    kind, table = task[0], task[1]
    documents = _line_documents(task[2], task[3]) if kind == 'lines' else _range_documents(task[2], table, task[3], task[4])
    checker = _WORKER['checker']
    check = checker.block if table == BLOCKS_TABLE else checker.vote
    findings = Findings()
    for document in documents:
        check(document, findings)
    limit = _WORKER['failure_ids']
    failures = dict((name, smallest(([document_id] for document_id in ids), limit)) for name, ids in findings.failures.items())
    return findings.counts, failures, [tuple(block) for block in findings.blocks], [tuple(vote) for vote in findings.votes], findings.signers


class Tally:
    """The merged findings of every batch."""

    def __init__(self, failure_ids: int):
        self.failure_ids = failure_ids
        self.counts = dict.fromkeys(COUNT_KINDS, 0)
        self.failures = dict((kind, (0, [])) for kind in FAILURE_KINDS)
        self.signers: dict = {}

    def add_failures(self, kind: str, count: int, ids: list) -> None:
        known_count, known_ids = self.failures[kind]
        self.failures[kind] = (known_count + count, sorted(set(known_ids + ids))[:self.failure_ids])

    def merge(self, counts: dict, failures: dict, signers: dict) -> None:
        for kind, number in counts.items():
            self.counts[kind] += number
        for kind, (count, ids) in failures.items():
            self.add_failures(kind, count, ids)
        for key, signed in signers.items():
            entry = self.signers.get(key)
            if entry is None and len(self.signers) >= SIGNER_LIMIT:
                continue
            if entry is None:
                entry = self.signers[key] = {'blocks': 0, 'votes': 0}
            entry['blocks'] += signed['blocks']
            entry['votes'] += signed['votes']


class _Run:
    """One check: the worker pool, the batches in flight, the tally and the link ledger."""

    def __init__(self, options: Options, login: dict | None):
        self.options = options
        self.tally = Tally(options.failure_ids)
        self.ledger = LinkLedger(options.temp_dir)
        self.pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=options.workers, mp_context=multiprocessing.get_context('fork'),
            initializer=start_worker, initargs=(options.federation, options.failure_ids, login))
        self.pending: set = set()

    def _collect(self, future) -> None:
        counts, failures, blocks, votes, signers = future.result()
        self.tally.merge(counts, failures, signers)
        self.ledger.add(blocks, votes)

    def _wait(self, return_when) -> None:
        done, self.pending = concurrent.futures.wait(self.pending, return_when=return_when)
        for future in done:
            self._collect(future)

    def submit(self, task: tuple) -> None:
        """Hand a batch to the workers, first waiting while too many are in flight."""
        while len(self.pending) >= self.options.workers * IN_FLIGHT_PER_WORKER:
            self._wait(concurrent.futures.FIRST_COMPLETED)
        self.pending.add(self.pool.submit(check_batch, task))

    def drain(self) -> None:
        """Wait for every batch in flight."""
        while self.pending:
            self._wait(concurrent.futures.FIRST_COMPLETED)

    def close(self) -> None:
        for future in self.pending:
            future.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.ledger.close()

    def result(self) -> dict:
        """The check's outcome: counts, failures by kind, signing keys, what was not checked."""
        links, awaiting = self.ledger.findings(self.options.failure_ids, self.options.recent_unvoted_seconds)
        for kind, (count, ids) in links.items():
            self.tally.add_failures(kind, count, ids)
        counts = dict(self.tally.counts, blocks_awaiting_votes=awaiting)
        counts['documents'] = counts['blocks'] + counts['votes']
        failures = dict((kind, dict(count=count, ids=ids)) for kind, (count, ids) in sorted(self.tally.failures.items()))
        failure_count = sum(entry['count'] for entry in failures.values())
        federation = self.options.federation
        ranked = sorted(self.tally.signers.items(), key=lambda item: (-(item[1]['blocks'] + item[1]['votes']), item[0]))
        signers = dict((key, dict(signed, in_federation=None if federation is None else key in federation))
                       for key, signed in ranked[:SIGNERS_REPORTED])
        not_checked = []
        if federation is None:
            not_checked.append('block_signer_outside_federation: no federation given; signers lists the keys that signed')
        if counts['fulfillments_unverifiable']:
            not_checked.append('%d input fulfillment(s) of a crypto-condition type other than Ed25519 and threshold were not verified'
                               % counts['fulfillments_unverifiable'])
        return dict(ok=failure_count == 0, counts=counts, failures=failures, failure_count=failure_count,
                    federation_checked=federation is not None, signers=signers, not_checked=not_checked, workers=self.options.workers)


def _run(options: Options, login: dict | None, feed) -> dict:
    """Run a check: feed(run) submits the batches; the result gets the seconds taken."""
    started = time.monotonic()
    run = _Run(options, login)
    try:
        feed(run)
        run.drain()
        outcome = run.result()
    finally:
        run.close()
    outcome['seconds'] = round(time.monotonic() - started, 3)
    return outcome


def _archive_batches(path: str, db: str) -> Iterator[tuple]:
    """('lines', table, lines, label) batches of the archive's blocks and votes, then a check that both tables
    were there."""
    found = set()
    with open(path, 'rb') as archive:
        for name, label, lines in table_line_batches(archive, BATCH_BYTES):
            member_db, table = name.split('.', 1)
            if member_db != db or table not in TABLE_KINDS:
                continue
            found.add(table)
            if lines:
                yield 'lines', table, lines, label
    missing = [table for table in TABLE_KINDS if table not in found]
    if missing:
        raise DumpArchiveError('it holds no table %s' % ' and no table '.join('%s.%s' % (db, table) for table in missing))


def check_archive(path: str, options: Options) -> dict:
    """Check the blocks and votes of a `rethinkdb dump` archive (tar.gz). ChainCheckError when it cannot be read."""
    def feed(run: _Run) -> None:
        try:
            for task in _archive_batches(path, options.db):
                run.submit(task)
        except DumpArchiveError as exc:
            raise ChainCheckError('Archive %s is not a usable rethinkdb dump: %s.' % (path, str(exc).rstrip('.')))
        except (EOFError, zlib.error, tarfile.TarError, gzip.BadGzipFile) as exc:
            raise ChainCheckError('Archive %s is not a usable rethinkdb dump: it is truncated or corrupt (%s).'
                                  % (path, str(exc).rstrip('.') or type(exc).__name__))
        except OSError as exc:
            raise ChainCheckError('Cannot read archive %s: %s.' % (path, exc.strerror or exc))
    return _run(options, None, feed)


def key_ranges(documents: int, workers: int) -> list:
    """(lower, upper) primary-key ranges that cover every key between them: 'minval' and 'maxval' stand for
    ReQL's r.minval and r.maxval, the rest split on four hex digits into about RANGE_DOCUMENTS documents each
    (and at least two ranges per worker)."""
    parts = min(MAX_RANGES, max(2 * workers, math.ceil(documents / RANGE_DOCUMENTS)))
    bounds = ['minval'] + ['%04x' % (part * 0x10000 // parts) for part in range(1, parts)] + ['maxval']
    return list(zip(bounds[:-1], bounds[1:]))


def _table_sizes(login: dict, db: str) -> dict:
    """Documents in the blocks and votes tables; ChainCheckError when they are not there."""
    r = RethinkDB()
    try:
        connection = r.connect(**login)
    except (ReqlError, OSError) as exc:
        raise ChainCheckError('Cannot connect to RethinkDB at %s:%s as %s: %s.' % (login['host'], login['port'], login['user'], connect_failure(exc)))
    try:
        if db not in r.db_list().run(connection):
            raise ChainCheckError('The cluster has no database %s.' % db)
        tables = r.db(db).table_list().run(connection)
        missing = [table for table in TABLE_KINDS if table not in tables]
        if missing:
            raise ChainCheckError('The cluster has no table %s.' % ' and no table '.join('%s.%s' % (db, table) for table in missing))
        return dict((table, r.db(db).table(table).count().run(connection)) for table in TABLE_KINDS)
    except ReqlError as exc:
        raise ChainCheckError('Reading the tables of %s from the cluster failed: %s.' % (db, error_text(exc)))
    finally:
        connection.close()


def check_cluster(login: dict, options: Options) -> dict:
    """Check the blocks and votes of a cluster's database, read in key ranges by the workers: every vote first,
    then the blocks, so that a vote written meanwhile cannot name a block that was read before it existed."""
    sizes = _table_sizes(login, options.db)

    def feed(run: _Run) -> None:
        for table in (VOTES_TABLE, BLOCKS_TABLE):
            for lower, upper in key_ranges(sizes[table], options.workers):
                run.submit(('range', table, options.db, lower, upper))
            run.drain()
    return _run(options, login, feed)


def summary_lines(outcome: dict) -> list:
    """The outcome as a person reads it."""
    counts = outcome['counts']
    lines = ['%s: %d blocks (%d transactions, %d fulfillments), %d votes checked in %.1f s by %d workers' % (
        'passed' if outcome['ok'] else 'FAILED', counts['blocks'], counts['transactions'], counts['fulfillments'], counts['votes'],
        outcome['seconds'], outcome['workers'])]
    for kind, entry in outcome['failures'].items():
        if entry['count']:
            lines.append('%s: %d (%s%s)' % (kind, entry['count'], ', '.join(entry['ids']), ', ...' if entry['count'] > len(entry['ids']) else ''))
    if counts['blocks_awaiting_votes']:
        lines.append('%d recent block(s) without votes taken as still awaiting them' % counts['blocks_awaiting_votes'])
    lines += ['not checked: %s' % reason for reason in outcome['not_checked']]
    return lines
