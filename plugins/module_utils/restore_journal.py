# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The journal of a node's file-level restore: what it did to the data directory, step by step, written
before each step (write-ahead), so that a restore whose controller died can be finished or rolled back by
running it again.

One journal per data directory, `<data_dir>.restore-journal.json` beside it, for the node's latest restore.
Phases, in order: staging (unpacking beside the data), staged, swapping (the renames under way), swapped (the
restored data in place, the previous data moved aside), finished (verified by the restore role); or
rolled_back (the previous data put back). A restore is unfinished in any phase but finished and rolled_back.
"""

from __future__ import annotations

import os

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import RecordError, fsync_dir, read_json, write_json_atomic
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import format_time, utc_now

UNFINISHED = ('staging', 'staged', 'swapping', 'swapped')
# Phases in which nothing on the node has changed yet: a newer restore may take over.
UNTOUCHED = ('staging', 'staged')


class JournalError(Exception):
    """The journal or the directories it names are not as a restore left them; the message says what to do."""


class Paths:
    """Where one restore of one data directory keeps what it unpacks and what it moves aside."""

    def __init__(self, data_dir: str, restore_id: str):
        self.data_dir = data_dir
        self.staged = '%s.restore-%s' % (data_dir, restore_id)
        self.unpacking = self.staged + '.partial'
        self.aside = '%s.before-restore-%s' % (data_dir, restore_id)
        self.rolled_back = '%s.rolled-back-%s' % (data_dir, restore_id)


def journal_path(data_dir: str) -> str:
    return data_dir.rstrip('/') + '.restore-journal.json'


class Journal:
    """The journal of one data directory: read, and each phase recorded atomically with its time."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.path = journal_path(data_dir)

    def read(self) -> dict | None:
        try:
            record = read_json(self.path)
        except RecordError as exc:
            raise JournalError('%s Move it away (keep it: it records what a restore did), then run again.' % exc) from None
        if record is not None and not isinstance(record, dict):
            raise JournalError('%s is not a restore journal. Move it away, then run again.' % self.path)
        return record

    def record(self, record: dict, phase: str, **facts) -> dict:
        """Write the journal at a new phase, durable before the caller goes on."""
        at = format_time(utc_now())
        updated = dict(record, phase=phase, **facts)
        updated['history'] = list(record.get('history', [])) + [dict(phase=phase, at=at)]
        write_json_atomic(self.path, updated)
        return updated


def is_unfinished(record: dict | None) -> bool:
    return bool(record) and record.get('phase') in UNFINISHED


def data_dir_inode(data_dir: str) -> int | None:
    try:
        return os.stat(data_dir).st_ino
    except FileNotFoundError:
        return None


def finish_swap(paths: Paths, record: dict) -> None:
    """The two renames of a swap, each done only if not done yet, judged on the directories themselves: the
    journal said swapping before either began, so whatever state a crash left is one of these."""
    if record.get('aside') and os.path.lexists(paths.data_dir) and not os.path.lexists(paths.aside) and os.path.isdir(paths.staged):
        os.rename(paths.data_dir, paths.aside)
    if os.path.isdir(paths.staged):
        if os.path.lexists(paths.data_dir):
            raise JournalError('%s exists while the restored data is still in %s: something recreated the data directory during '
                               'the restore. Move it away (the restore never deletes data), then run again.'
                               % (paths.data_dir, paths.staged))
        os.rename(paths.staged, paths.data_dir)
    if not os.path.isdir(paths.data_dir):
        raise JournalError('%s is missing and %s holds no restored data: the directories are not as the journal %s says. '
                           'Look at them and at the journal before anything else.' % (paths.data_dir, paths.staged, journal_path(paths.data_dir)))
    fsync_dir(os.path.dirname(paths.data_dir))


def undo_swap(paths: Paths, record: dict) -> list[str]:
    """Put the previous data back: the restored data moves to `<data_dir>.rolled-back-<id>` (kept), the
    previous data from its place aside back to the data directory. Each rename only if not done yet."""
    done = []
    restored_in_place = os.path.isdir(paths.data_dir) and data_dir_inode(paths.data_dir) == record.get('data_dir_inode')
    renamed_in = not os.path.lexists(paths.staged) and os.path.lexists(paths.data_dir) and (
        os.path.lexists(paths.aside) or not record.get('aside'))
    if restored_in_place or renamed_in:
        os.rename(paths.data_dir, paths.rolled_back)
        done.append('moved the restored data %s to %s' % (paths.data_dir, paths.rolled_back))
    if os.path.lexists(paths.aside) and not os.path.lexists(paths.data_dir):
        os.rename(paths.aside, paths.data_dir)
        done.append('moved the previous data %s back to %s' % (paths.aside, paths.data_dir))
    fsync_dir(os.path.dirname(paths.data_dir))
    return done
