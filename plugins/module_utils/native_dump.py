# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The native dump engine: tables read in parallel ranges of their primary key, written as the archive
`rethinkdb dump` writes, into a forward-only stream.

Each table is cut into ranges of its primary key, between split points interpolated from its smallest and
largest key. Worker threads read one range each with one query, ordered by the primary key (so that a
query cut off by a lost connection or a reshard resumes after the last key it delivered), from the server
best placed to serve it; they encode the documents with orjson and compress them, each range into its own
gzip member or zstd frame in a spool file. Compression (zlib, zstd) and the sockets release the GIL, so it
runs on the other cores. The archive is then put together in table order from tar headers, the spooled
members as they are, and the separators between them: concatenated gzip members (or zstd frames) are one
valid stream, which `rethinkdb restore`, gzip and tar read as any other.

A tar header holds the size of the file after it, and the stream is never sought back: a table's data is
spooled (compressed) until its last range is read, and memory holds at most a batch and a chunk per worker.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import io
import os
import struct
import tarfile
import tempfile
import threading
import time
import zlib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import DATA_SUFFIX, GZIP, INFO_SUFFIX, ZSTD, zstandard
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.native_cluster import (
    RAW,
    NativeError,
    OrjsonDecoder,
    best_servers,
    lost,
    orjson,
)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import ReqlError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import HashingWriter

try:
    from rethinkdb import errors as reql_errors
except ImportError:
    RETRIED_ERRORS: tuple = ()
else:
    # Connection lost, no primary replica for a while (a reshard, a failover), a timeout: worth resuming.
    RETRIED_ERRORS = (reql_errors.ReqlDriverError, reql_errors.ReqlAvailabilityError, reql_errors.ReqlTimeoutError)

CHUNK_BYTES = 1024 * 1024
DEFAULT_LEVELS = {GZIP: 4, ZSTD: 3}
LEVELS = {GZIP: range(1, 10), ZSTD: range(1, 20)}
# Ranges per worker, so that a range that takes longer than the others does not leave workers idle.
RANGES_PER_WORKER = 4
# A table estimated to hold fewer documents than this a range is read in fewer ranges.
DOCUMENTS_PER_RANGE = 2000
# Characters after the common prefix of the smallest and largest string key that split points are made of.
SPLIT_CHARACTERS = 8
# Keys read at each end of a table, whose characters make the alphabet of string split points.
SAMPLE_KEYS = 32
# Retries of one range's query, and the pauses before them: about 30 seconds in all.
RETRY_PAUSES = (0.5, 1, 2, 4, 8, 15)
TAR_BLOCK = tarfile.BLOCKSIZE
TAR_RECORD = tarfile.RECORDSIZE
ADVICE = 'check that the server runs and the table is available (rethinkdb.table_status), then dump again'


class _Compressor:
    """A part of the archive's compressed stream, written to a file as the data comes: for gzip, deflate
    blocks ended by a sync flush (so that parts follow each other in the one deflate stream of one gzip
    member, which is all that the tool's tarfile reads) and the CRC-32 of the data; for zstd, a frame."""

    def __init__(self, compression: str, level: int, out):
        self._out = out
        self.compression = compression
        if compression == ZSTD:
            self._engine = zstandard.ZstdCompressor(level=level, write_checksum=True).compressobj()
        else:
            self._engine = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.raw_bytes = 0
        self.crc = 0

    def write(self, data: bytes) -> None:
        self.raw_bytes += len(data)
        if self.compression == GZIP:
            self.crc = zlib.crc32(data, self.crc)
        self._out.write(self._engine.compress(data))

    def close(self) -> None:
        self._out.write(self._engine.flush(zlib.Z_SYNC_FLUSH) if self.compression == GZIP else self._engine.flush())


def _gf2_times(matrix: list, vector: int) -> int:
    total = 0
    row = 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: list) -> list:
    return [_gf2_times(matrix, matrix[row]) for row in range(32)]


def crc32_combine(first: int, second: int, second_length: int) -> int:
    """The CRC-32 of two pieces of data one after the other, from the CRC-32 of each and the length of the
    second (zlib's crc32_combine, which Python's zlib does not offer): gzip's trailer covers the whole
    stream, whose parts were compressed on different threads."""
    if second_length <= 0:
        return first
    odd = [0xEDB88320] + [1 << row for row in range(31)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if second_length & 1:
            first = _gf2_times(even, first)
        second_length >>= 1
        if not second_length:
            break
        odd = _gf2_square(even)
        if second_length & 1:
            first = _gf2_times(odd, first)
        second_length >>= 1
        if not second_length:
            break
    return first ^ second


def split_points(low, high, count: int, samples: tuple = ()) -> list:
    """Up to count - 1 keys, increasing, strictly between the smallest key `low` and the largest `high`: even
    over numbers; over strings, even in the alphabet of the ASCII characters that `samples` (keys read at both
    ends of the table) and the two ends use after their common prefix, so that keys that are hashes or UUIDs
    spread evenly; [] for other keys, which are then read in one range."""
    if count < 2:
        return []
    if _is_number(low) and _is_number(high):
        points = [low + (high - low) * step / count for step in range(1, count)]
    elif isinstance(low, str) and isinstance(high, str):
        points = _string_points(low, high, count, [key for key in samples if isinstance(key, str)])
    else:
        return []
    return sorted(set(point for point in points if low < point < high))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _string_points(low: str, high: str, count: int, samples: list) -> list:
    """Strings between low and high, cutting the characters after their common prefix evenly in the alphabet
    the keys use."""
    prefix = os.path.commonprefix([low, high])
    tails = [key[len(prefix):][:SPLIT_CHARACTERS] for key in [low, high] + samples if key.startswith(prefix)]
    alphabet = sorted(set(''.join(tails)))
    if not alphabet or any(ord(character) > 127 for character in alphabet):
        return []
    base = len(alphabet) + 1
    rank = dict((character, number + 1) for number, character in enumerate(alphabet))
    low_value, high_value = _value(tails[0], rank, base), _value(tails[1], rank, base)
    points = []
    for step in range(1, count):
        value = low_value + (high_value - low_value) * step // count
        digits = []
        for dummy in range(SPLIT_CHARACTERS):
            value, digit = divmod(value, base)
            digits.append(alphabet[digit - 1] if digit else '')
        points.append(prefix + ''.join(reversed(digits)))
    return points


def _value(text: str, rank: dict, base: int) -> int:
    """A string's first characters as a number in the alphabet's ranks (0 past its end, below every character)."""
    value = 0
    for position in range(SPLIT_CHARACTERS):
        value = value * base + (rank[text[position]] if position < len(text) else 0)
    return value


class TablePlan:
    """One table to dump: its description (the .info), its key ranges and where each is best read."""

    def __init__(self, db: str, name: str, info: dict, servers: list, bounds: list):
        self.db = db
        self.name = name
        self.info = info
        self.primary_key = info['primary_key']
        self.servers = servers
        self.bounds = bounds

    @property
    def label(self) -> str:
        return '%s.%s' % (self.db, self.name)

    def ranges(self) -> list:
        """(index, lower, upper, server) of each range: lower included, upper excluded."""
        return [(index, lower, upper, self.servers[index % len(self.servers)] if self.servers else None)
                for index, (lower, upper) in enumerate(zip(self.bounds, self.bounds[1:]))]


def _table_info(r, connection, db: str, name: str) -> dict:
    """The table's .info as `rethinkdb dump` writes it: info(), with index_status() and the write hook."""
    table = r.db(db).table(name)
    info = table.info().run(connection, **RAW)
    info['indexes'] = list(table.index_status().run(connection, **RAW))
    info['write_hook'] = table.get_write_hook().run(connection, **RAW)
    return info


def _edge_keys(r, connection, table, primary_key: str, descending: bool) -> list:
    """The smallest (or largest) SAMPLE_KEYS primary keys of a table, from the smallest (largest) on."""
    order = r.desc(primary_key) if descending else primary_key
    return list(table.order_by(index=order).limit(SAMPLE_KEYS).get_field(primary_key).run(connection, **RAW))


def plan_tables(r, connection, names: list, workers: int, read_mode: str) -> list:
    """A TablePlan for each 'db.table', read on the login connection."""
    statuses = dict(('%s.%s' % (row['db'], row['name']), row)
                    for row in r.db('rethinkdb').table('table_status').run(connection, **RAW))
    plans = []
    for label in names:
        db, name = label.split('.', 1)
        info = _table_info(r, connection, db, name)
        table = r.db(db).table(name, read_mode=read_mode)
        lowest = _edge_keys(r, connection, table, info['primary_key'], False)
        highest = _edge_keys(r, connection, table, info['primary_key'], True)
        estimate = sum(info.get('doc_count_estimates') or [0])
        count = max(1, min(workers * RANGES_PER_WORKER, estimate // DOCUMENTS_PER_RANGE))
        points = split_points(lowest[0], highest[0], count, tuple(lowest + highest)) if lowest else []
        bounds = [r.minval] + points + [r.maxval]
        plans.append(TablePlan(db, name, info, best_servers(statuses.get(label, {}), read_mode), bounds))
    return plans


class _SpoolFailure(Exception):
    """Writing a spool file failed (no space, say): not a server's fault, so never retried."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


class RangeResult:
    """What reading one range produced: its documents, the bytes of their JSON (and their CRC-32), and its
    spool file."""

    def __init__(self, path: str, documents: int, raw_bytes: int, crc: int):
        self.path = path
        self.documents = documents
        self.raw_bytes = raw_bytes
        self.crc = crc


class _RangeReader:
    """Reads ranges on one worker thread, keeping a connection per server."""

    def __init__(self, r, connector, read_mode: str, compression: str, level: int, spool_dir: str, stop: threading.Event):
        self.r = r
        self.connector = connector
        self.read_mode = read_mode
        self.compression = compression
        self.level = level
        self.spool_dir = spool_dir
        self.stop = stop
        self.local = threading.local()
        self.opened: list = []
        self.lock = threading.Lock()

    def _connection(self, server: str | None) -> tuple:
        connections = self.local.__dict__.setdefault('connections', {})
        if server not in connections:
            connections[server] = self.connector.connect(server)
            with self.lock:
                self.opened.append(connections[server][0])
        return connections[server]

    def _forget(self, server: str | None) -> None:
        """Drop a connection that failed (the next query opens a new one)."""
        connection, dummy = self.local.__dict__.setdefault('connections', {}).pop(server, (None, None))
        if connection is not None:
            connection.close(noreply_wait=False)

    def close(self) -> None:
        """Close every connection the workers opened (once they are done)."""
        for connection in self.opened:
            connection.close(noreply_wait=False)

    def read(self, plan: TablePlan, index: int, lower, upper, server: str | None) -> RangeResult:
        """Read one range into a spool file (removed if the read fails), resuming after the last key read
        when the query is cut off."""
        descriptor, path = tempfile.mkstemp(prefix='%s.%s.%d.' % (plan.db, plan.name, index), dir=self.spool_dir)
        try:
            with os.fdopen(descriptor, 'wb') as out:
                spool = _Compressor(self.compression, self.level, out)
                documents = self._read_into(spool, plan, lower, upper, server)
                spool.close()
        except _SpoolFailure as exc:
            os.unlink(path)
            raise exc.error
        except BaseException:
            os.unlink(path)
            raise
        return RangeResult(path, documents, spool.raw_bytes, spool.crc)

    def _read_into(self, spool: _Compressor, plan: TablePlan, lower, upper, server: str | None) -> int:
        documents = 0
        left_bound = 'closed'
        first_failure = None
        wanted = server
        for attempt, pause in enumerate(RETRY_PAUSES + (None,)):
            address = self.connector.login
            try:
                connection, address = self._connection(server)
                for key, count in self._stream(plan, connection, lower, upper, left_bound, spool, documents == 0):
                    lower, left_bound = key, 'open'
                    documents += count
                return documents
            except RETRIED_ERRORS + (OSError,) as exc:
                self._forget(server)
                # The server the range was read from is the one to name: the login server only forwards later tries.
                first_failure = first_failure or (address, exc)
                if pause is None or self.stop.is_set():
                    raise lost('Reading %s' % plan.label, first_failure[0], first_failure[1], ADVICE, wanted)
                # After a second failure on the best placed server, the login server forwards the reads.
                server = None if attempt >= 1 else server
                self.stop.wait(pause)
            except ReqlError as exc:
                raise lost('Reading %s' % plan.label, address, exc, ADVICE, wanted)
        return documents

    def _stream(self, plan: TablePlan, connection, lower, upper, left_bound: str, spool: _Compressor, first: bool):
        """Write the range's documents to the spool, one a line, yielding (last key, documents) per chunk."""
        table = self.r.db(plan.db).table(plan.name, read_mode=self.read_mode)
        query = table.between(lower, upper, left_bound=left_bound, right_bound='open').order_by(index=plan.primary_key)
        cursor = query.run(connection, json_decoder=OrjsonDecoder, **RAW)
        lines: list = []
        size = 0
        document = None
        try:
            for document in cursor:
                line = orjson.dumps(document)
                lines.append(line)
                size += len(line) + 2
                if size >= CHUNK_BYTES:
                    _spool(spool, (b'' if first else b',\n') + b',\n'.join(lines))
                    yield document[plan.primary_key], len(lines)
                    if self.stop.is_set():
                        raise NativeError('stopped')
                    first, lines, size = False, [], 0
            if lines:
                _spool(spool, (b'' if first else b',\n') + b',\n'.join(lines))
                yield document[plan.primary_key], len(lines)
        finally:
            cursor.close()


def _spool(spool: _Compressor, data: bytes) -> None:
    try:
        spool.write(data)
    except OSError as exc:
        raise _SpoolFailure(exc) from exc


def _tar_header(path: str, size: int, mtime: int) -> bytes:
    """The tar header of a regular file, as tarfile writes it for `rethinkdb dump`."""
    member = tarfile.TarInfo(path)
    member.size = size
    member.mtime = mtime
    member.mode = 0o644
    return member.tobuf(tarfile.PAX_FORMAT, 'utf-8', 'surrogateescape')


def _padding(size: int) -> bytes:
    return bytes(-size % TAR_BLOCK)


class _ArchiveWriter:
    """The archive, front to back, into the sink: small compressed parts, and spooled parts copied. For gzip,
    one member: its header, the parts' deflate blocks, a final block, the CRC-32 and size of it all."""

    def __init__(self, sink: HashingWriter, compression: str, level: int, top: str):
        self.sink = sink
        self.compression = compression
        self.level = level
        self.top = top
        self.mtime = int(time.time())
        self.tar_bytes = 0
        self.crc = 0
        if compression == GZIP:
            self.sink.write(b'\x1f\x8b\x08\x00' + struct.pack('<I', self.mtime) + b'\x00\xff')

    def _piece(self, data: bytes) -> None:
        buffer = io.BytesIO()
        part = _Compressor(self.compression, self.level, buffer)
        part.write(data)
        part.close()
        self.sink.write(buffer.getvalue())
        self._count(len(data), part.crc)

    def _count(self, size: int, crc: int) -> None:
        self.crc = crc32_combine(self.crc, crc, size)
        self.tar_bytes += size

    def info(self, plan: TablePlan) -> None:
        data = orjson.dumps(plan.info) + b'\n'
        path = '%s/%s/%s%s' % (self.top, plan.db, plan.name, INFO_SUFFIX)
        self._piece(_tar_header(path, len(data), self.mtime) + data + _padding(len(data)))

    def data(self, plan: TablePlan, results: list) -> None:
        """The table's .json: '[\n', the non-empty ranges' lines with ',\n' between them, '\n]\n'."""
        filled = [result for result in results if result.documents]
        size = 2 + sum(result.raw_bytes for result in filled) + 2 * (len(filled) - 1) + 3 if filled else 4
        path = '%s/%s/%s%s' % (self.top, plan.db, plan.name, DATA_SUFFIX)
        self._piece(_tar_header(path, size, self.mtime) + (b'[\n' if filled else b'[\n]\n'))
        for number, result in enumerate(filled):
            if number:
                self._piece(b',\n')
            with open(result.path, 'rb') as spooled:
                for chunk in iter(lambda: spooled.read(CHUNK_BYTES), b''):
                    self.sink.write(chunk)
            self._count(result.raw_bytes, result.crc)
        self._piece((b'\n]\n' if filled else b'') + _padding(size))

    def end(self) -> None:
        """Two zero blocks, and zeros to the end of the record, as tarfile ends an archive; for gzip, the final
        deflate block and the member's trailer."""
        ending = TAR_BLOCK * 2
        ending += -(self.tar_bytes + ending) % TAR_RECORD
        self._piece(bytes(ending))
        if self.compression == GZIP:
            self.sink.write(zlib.compressobj(self.level, zlib.DEFLATED, -zlib.MAX_WBITS).flush(zlib.Z_FINISH))
            self.sink.write(struct.pack('<II', self.crc, self.tar_bytes & 0xFFFFFFFF))


def write_dump(r, connector, names: list, sink, compression: str = GZIP, level: int | None = None, workers: int = 4,
               read_mode: str = 'single', temp_dir: str | None = None) -> dict:
    """Dump the tables named 'db.table' into `sink` (anything with write(bytes); never sought or read back)
    as a dump archive; return what was written: bytes, sha256, compression, level, top and, by table,
    documents, primary_key, indexes and ranges. NativeError (one line) when a server cannot serve a range.

    connector is a native_cluster.Connector; temp_dir holds the spooled ranges (compressed) until their
    table is written, and is left empty.
    """
    level = DEFAULT_LEVELS[compression] if level is None else level
    try:
        control = connector.connect_login()
    except (ReqlError, OSError) as exc:
        raise lost('Connecting', connector.login, exc, ADVICE)
    try:
        connector.learn(control, r)
        plans = plan_tables(r, control, names, workers, read_mode)
    except ReqlError as exc:
        raise lost('Reading the tables to dump', connector.login, exc, ADVICE)
    finally:
        control.close(noreply_wait=False)
    hashing = HashingWriter(sink)
    top = 'rethinkdb_dump_%s' % datetime.datetime.now().strftime('%Y-%m-%dT%H:%M:%S')
    writer = _ArchiveWriter(hashing, compression, level, top)
    stop = threading.Event()
    reader = _RangeReader(r, connector, read_mode, compression, level, temp_dir, stop)
    tables = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix='dump') as pool:
        pending = [[pool.submit(reader.read, plan, *task) for task in plan.ranges()] for plan in plans]
        try:
            for plan, futures in zip(plans, pending):
                writer.info(plan)
                results = [future.result() for future in futures]
                writer.data(plan, results)
                for result in results:
                    os.unlink(result.path)
                tables[plan.label] = dict(documents=sum(result.documents for result in results), raw_bytes=sum(result.raw_bytes for result in results),
                                          primary_key=plan.primary_key,
                                          indexes=sorted(index['index'] for index in plan.info['indexes']), ranges=len(results),
                                          write_hook=plan.info['write_hook'] is not None)
            writer.end()
        except BaseException:
            stop.set()
            for futures in pending:
                for future in futures:
                    future.cancel()
            raise
        finally:
            concurrent.futures.wait([future for futures in pending for future in futures])
            for futures in pending:
                for future in futures:
                    if not future.cancelled() and future.exception() is None and os.path.exists(future.result().path):
                        os.unlink(future.result().path)
            reader.close()
    return dict(bytes=hashing.bytes, sha256=hashing.digest.hexdigest(), compression=compression, level=level, top=top, tables=tables,
                documents=sum(table['documents'] for table in tables.values()), raw_bytes=sum(table['raw_bytes'] for table in tables.values()))
