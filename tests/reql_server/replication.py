"""The replicas this server holds: their files, their states, catching up, applying and serving writes and reads.

A table's config splits its keys into shards (by split points) and gives each shard a primary replica and other
replicas. Every row carries the version of the write that made it (a hybrid clock: microseconds since the epoch,
always increasing), deletions leave tombstones, so a replica that was away, or is new, catches up by pulling the
rows newer than the version it is known to be complete up to (`synced`) from a server that has them.

A replica's state, as `table_status` shows it: `ready`, `backfilling` (catching up), `transitioning` (its role
just changed), `waiting_for_primary` (no primary to follow). States are published to the other servers.

The primary of a shard is the configured one while it is reachable and ready; otherwise, if a majority of the
shard's voting replicas are reachable and ready, the ready voter with the lowest server id takes over until it
returns (RethinkDB's automatic failover). A server takes the lead only when no voter it reaches follows another
primary, so there is one primary per majority. A primary accepts writes only when a majority of voters is ready,
and acknowledges them once a majority has them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time

from . import datum, errors
from .cluster import PeerLost
from .storage import PAGE_ROWS, KeyRange, TableStore

LOG = logging.getLogger('reql_server.replication')
READY = 'ready'
BACKFILLING = 'backfilling'
TRANSITIONING = 'transitioning'
WAITING_FOR_PRIMARY = 'waiting_for_primary'
DISCONNECTED = 'disconnected'
RECONCILE_SECONDS = 0.2
CLOCK_SLACK = 5 * 1000000
INDEX_BUILD_DELAY = 0.2


def hex_or_none(key: bytes | None):
    """Keys travel between servers as hex."""
    return None if key is None else key.hex()


def bytes_or_none(text: str | None):
    """The inverse of hex_or_none."""
    return None if text is None else bytes.fromhex(text)


def range_to_wire(key_range: KeyRange) -> list:
    """A key range as JSON."""
    return [hex_or_none(key_range.lower), key_range.lower_open, hex_or_none(key_range.upper), key_range.upper_open]


def range_from_wire(wire: list) -> KeyRange:
    """The inverse of range_to_wire."""
    return KeyRange(bytes_or_none(wire[0]), wire[1], bytes_or_none(wire[2]), wire[3])


class Shard:
    """One shard of a table's current config: its key range and replicas."""

    def __init__(self, index: int, key_range: KeyRange, config: dict, split_left, split_right):
        self.index = index
        self.key_range = key_range
        self.primary = config['primary_replica']
        self.replicas = list(config['replicas'])
        self.nonvoting = set(config.get('nonvoting_replicas', ()))
        self.voters = [server for server in self.replicas if server not in self.nonvoting]
        self.split_left = split_left
        self.split_right = split_right


def key_ranges(split_points: list) -> list:
    """The key ranges of the shards that split points delimit, in key order."""
    bounds = [None] + [datum.encode_key(point) for point in split_points] + [None]
    return [KeyRange(bounds[index], False, bounds[index + 1], True) for index in range(len(bounds) - 1)]


def covered(ranges: list, by: list) -> bool:
    """Whether every key range of `ranges` lies within the union of the (half-open, shard) ranges `by`."""
    merged: list = []
    for key_range in sorted(by, key=lambda item: (item.lower is not None, item.lower or b'')):
        if merged and merged[-1][1] is not None and key_range.lower is not None and key_range.lower <= merged[-1][1]:
            if key_range.upper is None or merged[-1][1] < key_range.upper:
                merged[-1][1] = key_range.upper
        elif merged and merged[-1][1] is None:
            continue
        else:
            merged.append([key_range.lower, key_range.upper])
    return all(any((lower is None or (key_range.lower is not None and key_range.lower >= lower))
                   and (upper is None or (key_range.upper is not None and key_range.upper <= upper))
                   for lower, upper in merged)
               for key_range in ranges)


def layout(table: dict) -> list:
    """The shards of a table's config, in key order."""
    splits = table.get('split_points', [])
    points = [None] + list(splits) + [None]
    return [Shard(index, key_range, config, points[index], points[index + 1])
            for index, (key_range, config) in enumerate(zip(key_ranges(splits), table['shards']))]


def layout_id(table: dict) -> str:
    """A short fingerprint of a table's shard layout (changes when it is reconfigured)."""
    text = json.dumps([table['shards'], table.get('split_points', [])], sort_keys=True)
    return hashlib.sha1(text.encode('utf-8')).hexdigest()[:16]


def shard_for_key(shards: list, key: bytes) -> Shard:
    """The shard whose range holds an encoded key."""
    for shard in shards:
        if shard.key_range.contains(key):
            return shard
    return shards[-1]


def index_definition_id(definition: dict) -> str:
    """A fingerprint of an index definition, to know whether a replica built the current one."""
    return hashlib.sha1(json.dumps(definition, sort_keys=True).encode('utf-8')).hexdigest()[:16]


class HybridClock:
    """Versions for writes: microseconds since the epoch, strictly increasing on this server."""

    def __init__(self):
        self._last = 0
        self._lock = threading.Lock()

    def next(self, floor: int = 0) -> int:
        """A version greater than any returned before and than `floor`."""
        with self._lock:
            self._last = max(self._last + 1, int(time.time() * 1000000), floor + 1)
            return self._last

    def next_many(self, count: int) -> list:
        """`count` increasing versions at once."""
        with self._lock:
            first = max(self._last + 1, int(time.time() * 1000000))
            self._last = first + count - 1
            return list(range(first, first + count))

    def observe(self, version: int) -> None:
        """Never hand out a version lower than one seen."""
        with self._lock:
            self._last = max(self._last, version)


class ReplicaManager:
    """This server's replicas and everything it does for them."""

    def __init__(self, node):
        self.node = node
        self.clock = HybridClock()
        self._lock = threading.RLock()
        self._stores: dict = {}
        self._write_locks: dict = {}
        self._states: dict = {}
        self._ready_under: dict = {}
        self._ready_ranges: dict = {}
        self._reconcile_lock = threading.Lock()
        self._jobs: dict = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> None:
        """Open the replicas the metadata gives this server and start reconciling in the background."""
        self.reconcile()
        self._thread = threading.Thread(target=self._loop, name='replicas', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop background work and close every file (checkpointing it)."""
        self._stopping.set()
        self._wake.set()
        for job in list(self._jobs.values()):
            job.join(timeout=5)
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()

    def poke(self) -> None:
        """Something changed (metadata, peers): reconcile soon."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(RECONCILE_SECONDS)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.reconcile()
            except Exception:  # pylint: disable=broad-except
                LOG.exception('reconciling replicas failed')

    # -- local state

    def store(self, table_id: str) -> TableStore | None:
        """The local replica file of a table, if this server holds one."""
        with self._lock:
            return self._stores.get(table_id)

    def _open(self, table_id: str) -> TableStore:
        with self._lock:
            store = self._stores.get(table_id)
            if store is None:
                store = TableStore(os.path.join(self.node.directory, table_id))
                self._stores[table_id] = store
                self.clock.observe(store.max_version())
            return store

    def write_lock(self, table_id: str) -> threading.Lock:
        """Serialises the writes a primary applies to one table."""
        with self._lock:
            return self._write_locks.setdefault(table_id, threading.Lock())

    def my_states(self) -> dict:
        """{table id: {'layout': id, 'shards': {index: state}}} for the directory."""
        with self._lock:
            return json.loads(json.dumps(self._states))

    def state_of(self, server_id: str, table_id: str, table: dict, shard_index: int) -> str | None:
        """A replica's state as known here (None when unknown or reported for another layout)."""
        if server_id == self.node.server_id:
            entry = self._states.get(table_id)
        else:
            entry = self.node.directory_entry(server_id, table_id)
        if not entry or entry.get('layout') != layout_id(table):
            return None
        return entry['shards'].get(str(shard_index))

    def _set_states(self, table_id: str, table: dict, states: dict) -> None:
        shards = layout(table)
        with self._lock:
            entry = {'layout': layout_id(table), 'shards': {str(index): state for index, state in states.items()}}
            self._ready_ranges[table_id] = [range_to_wire(shards[index].key_range)
                                            for index, state in states.items() if state == READY]
            if self._states.get(table_id) == entry:
                return
            self._states[table_id] = entry
        self.node.publish_states()

    def _drop_state(self, table_id: str) -> None:
        with self._lock:
            self._ready_ranges.pop(table_id, None)
            if self._states.pop(table_id, None) is None:
                return
        self.node.publish_states()

    # -- primaries and readiness

    def alive(self, server_id: str) -> bool:
        """Whether a server is this one or connected to it."""
        return server_id == self.node.server_id or server_id in self.node.mesh.connected()

    def primary_of(self, table_id: str, table: dict, shard: Shard) -> str | None:
        """The server acting as the shard's primary now, or None."""
        if self.alive(shard.primary) and self.state_of(shard.primary, table_id, table, shard.index) == READY:
            return shard.primary
        ready_voters = sorted(server for server in shard.voters
                              if self.alive(server) and self.state_of(server, table_id, table, shard.index) == READY)
        if ready_voters and len(ready_voters) * 2 > len(shard.voters):
            return ready_voters[0]
        return None

    def quorum_connected(self, table_id: str, table: dict, shard: Shard) -> bool:
        """Whether the primary reaches a majority of the shard's voters (ready or catching up)."""
        reached = sum(1 for server in shard.voters
                      if self.alive(server) and self.state_of(server, table_id, table, shard.index) is not None)
        return reached * 2 > len(shard.voters)

    def forget_primary(self, peer_id: str) -> None:
        """A peer went away: replicas that followed it must catch up again whoever leads next."""
        with self._lock:
            for key, primary in list(self._ready_under.items()):
                if primary == peer_id:
                    self._ready_under[key] = None
        self.poke()

    # -- reconciliation

    def reconcile(self) -> None:
        """Make the local replicas match the metadata: open, drop, catch up, build indexes."""
        with self._reconcile_lock:
            self._reconcile()

    def _reconcile(self) -> None:
        tables = dict(self.node.metadata.items('table'))
        with self._lock:
            held = set(self._stores)
        for table_id in held - set(tables):
            self._remove(table_id)
        for table_id, table in tables.items():
            shards = [shard for shard in layout(table) if self.node.server_id in shard.replicas]
            if not shards:
                if table_id in held:
                    self._retire(table_id, table)
                continue
            self._reconcile_table(table_id, table, shards)
        self.node.feeds.check_primaries()

    def _retire(self, table_id: str, table: dict) -> None:
        """No longer a replica: keep the copy (new replicas may pull from it) until every replica is ready."""
        self._drop_state(table_id)
        if self._all_ready(table_id, table):
            self._remove(table_id)

    def _remove(self, table_id: str) -> None:
        with self._lock:
            job = self._jobs.get(table_id)
            if job is not None and job.is_alive():
                return
            store = self._stores.pop(table_id, None)
        self._drop_state(table_id)
        self.node.feeds.table_gone(table_id)
        if store is not None:
            store.close()
            for suffix in ('', '-wal', '-shm'):
                path = os.path.join(self.node.directory, table_id + suffix)
                if os.path.exists(path):
                    os.remove(path)

    def _reconcile_table(self, table_id: str, table: dict, shards: list) -> None:
        store = self._open(table_id)
        current = layout_id(table)
        with self._lock:
            entry = self._states.get(table_id)
            job = self._jobs.get(table_id)
        if job is not None and job.is_alive():
            return
        if entry is None or entry.get('layout') != current:
            self._relayout(table_id, table, store, shards)
            entry = None
        states = {int(index): state for index, state in (entry or {}).get('shards', {}).items()}
        me = self.node.server_id
        needs_sync = False
        for shard in shards:
            state = states.get(shard.index)
            primary = self.primary_of(table_id, table, shard)
            if state != READY:
                needs_sync = True
            elif primary == me:
                self._ready_under[(table_id, shard.index)] = me
            elif primary is not None and primary != self._ready_under.get((table_id, shard.index)):
                needs_sync = True
            elif primary is None and not self._may_lead(shard):
                # The primary is gone and no voter may take over (no majority): like the real one, wait for it.
                states[shard.index] = WAITING_FOR_PRIMARY
        pending_indexes = self._pending_indexes(store, table)
        if needs_sync or pending_indexes:
            self._set_states(table_id, table, {shard.index: states.get(shard.index) or TRANSITIONING
                                               for shard in shards})
            job = threading.Thread(target=self._sync_job, args=(table_id, table, shards, pending_indexes),
                                   name='sync-%s' % table_id[:8], daemon=True)
            with self._lock:
                self._jobs[table_id] = job
            job.start()
        else:
            self._set_states(table_id, table, {shard.index: states[shard.index] for shard in shards})
            if store.get_meta('untrimmed') and self._all_ready(table_id, table):
                store.delete_outside([shard.key_range for shard in shards])
                store.set_meta('untrimmed', 0)

    def _all_ready(self, table_id: str, table: dict) -> bool:
        """Whether every replica of every shard is connected and ready under the current layout."""
        return all(self.alive(server) and self.state_of(server, table_id, table, shard.index) == READY
                   for shard in layout(table) for server in shard.replicas)

    def _relayout(self, table_id: str, table: dict, store: TableStore, shards: list) -> None:
        """The table was (re)configured: a range we did not cover before is pulled in full; rows now outside our
        ranges stay (other replicas may still pull them) until every replica is ready; a shard whose range we
        already served ready stays ready."""
        ranges = [range_to_wire(shard.key_range) for shard in shards]
        old = store.get_meta('ranges')
        if old != ranges:
            if old is None or not covered([shard.key_range for shard in shards], [range_from_wire(w) for w in old]):
                store.set_meta('full_pull', 1)
            if old is not None:
                store.set_meta('untrimmed', 1)
            store.set_meta('ranges', ranges)
        with self._lock:
            ready_ranges = self._ready_ranges.get(table_id, [])
        self._set_states(table_id, table, {shard.index: READY if range_to_wire(shard.key_range) in ready_ranges
                                           else TRANSITIONING for shard in shards})

    def _pending_indexes(self, store: TableStore, table: dict) -> dict:
        built = store.get_meta('indexes') or {}
        wanted = {name: index_definition_id(definition) for name, definition in table.get('indexes', {}).items()}
        for name in set(built) - set(wanted):
            store.drop_index(name)
            built.pop(name)
            store.set_meta('indexes', built)
        return {name: ident for name, ident in wanted.items() if built.get(name) != ident}

    def _sync_job(self, table_id: str, table: dict, shards: list, pending_indexes: dict) -> None:
        try:
            store = self._open(table_id)
            if pending_indexes:
                # Indexes often come in a burst (restore creates them one after another): build them in one pass.
                self._stopping.wait(INDEX_BUILD_DELAY)
                table = self.node.metadata.get('table/' + table_id) or table
                self._build_indexes(table_id, table, store, self._pending_indexes(store, table))
            states = {}
            for shard in shards:
                states[shard.index] = self._catch_up(table_id, table, store, shard)
            if all(state == READY for state in states.values()):
                store.set_meta('full_pull', 0)
            self._set_states(table_id, table, states)
        except (PeerLost, errors.ReqlError, OSError) as error:
            LOG.info('catching up table %s failed: %s', table_id, error)
        finally:
            with self._lock:
                self._jobs.pop(table_id, None)
            self.poke()

    def _catch_up(self, table_id: str, table: dict, store: TableStore, shard: Shard) -> str:
        """Bring one shard of the local replica up to date; returns its new state.

        With a primary, pull from it. Without one, a server allowed to lead pulls what any reachable server holding
        a copy (a replica, or a former replica keeping its copy until the new ones are ready) has that is newer.
        """
        me = self.node.server_id
        primary = self.primary_of(table_id, table, shard)
        if primary == me:
            self._ready_under[(table_id, shard.index)] = me
            return READY
        if primary is not None:
            self._set_state(table_id, table, shard.index, BACKFILLING)
            self._pull(table_id, store, shard, primary)
            self._ready_under[(table_id, shard.index)] = primary
            return READY
        if not self._may_lead(shard) or self._led_elsewhere(table_id, table, shard):
            return WAITING_FOR_PRIMARY
        sources = self._newer_copies(table_id, store)
        if sources:
            self._set_state(table_id, table, shard.index, BACKFILLING)
            for source in sources:
                self._pull(table_id, store, shard, source)
        self._ready_under[(table_id, shard.index)] = me
        return READY

    def _may_lead(self, shard: Shard) -> bool:
        """Without a primary, a voter may take the lead (and declare itself ready) only when it reaches a majority of
        the shard's voters, so it has asked them for newer copies first: the configured primary, or any voter when
        the configured primary is unreachable (failover)."""
        me = self.node.server_id
        if me not in shard.voters:
            return False
        alive_voters = sum(1 for server in shard.voters if self.alive(server))
        if alive_voters * 2 <= len(shard.voters):
            return False
        return shard.primary == me or not self.alive(shard.primary)

    def _led_elsewhere(self, table_id: str, table: dict, shard: Shard) -> bool:
        """Whether a voter we reach follows a primary we do not see (one that took over while we were away and that
        we have not reached yet). Leading then would make two primaries, each acknowledging writes with the voter
        both reach, and ours would lack the other's: like a Raft candidate that the voter refuses, we wait until we
        reach that primary (and follow it) or it is gone. A voter that cannot say counts as following another."""
        me = self.node.server_id
        for server in shard.voters:
            if server == me or not self.alive(server):
                continue
            try:
                acting = self.node.mesh.call(server, 'acting_primary', {
                    'table': table_id, 'layout': layout_id(table), 'shard': shard.index}, timeout=5)
            except (PeerLost, errors.ReqlError):
                return True
            if acting not in (None, me):
                return True
        return False

    def acting_primary(self, table_id: str, wanted_layout: str, shard_index: int) -> str | None:
        """The server this one sees acting as primary of a shard (None when none, or under another layout)."""
        table = self.node.metadata.get('table/' + table_id)
        if table is None or layout_id(table) != wanted_layout:
            return None
        return self.primary_of(table_id, table, layout(table)[shard_index])

    def _set_state(self, table_id: str, table: dict, shard_index: int, state: str) -> None:
        with self._lock:
            entry = self._states.get(table_id) or {'layout': layout_id(table), 'shards': {}}
            shards = {int(index): value for index, value in entry['shards'].items()}
        shards[shard_index] = state
        self._set_states(table_id, table, shards)

    def _newer_copies(self, table_id: str, store: TableStore) -> list:
        """Reachable servers holding a copy of the table newer than ours (any copy while we pull a new range in
        full), newest first."""
        mine = 0 if store.get_meta('full_pull') else store.get_meta('synced') or 0
        found = []
        for server in sorted(self.node.mesh.connected()):
            try:
                version = self.node.mesh.call(server, 'synced_version', {'table': table_id}, timeout=5)
            except (PeerLost, errors.ReqlError):
                continue
            if version is not None and version > mine:
                found.append((version, server))
        return [server for _version, server in sorted(found, reverse=True)]

    def _pull(self, table_id: str, store: TableStore, shard: Shard, source: str) -> None:
        since = 0 if store.get_meta('full_pull') else max(0, (store.get_meta('synced') or 0) - CLOCK_SLACK)
        after = None
        newest = since
        source_now = self.node.mesh.call(source, 'synced_version', {'table': table_id}, timeout=10) or 0
        while True:
            page = self.node.mesh.call(source, 'rows_since', {
                'table': table_id, 'range': range_to_wire(shard.key_range), 'since': since, 'after': after})
            rows = [(bytes.fromhex(key), doc, version) for key, doc, version in page['rows']]
            if rows:
                self._apply_with_indexes(table_id, store, rows, hard=False, only_newer=True)
                newest = max(newest, rows[-1][2])
                self.clock.observe(newest)
            if not page['more']:
                break
            after = [rows[-1][2], page['rows'][-1][0]]
        store.set_meta('synced', max(newest, source_now, store.get_meta('synced') or 0))

    # -- indexes

    def index_entries(self, table_id: str, table: dict, rows: list, parsed: dict | None = None) -> dict:
        """{key: [(index name, index key)]} for rows [(key, json text or None, version)] (`parsed`: key -> row)."""
        indexes = table.get('indexes', {})
        if not indexes:
            return {}
        functions = {name: self.node.index_function(table_id, name, definition) for name, definition in indexes.items()}
        entries = {}
        for key, text, _version in rows:
            if text is None:
                continue
            row = parsed[key] if parsed is not None else json.loads(text)
            entries[key] = [(name, index_key) for name, function in functions.items() for index_key in function(row)]
        return entries

    def _apply_with_indexes(self, table_id: str, store: TableStore, rows: list, hard: bool, only_newer: bool,
                            synced: int | None = None, parsed: dict | None = None) -> list:
        table = self.node.metadata.get('table/' + table_id) or {}
        return store.apply(rows, self.index_entries(table_id, table, rows, parsed), hard, only_newer=only_newer, synced=synced)

    def _build_indexes(self, table_id: str, table: dict, store: TableStore, pending: dict) -> None:
        """Build new or changed indexes in one pass over the rows (each row parsed once)."""
        functions = {name: self.node.index_function(table_id, name, table['indexes'][name]) for name in pending}
        after, first = None, True
        while True:
            with store.lock:
                page = store.all_docs(after)
                entries: dict = {name: [] for name in functions}
                for key, text in page:
                    row = json.loads(text)
                    for name, function in functions.items():
                        entries[name].extend((index_key, key) for index_key in function(row))
                for name, found in entries.items():
                    store.replace_index(name, found, first)
            first = False
            if len(page) < PAGE_ROWS:
                break
            after = page[-1][0]
        built = store.get_meta('indexes') or {}
        built.update(pending)
        store.set_meta('indexes', built)

    def index_ready(self, table_id: str, name: str, definition: dict) -> bool:
        """Whether the local replica has built the current definition of an index."""
        store = self.store(table_id)
        if store is None:
            return False
        return (store.get_meta('indexes') or {}).get(name) == index_definition_id(definition)

    # -- serving peers and local callers

    def synced_version(self, table_id: str):
        """The version up to which the local replica is complete (None without one)."""
        store = self.store(table_id)
        return None if store is None else (store.get_meta('synced') or 0)

    def rows_since(self, table_id: str, wire_range: list, since: int, after) -> dict:
        """A page of rows newer than `since` in a range, for a replica catching up."""
        store = self.store(table_id)
        if store is None:
            raise errors.op_failed('This server does not have any data available for the given table.')
        key_range = range_from_wire(wire_range)
        cursor = None if after is None else (after[0], bytes.fromhex(after[1]))
        rows = []
        more = True
        while len(rows) < PAGE_ROWS and more:
            page = store.rows_since(since, cursor)
            more = len(page) == PAGE_ROWS
            if page:
                cursor = (page[-1][2], page[-1][0])
            rows.extend([key.hex(), doc, version] for key, doc, version in page if key_range.contains(key))
        return {'rows': rows, 'more': more}

    def apply_from_primary(self, table_id: str, rows: list, hard: bool) -> bool:
        """A write the shard's primary sends us; True once it is applied."""
        table = self.node.metadata.get('table/' + table_id)
        if table is None or not any(self.node.server_id in shard.replicas for shard in layout(table)):
            return False
        store = self._open(table_id)
        decoded = [(bytes.fromhex(key), doc, version) for key, doc, version in rows]
        for _key, _doc, version in decoded:
            self.clock.observe(version)
        with self._lock:
            entry = self._states.get(table_id) or {}
        all_ready = entry.get('layout') == layout_id(table) and all(
            state == READY for state in entry.get('shards', {}).values())
        newest = max(version for _key, _doc, version in decoded) if decoded else None
        if not self.node.feeds.followed(table_id):
            self._apply_with_indexes(table_id, store, decoded, hard, only_newer=True, synced=newest if all_ready else None)
            return True
        # Feeds follow this server as a primary: a write another server applied as primary (one that has not yet
        # learnt that we took the lead back) goes to them too, in order with ours, so that no feed misses it.
        with self.write_lock(table_id):
            before = store.get_many([key for key, _doc, _version in decoded])
            written = self._apply_with_indexes(table_id, store, decoded, hard, only_newer=True, synced=newest if all_ready else None)
            changes = [(key, json.loads(before[key]) if key in before else None, None if doc is None else json.loads(doc))
                       for key, doc, _version in written]
            self.node.feeds.publish(table_id, [change for change in changes if change[1] is not None or change[2] is not None])
        return True

    def replicate(self, table_id: str, table: dict, shard: Shard, rows: list, hard: bool, parsed: dict) -> None:
        """Apply a primary's write locally, send it to the other replicas, wait for a majority of voters."""
        store = self._open(table_id)
        newest = max(version for _key, _doc, version in rows)
        self._apply_with_indexes(table_id, store, rows, hard, only_newer=False, synced=newest, parsed=parsed)
        wire_rows = [[key.hex(), doc, version] for key, doc, version in rows]
        needed = len(shard.voters) // 2 + 1
        acked = 1 if self.node.server_id in shard.voters else 0
        futures = {}
        for server in shard.replicas:
            if server != self.node.server_id and self.alive(server):
                request = {'table': table_id, 'rows': wire_rows, 'hard': hard}
                futures[server] = self.node.mesh.call_async(server, 'apply', request)
        table_acks = table.get('write_acks', 'majority')
        if table_acks == 'single':
            needed = 1
        deadline = time.time() + 30
        for server, future in futures.items():
            if acked >= needed:
                break
            try:
                if future.result(max(0.0, deadline - time.time())) and server in shard.voters:
                    acked += 1
            except Exception:  # pylint: disable=broad-except
                continue
        if acked < needed:
            raise errors.op_indeterminate('The primary replica lost contact with the secondary replicas. The write may '
                                          'or may not have been performed.')
