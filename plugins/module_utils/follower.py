# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The follower: one long-running process per cluster that keeps append-only tables backed up, continuously.

The program that runs it is roles/follower/files/rethinkdb_follower.py (the follower role installs it with the
module_utils it imports); this module is what it does. It continues a chain (docs/continuous-backup.md) on the
newest complete dump set (or one it takes): a feed per table hands it the new documents, which go into the open
segment; the segment is sealed every seal_seconds or seal_documents, so a document is durable in the repository
within seal_seconds (plus the time to write it) of being received. Every gap (a feed that ended or dropped
changes, a server that stopped answering, this process started) is closed by a catch-up that does not trust the
feed, after a new feed is live. Updates and deletions are recorded and raised as alarms, never applied. Progress
goes to the log (stderr, or a file), a status file in the state directory and a Prometheus textfile; none of them
holds a secret.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import queue
import signal
import socket
import threading
import time

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_base import choose_base, open_chain, sync_index, take_base
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_format import ChainFormatError, split_table
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_index import HeldIndex, HeldIndexError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_source import (
    FeedReader, Login, SourceError, catch_up, close_quietly, cluster_facts, connect, one_line)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_store import ChainError, ChainStore, ChainWriter
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import write_json_atomic
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import RepositoryError, open_repository
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import CLUSTER_RE, format_time, utc_now

DEFAULTS = dict(
    user='admin', password_file=None, tls_ca_file=None, connect_timeout=20.0,
    tables=['bigchain.bigchain', 'bigchain.votes'], seal_seconds=10.0, seal_documents=5000, metrics_file='',
    changefeed_queue_size=100000, take_base=True, base_set=None, base_check_seconds=300.0, liveness_seconds=10.0,
    s3_endpoint_url=None, s3_region=None, s3_profile=None, s3_credentials_file=None, s3_ca_bundle=None,
)
REQUIRED = ('cluster', 'repository', 'servers', 'state_dir')
RETRY_SECONDS = (1, 2, 5, 10, 30)
STATUS_EVERY = 1.0
RECENT = 20
log = logging.getLogger('rethinkdb-follower')


class ConfigError(Exception):
    """The configuration cannot work; the message says which setting to fix."""


class Stopping(Exception):
    """The follower was asked to stop while it waited."""


# --- configuration ---------------------------------------------------------------------------------------------

def _number(config: dict, name: str, minimum: float, integer: bool = False) -> None:
    value = config[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)) or value < minimum:
        raise ConfigError('%s must be %s of at least %s, not %r' % (name, 'a whole number' if integer else 'a number', minimum, value))


def load_config(path: str) -> dict:
    """The follower's settings from a JSON file, checked; ConfigError with one line that says what to fix."""
    try:
        with open(path, encoding='utf-8') as stream:
            given = json.load(stream)
    except OSError as exc:
        raise ConfigError('cannot read the configuration %s: %s' % (path, exc.strerror)) from None
    except ValueError as exc:
        raise ConfigError('the configuration %s is not valid JSON: %s' % (path, exc)) from None
    if not isinstance(given, dict):
        raise ConfigError('the configuration %s is not a JSON object' % path)
    unknown = sorted(set(given) - set(DEFAULTS) - set(REQUIRED))
    if unknown:
        raise ConfigError('unknown setting(s) %s in %s' % (', '.join(unknown), path))
    missing = [name for name in REQUIRED if not given.get(name)]
    if missing:
        raise ConfigError('setting(s) %s missing in %s' % (', '.join(missing), path))
    config = dict(DEFAULTS, **given)
    if not isinstance(config['cluster'], str) or not CLUSTER_RE.fullmatch(config['cluster']):
        raise ConfigError("cluster %r is not a valid name: letters, digits, '_', '.' and '-'" % config['cluster'])
    if not isinstance(config['servers'], list) or not all(isinstance(server, str) for server in config['servers']):
        raise ConfigError('servers must be a list of host:port')
    for server in config['servers']:
        _address(server)
    if not isinstance(config['tables'], list) or not config['tables'] or len(set(config['tables'])) != len(config['tables']):
        raise ConfigError('tables must be a list of database.table names, each once')
    try:
        for table in config['tables']:
            split_table(table)
    except ChainFormatError as exc:
        raise ConfigError(str(exc)) from None
    for name, minimum, integer in (('seal_seconds', 0.1, False), ('seal_documents', 1, True), ('changefeed_queue_size', 1, True),
                                   ('connect_timeout', 0.1, False), ('base_check_seconds', 0, False), ('liveness_seconds', 1, False)):
        _number(config, name, minimum, integer)
    return config


def _address(server: str) -> tuple[str, int]:
    host, colon, port = server.rpartition(':')
    if not colon or not host or not port.isdigit():
        raise ConfigError('server %r is not host:port' % server)
    return host.strip('[]'), int(port)


def logins(config: dict) -> list:
    """How to log in to each server; the password is read from its file here, at start, and kept in memory only."""
    password = ''
    if config['password_file']:
        try:
            with open(config['password_file'], encoding='utf-8') as stream:
                password = stream.read()
        except OSError as exc:
            raise ConfigError('cannot read password_file %s: %s' % (config['password_file'], exc.strerror)) from None
        password = password[:-1] if password.endswith('\n') else password
    return [Login(*_address(server), config['user'], password, config['tls_ca_file'], float(config['connect_timeout']))
            for server in config['servers']]


# --- the follower ------------------------------------------------------------------------------------------------

class Follower:
    """Follows the tables of one cluster into a chain (see the module's docstring)."""

    def __init__(self, config: dict, runner):
        """runner: what runs `rethinkdb dump` when a base must be taken (run_command(argv, environ_update=...))."""
        self.config = dict(config, logins=logins(config))
        self.runner = runner
        self.names = list(config['tables'])
        self.stop = threading.Event()
        # Changes wait here at most one segment's worth: memory is bounded by twice seal_documents documents, and
        # when the repository stalls the server's queue for the feed fills and drops changes (a gap, closed later).
        self.events: queue.Queue = queue.Queue(config['seal_documents'])
        self.repository = open_repository(config['repository'], dict(
            endpoint_url=config['s3_endpoint_url'], region=config['s3_region'], profile=config['s3_profile'],
            credentials_file=config['s3_credentials_file'], ca_bundle=config['s3_ca_bundle']))
        self.store = ChainStore(self.repository, config['cluster'])
        self.readers: list = []
        self.connection = None
        self.r = None
        self.writer: ChainWriter | None = None
        self.manifest: dict = {}
        self.base_entry: dict = {}
        self.index: HeldIndex | None = None
        self.open_gaps: dict = {}
        self.generation = dict.fromkeys(self.names, 0)
        self.pending_catchups: dict = {}
        self.feeds = dict((name, dict(live=False, server=None)) for name in self.names)
        self.counters = dict(segments=0, seal_failures=0, documents=dict.fromkeys(self.names, 0), catchups=dict.fromkeys(self.names, 0),
                             alarms={})
        self.recent_gaps: list = []
        self.recent_alarms: list = []
        self.last_seal: dict | None = None
        self.last_error: str | None = None
        self.state = 'starting'
        self.next_seal_attempt = 0.0
        self.seal_attempts = 0
        self.next_base_check = 0.0
        self.next_status = 0.0

    # --- the cluster ---------------------------------------------------------------------------------------------

    def _connection(self):
        """The connection catch-ups use: to the first server that answers."""
        if self.connection is not None:
            return self.r, self.connection
        problems = []
        for login in self.config['logins']:
            try:
                self.r, self.connection = connect(login)
                return self.r, self.connection
            except SourceError as exc:
                problems.append(str(exc))
        raise SourceError('; '.join(problems))

    def _drop_connection(self) -> None:
        if self.connection is not None:
            close_quietly(self.connection)
        self.connection = None

    def _wait(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopping()

    def _retrying(self, doing: str, action):
        """Run action() until it succeeds, waiting longer after each failure (the cluster or the repository away)."""
        attempt = 0
        while True:
            try:
                return action()
            except (SourceError, RepositoryError, OSError) as exc:
                self._drop_connection()
                self.last_error = '%s: %s' % (doing, one_line(exc))
                delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
                log.warning('%s failed (%s); trying again in %d s', doing, one_line(exc), delay)
                self.write_status(force=True)
                attempt += 1
                self._wait(delay)

    # --- the chain -----------------------------------------------------------------------------------------------

    def _base(self) -> tuple:
        try:
            return choose_base(self.repository, self.config['cluster'], self.names, self.config['base_set'])
        except ChainError as exc:
            if not self.config['take_base'] or self.config['base_set']:
                raise
            log.info('%s; taking a base set (rethinkdb dump of %s)', exc, ', '.join(self.names))

        def take():
            r, connection = self._connection()
            facts = cluster_facts(r, connection, self.names)
            return take_base(self.repository, self.config['cluster'], self.config['logins'][0]._asdict(), self.names, facts,
                             self.config['state_dir'], 'follower', self.runner)
        base = self._retrying('taking a base set', take)
        log.info('took base set %s', base[0]['set_id'])
        return base

    def begin(self) -> None:
        """Choose the base, continue or begin the chain, bring the index up to it, and note the gap this start is."""
        self.base_entry, self.manifest = self._retrying('choosing the base set', self._base)
        chain, content, head = self._retrying('opening the chain', lambda: open_chain(
            self.store, self.base_entry, self.manifest, self.names, 'follower'))
        if self.index is not None:
            self.index.close()
        self.index = HeldIndex(os.path.join(self.config['state_dir'], 'index-%s-%s.sqlite' % (self.config['cluster'], chain['chain_id'])))
        done = self._retrying('reading what the chain holds', lambda: sync_index(self.index, self.store, chain, content, head, self.manifest))
        self.writer = ChainWriter(self.store, chain, head, self.index, dict(kind='follower', host=socket.gethostname()),
                                  self.config['seal_documents'], self.config['seal_seconds'])
        since = self._last_sealed_at(chain, head)
        reason = ('the follower started (chain %s continued at segment %d)' % (chain['chain_id'], head.seq + 1) if head.seq
                  else 'chain %s begun on base set %s' % (chain['chain_id'], chain['base']['set_id']))
        for name in self.names:
            # A catch-up runs once the table's feed is live: at once for a feed that runs already (a new chain), else
            # when the feed says it is ready.
            self._open_gap(name, reason, since, feed_down=False)
            if self.feeds[name]['live']:
                self.pending_catchups[name] = self.generation[name]
        self.next_base_check = time.monotonic() + self.config['base_check_seconds']
        log.info('following %s into chain %s on base set %s (%s)', ', '.join(self.names), chain['chain_id'], chain['base']['set_id'], done)

    def _last_sealed_at(self, chain: dict, head) -> str:
        if head.seq == 0:
            return self.manifest['started_at']
        record, _content = self.store.read_segment_record(chain['chain_id'], head.seq)
        return record['sealed_at']

    def _check_base(self) -> None:
        """Move to a new chain when a newer base set is there, so that old ones can be pruned."""
        if not self.config['base_check_seconds'] or time.monotonic() < self.next_base_check or self.config['base_set']:
            return
        self.next_base_check = time.monotonic() + self.config['base_check_seconds']
        try:
            newest, _manifest = choose_base(self.repository, self.config['cluster'], self.names)
        except (ChainError, RepositoryError) as exc:
            log.warning('looking for a newer base set failed: %s', exc)
            return
        if newest['set_id'] == self.base_entry['set_id']:
            return
        log.info('base set %s is newer than %s: sealing chain %s and beginning a new one', newest['set_id'], self.base_entry['set_id'],
                 self.writer.chain_id)
        self._make_room(force=True)
        self.begin()

    # --- gaps, catch-ups and changes ----------------------------------------------------------------------------

    def _open_gap(self, name: str, reason: str, opened_at: str | None = None, feed_down: bool = True) -> None:
        self.generation[name] += 1
        if feed_down:
            self.feeds[name]['live'] = False
        if name not in self.open_gaps:
            self.open_gaps[name] = dict(reason=reason, opened_at=opened_at or format_time(utc_now()), found=0, missing=0)
            log.warning('gap in %s: %s', name, reason)

    def handle(self, event: tuple) -> None:
        kind, name, payload = event
        if kind == 'gap':
            self._open_gap(name, payload)
        elif kind == 'ready':
            self.feeds[name] = dict(live=True, server=payload)
            if name in self.open_gaps:
                self.pending_catchups[name] = self.generation[name]
        else:
            self._change(name, payload)

    def _change(self, name: str, change: dict) -> None:
        table = self._table(name)
        old, new = change.get('old_val'), change.get('new_val')
        now = time.monotonic()
        if new is not None and old is None:
            taken = self.writer.add_document(name, new[table['primary_key']], new, 'feed', now)
            if taken == 'inserted':
                self.counters['documents'][name] += 1
            elif taken == 'reinsert':
                self._alarm_seen(name, 'reinsert', new[table['primary_key']])
            return
        if old is None:
            return
        key = old[table['primary_key']]
        if new is not None:
            self.writer.add_alarm(name, 'update', key, 'feed', now, old=old, new=new)
            self._alarm_seen(name, 'update', key)
        else:
            self.writer.add_alarm(name, 'delete', key, 'feed', now, old=old)
            self._alarm_seen(name, 'delete', key)

    def _alarm_seen(self, name: str, operation: str, key) -> None:
        counts = self.counters['alarms'].setdefault(name, {})
        counts[operation] = counts.get(operation, 0) + 1
        self.recent_alarms = (self.recent_alarms + [dict(table=name, op=operation, key=key, at=format_time(utc_now()))])[-RECENT:]
        log.error('ALARM %s of a document in append-only table %s (key %s): recorded in the chain, not applied', operation, name,
                  json.dumps(key))

    def _table(self, name: str) -> dict:
        return next(table for table in self.writer.chain['tables'] if '%s.%s' % (table['db'], table['name']) == name)

    def _catch_up(self, name: str) -> None:
        generation = self.pending_catchups[name]
        r, connection = self._connection()
        result = catch_up(r, connection, self._table(name), self.writer, self._make_room)
        del self.pending_catchups[name]
        self.counters['catchups'][name] += 1
        self.counters['documents'][name] += result.found
        gap = self.open_gaps.get(name)
        if gap is None:
            return
        gap['found'] += result.found
        gap['missing'] += result.missing
        if result.missing:
            self._alarm_seen(name, 'missing', '%d document(s) gone while no feed ran' % result.missing)
            self.counters['alarms'][name]['missing'] += result.missing - 1
        if generation != self.generation[name]:
            log.info('catch-up of %s found %d documents; the feed stopped again since, so the gap stays open', name, result.found)
            return
        closed = dict(table=name, reason=gap['reason'], opened_at=gap['opened_at'], closed_at=format_time(utc_now()),
                      found=gap['found'], missing=gap['missing'])
        self.writer.add_gap(closed, time.monotonic())
        del self.open_gaps[name]
        self.recent_gaps = (self.recent_gaps + [closed])[-RECENT:]
        log.info('closed the gap in %s (%s, open since %s): %d documents found, %d gone; %d keys read in %.2f s', name, closed['reason'],
                 closed['opened_at'], closed['found'], closed['missing'], result.keys, result.seconds)

    def _catch_ups(self) -> None:
        for name in [name for name in self.names if name in self.pending_catchups]:
            try:
                self._catch_up(name)
            except SourceError as exc:
                self._drop_connection()
                self.last_error = str(exc)
                log.warning('%s; trying again once a feed is live', exc)
                self._wait(1.0)

    # --- sealing -------------------------------------------------------------------------------------------------

    def _seal(self) -> bool:
        """Seal the open segment; on failure keep it open and try again later (False)."""
        if time.monotonic() < self.next_seal_attempt:
            return False
        pending = len(self.writer.builder)
        try:
            record = self.writer.seal()
        except (RepositoryError, ChainError, OSError) as exc:
            self.counters['seal_failures'] += 1
            self.last_error = 'sealing segment %d: %s' % (self.writer.head.seq + 1, one_line(exc))
            delay = RETRY_SECONDS[min(self.seal_attempts, len(RETRY_SECONDS) - 1)]
            self.seal_attempts += 1
            self.next_seal_attempt = time.monotonic() + delay
            log.warning('%s; %d records kept, trying again in %d s', self.last_error, pending, delay)
            self.write_status(force=True)
            return False
        self.seal_attempts = 0
        self.next_seal_attempt = 0.0
        if record is not None:
            self.counters['segments'] += 1
            self.last_seal = record
            lag = (datetime.datetime.fromisoformat(record['sealed_at'].replace('Z', '+00:00'))
                   - datetime.datetime.fromisoformat(record['first_received_at'].replace('Z', '+00:00'))).total_seconds()
            record['lag_seconds'] = round(lag, 3)
            log.info('sealed segment %d of chain %s: %d records (%d documents, %d alarms, %d gaps closed), %d bytes',
                     record['seq'], record['chain_id'], record['records'], sum(counts['insert'] for counts in record['tables'].values()),
                     sum(sum(counts.values()) - counts['insert'] for counts in record['tables'].values()), len(record['gaps']),
                     record['data']['bytes'])
            self.write_metrics()
        return True

    def _make_room(self, force: bool = False) -> None:
        """Seal until it works (called when the open segment is full, or before a chain ends): nothing more is
        taken in meanwhile, so the feeds' queues fill and the server drops changes, which a catch-up closes later."""
        while (force and not self.writer.builder.empty()) or self.writer.full():
            if not self._seal():
                self._wait(max(0.05, self.next_seal_attempt - time.monotonic()))

    # --- the loop ------------------------------------------------------------------------------------------------

    def start_readers(self) -> None:
        tables = dict(('%s.%s' % (table['db'], table['name']), table) for table in self.writer.chain['tables'])
        for name in self.names:
            reader = FeedReader(self.config['logins'], tables[name], self.events, self.stop, self.config['changefeed_queue_size'],
                                self.config['liveness_seconds'])
            reader.start()
            self.readers.append(reader)

    def step(self) -> None:
        """One turn: catch-ups that are due, then events for a moment, then a seal when one is due."""
        self._catch_ups()
        if self.writer.full():
            self._make_room()
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline and not self.writer.full():
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.handle(event)
            if self.pending_catchups:
                break
        if self.writer.due(time.monotonic()):
            self._seal()
        self._check_base()
        self.state = 'following' if not self.open_gaps and all(feed['live'] for feed in self.feeds.values()) else 'catching up'
        self.write_status()

    def run(self) -> int:
        os.makedirs(self.config['state_dir'], 0o700, exist_ok=True)
        try:
            with contextlib.suppress(Stopping):
                self.begin()
                self.start_readers()
                while not self.stop.is_set():
                    self.step()
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        """Seal what is open (a few tries), stop the feeds, leave the metrics saying the follower is down."""
        self.stop.set()
        if self.writer is not None and not self.writer.builder.empty():
            for _attempt in range(3):
                self.next_seal_attempt = 0.0
                if self._seal():
                    break
        for reader in self.readers:
            reader.join(timeout=5)
        self._drop_connection()
        self.state = 'stopped'
        self.write_status(force=True)
        self.write_metrics(up=False)
        if self.index is not None:
            self.index.close()
        log.info('stopped')

    # --- what it says of itself ----------------------------------------------------------------------------------

    def status(self) -> dict:
        writer = self.writer
        builder = writer.builder if writer else None
        return dict(
            state=self.state, pid=os.getpid(), updated_at=format_time(utc_now()), cluster=self.config['cluster'],
            chain_id=writer.chain_id if writer else None, base_set_id=self.base_entry.get('set_id'),
            seq=writer.head.seq if writer else 0, totals=writer.head.totals if writer else None,
            feeds=self.feeds, open_gaps=self.open_gaps, pending_catchups=sorted(self.pending_catchups),
            pending_records=len(builder) if builder else 0, pending_since=builder.first_received_at if builder else None,
            last_seal=dict((key, self.last_seal[key]) for key in ('seq', 'sealed_at', 'first_received_at', 'last_received_at', 'records', 'lag_seconds'))
            if self.last_seal else None,
            counters=self.counters, recent_gaps=self.recent_gaps, recent_alarms=self.recent_alarms, last_error=self.last_error)

    def write_status(self, force: bool = False) -> None:
        if not force and time.monotonic() < self.next_status:
            return
        self.next_status = time.monotonic() + STATUS_EVERY
        try:
            write_json_atomic(os.path.join(self.config['state_dir'], 'status.json'), self.status())
        except OSError as exc:
            log.warning('cannot write the status file: %s', exc)
        self.write_metrics()

    def write_metrics(self, up: bool = True) -> None:
        path = self.config['metrics_file']
        if not path:
            return
        try:
            write_textfile(path, metrics_lines(self, up))
        except OSError as exc:
            log.warning('cannot write the metrics file %s: %s', path, exc)


def metrics_lines(follower: Follower, up: bool) -> list:
    """The follower's figures in the Prometheus text format, for node_exporter's textfile collector."""
    cluster = follower.config['cluster']
    labels = 'cluster="%s"' % cluster
    writer = follower.writer
    builder = writer.builder if writer else None
    pending = (time.monotonic() - builder.opened_monotonic) if builder is not None and builder.opened_monotonic is not None else 0.0
    lines = []

    def metric(name: str, kind: str, text: str, samples: list) -> None:
        lines.extend(['# HELP rethinkdb_follower_%s %s' % (name, text), '# TYPE rethinkdb_follower_%s %s' % (name, kind)])
        lines.extend('rethinkdb_follower_%s{%s} %s' % (name, sample_labels, value) for sample_labels, value in samples)

    metric('up', 'gauge', 'Whether the follower runs.', [(labels, 1 if up else 0)])
    metric('last_update_timestamp_seconds', 'gauge', 'When the follower last wrote these figures.', [(labels, round(time.time(), 3))])
    if follower.last_seal:
        sealed = datetime.datetime.fromisoformat(follower.last_seal['sealed_at'].replace('Z', '+00:00')).timestamp()
        metric('last_seal_timestamp_seconds', 'gauge', 'When the last segment was sealed (made durable).', [(labels, round(sealed, 3))])
        metric('lag_seconds', 'gauge', 'How long the first document of the last sealed segment waited to be durable.',
               [(labels, follower.last_seal['lag_seconds'])])
    metric('pending_seconds', 'gauge', 'How long the oldest document not yet durable has waited (0 for none).', [(labels, round(pending, 3))])
    metric('pending_records', 'gauge', 'Records in the open segment.', [(labels, len(builder) if builder else 0)])
    metric('segments_total', 'counter', 'Segments sealed by this process.', [(labels, follower.counters['segments'])])
    metric('seal_failures_total', 'counter', 'Seals that failed (the repository unavailable) and were tried again.',
           [(labels, follower.counters['seal_failures'])])
    metric('documents_total', 'counter', 'Documents taken into the chain by this process (feeds and catch-ups).',
           [('%s,table="%s"' % (labels, name), count) for name, count in sorted(follower.counters['documents'].items())])
    metric('catchups_total', 'counter', 'Catch-ups run by this process (each closes a gap).',
           [('%s,table="%s"' % (labels, name), count) for name, count in sorted(follower.counters['catchups'].items())])
    metric('alarms_total', 'counter', 'Updates, deletions and other writes an append-only table must never see.',
           [('%s,table="%s",op="%s"' % (labels, name, operation), count)
            for name, counts in sorted(follower.counters['alarms'].items()) for operation, count in sorted(counts.items())]
           or [('%s,table="%s",op="update"' % (labels, name), 0) for name in follower.names])
    metric('feed_live', 'gauge', 'Whether the table has a live feed and no open gap.',
           [('%s,table="%s"' % (labels, name), int(feed['live'] and name not in follower.open_gaps)) for name, feed in sorted(follower.feeds.items())])
    if writer is not None:
        totals = writer.head.totals
        metric('chain_info', 'gauge', 'The chain being written and its base set.',
               [('%s,chain_id="%s",base_set_id="%s"' % (labels, writer.chain_id, writer.chain['base']['set_id']), 1)])
        for name in ('segments', 'documents', 'alarms', 'gaps'):
            metric('chain_%s' % name, 'gauge', 'The chain\'s %s so far.' % name, [(labels, totals[name])])
    return lines


def write_textfile(path: str, lines: list) -> None:
    """A textfile node_exporter reads whole: written beside, then renamed over (mode 0644, nothing secret)."""
    temporary = '%s.%d.tmp' % (path, os.getpid())
    with open(temporary, 'w', encoding='utf-8') as stream:
        stream.write('\n'.join(lines) + '\n')
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def follow(config: dict, runner) -> int:
    """Run the follower until SIGTERM or SIGINT (which seal what is open); 0, or 1 after an error it cannot outwait."""
    follower = Follower(config, runner)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: follower.stop.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: follower.stop.set())
    try:
        return follower.run()
    except (ChainError, HeldIndexError, RepositoryError, SourceError) as exc:
        log.error('stopped: %s', exc)
        return 1
