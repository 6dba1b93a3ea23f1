# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dump archives as `rethinkdb dump` writes them and `rethinkdb restore` reads them, read in one streaming pass.

A dump archive is a tar, compressed, of `<top>/<db>/<table>.json` (a JSON array of the table's documents, one a
line) and `<top>/<db>/<table>.info` (the table's info(), its index_status() rows and its write hook). One pass
proves it: its checksum, its listing, and each table's document count.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
import re
import tarfile
import threading
import traceback
import zlib

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import HashingReader

try:
    import orjson
except ImportError:
    ORJSON_IMPORT_ERROR: str | None = traceback.format_exc()
    orjson = None
else:
    ORJSON_IMPORT_ERROR = None

try:
    import zstandard
except ImportError:
    ZSTANDARD_IMPORT_ERROR: str | None = traceback.format_exc()
    zstandard = None
else:
    ZSTANDARD_IMPORT_ERROR = None

CHUNK_BYTES = 1024 * 1024
# The .info of a table holds its primary key, index functions and write hook: small.
INFO_LIMIT_BYTES = 16 * 1024 * 1024
# A document the streaming count may hold at once; larger ones are treated as damage.
DOCUMENT_LIMIT_CHARS = 128 * 1024 * 1024
# How often an archive read as the tool writes it is looked at again when the reader has caught up.
FOLLOW_POLL_SECONDS = 0.02

# Database and table names as RethinkDB accepts them.
NAME_PATTERN = re.compile(r'^[A-Za-z0-9_-]+$')
# The archive's top directory: rethinkdb_dump_<date>T<time> from the tool, or any plain name.
TOP_PATTERN = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.:+-]*$')
DATA_SUFFIX = '.json'
INFO_SUFFIX = '.info'
# The compressions of an archive, by the magic bytes its stream starts with: gzip is what the tools read.
GZIP = 'gzip'
ZSTD = 'zstd'
MAGIC = {GZIP: b'\x1f\x8b', ZSTD: b'\x28\xb5\x2f\xfd'}
_WHITESPACE = re.compile(r'[ \t\n\r]*')
_DECODER = json.JSONDecoder()


class DumpArchiveError(Exception):
    """A dump archive cannot be used: damaged, unsafe, or not in the layout the tools write."""


class ArchivedTable:
    """One table in a dump archive: its .info (primary key, index names) and its .json's document count."""

    def __init__(self, name: str):
        self.name = name
        self.primary_key: str | None = None
        self.indexes: list | None = None
        self.documents: int | None = None
        self.info: dict | None = None
        self.raw_bytes = 0

    def facts(self) -> dict:
        return dict(documents=self.documents, primary_key=self.primary_key, indexes=self.indexes)


class DumpArchive:
    """What one pass over a dump archive proved: its checksum, size, top directory and tables by 'db.table'."""

    def __init__(self, path: str, sha256: str, size: int, top: str, tables: dict, compression: str = GZIP):
        self.path = path
        self.compression = compression
        self.sha256 = sha256
        self.bytes = size
        self.top = top
        self.tables = tables

    @property
    def raw_bytes(self) -> int:
        return sum(table.raw_bytes for table in self.tables.values())


class _Following:
    """A file another process is still writing, read as it grows: at its current end, a read waits for more
    until `writer_done` is set, and only then returns the end of the file."""

    def __init__(self, stream, writer_done: threading.Event):
        self._stream = stream
        self._writer_done = writer_done

    def read(self, size: int = -1) -> bytes:
        while True:
            done = self._writer_done.is_set()
            chunk = self._stream.read(size)
            if chunk or done:
                return chunk
            self._writer_done.wait(FOLLOW_POLL_SECONDS)

    def close(self) -> None:
        self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _open_archive(path: str, writer_done: threading.Event | None):
    """The archive to read: the file as it is, or with writer_done a file still being written (waiting for
    the writer to create it)."""
    if writer_done is None:
        return open(path, 'rb')
    while True:
        done = writer_done.is_set()
        try:
            return _Following(open(path, 'rb'), writer_done)
        except FileNotFoundError:
            if done:
                raise
        writer_done.wait(FOLLOW_POLL_SECONDS)


class _DocumentReader:
    """The documents of a table's .json in any layout of one JSON array of objects, parsed one at a time."""

    def __init__(self, stream, label: str):
        self._stream = stream
        self._label = label
        self._decoder = codecs.getincrementaldecoder('utf-8')()
        self._text = ''
        self._position = 0
        self._ended = False

    def _defect(self, problem: str) -> DumpArchiveError:
        return DumpArchiveError('%s %s' % (self._label, problem))

    def _fill(self, size: int = CHUNK_BYTES) -> bool:
        """Append more decoded text, dropping what was consumed; False at the end of the data."""
        if self._ended:
            return False
        chunk = self._stream.read(size)
        self._text = self._text[self._position:] + self._decoder.decode(chunk, final=not chunk)
        self._position = 0
        self._ended = not chunk
        return bool(chunk)

    def _peek(self) -> str:
        """The next character that is not white space ('' at the end), left unconsumed."""
        while True:
            self._position = _WHITESPACE.match(self._text, self._position).end()
            if self._position < len(self._text):
                return self._text[self._position]
            if not self._fill():
                return ''

    def _take(self, expected: str) -> str:
        found = self._peek()
        if not found or found not in expected:
            raise self._defect('is not a JSON array of documents: expected %s, found %s'
                               % (' or '.join(repr(char) for char in expected), repr(found) if found else 'the end of the data'))
        self._position += 1
        return found

    def _document(self) -> dict:
        found = self._peek()
        if not found:
            raise self._defect('ends before its JSON array is closed')
        if found != '{':
            raise self._defect('holds something other than a JSON object where a document should be')
        while True:
            try:
                document, self._position = _DECODER.raw_decode(self._text, self._position)
                return document
            except ValueError as exc:
                pending = len(self._text) - self._position
                if pending > DOCUMENT_LIMIT_CHARS or not self._fill(max(CHUNK_BYTES, pending)):
                    raise self._defect('has a document that is not valid JSON (%s)' % exc)

    def documents(self):
        """Yield each document; DumpArchiveError where the data is not one JSON array of objects."""
        self._take('[')
        if self._peek() == ']':
            self._position += 1
        else:
            while True:
                yield self._document()
                if self._take(',]') == ']':
                    break
        if self._peek():
            raise self._defect('has data after the end of its JSON array')


class _Prepended:
    """A stream with bytes already read from it put back in front."""

    def __init__(self, head: bytes, stream):
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._stream.read(size)
        if size < 0:
            head, self._head = self._head, b''
            return head + self._stream.read()
        head, self._head = self._head[:size], self._head[size:]
        return head


def _tool_lines(stream, label: str):
    """Yield each document line of a .json in the layout of rethinkdb dump ('[', one document a line, the
    separating commas at the ends of lines, ']'), without its comma; DumpArchiveError for any other layout."""
    layout_error = DumpArchiveError('%s is not in the layout of rethinkdb dump (one document a line in a JSON array)' % label)
    pending = b''
    state = 'start'
    for chunk in iter(lambda: stream.read(CHUNK_BYTES), b''):
        lines = (pending + chunk).split(b'\n')
        pending = lines.pop()
        for line in lines:
            if state == 'start':
                state = 'first' if line == b'[' else 'bad'
            elif state in ('first', 'more') and line.endswith(b','):
                state = 'more'
                yield line[:-1]
            elif state in ('first', 'more') and line != b']':
                state = 'last'
                yield line
            elif line == b']' and state in ('first', 'last'):
                state = 'closed'
            else:
                state = 'bad'
            if state == 'bad':
                raise layout_error
    if pending or state != 'closed':
        raise layout_error


def document_lines(stream, label: str):
    """Yield each document of a table's .json as one line of compact JSON: the tool's own lines as they are,
    or, for any other layout of the array, each document parsed and encoded again."""
    head = stream.read(3)
    data = _Prepended(head, stream)
    if head in (b'[\n{', b'[\n]'):
        yield from _tool_lines(data, label)
        return
    for document in read_documents(data, label):
        yield encode_document(document)


def read_documents(stream, label: str):
    """Yield each document of a table's .json (any layout of one JSON array of objects), parsed, one at a time;
    DumpArchiveError naming `label` where the data is not such an array."""
    return _DocumentReader(stream, label).documents()


def encode_document(document: dict) -> bytes:
    """A document as compact JSON, in the library the engine has."""
    if orjson is not None:
        return orjson.dumps(document)
    return json.dumps(document, ensure_ascii=False, separators=(',', ':')).encode('utf-8')


def decode_document(line: bytes):
    """A document line as its value; ValueError for one that is not JSON."""
    if orjson is not None:
        return orjson.loads(line)
    return json.loads(line)


def _checked_count(stream, label: str) -> int:
    """The documents of a table's .json, each parsed to prove it is a JSON object."""
    documents = 0
    for line in document_lines(stream, label):
        try:
            document = decode_document(line)
        except ValueError as exc:
            raise DumpArchiveError('%s has a document that is not valid JSON (%s)' % (label, exc))
        if not isinstance(document, dict):
            raise DumpArchiveError('%s holds something other than a JSON object where a document should be' % label)
        documents += 1
    return documents


def _count_tool_lines(stream, label: str) -> int:
    """Documents of a .json in the exact layout rethinkdb dump writes ('[', one document a line, ']'), counted
    by its newlines: ten times faster than parsing, for archives the module just had the tool write."""
    newlines = 0
    head = tail = b''
    for chunk in iter(lambda: stream.read(CHUNK_BYTES), b''):
        head = head if len(head) >= 2 else (head + chunk)[:2]
        tail = (tail + chunk)[-4:]
        newlines += chunk.count(b'\n')
    if head != b'[\n' or tail[-3:] != b'\n]\n' or (newlines > 2 and tail != b'}\n]\n'):
        raise DumpArchiveError('%s is not in the layout of rethinkdb dump (one document a line in a JSON array)' % label)
    return newlines - 2


def _unsafe(member: tarfile.TarInfo, problem: str) -> DumpArchiveError:
    return DumpArchiveError('member %r %s; a dump archive holds only <top>/<db>/<table>.json and .info files' % (member.name, problem))


def _member_place(member: tarfile.TarInfo) -> tuple:
    """(top, db, table, suffix) of a table file, (top, None, None, None) of an allowed directory entry;
    DumpArchiveError for any other member."""
    parts = member.name.split('/')
    if member.name.startswith('/') or any(part in ('', '.', '..') for part in parts) or '\\' in member.name:
        raise _unsafe(member, 'has an absolute, empty or parent path component')
    if not TOP_PATTERN.match(parts[0]):
        raise _unsafe(member, 'has an unexpected top directory')
    if member.isdir() and (len(parts) == 1 or (len(parts) == 2 and NAME_PATTERN.match(parts[1]))):
        return parts[0], None, None, None
    if not member.isreg():
        raise _unsafe(member, 'is not a regular file')
    if len(parts) != 3:
        raise _unsafe(member, 'is not at <top>/<db>/<file>')
    table, suffix = os.path.splitext(parts[2])
    if suffix not in (DATA_SUFFIX, INFO_SUFFIX) or not NAME_PATTERN.match(parts[1]) or not NAME_PATTERN.match(table):
        raise _unsafe(member, 'is not a <db>/<table>.json or .info name')
    return parts[0], parts[1], table, suffix


def _read_info(stream, member: tarfile.TarInfo, table: ArchivedTable) -> None:
    """Take the primary key and index names from a table's .info."""
    if member.size > INFO_LIMIT_BYTES:
        raise DumpArchiveError('%s is %d bytes, too large for a table description' % (member.name, member.size))
    try:
        info = json.loads(stream.read().decode('utf-8'))
    except ValueError as exc:
        raise DumpArchiveError('%s is not valid JSON (%s)' % (member.name, exc))
    indexes = info.get('indexes', []) if isinstance(info, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get('primary_key'), str) or not isinstance(indexes, list):
        raise DumpArchiveError('%s does not describe a table (no primary_key or indexes)' % member.name)
    table.info = info
    table.primary_key = info['primary_key']
    table.indexes = sorted(index['index'] if isinstance(index, dict) else str(index) for index in indexes)


class _Decompressed:
    """The tar stream inside an archive, gzip (one member or many) or zstd (one frame or many), told apart by
    the stream's first bytes; reading it to its end checks every CRC or checksum."""

    def __init__(self, source):
        head = source.read(4)
        self.compression = next((name for name, magic in MAGIC.items() if head.startswith(magic)), None)
        source = _Prepended(head, source)
        if self.compression == ZSTD:
            if zstandard is None:
                raise DumpArchiveError('it is compressed with zstd, and the Python library zstandard is not installed')
            self._stream = zstandard.ZstdDecompressor().stream_reader(source, read_size=CHUNK_BYTES, read_across_frames=True)
        else:
            self._stream = gzip.GzipFile(fileobj=source, mode='rb')

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def drain(self) -> None:
        while self._stream.read(CHUNK_BYTES):
            continue

    def close(self) -> None:
        self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _members(unpacked):
    """Yield (db, table, suffix, member, its data stream) of each table file of the tar, in archive order,
    after checking every member's place; the first item is the archive's top directory."""
    top = None
    seen = set()
    with tarfile.open(fileobj=unpacked, mode='r|', bufsize=CHUNK_BYTES) as archive:
        for member in archive:
            member_top, db, name, suffix = _member_place(member)
            if top is None:
                top = member_top
                yield top
            elif member_top != top:
                raise _unsafe(member, 'is under a second top directory (the first was %r)' % top)
            if db is None:
                continue
            if member.name in seen:
                raise DumpArchiveError('member %r appears twice' % member.name)
            seen.add(member.name)
            yield db, name, suffix, member, archive.extractfile(member)


def _read_members(source, parse_documents: bool) -> tuple:
    """Walk the tar inside the compressed stream once; return (top, tables by name, compression). Reads the
    stream to its end, which checks its CRCs."""
    top = None
    tables: dict = {}
    with _Decompressed(source) as unpacked:
        for item in _members(unpacked):
            if isinstance(item, str):
                top = item
                continue
            db, name, suffix, member, stream = item
            table = tables.setdefault('%s.%s' % (db, name), ArchivedTable('%s.%s' % (db, name)))
            table.raw_bytes += member.size
            if suffix == INFO_SUFFIX:
                _read_info(stream, member, table)
            elif parse_documents:
                table.documents = _checked_count(stream, member.name)
            else:
                table.documents = _count_tool_lines(stream, member.name)
        unpacked.drain()
    return top, tables, unpacked.compression


STREAM_ERRORS = (EOFError, zlib.error, tarfile.TarError, OSError, ValueError) + ((zstandard.ZstdError,) if zstandard else ())


def _damage(exc: Exception) -> str:
    """A one-line reason for an archive stream that cannot be read to its end."""
    return 'it is truncated or corrupt (%s)' % (str(exc).rstrip('.') or type(exc).__name__)


def prove_dump(stream, label: str, sha256: str | None = None, parse_documents: bool = True) -> DumpArchive:
    """Prove a dump archive, read from `stream` front to back once (read() only), or raise DumpArchiveError
    with a one-line reason naming it by `label` (its path, or where it is stored).

    A wrong checksum (when `sha256` is given) is reported before any damage found in the content. With
    parse_documents, every document is parsed; without, the archive must have the tool's own layout and
    documents are counted by lines (the CRCs still cover every byte).
    """
    source = HashingReader(stream)
    damage = None
    try:
        top, tables, compression = _read_members(source, parse_documents)
    except DumpArchiveError as exc:
        damage = str(exc)
    except STREAM_ERRORS as exc:
        damage = _damage(exc)
    try:
        source.drain()
    except OSError as exc:
        raise DumpArchiveError('Cannot read archive %s: %s' % (label, exc.strerror or exc))
    actual = source.digest.hexdigest()
    if sha256 and actual != sha256.lower():
        raise DumpArchiveError('Archive %s has sha256 %s, expected %s: it is not the archive that was recorded, or it was damaged'
                               % (label, actual, sha256.lower()))
    if damage is None:
        damage = _layout_problem(tables)
    if damage:
        raise DumpArchiveError('Archive %s is not a usable rethinkdb dump: %s' % (label, damage))
    return DumpArchive(label, actual, source.bytes, top, dict(sorted(tables.items())), compression)


def read_dump_archive(path: str, sha256: str | None = None, parse_documents: bool = True,
                      writer_done: threading.Event | None = None) -> DumpArchive:
    """prove_dump() of the archive at `path`. With writer_done, the archive is read while the tool writes
    it, to its end once the event is set: the tool writes it front to back, never going back."""
    try:
        with _open_archive(path, writer_done) as stream:
            return prove_dump(stream, path, sha256, parse_documents)
    except OSError as exc:
        raise DumpArchiveError('Cannot read archive %s: %s' % (path, exc.strerror or exc))


def table_documents(source):
    """Yield (table name, its document lines) for each table's .json in archive order, reading `source`
    (read() only) once; the lines must be consumed before the next table comes. For an archive that
    prove_dump() accepted; DumpArchiveError (or the stream's own errors) where the stream differs now."""
    with _Decompressed(source) as unpacked:
        for item in _members(unpacked):
            if isinstance(item, str) or item[2] != DATA_SUFFIX:
                continue
            db, name, suffix, member, stream = item
            yield '%s.%s' % (db, name), document_lines(stream, member.name)
        unpacked.drain()


def table_line_batches(source, batch_bytes: int = CHUNK_BYTES):
    """Yield (db.table, member name, batch) for each table's .json in archive order, reading `source` once: a
    batch is whole document lines joined by newlines, about batch_bytes long, for parsing elsewhere (the chain
    check's worker processes); an empty table gives one empty batch, so that every table is seen.
    DumpArchiveError (or the stream's own errors) for an archive that is not a dump."""
    with _Decompressed(source) as unpacked:
        for item in _members(unpacked):
            if isinstance(item, str) or item[2] != DATA_SUFFIX:
                continue
            db, name, dummy_suffix, member, stream = item
            batch: list = []
            size = 0
            handed_out = False
            for line in document_lines(stream, member.name):
                batch.append(line)
                size += len(line) + 1
                if size >= batch_bytes:
                    yield '%s.%s' % (db, name), member.name, b'\n'.join(batch)
                    batch, size, handed_out = [], 0, True
            if batch or not handed_out:
                yield '%s.%s' % (db, name), member.name, b'\n'.join(batch)
        unpacked.drain()


def _layout_problem(tables: dict) -> str | None:
    """Why the tables found are not a dump's, or None: every table needs both its .json and its .info."""
    if not tables:
        return 'it holds no tables'
    for name, table in sorted(tables.items()):
        if table.primary_key is None:
            return 'table %s has data but no .info file' % name
        if table.documents is None:
            return 'table %s has a .info file but no data (.json)' % name
    return None
