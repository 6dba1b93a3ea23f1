# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node lock: one backup at a time per data directory, and the record of what the backup took.

A JSON file beside the data directory (never inside it): `<data_dir>.backup-lock`. Later module runs of the
same set (archive, release) read it to find their snapshot. It says who holds it (the controller's run, from
controller_run) and until when, so that a later run can tell a live holder from an interrupted one.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import RecordError, fsync_dir, read_json, write_json_atomic
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import iso_from_epoch
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import SnapshotError


class LockHeld(SnapshotError):
    """Another backup set holds the lock."""


def lock_path(data_dir: str) -> str:
    return data_dir.rstrip('/') + '.backup-lock'


def _complete_file(directory: str, state: dict) -> str:
    """A new fsynced file in directory holding state as JSON, to be linked as the lock."""
    fd, path = tempfile.mkstemp(prefix='.backup-lock-', suffix='.tmp', dir=directory)
    with os.fdopen(fd, 'w', encoding='utf-8') as stream:
        json.dump(state, stream, indent=2)
        stream.flush()
        os.fsync(stream.fileno())
    return path


class NodeLock:
    """Created with all its content at once (a hard link of a complete file, which fails if the lock
    exists, as O_EXCL would), updated by atomic replacement, removed on release."""

    def __init__(self, data_dir: str):
        self.path = lock_path(data_dir)
        self._directory = os.path.dirname(self.path)

    def read(self) -> dict | None:
        try:
            return read_json(self.path)
        except RecordError as exc:
            raise SnapshotError(str(exc)) from None

    def acquire(self, state: dict) -> None:
        """Take the lock for state['set_id'], or raise LockHeld naming the set that holds it."""
        staged = _complete_file(self._directory, state)
        try:
            os.link(staged, self.path)
        except FileExistsError:
            holder = self.read() or {}
            raise LockHeld(held_message(self.path, holder), holder=holder)
        finally:
            os.unlink(staged)
        fsync_dir(self._directory)

    def update(self, **fields) -> dict:
        """Record fields in the lock (never while the directory's filesystem is frozen); return the new state."""
        state = self.read()
        if state is None:
            raise SnapshotError('The lock file %s disappeared while the backup held it.' % self.path)
        state.update(fields)
        write_json_atomic(self.path, state)
        return state

    def release(self) -> bool:
        """Remove the lock; False if there was none."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return False
        fsync_dir(self._directory)
        return True


def expired(holder: dict, now: float | None = None) -> bool:
    """Whether a lock's holder let its lease run out (a later run may break it)."""
    expires_at = holder.get('expires_at')
    return isinstance(expires_at, (int, float)) and (now or time.time()) > expires_at


def held_message(path: str, holder: dict) -> str:
    """Who holds a lock and how to break it, in one sentence."""
    run = holder.get('run') or {}
    who = 'ansible-playbook pid %s on %s' % (run.get('pid'), run.get('host')) if run else 'pid %s on %s' % (holder.get('pid'), holder.get('host'))
    expires = holder.get('expires_at')
    until = ', until %s' % iso_from_epoch(expires) if isinstance(expires, (int, float)) else ''
    return ('Backup set %s holds the lock %s (taken by %s at %s%s). If that run no longer runs, a backup breaks it once it '
            'expires, or at once with backup_break_lock=true (the role), or release it with state=absent and set_id=%s.'
            % (holder.get('set_id'), path, who, holder.get('created_at'), until, holder.get('set_id')))
