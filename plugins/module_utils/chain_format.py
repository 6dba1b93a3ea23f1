# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The chain format (docs/continuous-backup.md): what a chain of continuous backup holds and how its objects read.

A chain continues one dump set (its base) with sealed segments of the documents received after it:

  chains/<chain_id>/chain.json                   the chain's record, written first: base set, tables, writer
  chains/<chain_id>/segments/<seq>-<nonce>.jsonl.gz  a segment's records, gzip JSON lines (written first, under a
                                                 name of its own, so that no writer ever replaces another's)
  chains/<chain_id>/segments/<seq>.json          the segment's record, naming its data, written last and never
                                                 replaced: the commit

Each segment's record names the sha256 of the record before it (of chain.json for the first), so the chain is
a hash-linked list and a missing, replaced or reordered segment shows. Storage is the repository's concern; this
module knows only what the objects say.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import re
import secrets
from typing import Any, Iterator

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import (
    CLUSTER_RE, SET_ID_TIME_FORMAT, Schema, format_time, is_set_id, parse_time, record_problems, utc_now)

FORMAT = 1
CHAIN_RECORD = 'chain.json'
SEGMENTS_DIR = 'segments'
CHAIN_ID_RE = re.compile(r'\d{8}T\d{6}Z-[0-9a-f]{4}')
SEGMENT_NAME_RE = re.compile(r'segments/(?P<seq>\d{8})(?:\.(?P<record>json)|-[0-9a-f]{8}\.jsonl\.gz)')
SHA256_RE = re.compile(r'[0-9a-f]{64}')
TIME_RE = re.compile(r'\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z')
WRITER_KINDS = ('follower', 'incremental')
# A document received (from a feed or a catch-up) goes in as an insert; the other operations are alarms: the
# tables are append-only, so a change, a removal, a document gone while no feed ran, or a key written again
# with other content is recorded and raised, and never applied by a restore.
INSERT = 'insert'
ALARMS = ('update', 'delete', 'missing', 'reinsert')
OPERATIONS = (INSERT,) + ALARMS
SOURCES = ('feed', 'catchup')


class ChainFormatError(ValueError):
    """A chain object, or a request about one, that the format does not allow; the message says what to fix."""


# --- names -------------------------------------------------------------------------------------------------

def new_chain_id(now: datetime.datetime | None = None) -> str:
    """A fresh chain id: UTC time and 4 random hex digits, so ids sort by time."""
    moment = (now or utc_now()).astimezone(datetime.timezone.utc)
    return '%s-%s' % (moment.strftime(SET_ID_TIME_FORMAT), secrets.token_hex(2))


def is_chain_id(text: Any) -> bool:
    return isinstance(text, str) and CHAIN_ID_RE.fullmatch(text) is not None


def check_chain_id(chain_id: Any) -> None:
    if not is_chain_id(chain_id):
        raise ChainFormatError("'%s' is not a chain id (like 20261124T163000Z-3f9a)" % chain_id)


def segment_data_name(seq: int, nonce: str | None = None) -> str:
    """The name of a segment's data: its number and a nonce (8 hex digits, random unless given)."""
    return '%s/%08d-%s.jsonl.gz' % (SEGMENTS_DIR, seq, nonce or secrets.token_hex(4))


def segment_record_name(seq: int) -> str:
    return '%s/%08d.json' % (SEGMENTS_DIR, seq)


def parse_object_name(name: str) -> tuple[int, str] | None:
    """(seq, 'record' or 'data') of a segment object's name, or None for any other name."""
    match = SEGMENT_NAME_RE.fullmatch(name)
    if not match:
        return None
    return int(match.group('seq')), 'record' if match.group('record') else 'data'


# --- documents ---------------------------------------------------------------------------------------------

def canonical(value: Any) -> str:
    """A JSON value as one text that two equal values always share (keys sorted, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(',', ':'), ensure_ascii=False, allow_nan=False)


def key_text(key: Any) -> str:
    """A primary key as the index and the records compare it: its canonical JSON."""
    return canonical(key)


def document_digest(document: Any) -> bytes:
    """16 bytes of the sha256 of a document's canonical JSON: tells a repeated document from a changed one."""
    return hashlib.sha256(canonical(document).encode('utf-8')).digest()[:16]


def split_table(name: str) -> tuple[str, str]:
    db, dot, table = name.partition('.') if isinstance(name, str) else ('', '', '')
    if not dot or not db or not table or '.' in table:
        raise ChainFormatError("'%s' is not a table name of the form database.table" % name)
    return db, table


# --- segments ----------------------------------------------------------------------------------------------

class SegmentBuilder:
    """The open segment: records in the order received, with what its record will say of them. Memory grows with
    the records held, which the writer bounds by sealing at a number of them."""

    def __init__(self):
        self.lines: list[bytes] = []
        self.raw_bytes = 0
        self.tables: dict[str, dict] = {}
        self.gaps: list[dict] = []
        self.first_received_at: str | None = None
        self.last_received_at: str | None = None
        self.opened_monotonic: float | None = None

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def documents(self) -> int:
        return sum(counts[INSERT] for counts in self.tables.values())

    @property
    def alarms(self) -> int:
        return sum(counts[operation] for counts in self.tables.values() for operation in ALARMS)

    def empty(self) -> bool:
        return not self.lines and not self.gaps

    def add(self, table: str, operation: str, key: Any, received_at: str, source: str, monotonic: float, **values) -> dict:
        """Append one record (values: doc, or old and new); returns it."""
        if operation not in OPERATIONS or source not in SOURCES:
            raise ChainFormatError('record operation %s from %s is not one of %s from %s' % (
                operation, source, ', '.join(OPERATIONS), ', '.join(SOURCES)))
        record = dict(op=operation, table=table, key=key, at=received_at, via=source, **values)
        line = (canonical(record) + '\n').encode('utf-8')
        self.lines.append(line)
        self.raw_bytes += len(line)
        counts = self.tables.setdefault(table, dict((name, 0) for name in OPERATIONS))
        counts[operation] += 1
        self._received(received_at, monotonic)
        return record

    def add_gap(self, gap: dict, monotonic: float) -> None:
        """A gap that a catch-up closed: table, reason, opened_at, closed_at, found, missing."""
        self.gaps.append(dict(gap))
        self._received(gap['closed_at'], monotonic)

    def _received(self, moment: str, monotonic: float) -> None:
        if self.first_received_at is None:
            self.first_received_at = moment
            self.opened_monotonic = monotonic
        self.last_received_at = max(self.last_received_at or moment, moment)

    def write(self, sink) -> None:
        """The records as gzip JSON lines (mtime 0, so the same records give the same bytes)."""
        with gzip.GzipFile(fileobj=sink, mode='wb', compresslevel=6, mtime=0) as packed:
            for line in self.lines:
                packed.write(line)


def read_segment(stream) -> Iterator[dict]:
    """The records of a segment's data, one at a time, from a forward-only stream (gzip JSON lines)."""
    with gzip.GzipFile(fileobj=stream, mode='rb') as unpacked:
        for number, line in enumerate(io.BufferedReader(unpacked), start=1):
            try:
                record = json.loads(line.decode('utf-8'))
            except (UnicodeDecodeError, ValueError) as exc:
                raise ChainFormatError('record %d is not valid JSON: %s' % (number, exc)) from None
            problems = record_problems(record, _RECORD_SCHEMAS.get(record.get('op') if isinstance(record, dict) else None, _INSERT_SCHEMA),
                                       'record %d' % number)
            if problems:
                raise ChainFormatError('; '.join(problems))
            yield record


# --- records (chain.json, segment records) -----------------------------------------------------------------

def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value != ''


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_time(value: Any) -> bool:
    return isinstance(value, str) and TIME_RE.fullmatch(value) is not None


def _is_optional_time(value: Any) -> bool:
    return value is None or _is_time(value)


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and SHA256_RE.fullmatch(value) is not None


def _is_table_name(value: Any) -> bool:
    try:
        split_table(value)
    except ChainFormatError:
        return False
    return True


def _is_counts(value: Any) -> bool:
    return isinstance(value, dict) and all(_is_table_name(name) and _is_count(count) for name, count in value.items())


def _is_table_counts(value: Any) -> bool:
    return isinstance(value, dict) and all(
        _is_table_name(name) and isinstance(counts, dict) and set(counts) == set(OPERATIONS) and all(map(_is_count, counts.values()))
        for name, counts in value.items())


TIME_WANTED = 'an ISO 8601 UTC time with milliseconds'
_WRITER_SCHEMA: Schema = {
    'kind': (lambda value: value in WRITER_KINDS, 'one of %s' % ', '.join(WRITER_KINDS)),
    'host': (_is_text, 'a host name'),
}
_BASE_SCHEMA: Schema = {
    'set_id': (is_set_id, 'a backup set id'),
    'finished_at': (_is_time, TIME_WANTED),
    'manifest_sha256': (_is_sha256, '64 lowercase hex digits'),
    'documents': (_is_counts, 'document counts by database.table'),
}
_TABLE_SCHEMA: Schema = {
    'db': (_is_text, 'a database name'),
    'name': (_is_text, 'a table name'),
    'primary_key': (_is_text, 'a field name'),
}
CHAIN_SCHEMA: Schema = {
    'format': (lambda value: value == FORMAT and not isinstance(value, bool), 'format %d' % FORMAT),
    'chain_id': (is_chain_id, 'a chain id'),
    'cluster': (lambda value: isinstance(value, str) and CLUSTER_RE.fullmatch(value) is not None, 'a cluster name'),
    'created_at': (_is_time, TIME_WANTED),
    'writer': (lambda value: isinstance(value, dict), 'the writer record'),
    'base': (lambda value: isinstance(value, dict), 'the base set record'),
    'tables': (lambda value: isinstance(value, list) and len(value) > 0, 'a list of tables'),
}
_DATA_SCHEMA: Schema = {
    'path': (lambda value: parse_object_name(value) is not None, 'a segment data name'),
    'bytes': (_is_count, 'a size in bytes'),
    'sha256': (_is_sha256, '64 lowercase hex digits'),
    'raw_bytes': (_is_count, 'the unpacked size in bytes'),
    'store_checksum': (lambda value: value is None or _is_text(value), "null or the store's own checksum"),
}
_GAP_SCHEMA: Schema = {
    'table': (_is_table_name, 'a database.table'),
    'reason': (_is_text, 'why the feed stopped'),
    'opened_at': (_is_time, TIME_WANTED),
    'closed_at': (_is_time, TIME_WANTED),
    'found': (_is_count, 'documents the catch-up found'),
    'missing': (_is_count, 'documents found gone'),
}
_TOTALS_SCHEMA: Schema = {
    'segments': (_is_count, 'a count'),
    'documents': (_is_count, 'a count'),
    'alarms': (_is_count, 'a count'),
    'gaps': (_is_count, 'a count'),
    'inserted': (_is_counts, 'inserted documents by database.table'),
}
SEGMENT_SCHEMA: Schema = {
    'format': (lambda value: value == FORMAT and not isinstance(value, bool), 'format %d' % FORMAT),
    'chain_id': (is_chain_id, 'a chain id'),
    'seq': (lambda value: _is_count(value) and value > 0, 'a sequence number from 1'),
    'previous_sha256': (_is_sha256, '64 lowercase hex digits'),
    'data': (lambda value: isinstance(value, dict), 'the data object record'),
    'records': (_is_count, 'a count'),
    'first_received_at': (_is_optional_time, 'null or ' + TIME_WANTED),
    'last_received_at': (_is_optional_time, 'null or ' + TIME_WANTED),
    'sealed_at': (_is_time, TIME_WANTED),
    'tables': (_is_table_counts, 'counts of each operation by database.table'),
    'gaps': (lambda value: isinstance(value, list), 'a list of gaps'),
    'totals': (lambda value: isinstance(value, dict), 'the totals of the chain so far'),
    'writer': (lambda value: isinstance(value, dict), 'the writer record'),
}
_INSERT_SCHEMA: Schema = {
    'op': (lambda value: value in OPERATIONS, 'one of %s' % ', '.join(OPERATIONS)),
    'table': (_is_table_name, 'a database.table'),
    'key': (lambda value: value is not None, 'a primary key'),
    'at': (_is_time, TIME_WANTED),
    'via': (lambda value: value in SOURCES, 'one of %s' % ', '.join(SOURCES)),
    'doc': (lambda value: isinstance(value, dict), 'a document'),
}
_COMMON = dict((key, _INSERT_SCHEMA[key]) for key in ('op', 'table', 'key', 'at', 'via'))
_RECORD_SCHEMAS = {
    'insert': _INSERT_SCHEMA,
    'reinsert': _INSERT_SCHEMA,
    'update': dict(_COMMON, old=(lambda value: isinstance(value, dict), 'the old document'),
                   new=(lambda value: isinstance(value, dict), 'the new document')),
    'delete': dict(_COMMON, old=(lambda value: isinstance(value, dict), 'the removed document')),
    'missing': dict(_COMMON),
}


def record_bytes(record: dict) -> bytes:
    """A record as its object holds it."""
    return (json.dumps(record, indent=2, allow_nan=False) + '\n').encode('utf-8')


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chain_record(chain_id: str, cluster: str, base: dict, tables: list, writer: dict, now: datetime.datetime | None = None) -> dict:
    """The record of a new chain; ChainFormatError unless valid."""
    record = dict(format=FORMAT, chain_id=chain_id, cluster=cluster, created_at=format_time(now or utc_now()),
                  writer=dict(writer), base=dict(base), tables=[dict(table) for table in tables])
    problems = chain_problems(record)
    if problems:
        raise ChainFormatError('the record of chain %s is not valid: %s' % (chain_id, '; '.join(problems)))
    return record


def chain_problems(record: Any, chain_id: str | None = None, cluster: str | None = None) -> list[str]:
    """Everything in a chain record that breaks the format (empty when valid)."""
    problems = record_problems(record, CHAIN_SCHEMA, 'chain')
    if problems:
        return problems
    problems += record_problems(record['writer'], _WRITER_SCHEMA, 'chain.writer')
    problems += record_problems(record['base'], _BASE_SCHEMA, 'chain.base')
    for index, table in enumerate(record['tables']):
        problems += record_problems(table, _TABLE_SCHEMA, 'chain.tables[%d]' % index)
    for expected, key in ((chain_id, 'chain_id'), (cluster, 'cluster')):
        if expected is not None and record[key] != expected:
            problems.append('chain %s is %s, but the chain is stored as %s' % (key, record[key], expected))
    return problems


def segment_record(chain_id: str, seq: int, previous_sha256: str, data: dict, builder: SegmentBuilder, totals: dict,
                   writer: dict, now: datetime.datetime | None = None) -> dict:
    """The record that commits a segment; ChainFormatError unless valid."""
    record = dict(format=FORMAT, chain_id=chain_id, seq=seq, previous_sha256=previous_sha256, data=dict(data),
                  records=len(builder), first_received_at=builder.first_received_at, last_received_at=builder.last_received_at,
                  sealed_at=format_time(now or utc_now()), tables=builder.tables, gaps=builder.gaps, totals=totals,
                  writer=dict(writer))
    problems = segment_problems(record, chain_id, seq)
    if problems:
        raise ChainFormatError('the record of segment %d of chain %s is not valid: %s' % (seq, chain_id, '; '.join(problems)))
    return record


def segment_problems(record: Any, chain_id: str | None = None, seq: int | None = None) -> list[str]:
    """Everything in a segment record that breaks the format (empty when valid)."""
    where = 'segment %s' % (seq if seq is not None else '?')
    problems = record_problems(record, SEGMENT_SCHEMA, where)
    if problems:
        return problems
    problems += record_problems(record['data'], _DATA_SCHEMA, where + '.data')
    problems += record_problems(record['totals'], _TOTALS_SCHEMA, where + '.totals')
    problems += record_problems(record['writer'], _WRITER_SCHEMA, where + '.writer')
    for index, gap in enumerate(record['gaps']):
        problems += record_problems(gap, _GAP_SCHEMA, '%s.gaps[%d]' % (where, index))
    if problems:
        return problems
    if parse_object_name(record['data']['path']) != (record['seq'], 'data'):
        problems.append('%s names data %s, not its own' % (where, record['data']['path']))
    for expected, key in ((chain_id, 'chain_id'), (seq, 'seq')):
        if expected is not None and record[key] != expected:
            problems.append('%s has %s %s, but is stored as %s' % (where, key, record[key], expected))
    if sum(sum(counts.values()) for counts in record['tables'].values()) != record['records']:
        problems.append('%s counts %d records, but its tables add up to another number' % (where, record['records']))
    return problems


def parse_record(data: bytes, what: str) -> Any:
    """A stored record as JSON; ChainFormatError when it is not."""
    try:
        return json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ChainFormatError('%s is not valid JSON: %s' % (what, exc)) from None


def received_by(record: dict, until: datetime.datetime) -> bool:
    """Whether a data record was received at or before an instant."""
    return parse_time(record['at']) <= until


def parse_until(text: str) -> datetime.datetime:
    """A point in time as people give it (ISO 8601, a zone or Z; UTC when none), as an aware datetime."""
    if not isinstance(text, str) or not text.strip():
        raise ChainFormatError('until is empty: give an ISO 8601 time like 2026-11-24T16:30:00Z')
    cleaned = text.strip()
    if cleaned.endswith(('Z', 'z')):
        cleaned = cleaned[:-1] + '+00:00'
    try:
        moment = datetime.datetime.fromisoformat(cleaned)
    except ValueError:
        raise ChainFormatError("until '%s' is not an ISO 8601 time like 2026-11-24T16:30:00Z" % text) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)
