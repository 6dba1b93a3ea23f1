# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repositories in a directory: kind controller (on the controller) and kind path (a directory every node and
the controller mount at the same path).

  <root>/<cluster>/<set_id>/            committed: manifest.json written last, then the directory renamed
  <root>/<cluster>/<set_id>.partial/    being written (run.json says by whom); FAILED marks a failed run
  <root>/<cluster>/<set_id>.failed/     failed, where the FAILED marker could not be written (a full disk)
  <root>/<cluster>/<name>.deleting/     a prune that was interrupted; the next prune finishes it
  <root>/<cluster>/chains/<chain>/      a chain's objects (segments/..., chain.json)
A part, and a chain object, is written as `<path>.writing` and renamed once complete and fsynced (linked, for
an exclusive chain object, so that an existing one is never replaced).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import CHUNK_BYTES, fsync_dir, write_json_atomic
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import (
    CHAINS_DIR, FAILED_MARKER, RUN_RECORD, PartStat, PartWriter, Repository, RepositoryError, StoredSet)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import MANIFEST, is_set_id
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import HashingReader

PARTIAL_SUFFIX = '.partial'
FAILED_SUFFIX = '.failed'
DELETING_SUFFIX = '.deleting'
WRITING_SUFFIX = '.writing'
REPORTS_DIR = 'reports'
# Backups hold the whole database: what the collection creates is for its owner only.
DIR_MODE = 0o700
FILE_MODE = 0o600


def parse_dir_name(name: str) -> tuple[str, str] | None:
    """(set_id, stored state) of a directory name in a cluster directory, or None for other names."""
    state = 'committed'
    if name.endswith(DELETING_SUFFIX):
        state, name = 'deleting', name[:-len(DELETING_SUFFIX)]
    for suffix, suffix_state in ((PARTIAL_SUFFIX, 'partial'), (FAILED_SUFFIX, 'failed')):
        if name.endswith(suffix):
            state = suffix_state if state == 'committed' else state
            name = name[:-len(suffix)]
            break
    return (name, state) if is_set_id(name) else None


class FileWriter(PartWriter):
    """Writes one file as `<path>.writing`, then fsyncs and renames it into place. With hand_to_owner, the file
    is given to the owner of its directory (so that a login user can fetch what a module run with become
    wrote); with verify, it is read back once from the store (its cached pages dropped first) and its sha256
    compared, for a directory shared over the network."""

    def __init__(self, path: str, hand_to_owner: bool = False, verify: bool = False, exclusive: bool = False):
        super().__init__(path)
        self.path = path
        self._writing = path + WRITING_SUFFIX
        self._verify = verify
        self._exclusive = exclusive
        directory = os.path.dirname(path)
        os.makedirs(directory, DIR_MODE, exist_ok=True)
        descriptor = os.open(self._writing, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
        self._file = os.fdopen(descriptor, 'wb', buffering=0)
        if hand_to_owner:
            owner = os.stat(directory)
            os.fchown(descriptor, owner.st_uid, owner.st_gid)

    def _put(self, chunk) -> None:
        view = memoryview(chunk)
        while view:
            written = self._file.write(view)
            view = view[written:]

    def _finish(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self._verify:
            self._read_back()
        if self._exclusive:
            self._link_new()
        else:
            os.rename(self._writing, self.path)
        fsync_dir(os.path.dirname(self.path))

    def _link_new(self) -> None:
        """Put the file in place only if nothing is there yet (a link fails on an existing name; a rename would
        replace it)."""
        try:
            os.link(self._writing, self.path)
        except FileExistsError:
            os.unlink(self._writing)
            raise RepositoryError('%s exists already: another writer wrote it first' % self.path) from None
        os.unlink(self._writing)

    def _read_back(self) -> None:
        descriptor = os.open(self._writing, os.O_RDONLY | os.O_CLOEXEC)
        with os.fdopen(descriptor, 'rb') as stream:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            reader = HashingReader(stream)
            reader.drain()
        if reader.hexdigest() != self.stream.hexdigest() or reader.bytes != self.stream.bytes:
            raise RepositoryError('%s reads back as %d bytes with sha256 %s, but %d bytes with sha256 %s were written: '
                                  'the storage under it lost or changed data' % (self.path, reader.bytes, reader.hexdigest(),
                                                                                 self.stream.bytes, self.stream.hexdigest()))

    def _abort(self) -> None:
        self._file.close()
        if os.path.lexists(self._writing):
            os.unlink(self._writing)


class LocalRepository(Repository):
    """A directory of sets; kind controller or path (the same storage, told apart by who writes the parts)."""

    def __init__(self, root: str, kind: str = 'controller'):
        self.root = os.path.abspath(root)
        self.kind = kind

    def describe(self) -> str:
        return '%s:%s' % (self.kind, self.root)

    def _cluster_dir(self, cluster: str) -> str:
        return os.path.join(self.root, cluster)

    def _set_dir(self, cluster: str, set_id: str, committed: bool) -> str:
        return os.path.join(self._cluster_dir(cluster), set_id + ('' if committed else PARTIAL_SUFFIX))

    def _file(self, cluster: str, set_id: str, path: str, committed: bool) -> str:
        return os.path.join(self._set_dir(cluster, set_id, committed), *path.split('/'))

    def check_reachable(self, cluster, set_id=None):
        if set_id is not None:
            partial = self._set_dir(cluster, set_id, committed=False)
            if not os.path.isdir(partial):
                raise RepositoryError('%s does not hold set %s being written (%s is missing): mount the shared repository '
                                      'at %s on this node' % (self.describe(), set_id, partial, self.root))
            if not os.access(partial, os.W_OK):
                raise RepositoryError('%s is not writable here: give the user that runs the modules write access' % partial)
            return
        if not os.path.isdir(self.root):
            if os.path.lexists(self.root):
                raise RepositoryError('repository %s is not a directory' % self.root)
            return
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise RepositoryError('repository %s is not writable here: give the user that runs the modules write access' % self.root)

    def begin(self, cluster, set_id, run):
        final = self._set_dir(cluster, set_id, committed=True)
        partial = self._set_dir(cluster, set_id, committed=False)
        if os.path.lexists(final):
            raise RepositoryError('backup set %s already exists at %s' % (set_id, final))
        cluster_dir = self._cluster_dir(cluster)
        os.makedirs(cluster_dir, DIR_MODE, exist_ok=True)
        try:
            os.mkdir(partial, DIR_MODE)
        except FileExistsError:
            raise RepositoryError('backup set %s is already being written at %s' % (set_id, partial)) from None
        write_json_atomic(os.path.join(partial, RUN_RECORD), run)
        fsync_dir(cluster_dir)
        return partial

    def part_writer(self, cluster, set_id, path, size_hint=None):
        partial = self._set_dir(cluster, set_id, committed=False)
        if not os.path.isdir(partial):
            raise RepositoryError('backup set %s is not being written in %s (no %s)' % (set_id, self.describe(), partial))
        return FileWriter(self._file(cluster, set_id, path, committed=False), verify=self.kind == 'path')

    def open_part(self, cluster, set_id, path, committed=True):
        file_path = self._file(cluster, set_id, path, committed)
        try:
            return open(file_path, 'rb', buffering=CHUNK_BYTES)
        except OSError as exc:
            raise RepositoryError('cannot read part %s of set %s: %s' % (path, set_id, exc.strerror)) from None

    def stat_part(self, cluster, set_id, path, committed=True):
        file_path = self._file(cluster, set_id, path, committed)
        set_dir = os.path.realpath(self._set_dir(cluster, set_id, committed))
        if not os.path.realpath(file_path).startswith(set_dir + os.sep):
            raise RepositoryError('part %s resolves to a file outside the set' % path)
        try:
            file_stat = os.stat(file_path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RepositoryError('part %s cannot be read: %s' % (path, exc.strerror)) from None
        if not stat.S_ISREG(file_stat.st_mode):
            raise RepositoryError('part %s is not a regular file' % path)
        return PartStat(bytes=file_stat.st_size, store_checksum=None)

    def read_file(self, cluster, set_id, name, committed=True):
        for directory in self._stored_dirs(cluster, set_id, committed):
            try:
                with open(os.path.join(directory, name), 'rb') as stream:
                    return stream.read()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise RepositoryError('%s of set %s cannot be read: %s' % (name, set_id, exc.strerror)) from None
        return None

    def _stored_dirs(self, cluster: str, set_id: str, committed: bool) -> list:
        """The directories a set may be stored in, in the order to look: committed, or partial then failed."""
        base = os.path.join(self._cluster_dir(cluster), set_id)
        return [base] if committed else [base + PARTIAL_SUFFIX, base + FAILED_SUFFIX]

    def commit(self, cluster, set_id, manifest):
        partial = self._set_dir(cluster, set_id, committed=False)
        final = self._set_dir(cluster, set_id, committed=True)
        if os.path.lexists(final):
            raise RepositoryError('cannot commit backup set %s: %s already exists' % (set_id, final))
        if not os.path.isdir(partial):
            raise RepositoryError('cannot commit backup set %s: %s does not exist (it was marked failed or pruned)' % (set_id, partial))
        if os.path.lexists(os.path.join(partial, FAILED_MARKER)):
            raise RepositoryError('backup set %s was marked failed; begin a new set instead of committing this one' % set_id)
        manifest_path = os.path.join(partial, MANIFEST)
        with open(manifest_path + WRITING_SUFFIX, 'wb') as stream:
            stream.write(manifest)
            stream.flush()
            os.fsync(stream.fileno())
        os.rename(manifest_path + WRITING_SUFFIX, manifest_path)
        os.rename(partial, final)
        fsync_dir(self._cluster_dir(cluster))
        return final

    def mark_failed(self, cluster, set_id, reason, failed_at):
        partial = self._set_dir(cluster, set_id, committed=False)
        failed = os.path.join(self._cluster_dir(cluster), set_id + FAILED_SUFFIX)
        if os.path.isdir(failed) or os.path.lexists(os.path.join(partial, FAILED_MARKER)):
            return False
        if not os.path.isdir(partial):
            raise RepositoryError('backup set %s is not being written in %s, so it cannot be marked failed' % (set_id, self.describe()))
        # The rename needs no room, so a full disk cannot keep a failed set looking like one still being written.
        os.rename(partial, failed)
        fsync_dir(self._cluster_dir(cluster))
        try:
            write_json_atomic(os.path.join(failed, FAILED_MARKER), {'failed_at': failed_at, 'reason': reason})
        except OSError:
            return True
        return True

    def list_sets(self, cluster):
        cluster_dir = self._cluster_dir(cluster)
        if not os.path.lexists(self.root) or not os.path.lexists(cluster_dir):
            return []
        if not os.path.isdir(cluster_dir):
            raise RepositoryError('%s is not a directory, so it cannot hold the sets of cluster %s' % (cluster_dir, cluster))
        stored = []
        with os.scandir(cluster_dir) as entries:
            for entry in entries:
                parsed = parse_dir_name(entry.name)
                if parsed is None or not entry.is_dir(follow_symlinks=False):
                    continue
                set_id, state = parsed
                if state == 'partial' and os.path.lexists(os.path.join(entry.path, FAILED_MARKER)):
                    state = 'failed'
                stored.append(StoredSet(set_id=set_id, state=state, location=entry.path, bytes=_files_bytes(entry.path)))
        return stored

    def delete_set(self, cluster, stored):
        path = stored.location
        deleting = path if path.endswith(DELETING_SUFFIX) else path + DELETING_SUFFIX
        if deleting != path:
            os.rename(path, deleting)
            fsync_dir(os.path.dirname(path))
        shutil.rmtree(deleting)

    def write_report(self, cluster, name, data):
        reports = os.path.join(self._cluster_dir(cluster), REPORTS_DIR)
        os.makedirs(reports, DIR_MODE, exist_ok=True)
        path = os.path.join(reports, name)
        with open(path + WRITING_SUFFIX, 'wb') as stream:
            os.fchmod(stream.fileno(), FILE_MODE)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.rename(path + WRITING_SUFFIX, path)
        fsync_dir(reports)
        return path

    def leftovers(self, cluster, older_than):
        return []

    def remove_leftovers(self, cluster, older_than):
        return []

    def _chain_dir(self, cluster: str, chain: str) -> str:
        return os.path.join(self._cluster_dir(cluster), CHAINS_DIR, chain)

    def _chain_file(self, cluster: str, chain: str, name: str) -> str:
        if any(component in ('', '.', '..') for component in name.split('/')) or name.endswith(WRITING_SUFFIX):
            raise RepositoryError('%s is not a plain name of a chain object' % name)
        return os.path.join(self._chain_dir(cluster, chain), *name.split('/'))

    def list_chains(self, cluster):
        chains_dir = os.path.join(self._cluster_dir(cluster), CHAINS_DIR)
        try:
            with os.scandir(chains_dir) as entries:
                return sorted(entry.name for entry in entries if entry.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []

    def chain_objects(self, cluster, chain):
        chain_dir = self._chain_dir(cluster, chain)
        found = {}
        for parent, _subdirs, files in os.walk(chain_dir):
            for name in files:
                if name.endswith(WRITING_SUFFIX):
                    continue
                path = os.path.join(parent, name)
                try:
                    file_stat = os.lstat(path)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(file_stat.st_mode):
                    found[os.path.relpath(path, chain_dir).replace(os.sep, '/')] = file_stat.st_size
        return found

    def chain_object_writer(self, cluster, chain, name, exclusive=False):
        return FileWriter(self._chain_file(cluster, chain, name), verify=self.kind == 'path', exclusive=exclusive)

    def read_chain_object(self, cluster, chain, name):
        try:
            with open(self._chain_file(cluster, chain, name), 'rb') as stream:
                return stream.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RepositoryError('%s of chain %s cannot be read: %s' % (name, chain, exc.strerror)) from None

    def open_chain_object(self, cluster, chain, name):
        try:
            return open(self._chain_file(cluster, chain, name), 'rb', buffering=CHUNK_BYTES)
        except OSError as exc:
            raise RepositoryError('cannot read %s of chain %s: %s' % (name, chain, exc.strerror)) from None

    def delete_chain_objects(self, cluster, chain, names):
        directories = set()
        for name in names:
            path = self._chain_file(cluster, chain, name)
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            directories.add(os.path.dirname(path))
        for directory in sorted(directories, key=len, reverse=True):
            fsync_dir(directory)
            _remove_if_empty(directory, self._cluster_dir(cluster))


def _remove_if_empty(directory: str, stop: str) -> None:
    """Remove a directory and its parents up to (not including) stop, as long as they are empty."""
    while directory != stop and directory.startswith(stop + os.sep):
        try:
            os.rmdir(directory)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                return
            raise
        directory = os.path.dirname(directory)


def _files_bytes(directory: str) -> int:
    """Bytes of the regular files under a directory (the size of a set)."""
    total = 0
    for parent, _subdirs, files in os.walk(directory):
        for name in files:
            try:
                file_stat = os.lstat(os.path.join(parent, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(file_stat.st_mode):
                total += file_stat.st_size
    return total
