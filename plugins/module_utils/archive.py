# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Archive streams: checksums of backup parts, and tar + zstd archives of data directories.

An archive holds one directory tree as a pax tar compressed with zstd. Its members are named relative to
the archived directory, whose own entry is '.', so its mode and owner come back on extraction.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import queue
import stat
import tarfile
import threading
import time
import traceback

try:
    import zstandard
except ImportError:
    ZSTANDARD_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    ZSTANDARD_IMPORT_ERROR = None

CHUNK_BYTES = 1024 * 1024
# Whole blocks of zeros are skipped, not written, when unpacking, so that sparse files (RethinkDB
# preallocates its data files) take no more room restored than they did when they were archived.
SPARSE_BLOCK = 64 * 1024
_ZERO_BLOCK = bytes(SPARSE_BLOCK)
DEFAULT_LEVEL = 3
ROOT_NAME = '.'


class ArchiveError(Exception):
    """An archive cannot be written, read, or unpacked safely; the message says why."""


def sha256_file(path: str) -> tuple[str, int]:
    """Return (hex sha256, size in bytes) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b''):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def verify_file(path: str, sha256: str | None = None, size: int | None = None) -> None:
    """Raise ArchiveError unless the file has the expected size and sha256 (each when given)."""
    if size is not None and os.stat(path).st_size != size:
        raise ArchiveError('%s has %d bytes, expected %d' % (path, os.stat(path).st_size, size))
    if sha256 is not None:
        actual, dummy = sha256_file(path)
        if actual != sha256.lower():
            raise ArchiveError('%s has sha256 %s, expected %s' % (path, actual, sha256.lower()))


def fsync_dir(path: str) -> None:
    """Make a rename or a new entry in a directory durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _HashingSink:
    """The file the compressor writes to: counts and hashes the compressed bytes on their way to disk."""

    def __init__(self, stream):
        self._stream = stream
        self.digest = hashlib.sha256()
        self.bytes = 0

    def write(self, chunk) -> int:
        self.digest.update(chunk)
        self._stream.write(chunk)
        self.bytes += len(chunk)
        return len(chunk)

    def flush(self) -> None:
        self._stream.flush()


def _require_zstandard() -> None:
    if ZSTANDARD_IMPORT_ERROR is not None:
        raise ArchiveError('the Python library zstandard is required for tar.zst archives')


def _walk(directory: str, name: str):
    """Yield (path, member name, lstat) of a tree, the directory itself first, entries sorted by name."""
    yield directory, name, os.lstat(directory)
    with os.scandir(directory) as entries:
        children = sorted(entries, key=lambda entry: entry.name)
    for entry in children:
        child_name = entry.name if name == ROOT_NAME else name + '/' + entry.name
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, child_name)
        else:
            yield entry.path, child_name, entry.stat(follow_symlinks=False)


def _tarinfo(path: str, name: str, status: os.stat_result, first_names: dict) -> tarfile.TarInfo | None:
    """The tar header of one entry: numeric owners only; None for a socket; ArchiveError for a device or FIFO."""
    mode = status.st_mode
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(mode)
    info.uid, info.gid = status.st_uid, status.st_gid
    info.uname = info.gname = ''
    info.mtime = status.st_mtime
    if stat.S_ISREG(mode):
        inode = (status.st_dev, status.st_ino)
        if status.st_nlink > 1 and inode in first_names:
            info.type, info.linkname = tarfile.LNKTYPE, first_names[inode]
        else:
            first_names[inode] = name
            info.size = status.st_size
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
    elif stat.S_ISSOCK(mode):
        return None
    else:
        raise ArchiveError('%s is a device or FIFO; a data directory holds none, and a restore would refuse it' % path)
    return info


def _add_tree(archive: tarfile.TarFile, source_dir: str) -> tuple[int, int, list]:
    """Add a directory tree to an open archive; return (entries added, bytes of regular files, sockets skipped)."""
    files = raw_bytes = 0
    skipped = []
    first_names: dict = {}
    for path, name, status in _walk(source_dir, ROOT_NAME):
        info = _tarinfo(path, name, status, first_names)
        if info is None:
            skipped.append(name)
            continue
        if info.isreg():
            with open(path, 'rb') as member:
                archive.addfile(info, member)
            raw_bytes += info.size
        else:
            archive.addfile(info)
        files += 1
    return files, raw_bytes, skipped


def create(source_dir: str, dest: str, level: int = DEFAULT_LEVEL, threads: int = 0) -> dict:
    """Archive a directory tree into dest (tar + zstd), hashing the compressed bytes as they are written.

    Writes `<dest>.partial`, fsyncs it and renames it to dest, so dest is never a partial file.
    threads is the number of zstd worker threads (0: one per CPU). Returns bytes, sha256, files (entries
    archived), raw_bytes (sum of regular file sizes), skipped (sockets left out) and seconds.
    """
    _require_zstandard()
    started = time.monotonic()
    if not os.path.isdir(source_dir):
        raise ArchiveError('%s is not a directory' % source_dir)
    partial = dest + '.partial'
    # Even one worker thread helps: it compresses while this thread reads the files.
    compressor = zstandard.ZstdCompressor(level=level, threads=threads if threads > 0 else (os.cpu_count() or 1))
    try:
        with open(partial, 'wb') as stream:
            os.fchmod(stream.fileno(), 0o600)
            sink = _HashingSink(stream)
            with compressor.stream_writer(sink, write_size=CHUNK_BYTES, closefd=False) as writer:
                with tarfile.TarFile(fileobj=writer, mode='w', format=tarfile.PAX_FORMAT, copybufsize=CHUNK_BYTES) as archive:
                    files, raw_bytes, skipped = _add_tree(archive, source_dir)
            stream.flush()
            os.fsync(stream.fileno())
        os.rename(partial, dest)
        fsync_dir(os.path.dirname(os.path.abspath(dest)))
    except BaseException as exc:
        if os.path.lexists(partial):
            os.unlink(partial)
        if isinstance(exc, OSError):
            raise ArchiveError('cannot archive %s into %s: %s' % (source_dir, dest, exc))
        raise
    return dict(bytes=sink.bytes, sha256=sink.digest.hexdigest(), files=files, raw_bytes=raw_bytes,
                skipped=skipped, seconds=round(time.monotonic() - started, 3))


class _ReadAhead:
    """A forward-only file over the decompressed stream, filled by a background thread.

    zstd and the disk writes both release the GIL, so unpacking overlaps decompression with writing the
    files, as the two processes of `zstd -d | tar -x` do.
    """

    def __init__(self, reader, depth: int = 8):
        self._chunks: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._current = memoryview(b'')
        self._position = 0
        self._ended = False
        self._thread = threading.Thread(target=self._produce, args=(reader,), daemon=True)
        self._thread.start()

    def _produce(self, reader) -> None:
        try:
            chunk = b'-'
            while chunk and not self._stop.is_set():
                chunk = reader.read(CHUNK_BYTES)
                self._put(chunk)
        except Exception as exc:  # handed over: the reading thread raises it
            self._put(exc)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read_some(self, limit: int) -> memoryview:
        """Up to limit bytes without copying; empty at the end of the stream."""
        if not self._current and not self._ended:
            item = self._chunks.get()
            if isinstance(item, Exception):
                raise item
            self._ended = not item
            self._current = memoryview(item)
        piece = self._current[:limit]
        self._current = self._current[len(piece):]
        self._position += len(piece)
        return piece

    def read(self, size: int = -1) -> bytes:
        """Exactly size bytes (fewer only at the end), as tarfile expects of a file."""
        pieces = []
        wanted = size
        while wanted != 0:
            piece = self.read_some(wanted if wanted > 0 else CHUNK_BYTES)
            if not piece:
                break
            pieces.append(piece)
            wanted -= len(piece) if wanted > 0 else 0
        return b''.join(pieces)

    def tell(self) -> int:
        return self._position

    def seek(self, position: int, whence: int = os.SEEK_SET) -> int:
        """Only forward, by reading: what tarfile needs to step over data it did not read."""
        if whence != os.SEEK_SET or position < self._position:
            raise ArchiveError('the archive stream can only be read forward')
        while self._position < position and self.read_some(position - self._position):
            continue
        return self._position

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _Members:
    """Reads an archive's members in order, in one pass, with their data straight from the stream."""

    def __init__(self, source):
        """source: the archive as an open binary file, or anything else with its read()."""
        _require_zstandard()
        self.stream = _ReadAhead(zstandard.ZstdDecompressor().stream_reader(source, read_size=CHUNK_BYTES))
        try:
            self.tar = tarfile.TarFile(fileobj=self.stream, mode='r')
        except BaseException:
            self.close()
            raise

    def __iter__(self):
        return iter(self.tar)

    def data(self, member: tarfile.TarInfo):
        """Yield a regular member's data in chunks; call right after the member is read."""
        self.stream.seek(member.offset_data)
        remaining = member.size
        while remaining:
            piece = self.stream.read_some(min(remaining, CHUNK_BYTES))
            if not piece:
                raise ArchiveError('the archive ends inside member %r' % member.name)
            remaining -= len(piece)
            yield piece

    def close(self) -> None:
        self.stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _write_sparse(out, chunk: bytes) -> None:
    """Write a chunk of a file, seeking over whole blocks of zeros (the final truncate sets the size)."""
    for start in range(0, len(chunk), SPARSE_BLOCK):
        block = chunk[start:start + SPARSE_BLOCK]
        if block == _ZERO_BLOCK[:len(block)]:
            out.seek(len(block), os.SEEK_CUR)
        else:
            out.write(block)


def _unreadable(path: str, exc: Exception) -> ArchiveError:
    return ArchiveError('%s is not a readable tar.zst archive: %s' % (path, exc))


class HashingReader:
    """A file as a decompressor reads it: every byte read is hashed and counted on its way."""

    def __init__(self, stream):
        self._stream = stream
        self.digest = hashlib.sha256()
        self.bytes = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self.digest.update(chunk)
        self.bytes += len(chunk)
        return chunk

    def drain(self) -> None:
        """Read to the end (past what the decompressor left, such as the zero blocks that end a tar), so that
        the checksum covers the whole file."""
        while self.read(CHUNK_BYTES):
            continue


def survey(path: str, sha256: str | None = None) -> tuple[int, str]:
    """Read an archive once; return the bytes its regular files take unpacked, and its sha256.

    A sha256 that differs from the one given is reported before any fault of the stream, since it says more.
    """
    with open(path, 'rb') as archive_file:
        source = HashingReader(archive_file)
        fault = None
        try:
            with _Members(source) as members:
                raw_bytes = sum(member.size for member in members if member.isreg())
        except (tarfile.TarError, zstandard.ZstdError) as exc:
            fault = exc
        source.drain()
    actual = source.digest.hexdigest()
    if sha256 is not None and actual != sha256.lower():
        raise ArchiveError('%s has sha256 %s, expected %s' % (path, actual, sha256.lower()))
    if fault is not None:
        raise _unreadable(path, fault)
    return raw_bytes, actual


def _member_path(name: str) -> str:
    """The relative path of a member ('' for the root), or ArchiveError for an absolute or escaping name."""
    if name.startswith('/'):
        raise ArchiveError('member %r has an absolute name' % name)
    parts = [part for part in name.split('/') if part not in ('', '.')]
    if '..' in parts:
        raise ArchiveError('member %r has a .. component' % name)
    return '/'.join(parts)


def _inside(relative: str) -> bool:
    """Whether a path relative to the target directory stays inside it, judged on its text."""
    normal = os.path.normpath(relative)
    return not (os.path.isabs(relative) or normal == '..' or normal.startswith('../'))


def fsync_file(path: str) -> None:
    """Flush a file's data to disk (a file another process wrote and closed without syncing, say)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _BackgroundSync:
    """fsyncs unpacked files on a worker thread, so the disk flushes one file while the next is unpacked."""

    def __init__(self):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._pending: list = []

    def add(self, path: str) -> None:
        self._pending.append(self._pool.submit(fsync_file, path))

    def wait(self) -> None:
        """Return when every file is on disk; raise the first fsync error."""
        for pending in self._pending:
            pending.result()
        self._pool.shutdown()

    def cancel(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Unpacker:
    """Unpacks members into a new directory one by one, refusing anything that could write outside it."""

    def __init__(self, target: str, owners: bool, owner: tuple, durable: bool):
        self.target = target
        self.owners = owners
        self.owner = owner
        self.syncs = _BackgroundSync() if durable else None
        self.regular: set = set()
        self.symlinks: set = set()
        self.directories: list = []
        self.files = 0
        self.raw_bytes = 0

    def _ids(self, member: tarfile.TarInfo) -> tuple[int, int]:
        uid, gid = self.owner
        return (member.uid if uid is None else uid), (member.gid if gid is None else gid)

    def _check(self, member: tarfile.TarInfo, relative: str) -> None:
        """Refuse special files, and links or paths that lead outside the target."""
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise ArchiveError('member %r is a device, FIFO or other special file' % member.name)
        if not relative and not member.isdir():
            raise ArchiveError('member %r stands for the target directory but is not a directory' % member.name)
        ancestors = relative.split('/')[:-1]
        for depth in range(1, len(ancestors) + 1):
            if '/'.join(ancestors[:depth]) in self.symlinks:
                raise ArchiveError('member %r lies under a symbolic link' % member.name)
        if member.issym() and not _inside(os.path.join(os.path.dirname(relative), member.linkname)):
            raise ArchiveError('symbolic link %r points outside the target (%s)' % (member.name, member.linkname))
        if member.islnk() and _member_path(member.linkname) not in self.regular:
            raise ArchiveError('hard link %r points to %r, not a file unpacked before it' % (member.name, member.linkname))
        data_filter = getattr(tarfile, 'data_filter', None)
        if data_filter is not None and relative:
            try:
                data_filter(member, self.target)
            except tarfile.FilterError as exc:
                raise ArchiveError('member %r refused: %s' % (member.name, exc))

    def unpack(self, members: _Members, member: tarfile.TarInfo) -> None:
        relative = _member_path(member.name)
        self._check(member, relative)
        path = os.path.join(self.target, relative) if relative else self.target
        parent = os.path.dirname(path)
        if relative and not os.path.isdir(parent):
            os.makedirs(parent, 0o700)
        if member.isdir():
            if relative and not (os.path.isdir(path) and not os.path.islink(path)):
                os.mkdir(path, 0o700)
            self.directories.append((path, member))
        elif member.isreg():
            self._write_file(members, member, path)
            self.regular.add(relative)
        elif member.issym():
            os.symlink(member.linkname, path)
            if self.owners:
                os.lchown(path, *self._ids(member))
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
            self.symlinks.add(relative)
        else:
            os.link(os.path.join(self.target, _member_path(member.linkname)), path, follow_symlinks=False)
        self.files += 1

    def _write_file(self, members: _Members, member: tarfile.TarInfo, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with open(fd, 'wb') as out:
            for chunk in members.data(member):
                _write_sparse(out, bytes(chunk))
            out.truncate()
            out.flush()
            self._apply(fd, member)
        if self.syncs:
            self.syncs.add(path)
        self.raw_bytes += member.size

    def _apply(self, fd: int, member: tarfile.TarInfo) -> None:
        """Owner first (chown clears set-id bits), then mode, then times."""
        if self.owners:
            os.fchown(fd, *self._ids(member))
        os.fchmod(fd, member.mode & 0o7777)
        os.utime(fd, (member.mtime, member.mtime))

    def finish(self) -> None:
        """Check symbolic link chains on disk, then set directory attributes deepest first."""
        root = os.path.realpath(self.target)
        for relative in self.symlinks:
            resolved = os.path.realpath(os.path.join(self.target, relative))
            if os.path.commonpath([root, resolved]) != root:
                raise ArchiveError('symbolic link %r resolves outside the target' % relative)
        for path, member in sorted(self.directories, key=lambda item: item[0].count('/'), reverse=True):
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                self._apply(fd, member)
                if self.syncs:
                    os.fsync(fd)
            finally:
                os.close(fd)
        if self.syncs:
            self.syncs.wait()


def extract(archive_path: str, target: str, sha256: str | None = None, size: int | None = None,
            owner: tuple = (None, None), durable: bool = True) -> dict:
    """Unpack an archive into target, a new directory, after checking its size and sha256 (when given).

    Refuses absolute names, '..', special files, and links that lead outside target; restores modes, mtimes
    and (as root) numeric owners, or owner=(uid, gid) where given. With durable, every file and directory is
    fsynced. On any failure target is removed. Returns files, raw_bytes and seconds.
    """
    _require_zstandard()
    started = time.monotonic()
    verify_file(archive_path, sha256, size)
    if os.path.lexists(target):
        raise ArchiveError('%s exists; archives are unpacked into a new directory only' % target)
    os.mkdir(target, 0o700)
    unpacker = _Unpacker(target, os.geteuid() == 0 or owner != (None, None), owner, durable)
    try:
        with open(archive_path, 'rb') as archive_file, _Members(archive_file) as members:
            for member in members:
                unpacker.unpack(members, member)
        unpacker.finish()
        if durable:
            fsync_dir(os.path.dirname(os.path.abspath(target)))
    except BaseException as exc:
        if unpacker.syncs:
            unpacker.syncs.cancel()
        _remove_tree(target)
        if isinstance(exc, (tarfile.TarError, zstandard.ZstdError)):
            raise _unreadable(archive_path, exc)
        if isinstance(exc, OSError):
            raise ArchiveError('cannot unpack %s into %s: %s' % (archive_path, target, exc))
        raise
    return dict(files=unpacker.files, raw_bytes=unpacker.raw_bytes, seconds=round(time.monotonic() - started, 3))


def _remove_tree(path: str) -> None:
    """Remove a directory tree this module created, making read-only directories writable first."""
    for directory, dummy, dummy_files in os.walk(path):
        os.chmod(directory, 0o700)
    for directory, subdirectories, names in os.walk(path, topdown=False):
        for name in names + subdirectories:
            entry = os.path.join(directory, name)
            if os.path.isdir(entry) and not os.path.islink(entry):
                os.rmdir(entry)
            else:
                os.unlink(entry)
    os.rmdir(path)
