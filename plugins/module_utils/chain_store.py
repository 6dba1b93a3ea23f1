# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Chains of continuous backup in a repository: writing them segment by segment, listing, checking and pruning them.

The follower and the incremental backup write through ChainWriter; catalog, catalog_info and the point-in-time
restore read through ChainStore. Both go through the repository's chain objects, so a chain works on every kind.
"""

from __future__ import annotations

import datetime
from typing import Iterator, NamedTuple

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_format import (
    ALARMS, CHAIN_RECORD, INSERT, ChainFormatError, SegmentBuilder, chain_problems, chain_record, document_digest,
    is_chain_id, key_text, parse_object_name, parse_record, read_segment, record_bytes, segment_data_name,
    segment_problems, segment_record, segment_record_name, sha256_hex)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import Repository, RepositoryError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import format_time, parse_time, utc_now
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import HashingReader


class ChainError(Exception):
    """A chain cannot be read, continued or written as asked; the message says what to fix."""


class Head(NamedTuple):
    """Where a chain ends: its last committed segment (0 for none), the sha256 of that segment's record (of
    chain.json for none), and the chain's totals so far."""

    seq: int
    sha256: str
    totals: dict


class Listing(NamedTuple):
    """A chain's objects as one listing shows them: whether it has its record, the segment records (seq -> bytes),
    the data objects (name -> seq; a seq can have more than one, all but the one its record names left by writers
    that failed or lost a race), the other names, and the bytes of them all."""

    has_record: bool
    records: dict
    data: dict
    others: list
    bytes: int


def zero_totals(tables: list) -> dict:
    return dict(segments=0, documents=0, alarms=0, gaps=0, inserted=dict(('%s.%s' % (table['db'], table['name']), 0) for table in tables))


def next_totals(totals: dict, builder: SegmentBuilder) -> dict:
    """The chain's totals once a segment is added."""
    inserted = dict(totals['inserted'])
    for table, counts in builder.tables.items():
        inserted[table] = inserted.get(table, 0) + counts[INSERT]
    return dict(segments=totals['segments'] + 1, documents=totals['documents'] + builder.documents,
                alarms=totals['alarms'] + builder.alarms, gaps=totals['gaps'] + len(builder.gaps), inserted=inserted)


class ChainStore:
    """The chains of one cluster in a repository."""

    def __init__(self, repository: Repository, cluster: str):
        self.repository = repository
        self.cluster = cluster

    def chain_ids(self) -> list[str]:
        return [chain_id for chain_id in self.repository.list_chains(self.cluster) if is_chain_id(chain_id)]

    def listing(self, chain_id: str) -> Listing:
        records, data, others, has_record, size = {}, {}, [], False, 0
        for name, object_bytes in self.repository.chain_objects(self.cluster, chain_id).items():
            size += object_bytes
            parsed = parse_object_name(name)
            if name == CHAIN_RECORD:
                has_record = True
            elif parsed is None:
                others.append(name)
            elif parsed[1] == 'record':
                records[parsed[0]] = object_bytes
            else:
                data[name] = parsed[0]
        return Listing(has_record, records, data, sorted(others), size)

    def read_chain(self, chain_id: str) -> tuple[dict, bytes]:
        """(record, its bytes) of a chain; ChainError when it is missing or not valid."""
        content = self.repository.read_chain_object(self.cluster, chain_id, CHAIN_RECORD)
        if content is None:
            raise ChainError('chain %s has no %s (it is being deleted, or was never begun)' % (chain_id, CHAIN_RECORD))
        try:
            record = parse_record(content, CHAIN_RECORD)
        except ChainFormatError as exc:
            raise ChainError('chain %s: %s' % (chain_id, exc)) from None
        problems = chain_problems(record, chain_id, self.cluster)
        if problems:
            raise ChainError('chain %s: %s' % (chain_id, '; '.join(problems)))
        return record, content

    def read_segment_record(self, chain_id: str, seq: int) -> tuple[dict, bytes]:
        content = self.repository.read_chain_object(self.cluster, chain_id, segment_record_name(seq))
        if content is None:
            raise ChainError('segment %d of chain %s is missing' % (seq, chain_id))
        try:
            record = parse_record(content, segment_record_name(seq))
        except ChainFormatError as exc:
            raise ChainError('chain %s: %s' % (chain_id, exc)) from None
        problems = segment_problems(record, chain_id, seq)
        if problems:
            raise ChainError('chain %s: %s' % (chain_id, '; '.join(problems)))
        return record, content

    def begin(self, base: dict, tables: list, writer: dict, chain_id: str) -> tuple[dict, Head]:
        """Write the record of a new chain (never replacing one) and return it with its head."""
        record = chain_record(chain_id, self.cluster, base, tables, writer)
        content = record_bytes(record)
        with self.repository.chain_object_writer(self.cluster, chain_id, CHAIN_RECORD, exclusive=True) as writer_object:
            writer_object.stream.write(content)
            writer_object.finish()
        return record, Head(0, sha256_hex(content), zero_totals(tables))

    def head(self, chain_id: str, chain_content: bytes, tables: list) -> Head:
        """The end of a chain that a writer continues: its last segment, which must end a list without holes."""
        listing = self.listing(chain_id)
        if not listing.records:
            return Head(0, sha256_hex(chain_content), zero_totals(tables))
        last = max(listing.records)
        holes = [seq for seq in range(1, last) if seq not in listing.records]
        if holes:
            raise ChainError('chain %s has no segment %s: it cannot be continued; begin a new chain' % (
                chain_id, ', '.join(map(str, holes[:5]))))
        record, content = self.read_segment_record(chain_id, last)
        return Head(last, sha256_hex(content), record['totals'])

    def commit_segment(self, chain_id: str, seq: int, content: bytes, data_sha256: str, previous_sha256: str) -> bytes:
        """Write a segment's record, never replacing one. When one is there already, it is ours only if it names
        the same data after the same record (a retry after an answer was lost); returns the bytes committed."""
        try:
            with self.repository.chain_object_writer(self.cluster, chain_id, segment_record_name(seq), exclusive=True) as writer:
                writer.stream.write(content)
                writer.finish()
            return content
        except RepositoryError as exc:
            existing = self.repository.read_chain_object(self.cluster, chain_id, segment_record_name(seq))
            if existing is None:
                raise
            try:
                found = parse_record(existing, segment_record_name(seq))
            except ChainFormatError:
                found = {}
            if found.get('previous_sha256') == previous_sha256 and found.get('data', {}).get('sha256') == data_sha256:
                return existing
            raise ChainError('segment %d of chain %s was written by another writer (%s): one writer per chain' % (seq, chain_id, exc)) from None

    def data_records(self, chain_id: str, segment: dict) -> Iterator[dict]:
        """A segment's data records; ChainError at the end when its bytes or sha256 are not the recorded ones."""
        stream = self.repository.open_chain_object(self.cluster, chain_id, segment['data']['path'])
        hashing = HashingReader(stream)
        try:
            yield from read_segment(hashing)
            hashing.drain()
        except (OSError, EOFError, ChainFormatError) as exc:
            raise ChainError('segment %d of chain %s cannot be read: %s' % (segment['seq'], chain_id, exc)) from None
        finally:
            stream.close()
        if (hashing.bytes, hashing.hexdigest()) != (segment['data']['bytes'], segment['data']['sha256']):
            raise ChainError('segment %d of chain %s has %d bytes with sha256 %s, but its record says %d bytes with sha256 %s' % (
                segment['seq'], chain_id, hashing.bytes, hashing.hexdigest(), segment['data']['bytes'], segment['data']['sha256']))

    def delete(self, chain_id: str) -> None:
        """Delete a chain: its record first (from then on no restore chooses it, and a prune finishes what an
        interruption left), then its segments, records before data, newest first."""
        listing = self.listing(chain_id)
        if listing.has_record:
            self.repository.delete_chain_objects(self.cluster, chain_id, [CHAIN_RECORD])
        names = [segment_record_name(seq) for seq in sorted(listing.records, reverse=True)]
        names += sorted(listing.data, reverse=True)
        self.repository.delete_chain_objects(self.cluster, chain_id, names + listing.others)

    def orphans(self, chain_id: str) -> list[str]:
        """Data objects of committed segments that their records do not name: what a writer left when it failed
        after writing them, or lost a race. (Data of a segment not committed yet may be a seal in progress.)"""
        listing = self.listing(chain_id)
        found = []
        for seq in sorted(set(listing.data.values())):
            names = sorted(name for name, data_seq in listing.data.items() if data_seq == seq)
            if seq not in listing.records or len(names) < 2:
                continue
            record, _content = self.read_segment_record(chain_id, seq)
            found += [name for name in names if name != record['data']['path']]
        return found


class ChainWriter:
    """Appends to a chain: documents and alarms go into the open segment, which seal() commits (data first, its
    record last), after which the index takes in what it holds. A document is taken once: one the chain holds
    already, with the same content, is a repeat (a catch-up and a feed overlap) and is dropped."""

    def __init__(self, store: ChainStore, chain: dict, head: Head, index, writer: dict, seal_documents: int, seal_seconds: float):
        self.store = store
        self.chain = chain
        self.head = head
        self.index = index
        self.writer = writer
        self.seal_documents = seal_documents
        self.seal_seconds = seal_seconds
        self.builder = SegmentBuilder()
        self._pending: dict = {}
        self._gone: list = []
        self._back: list = []

    @property
    def chain_id(self) -> str:
        return self.chain['chain_id']

    def _known(self, table: str, text: str) -> tuple | None:
        if (table, text) in self._pending:
            return self._pending[(table, text)], False
        return self.index.lookup(table, [text]).get(text)

    def add_document(self, table: str, key, document: dict, source: str, monotonic: float, lacking: bool = False) -> str:
        """Take a document received from a feed or a catch-up: 'inserted', 'repeat' or 'reinsert' (an alarm:
        a key the chain holds, written again with other content). lacking: the caller has just found that the chain
        holds no document of this key (a catch-up's batch), so it is not looked up again."""
        text = key_text(key)
        digest = document_digest(document)
        known = None if lacking and (table, text) not in self._pending else self._known(table, text)
        received_at = format_time(utc_now())
        if known is None:
            self.builder.add(table, INSERT, key, received_at, source, monotonic, doc=document)
            self._pending[(table, text)] = digest
            return 'inserted'
        if known[0] == digest:
            if known[1]:
                self._back.append((table, text))
            return 'repeat'
        self.builder.add(table, 'reinsert', key, received_at, source, monotonic, doc=document)
        return 'reinsert'

    def add_alarm(self, table: str, operation: str, key, source: str, monotonic: float, **values) -> dict:
        """Record an update, a deletion or a document found gone; the chain keeps the document as first received."""
        if operation not in ALARMS:
            raise ChainError('%s is not an alarm (%s)' % (operation, ', '.join(ALARMS)))
        record = self.builder.add(table, operation, key, format_time(utc_now()), source, monotonic, **values)
        if operation in ('delete', 'missing'):
            self._gone.append((table, key_text(key)))
        return record

    def add_gap(self, gap: dict, monotonic: float) -> None:
        self.builder.add_gap(gap, monotonic)

    def holds(self, table: str, texts: list[str]) -> set:
        """Which of these key texts the chain holds, sealed or in the open segment."""
        found = set(self.index.lookup(table, texts))
        return found | set(text for text in texts if (table, text) in self._pending)

    def due(self, monotonic: float) -> bool:
        """Whether the open segment must be sealed now: it holds seal_documents records, or its first is
        seal_seconds old."""
        if self.builder.empty():
            return False
        return len(self.builder) >= self.seal_documents or monotonic - self.builder.opened_monotonic >= self.seal_seconds

    def full(self) -> bool:
        return len(self.builder) >= self.seal_documents

    def seal(self) -> dict | None:
        """Commit the open segment: its data, then its record naming the record before it; then the index. Returns
        the record, or None when there was nothing to seal. On a failure nothing is lost: the segment stays open and
        the next seal() writes it again."""
        if self.builder.empty():
            return None
        seq = self.head.seq + 1
        data_name = segment_data_name(seq)
        with self.store.repository.chain_object_writer(self.store.cluster, self.chain_id, data_name) as data_writer:
            self.builder.write(data_writer.stream)
            facts = data_writer.finish()
        data = dict(path=data_name, bytes=facts['bytes'], sha256=facts['sha256'], raw_bytes=self.builder.raw_bytes,
                    store_checksum=facts['store_checksum'])
        totals = next_totals(self.head.totals, self.builder)
        record = segment_record(self.chain_id, seq, self.head.sha256, data, self.builder, totals, self.writer)
        content = self.store.commit_segment(self.chain_id, seq, record_bytes(record), data['sha256'], self.head.sha256)
        record = parse_record(content, segment_record_name(seq))
        sha256 = sha256_hex(content)
        inserted = [(table, text, digest) for (table, text), digest in self._pending.items()]
        self.index.absorb(seq, sha256, inserted, self._gone, self._back)
        self.head = Head(seq, sha256, record['totals'])
        self.builder = SegmentBuilder()
        self._pending, self._gone, self._back = {}, [], []
        return record


# --- reading chains: listing, checks, restore plans ------------------------------------------------------------

def _entry(store: ChainStore, chain_id: str, chain: dict | None, listing: Listing) -> dict:
    return {
        'chain_id': chain_id,
        'cluster': store.cluster,
        'state': 'complete',
        'complete': True,
        'base_set_id': chain['base']['set_id'] if chain else None,
        'writer': chain['writer']['kind'] if chain else None,
        'created_at': chain['created_at'] if chain else None,
        'tables': ['%s.%s' % (table['db'], table['name']) for table in chain['tables']] if chain else [],
        'segments': len(listing.records),
        'last_seq': max(listing.records) if listing.records else 0,
        'first_received_at': None,
        'last_received_at': None,
        'sealed_at': None,
        'documents': 0,
        'alarms': 0,
        'gaps': 0,
        'bytes': listing.bytes,
        'holes': [],
        'pruning': False,
        'reason': None,
    }


def _fail(entry: dict, problems: list) -> dict:
    if problems:
        entry.update(state='invalid', complete=False, reason=problems[0] + (' (and %d more)' % (len(problems) - 1) if len(problems) > 1 else ''))
    return entry


def summarize(store: ChainStore, chain_id: str) -> dict:
    """A chain as the catalogue lists it, cheaply: one listing, chain.json, and its first and last segment records
    (the last one carries the chain's totals). Holes show; damage inside a segment needs check_chain()."""
    listing = store.listing(chain_id)
    if not listing.has_record:
        entry = _entry(store, chain_id, None, listing)
        entry.update(state='deleting', complete=False, pruning=True,
                     reason='no %s: left over from an interrupted prune (the next prune removes it) or never begun' % CHAIN_RECORD)
        return entry
    try:
        chain, _content = store.read_chain(chain_id)
    except ChainError as exc:
        return _fail(_entry(store, chain_id, None, listing), [str(exc)])
    entry = _entry(store, chain_id, chain, listing)
    problems = []
    if listing.records:
        last = max(listing.records)
        entry['holes'] = [seq for seq in range(1, last + 1) if seq not in listing.records]
        if entry['holes']:
            problems.append('segment(s) %s missing' % ', '.join(map(str, entry['holes'][:10])))
        with_data = set(listing.data.values())
        problems += ['segment %d has no data' % seq for seq in sorted(listing.records) if seq not in with_data]
        try:
            first, _content = store.read_segment_record(chain_id, min(listing.records))
            newest, _content = store.read_segment_record(chain_id, last)
        except ChainError as exc:
            return _fail(entry, problems + [str(exc)])
        entry.update(first_received_at=first['first_received_at'] or first['sealed_at'], last_received_at=newest['last_received_at'] or newest['sealed_at'],
                     sealed_at=newest['sealed_at'], documents=newest['totals']['documents'], alarms=newest['totals']['alarms'],
                     gaps=newest['totals']['gaps'])
    return _fail(entry, problems)


def list_chains(store: ChainStore) -> list[dict]:
    """Every chain of the cluster, newest first."""
    return sorted((summarize(store, chain_id) for chain_id in store.chain_ids()), key=lambda entry: entry['chain_id'], reverse=True)


class Check(NamedTuple):
    """What a full check of a chain found: its listing entry, its record, its segment records in order, the
    documents each table gained up to the instant asked (all when none), the alarms and gaps by segment, and the
    problems (empty when the chain is whole)."""

    entry: dict
    chain: dict | None
    segments: list
    inserted: dict
    alarms: list
    problems: list


def check_chain(store: ChainStore, chain_id: str, until: datetime.datetime | None = None) -> Check:
    """Check a chain in full: every segment record valid, numbered from 1 without a hole, each naming the sha256
    of the record before it (of chain.json for the first); every segment's data present with its recorded size
    and sha256, holding the records its record counts. Counts the documents received up to `until`."""
    entry = summarize(store, chain_id)
    if entry['state'] == 'deleting':
        return Check(entry, None, [], {}, [], [entry['reason']])
    try:
        chain, content = store.read_chain(chain_id)
    except ChainError as exc:
        return Check(entry, None, [], {}, [], [str(exc)])
    inserted = dict(('%s.%s' % (table['db'], table['name']), 0) for table in chain['tables'])
    segments, alarms = [], []
    previous = sha256_hex(content)
    listing = store.listing(chain_id)
    last = max(listing.records) if listing.records else 0
    holes = [seq for seq in range(1, last + 1) if seq not in listing.records]
    problems = ['segment(s) %s missing' % ', '.join(map(str, holes[:10]))] if holes else []
    for seq in sorted(listing.records):
        try:
            record, record_content = store.read_segment_record(chain_id, seq)
        except ChainError as exc:
            problems.append(str(exc))
            previous = None
            continue
        if previous is not None and seq - 1 not in holes and record['previous_sha256'] != previous:
            problems.append('segment %d names record sha256 %s before it, but that record has %s: the chain was changed' % (
                seq, record['previous_sha256'], previous))
        previous = sha256_hex(record_content)
        segments.append(record)
        if record['data']['path'] not in listing.data:
            problems.append('segment %d has no data (%s is missing)' % (seq, record['data']['path']))
            continue
        problems += _data_problems(store, chain_id, record, until, inserted, alarms)
    entry = _fail(entry, problems) if problems else entry
    return Check(entry, chain, segments, inserted, alarms, problems)


def _data_problems(store: ChainStore, chain_id: str, segment: dict, until: datetime.datetime | None, inserted: dict, alarms: list) -> list:
    """Read one segment's data: its records against the counts of its record, and what was received up to until."""
    counted: dict = {}
    try:
        for data in store.data_records(chain_id, segment):
            counts = counted.setdefault(data['table'], {})
            counts[data['op']] = counts.get(data['op'], 0) + 1
            if until is not None and parse_time(data['at']) > until:
                continue
            if data['op'] == INSERT:
                inserted[data['table']] = inserted.get(data['table'], 0) + 1
            else:
                alarms.append(dict(seq=segment['seq'], op=data['op'], table=data['table'], key=data['key'], at=data['at']))
    except (ChainError, RepositoryError) as exc:
        return [str(exc)]
    recorded = dict((table, dict((op, count) for op, count in counts.items() if count)) for table, counts in segment['tables'].items())
    recorded = dict((table, counts) for table, counts in recorded.items() if counts)
    if counted != recorded:
        return ['segment %d holds records %s, but its record counts %s' % (segment['seq'], counted, recorded)]
    return []


# --- retention -------------------------------------------------------------------------------------------------

def _chain_verdict(entry: dict, why: str) -> dict:
    return {'chain_id': entry['chain_id'], 'base_set_id': entry['base_set_id'], 'state': entry['state'], 'bytes': entry['bytes'],
            'segments': entry['segments'], 'why': why}


def plan_chain_retention(chains: list, set_entries: list, set_plan, grace_hours: float, now: datetime.datetime | None = None) -> tuple:
    """(delete, keep) verdicts of chains, given what a prune plans for the sets (set_plan, changed in place): a
    chain is kept exactly when its base set is kept. A base set that the plan deletes is kept instead while its
    chain was written within grace_hours (a follower still on it); otherwise its chain goes with it."""
    now = now or utc_now()
    grace = datetime.timedelta(hours=grace_hours)
    doomed = dict((verdict['set_id'], verdict) for verdict in set_plan.delete)
    complete = set(entry['set_id'] for entry in set_entries if entry['complete'])

    def recent(entry: dict) -> bool:
        last = entry['sealed_at'] or entry['created_at']
        return last is not None and now - parse_time(last) < grace

    rescuers = dict((entry['base_set_id'], entry['chain_id']) for entry in sorted(chains, key=lambda entry: entry['chain_id'])
                    if entry['state'] != 'deleting' and entry['base_set_id'] in doomed and recent(entry))
    for base, chain_id in sorted(rescuers.items()):
        verdict = doomed.pop(base)
        set_plan.delete.remove(verdict)
        set_plan.keep.append(dict(verdict, why='the base of chain %s, written within the last %s h' % (chain_id, grace_hours)))
    delete, keep = [], []
    for entry in chains:
        base = entry['base_set_id']
        if entry['state'] == 'deleting':
            delete.append(_chain_verdict(entry, 'left over from an interrupted prune'))
        elif base in doomed:
            delete.append(_chain_verdict(entry, 'its base set %s is pruned (%s)' % (base, doomed[base]['why'])))
        elif base in rescuers:
            keep.append(_chain_verdict(entry, 'its base set %s is kept for chain %s, written within the last %s h' % (base, rescuers[base], grace_hours)))
        elif base not in complete and not recent(entry):
            delete.append(_chain_verdict(entry, 'its base set %s is not a complete set, and it was not written within the last %s h' % (base, grace_hours)))
        elif base not in complete:
            keep.append(_chain_verdict(entry, 'its base set %s is not a complete set; kept within the %s h grace period' % (base, grace_hours)))
        else:
            keep.append(_chain_verdict(entry, 'its base set %s is kept' % base))
    return delete, keep


def choose_chain(chains: list, chain_id: str | None = None, until: datetime.datetime | None = None, base_set_id: str | None = None) -> dict:
    """The chain a restore uses: chain_id; or else, among the whole chains (on base_set_id, when given), the one
    with the newest base that was already receiving at until (its first segment received at or before it), or
    the newest one without until. ChainError saying what there is otherwise."""
    if chain_id is not None:
        for entry in chains:
            if entry['chain_id'] == chain_id:
                if not entry['complete']:
                    raise ChainError('chain %s is %s: %s' % (chain_id, entry['state'], entry['reason']))
                return entry
        raise ChainError('no chain %s' % chain_id)
    whole = [entry for entry in chains if entry['complete'] and base_set_id in (None, entry['base_set_id'])]
    if until is not None:
        covering = [entry for entry in whole if entry['first_received_at'] and parse_time(entry['first_received_at']) <= until]
        if not covering:
            starts = sorted(entry['first_received_at'] for entry in whole if entry['first_received_at'])
            raise ChainError('no chain%s was receiving at %s%s' % (
                ' on base set %s' % base_set_id if base_set_id else '', format_time(until),
                ' (the earliest begins at %s)' % starts[0] if starts else ' (there is no chain with a segment)'))
        whole = covering
    if not whole:
        raise ChainError('no whole chain%s to restore from (%d chain(s) in all)' % (' on base set %s' % base_set_id if base_set_id else '', len(chains)))
    return sorted(whole, key=lambda entry: (entry['base_set_id'], entry['chain_id']), reverse=True)[0]
