# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Python driver's `rethinkdb dump` and `rethinkdb restore` tools, and the archives they exchange.

The tools run as `python -m rethinkdb dump|restore` under the module's own interpreter. This file builds their
argv from option values (one place says which option becomes which flag), hands them the password in a 0600
file, runs them without the environment variable that breaks them, reads their output, and reads a dump
archive in one streaming pass: its checksum, its listing, and each table's document count.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import gzip
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import threading
import time
import zlib
from collections.abc import Callable

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.archive import HashingReader

CHUNK_BYTES = 1024 * 1024
# The .info of a table holds its primary key, index functions and write hook: small.
INFO_LIMIT_BYTES = 16 * 1024 * 1024
# A document the streaming count may hold at once; larger ones are treated as damage.
DOCUMENT_LIMIT_CHARS = 128 * 1024 * 1024
# How often an archive read as the tool writes it is looked at again when the reader has caught up.
FOLLOW_POLL_SECONDS = 0.02

# Environment variables the tools must not see: RETHINKDB_DRIVER_PORT makes every tool exit 2.
HIDDEN_VARIABLES = ('RETHINKDB_DRIVER_PORT',)
# The tools print in the encoding run_command decodes, whatever the node's locale.
TOOL_ENVIRONMENT = {'PYTHONIOENCODING': 'utf-8'}

# Database and table names as RethinkDB accepts them.
NAME_PATTERN = re.compile(r'^[A-Za-z0-9_-]+$')
# The archive's top directory: rethinkdb_dump_<date>T<time> from the tool, or any plain name.
TOP_PATTERN = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.:+-]*$')
DATA_SUFFIX = '.json'
INFO_SUFFIX = '.info'
SYSTEM_DATABASE = 'rethinkdb'

DUMP_SUMMARY = re.compile(r'^\d+ rows? exported from ')
RESTORE_SUMMARY = re.compile(r'^\d+ rows? imported to ')
_TERMINAL_ESCAPES = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')
_OPTION_ERROR = re.compile(r': error: (.+)$')
# Lines that only say that an error was printed above them.
_ECHO_LINES = re.compile(r'^(Error: )*(export failed, |import failed: )*(Error: )*Errors occurred during (export|import)$')
# Tracebacks, the headers of failed worker processes, and Python warnings.
_NOISE_LINES = re.compile(r'^(Traceback |Process [\w-]+:$|\S+:\d+: \w*Warning: )')
_OUT_OF_SPACE = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))
_WHITESPACE = re.compile(r'[ \t\n\r]*')
_DECODER = json.JSONDecoder()


def _value(flag: str) -> Callable:
    return lambda value: [] if value is None else [flag, str(value)]


def _flag(flag: str) -> Callable:
    return lambda value: [flag] if value else []


def _flag_unless(flag: str) -> Callable:
    return lambda value: [] if value else [flag]


def _each(flag: str) -> Callable:
    return lambda values: [part for value in values or () for part in (flag, value)]


LOGIN_FORMATS = (
    ('login_host', _value('--host-name')),
    ('login_port', _value('--driver-port')),
    ('login_user', _value('--user')),
    ('password_file', _value('--password-file')),
    ('tls_ca_file', _value('--tls-cert')),
)
TOOL_FORMATS = {
    'dump': (
        ('file', _value('--file')),
        ('temp_dir', _value('--temp-dir')),
        ('clients', _value('--clients')),
        ('read_outdated', _flag('--read-outdated')),
        ('tables', _each('--export')),
    ),
    'restore': (
        ('temp_dir', _value('--temp-dir')),
        ('clients', _value('--clients')),
        ('force', _flag('--force')),
        ('create_indexes', _flag_unless('--no-secondary-indexes')),
        ('hard_durability', _flag('--hard-durability')),
        ('tables', _each('--import')),
    ),
}


def tool_argv(verb: str, values: dict, positional: tuple = ()) -> list:
    """argv of `python -m rethinkdb <verb>`: positional paths (made absolute, so none reads as an option), then
    the login flags and the verb's flags from `values`, which must hold every key the formats name."""
    argv = [sys.executable, '-m', 'rethinkdb', verb] + [os.path.abspath(path) for path in positional]
    for key, format_value in LOGIN_FORMATS + TOOL_FORMATS[verb]:
        argv.extend(format_value(values[key]))
    return argv


class ToolFailure(Exception):
    """A step of a dump or restore failed: the message is one line; details go into the failed result."""

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.details = details


def os_failure(action: str, exc: OSError, advice: str) -> ToolFailure:
    """A ToolFailure for a failed file operation; running out of space gets the advice on what to do."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ToolFailure('Cannot %s: %s; %s.' % (action, reason, advice))
    return ToolFailure('Cannot %s: %s.' % (action, reason))


def writable_directory(path: str) -> str | None:
    """Why a directory cannot take new files, or None."""
    if not os.path.isdir(path):
        return 'does not exist or is not a directory'
    if not os.access(path, os.W_OK | os.X_OK):
        return 'is not writable by this user'
    return None


def make_scratch_dir(parent: str, prefix: str) -> str:
    """A new private directory (mode 0700) under parent for one run's temporary files."""
    return tempfile.mkdtemp(prefix=prefix, suffix='.partial', dir=parent)


@contextlib.contextmanager
def scratch_dirs(module):
    """A list for the scratch directories of one run: on leaving, each is removed with everything in it, and
    one that cannot be is a warning."""
    paths: list = []
    try:
        yield paths
    finally:
        for path in paths:
            try:
                shutil.rmtree(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                module.warn('Could not remove the temporary directory %s: %s.' % (path, exc.strerror or exc))


def parse_selector(name: str) -> tuple:
    """'db.table' to (db, table) and 'db' to (db, None), as the tools' -e and -i take them; ValueError otherwise."""
    db, dot, table = name.partition('.')
    if not NAME_PATTERN.match(db) or (dot and not NAME_PATTERN.match(table)):
        raise ValueError("'%s' is not a database or database.table name" % name)
    if db == SYSTEM_DATABASE:
        raise ValueError("'%s' is in the system database %s, which the tools do not dump or restore" % (name, SYSTEM_DATABASE))
    return db, table or None


def check_password(password: str) -> None:
    """ValueError for a password that --password-file cannot carry: the tools strip trailing newlines."""
    if password.endswith('\n'):
        raise ValueError('the password ends with a newline, which the rethinkdb tools strip from --password-file')


@contextlib.contextmanager
def password_file(password: str, directory: str | None = None):
    """Yield the path of a file only its owner can read, holding the password (None for no password);
    the file is removed when the block ends, however it ends."""
    if not password:
        yield None
        return
    descriptor, path = tempfile.mkstemp(prefix='rethinkdb-password-', dir=directory)
    try:
        with os.fdopen(descriptor, 'w', encoding='utf-8') as stream:
            stream.write(password)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def _hidden_variables():
    """Take HIDDEN_VARIABLES out of this process's environment while a tool starts: run_command can add
    variables for a child but not remove them."""
    saved = dict((name, os.environ.pop(name)) for name in HIDDEN_VARIABLES if name in os.environ)
    try:
        yield
    finally:
        os.environ.update(saved)


def clean_output(text: str) -> str:
    """A tool's output as a person reads it: progress bars reduced to their last state, escapes removed."""
    lines = [line.rsplit('\r', 1)[-1].rstrip() for line in _TERMINAL_ESCAPES.sub('', text).split('\n')]
    return '\n'.join(lines).strip('\n')


class ToolRun:
    """One run of a tool: its argv (the password file's path only), exit status and cleaned output."""

    def __init__(self, argv: list, rc: int, stdout: str, stderr: str, seconds: float):
        self.argv = argv
        self.rc = rc
        self.stdout = clean_output(stdout)
        self.stderr = clean_output(stderr)
        self.seconds = seconds

    def summary(self, pattern: re.Pattern) -> str:
        """The tool's last line matching its summary pattern, else its last line."""
        lines = [line.strip() for line in self.stdout.splitlines() if line.strip()]
        matching = [line for line in lines if pattern.match(line)]
        return (matching or lines or [''])[-1]

    def reason(self) -> str:
        """The most telling line of the tool's error output, without its 'Error:' prefixes."""
        for line in self.stderr.splitlines():
            option_error = _OPTION_ERROR.search(line)
            if option_error:
                return option_error.group(1).rstrip('.')
        top_level = [line.strip() for line in self.stderr.splitlines() + self.stdout.splitlines()
                     if line.strip() and not line[0].isspace() and not _NOISE_LINES.match(line)]
        telling = [line for line in top_level if not _ECHO_LINES.match(line)] or top_level or ['no error message']
        reason = telling[0]
        while reason.startswith('Error: '):
            reason = reason[len('Error: '):]
        return reason.rstrip('.:')

    def out_of_space(self) -> bool:
        """Whether the tool failed for want of disk space or quota."""
        return any(text in self.stderr or text in self.stdout for text in _OUT_OF_SPACE)

    def details(self) -> dict:
        """What a failed task returns besides its message."""
        return dict(rc=self.rc, stdout=self.stdout, stderr=self.stderr, cmd=self.argv)

    def check(self, verb: str, writing: str, advice: str) -> None:
        """Raise ToolFailure unless the tool exited with 0: out of space while `writing` (with advice on room),
        or exited with its most telling reason."""
        if self.rc == 0:
            return
        if self.out_of_space():
            raise ToolFailure('rethinkdb %s ran out of disk space %s: %s.' % (verb, writing, advice), **self.details())
        raise ToolFailure('rethinkdb %s exited with %d: %s.' % (verb, self.rc, self.reason()), **self.details())


def run_tool(module, argv: list) -> ToolRun:
    """Run a tool through module.run_command (an argv list, no shell) with the environment it needs."""
    started = time.monotonic()
    with _hidden_variables():
        rc, stdout, stderr = module.run_command(argv, environ_update=TOOL_ENVIRONMENT)
    return ToolRun(argv, rc, stdout, stderr, round(time.monotonic() - started, 3))


class DumpArchiveError(Exception):
    """A dump archive cannot be used: damaged, unsafe, or not in the layout the tools write."""


class ArchivedTable:
    """One table in a dump archive: its .info (primary key, index names) and its .json's document count."""

    def __init__(self, name: str):
        self.name = name
        self.primary_key: str | None = None
        self.indexes: list | None = None
        self.documents: int | None = None
        self.raw_bytes = 0

    def facts(self) -> dict:
        return dict(documents=self.documents, primary_key=self.primary_key, indexes=self.indexes)


class DumpArchive:
    """What one pass over a dump archive proved: its checksum, size, top directory and tables by 'db.table'."""

    def __init__(self, path: str, sha256: str, size: int, top: str, tables: dict):
        self.path = path
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


class _DocumentArray:
    """Reads the documents of a table's .json, one JSON array of objects, holding one document at a time."""

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

    def _next_document(self) -> dict:
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
        """Every document in turn; DumpArchiveError at the first defect of the array."""
        self._take('[')
        if self._peek() == ']':
            self._position += 1
        else:
            while True:
                yield self._next_document()
                if self._take(',]') == ']':
                    break
        if self._peek():
            raise self._defect('has data after the end of its JSON array')

    def count(self) -> int:
        return sum(1 for dummy in self.documents())


class _Prefixed:
    """A stream with bytes already read from it put back in front."""

    def __init__(self, head: bytes, stream):
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._stream.read(size)
        chunk = self._head if size < 0 else self._head[:size]
        self._head = self._head[len(chunk):]
        return chunk


def _tool_layout_head(stream) -> bytes:
    """The start of a .json up to the end of its first document's line: at least '[\n' and the line after it,
    or everything when the data ends first."""
    head = b''
    while head.count(b'\n') < 2:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            break
        head += chunk
        if len(head) > DOCUMENT_LIMIT_CHARS:
            break
    return head


def _in_tool_layout(head: bytes) -> bool:
    """Whether a .json starts as rethinkdb dump writes it: '[' on a line, then a whole document on the next line
    (or the ']' of an empty table)."""
    if not head.startswith(b'[\n'):
        return False
    first_line = head[2:].split(b'\n', 1)[0]
    return first_line == b']' or (first_line.startswith(b'{') and first_line.rstrip(b',').endswith(b'}'))


def document_lines(stream, label: str, batch_bytes: int = CHUNK_BYTES):
    """A table's .json as batches (bytes) of whole lines, each line one JSON document, for parsing elsewhere.

    In rethinkdb dump's layout ('[', a document a line with a comma after all but the last, ']') the lines pass
    as they are, unparsed, with the array's '[', ']' and commas for the reader to skip (line_documents() does);
    any other layout of a JSON array of documents is parsed here and each document written on a line of its
    own. DumpArchiveError when the data is not a complete JSON array of documents.
    """
    head = _tool_layout_head(stream)
    if not _in_tool_layout(head):
        batch: list = []
        size = 0
        for document in _DocumentArray(_Prefixed(head, stream), label).documents():
            line = json.dumps(document, ensure_ascii=False).encode('utf-8')
            batch.append(line)
            size += len(line)
            if size >= batch_bytes:
                yield b'\n'.join(batch)
                batch, size = [], 0
        if batch:
            yield b'\n'.join(batch)
        return
    pending = head
    ended = False
    last_line = b''
    while True:
        cut = len(pending) if ended else pending.rfind(b'\n') + 1
        if ended or (cut and len(pending) >= batch_bytes):
            lines, pending = pending[:cut], pending[cut:]
            if lines.strip():
                last_line = lines.rstrip().rsplit(b'\n', 1)[-1]
                yield lines
            if ended:
                break
            continue
        if not cut and len(pending) > DOCUMENT_LIMIT_CHARS:
            raise DumpArchiveError('%s has a line of more than %d bytes, too long for a document' % (label, DOCUMENT_LIMIT_CHARS))
        chunk = stream.read(CHUNK_BYTES)
        ended = not chunk
        pending += chunk
    if last_line != b']':
        raise DumpArchiveError('%s does not end with the ] of its JSON array on a line of its own, as rethinkdb dump writes it' % label)


def line_documents(lines: bytes):
    """The documents of one batch of document_lines(), parsed; ValueError for a line that is not one."""
    for line in lines.split(b'\n'):
        line = line.rstrip(b',\r ')
        if line in (b'', b'[', b']'):
            continue
        yield json.loads(line)


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
    table.primary_key = info['primary_key']
    table.indexes = sorted(index['index'] if isinstance(index, dict) else str(index) for index in indexes)


def dump_members(source):
    """Each member of a dump archive, read from `source` (its gzip stream) in archive order, as (top, db, table,
    suffix, member, stream): db, table and suffix are None for a directory entry, stream is a table file's data.

    Every member is checked before it is handed out: a safe path, one top directory, a table file at most once
    (DumpArchiveError otherwise). Once every member is taken, the gzip is read to its end, which checks its CRC.
    """
    top = None
    seen = set()
    with gzip.GzipFile(fileobj=source, mode='rb') as unzipped:
        with tarfile.open(fileobj=unzipped, mode='r|', bufsize=CHUNK_BYTES) as archive:
            for member in archive:
                member_top, db, name, suffix = _member_place(member)
                if top is None:
                    top = member_top
                elif member_top != top:
                    raise _unsafe(member, 'is under a second top directory (the first was %r)' % top)
                if db is None:
                    yield top, None, None, None, member, None
                    continue
                if member.name in seen:
                    raise DumpArchiveError('member %r appears twice' % member.name)
                seen.add(member.name)
                yield top, db, name, suffix, member, archive.extractfile(member)
        while unzipped.read(CHUNK_BYTES):
            continue


def _read_members(source, parse_documents: bool) -> tuple:
    """Walk the archive once; return (top, tables by name)."""
    top = None
    tables: dict = {}
    for top, db, name, suffix, member, stream in dump_members(source):
        if db is None:
            continue
        table = tables.setdefault('%s.%s' % (db, name), ArchivedTable('%s.%s' % (db, name)))
        table.raw_bytes += member.size
        if suffix == INFO_SUFFIX:
            _read_info(stream, member, table)
        elif parse_documents:
            table.documents = _DocumentArray(stream, member.name).count()
        else:
            table.documents = _count_tool_lines(stream, member.name)
    return top, tables


def read_dump_archive(path: str, sha256: str | None = None, parse_documents: bool = True,
                      writer_done: threading.Event | None = None) -> DumpArchive:
    """Prove a dump archive usable in one streaming pass, or raise DumpArchiveError with a one-line reason.

    A wrong checksum (when `sha256` is given) is reported before any damage found in the content. With
    parse_documents, every document is parsed, which accepts any layout of the JSON arrays; without, the
    archive must have the tool's own layout and documents are counted by lines (the gzip CRC still covers
    every byte). With writer_done, the archive is read while the tool writes it, to its end once the event
    is set: the tool writes it front to back, never going back.
    """
    try:
        with _open_archive(path, writer_done) as stream:
            source = HashingReader(stream)
            damage = None
            try:
                top, tables = _read_members(source, parse_documents)
            except DumpArchiveError as exc:
                damage = str(exc)
            except (EOFError, zlib.error, tarfile.TarError, OSError, ValueError) as exc:
                damage = 'it is truncated or corrupt (%s)' % (str(exc).rstrip('.') or type(exc).__name__)
            source.drain()
    except OSError as exc:
        raise DumpArchiveError('Cannot read archive %s: %s' % (path, exc.strerror or exc))
    actual = source.digest.hexdigest()
    if sha256 and actual != sha256.lower():
        raise DumpArchiveError('Archive %s has sha256 %s, expected %s: it is not the archive that was recorded, or it was damaged'
                               % (path, actual, sha256.lower()))
    if damage is None:
        damage = _layout_problem(tables)
    if damage:
        raise DumpArchiveError('Archive %s is not a usable rethinkdb dump: %s' % (path, damage))
    return DumpArchive(path, actual, source.bytes, top, dict(sorted(tables.items())))


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
