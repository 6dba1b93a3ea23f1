# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Durable files: fsync, atomic JSON records, checksums of files and free space, in one place."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

CHUNK_BYTES = 1024 * 1024


class RecordError(ValueError):
    """A JSON record the collection wrote cannot be read back; the message names the file."""


def fsync_dir(path: str) -> None:
    """Make a rename or a new entry in a directory durable."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_file(path: str) -> None:
    """Flush a file's data to disk (a file another process wrote and closed without syncing, say)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json_atomic(path: str, document: Any) -> None:
    """Write JSON so that readers see the old file or the whole new one: tmp beside it (mode 0600), fsync,
    rename, fsync the directory."""
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, tmp_path = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    try:
        with os.fdopen(descriptor, 'w', encoding='utf-8') as stream:
            json.dump(document, stream, indent=2, allow_nan=False)
            stream.write('\n')
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.lexists(tmp_path):
            os.unlink(tmp_path)
        raise
    fsync_dir(directory)


def read_json(path: str) -> Any:
    """A JSON record, or None when the file does not exist; RecordError when it is not valid JSON."""
    try:
        with open(path, encoding='utf-8') as stream:
            return json.load(stream)
    except FileNotFoundError:
        return None
    except ValueError:
        raise RecordError('%s is not valid JSON; it was not written by this collection, or was damaged.' % path) from None


def sha256_file(path: str) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file, read once in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b''):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def free_bytes(path: str) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding path."""
    status = os.statvfs(path)
    return status.f_bavail * status.f_frsize


def existing_ancestor(path: str) -> str:
    """The nearest directory at or above path that exists (where a directory to be created would live)."""
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path
