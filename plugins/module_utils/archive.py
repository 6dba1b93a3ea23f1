# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot archives: one data directory as a pax tar, compressed with zstd (content checksum on), optionally
encrypted with age, written and read as forward-only streams.

Members are named relative to the archived directory, whose own entry is '.', so its mode comes back on
extraction. Writing records each regular file's size and sha256 (the file index, kept in the manifest);
unpacking checks the zstd checksum, every file against the index, and the sha256 of the stored bytes, all
in the one pass that unpacks, so that damage is found even where a manifest's sha256 was rewritten to match.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import stat
import tarfile
import time
import traceback

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import encryption
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import CHUNK_BYTES, fsync_dir, fsync_file
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import HashingReader, ReadAhead, StreamError

try:
    import zstandard
except ImportError:
    ZSTANDARD_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    ZSTANDARD_IMPORT_ERROR = None

# Whole blocks of zeros are skipped, not written, when unpacking, so that sparse files (RethinkDB
# preallocates its data files) take no more room restored than they did when they were archived.
SPARSE_BLOCK = 64 * 1024
_ZERO_BLOCK = bytes(SPARSE_BLOCK)
DEFAULT_LEVEL = 3
ROOT_NAME = '.'
# A data directory needs none of these; an archive whose members carry them is suspect.
SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX


class ArchiveError(Exception):
    """An archive cannot be written, read, or unpacked safely; the message says why."""


def _require_zstandard() -> None:
    if ZSTANDARD_IMPORT_ERROR is not None:
        raise ArchiveError('the Python library zstandard is required for tar.zst archives')


# --- writing -----------------------------------------------------------------------------------------------

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


def _add_tree(archive: tarfile.TarFile, source_dir: str) -> dict:
    """Add a directory tree to an open archive; return entries added, the file index, raw bytes and the
    sockets left out."""
    entries = raw_bytes = 0
    index = []
    sockets = []
    first_names: dict = {}
    for path, name, status in _walk(source_dir, ROOT_NAME):
        info = _tarinfo(path, name, status, first_names)
        if info is None:
            sockets.append(name)
            continue
        if info.isreg():
            with open(path, 'rb') as member:
                reader = HashingReader(member)
                archive.addfile(info, reader)
            if reader.bytes != info.size:
                raise ArchiveError('%s changed size while it was archived (%d bytes, then %d): archive a snapshot, not '
                                   'a directory in use' % (path, info.size, reader.bytes))
            index.append(dict(path=name, bytes=info.size, sha256=reader.hexdigest()))
            raw_bytes += info.size
        else:
            archive.addfile(info)
        entries += 1
    return dict(entries=entries, files=index, raw_bytes=raw_bytes, sockets_left_out=sockets)


def write_archive(source_dir: str, sink, level: int = DEFAULT_LEVEL, threads: int = 0, recipients: list | None = None) -> dict:
    """Archive a directory tree into sink (anything with write(): a repository's part writer, say) as tar,
    zstd with its content checksum, and, with recipients, age encryption to them.

    threads: zstd worker threads (0: one per CPU). Returns entries, files (the index: path, bytes, sha256 of
    each regular file), raw_bytes, sockets_left_out and seconds.
    """
    _require_zstandard()
    started = time.monotonic()
    if not os.path.isdir(source_dir):
        raise ArchiveError('%s is not a directory' % source_dir)
    encryptor = encryption.encrypting(sink, recipients) if recipients else None
    # Even one worker thread helps: it compresses while this thread reads the files.
    compressor = zstandard.ZstdCompressor(level=level, threads=threads if threads > 0 else (os.cpu_count() or 1), write_checksum=True)
    try:
        with compressor.stream_writer(encryptor or sink, write_size=CHUNK_BYTES, closefd=False) as writer:
            with tarfile.TarFile(fileobj=writer, mode='w', format=tarfile.PAX_FORMAT, copybufsize=CHUNK_BYTES) as archive:
                facts = _add_tree(archive, source_dir)
        if encryptor is not None:
            encryptor.close()
    except BaseException as exc:
        if encryptor is not None:
            encryptor.abort()
        if isinstance(exc, (OSError, StreamError)):
            raise ArchiveError('cannot archive %s: %s' % (source_dir, exc)) from None
        raise
    facts['seconds'] = round(time.monotonic() - started, 3)
    return facts


# --- unpacking ---------------------------------------------------------------------------------------------

def _write_sparse(out, chunk: bytes) -> None:
    """Write a chunk of a file, seeking over whole blocks of zeros (the final truncate sets the size)."""
    for start in range(0, len(chunk), SPARSE_BLOCK):
        block = chunk[start:start + SPARSE_BLOCK]
        if block == _ZERO_BLOCK[:len(block)]:
            out.seek(len(block), os.SEEK_CUR)
        else:
            out.write(block)


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


class _Members:
    """An archive's members in order, in one pass, with their data straight from the decompressed stream."""

    def __init__(self, decompressed):
        self.stream = ReadAhead(decompressed)
        try:
            self.tar = tarfile.TarFile(fileobj=self.stream, mode='r')
        except BaseException:
            self.stream.close()
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

    def drain(self) -> None:
        """Read the decompressed stream to its end, which checks the zstd content checksum."""
        while self.stream.read_some(CHUNK_BYTES):
            continue


class _Unpacker:
    """Unpacks members into a new directory one by one, refusing anything that could write outside it,
    owning everything by one user and group, and checking every file against the archive's index."""

    def __init__(self, target: str, owner: tuple, index: list | None, durable: bool):
        self.target = target
        self.owner = owner
        self.expected = None if index is None else dict((entry['path'], entry) for entry in index)
        self.syncs = _BackgroundSync() if durable else None
        self.regular: set = set()
        self.symlinks: set = set()
        self.directories: list = []
        self.special_bits: list = []
        self.entries = 0
        self.raw_bytes = 0

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
        if member.mode & SPECIAL_BITS:
            self.special_bits.append(member.name)

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
            if self.owner != (None, None):
                os.lchown(path, *self._ids())
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
            self.symlinks.add(relative)
        else:
            os.link(os.path.join(self.target, _member_path(member.linkname)), path, follow_symlinks=False)
        self.entries += 1

    def _ids(self) -> tuple[int, int]:
        uid, gid = self.owner
        return (-1 if uid is None else uid), (-1 if gid is None else gid)

    def _write_file(self, members: _Members, member: tarfile.TarInfo, path: str) -> None:
        digest = hashlib.sha256()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with open(fd, 'wb') as out:
            for chunk in members.data(member):
                digest.update(chunk)
                _write_sparse(out, chunk)
            out.truncate()
            out.flush()
            self._apply(fd, member)
        self._check_indexed(member, digest.hexdigest())
        if self.syncs:
            self.syncs.add(path)
        self.raw_bytes += member.size

    def _check_indexed(self, member: tarfile.TarInfo, sha256: str) -> None:
        """Compare a file just unpacked with the archive's index, when there is one."""
        if self.expected is None:
            return
        expected = self.expected.pop(member.name, None)
        if expected is None:
            raise ArchiveError('member %r is not in the archive\'s file index: the archive is not the one recorded' % member.name)
        if expected['bytes'] != member.size or expected['sha256'] != sha256:
            raise ArchiveError('member %r unpacked as %d bytes with sha256 %s, but was archived as %d bytes with sha256 %s'
                               % (member.name, member.size, sha256, expected['bytes'], expected['sha256']))

    def _apply(self, fd: int, member: tarfile.TarInfo) -> None:
        """Owner first (chown clears set-id bits), then mode without set-id and sticky bits, then times."""
        if self.owner != (None, None):
            os.fchown(fd, *self._ids())
        os.fchmod(fd, member.mode & 0o777)
        os.utime(fd, (member.mtime, member.mtime))

    def finish(self) -> None:
        """Check that every indexed file came, and symbolic link chains on disk; then set directory
        attributes deepest first."""
        if self.expected:
            raise ArchiveError('the archive lacks %d file(s) of its index, such as %r' % (len(self.expected), sorted(self.expected)[0]))
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


def extract(source, target: str, sha256: str | None = None, index: list | None = None, owner: tuple = (None, None),
            identities: list | None = None, durable: bool = True) -> dict:
    """Unpack an archive read from source (a forward-only binary stream) into target, a new directory, in one
    pass that also checks the sha256 of every byte read (when given), the zstd content checksum, and every
    regular file against index (when given).

    Refuses absolute names, '..', special files, and links that lead outside target; restores modes (without
    set-id and sticky bits, which RV special_bits names) and mtimes; owner=(uid, gid) owns everything (None
    keeps the unpacking user). identities decrypt an age-encrypted archive. With durable, every file and
    directory is fsynced. On any failure target is removed. Returns entries, raw_bytes, sha256 (of the bytes
    read), special_bits and seconds.
    """
    _require_zstandard()
    started = time.monotonic()
    if os.path.lexists(target):
        raise ArchiveError('%s exists; archives are unpacked into a new directory only' % target)
    stored = HashingReader(source)
    decrypted = encryption.decrypting(stored, identities) if identities else None
    os.mkdir(target, 0o700)
    unpacker = _Unpacker(target, owner, index, durable)
    members = None
    try:
        members = _Members(zstandard.ZstdDecompressor().stream_reader(decrypted or stored, read_size=CHUNK_BYTES,
                                                                      read_across_frames=True))
        for member in members:
            unpacker.unpack(members, member)
        members.drain()
        if decrypted is not None:
            decrypted.read()
        stored.drain()
        if sha256 is not None and stored.hexdigest() != sha256.lower():
            raise ArchiveError('the archive has sha256 %s, expected %s: it is not the archive recorded, or it was damaged'
                               % (stored.hexdigest(), sha256.lower()))
        unpacker.finish()
        if durable:
            fsync_dir(os.path.dirname(os.path.abspath(target)))
    except BaseException as exc:
        if unpacker.syncs:
            unpacker.syncs.cancel()
        _remove_tree(target)
        if isinstance(exc, (tarfile.TarError, zstandard.ZstdError, StreamError, EOFError)):
            raise ArchiveError('the archive is not a readable tar.zst%s archive: %s' % (' (age)' if identities else '', exc)) from None
        if isinstance(exc, OSError):
            raise ArchiveError('cannot unpack into %s: %s' % (target, exc)) from None
        raise
    finally:
        if members is not None:
            members.stream.close()
        if decrypted is not None:
            decrypted.close()
    return dict(entries=unpacker.entries, raw_bytes=unpacker.raw_bytes, sha256=stored.hexdigest(),
                special_bits=unpacker.special_bits, seconds=round(time.monotonic() - started, 3))


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
