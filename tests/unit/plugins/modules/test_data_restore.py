"""The data_restore module through main() on real directories: every state, the journal written before each
step, resuming after a crash at each point, taking over or refusing another restore, and every refusal
changing nothing.

A crash is the module's process ending at one point: `Crash` is raised there (from a fault point, a rename or
an fsync), so that no code of the module runs after it, and the module is run again as the restore role would.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pyrage
import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import archive, restore_journal
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import FileWriter, LocalRepository
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import build_manifest, manifest_bytes
from ansible_collections.bigchaindb.rethinkdb.plugins.modules import data_restore
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.backup_sets import CLUSTER, manifest_fields, tree
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import run_module

SET_ID = '20261124T163000Z-snapshot-3f9a'
RID = '20261202T051500Z-a1b2'
RID2 = '20261202T061500Z-c3d4'
PART_PATH = 'nodes/node1/data.tar.zst'
RUN = {'host': 'controller', 'pid': 4242, 'start_ticks': 99}
AS_ROOT = os.geteuid() == 0


class Crash(BaseException):
    """The module's process dies here."""


class Node:
    """One node: its data directory as it is now, the data as the backup took it, and the part."""

    def __init__(self, tmp_path, backed_up, data_dir, part, archive_path):
        self.tmp = tmp_path
        self.backed_up = str(backed_up)
        self.data_dir = str(data_dir)
        self.part = part
        self.archive = archive_path
        self.journal = restore_journal.journal_path(self.data_dir)

    def args(self, state='staged', restore_id=RID, **changes) -> dict:
        args = dict(data_dir=self.data_dir, restore_id=restore_id, state=state, run=RUN)
        if state == 'staged':
            args.update(set_id=SET_ID, part=self.part, archive=self.archive)
        args.update(changes)
        return dict((key, value) for key, value in args.items() if value is not None)

    def run(self, capsys, state='staged', restore_id=RID, **changes) -> dict:
        return run_module(data_restore.main, self.args(state, restore_id, **changes), capsys)

    def paths(self, restore_id=RID) -> restore_journal.Paths:
        return restore_journal.Paths(self.data_dir, restore_id)

    def beside(self) -> list:
        """The names beside the data directory."""
        return sorted(os.listdir(os.path.dirname(self.data_dir)))

    def record(self) -> dict:
        with open(self.journal, encoding='utf-8') as stream:
            return json.load(stream)

    def everything(self) -> list:
        """Every path and size around the data directory, the journal's content too: to show nothing changed."""
        with open(self.journal, 'rb') if os.path.exists(self.journal) else open(os.devnull, 'rb') as stream:
            return tree(os.path.dirname(self.data_dir)) + [stream.read()]


def files_of(root) -> dict:
    """Relative path -> sha256 of every regular file, and the mode of every entry."""
    found = {}
    for directory, subdirs, names in os.walk(root):
        for name in subdirs + names:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, root)] = os.lstat(path).st_mode
            if os.path.isfile(path):
                with open(path, 'rb') as stream:
                    found[os.path.relpath(path, root) + ' sha256'] = hashlib.sha256(stream.read()).hexdigest()
    return found


def write_part(source_dir, writer, recipients=None) -> dict:
    """Archive source_dir through a part writer; return the part as the manifest records it."""
    with writer:
        facts = archive.write_archive(source_dir, writer.stream, level=1, threads=1, recipients=recipients)
        stored = writer.finish()
    return dict(path=PART_PATH, bytes=stored['bytes'], sha256=stored['sha256'], raw_bytes=facts['raw_bytes'], compression='zstd',
                encryption=dict(format='age', recipients=recipients) if recipients else None, store_checksum=None,
                files=facts['files'], server='node1', host='db1')


@pytest.fixture(name='node')
def node_with_a_part(tmp_path):
    backed_up = tmp_path / 'backed-up'
    (backed_up / 'tables').mkdir(parents=True)
    (backed_up / 'metadata').write_bytes(b'then' * 1000)
    (backed_up / 'tables' / 'votes').write_bytes(os.urandom(10000))
    os.chmod(str(backed_up / 'tables'), 0o750)
    archive_path = str(tmp_path / 'handed-over' / 'data.tar.zst')
    part = write_part(str(backed_up), FileWriter(archive_path))
    data_dir = tmp_path / 'lib' / 'default'
    data_dir.mkdir(parents=True)
    (data_dir / 'metadata').write_bytes(b'now')
    return Node(tmp_path, backed_up, data_dir, part, archive_path)


def is_backed_up_data(node, path) -> bool:
    return files_of(path) == files_of(node.backed_up)


def is_current_data(path) -> bool:
    with open(os.path.join(path, 'metadata'), 'rb') as stream:
        return sorted(os.listdir(path)) == ['metadata'] and stream.read() == b'now'


def phases(record) -> list:
    return [step['phase'] for step in record['history']]


# --- every state ---------------------------------------------------------------------------------------------

def test_staged_unpacks_a_file_beside_the_data_directory_and_journals_it(node, capsys):
    staged = node.run(capsys)
    again = node.run(capsys)

    paths = node.paths()
    assert staged['changed'] is True and again['changed'] is False
    assert (staged['entries'], staged['raw_bytes'], staged['special_bits']) == (4, 14000, [])
    assert (staged['staged_dir'], staged['moved_aside_to'], staged['superseded']) == (paths.staged, None, None)
    assert is_backed_up_data(node, paths.staged) and is_current_data(node.data_dir)
    record = node.record()
    assert staged['journal'] == again['journal'] == record
    assert (record['restore_id'], record['set_id'], record['phase'], record['run']) == (RID, SET_ID, 'staged', RUN)
    assert (record['staged'], record['aside'], record['sha256'], record['part']) == (paths.staged, None, node.part['sha256'], PART_PATH)
    assert (record['entries'], record['raw_bytes'], record['special_bits']) == (4, 14000, [])
    assert phases(record) == ['staging', 'staged']
    assert node.beside() == ['default', 'default.restore-' + RID, 'default.restore-journal.json']


def test_staged_reads_the_part_straight_from_the_repository(node, capsys):
    repository = LocalRepository(str(node.tmp / 'backups'))
    repository.begin(CLUSTER, SET_ID, RUN)
    part = write_part(node.backed_up, repository.part_writer(CLUSTER, SET_ID, PART_PATH))
    repository.commit(CLUSTER, SET_ID, manifest_bytes(build_manifest(SET_ID, CLUSTER, manifest_fields('snapshot'), [part])))

    staged = node.run(capsys, archive=None, part=part, repository=repository.root, cluster=CLUSTER)

    assert staged['changed'] is True and staged['raw_bytes'] == 14000
    assert is_backed_up_data(node, node.paths().staged)
    assert node.record()['sha256'] == part['sha256']


def test_swapped_moves_the_data_aside_and_puts_the_restored_data_in_place(node, capsys):
    node.run(capsys)

    swapped = node.run(capsys, 'swapped')
    again = node.run(capsys, 'swapped')

    paths = node.paths()
    assert swapped['changed'] is True and again['changed'] is False
    assert swapped['moved_aside_to'] == again['moved_aside_to'] == paths.aside
    assert is_backed_up_data(node, node.data_dir) and is_current_data(paths.aside)
    record = node.record()
    assert swapped['journal'] == record and phases(record) == ['staging', 'staged', 'swapping', 'swapped']
    assert (record['aside'], record['data_dir_inode']) == (paths.aside, os.stat(node.data_dir).st_ino)
    assert node.beside() == ['default', 'default.before-restore-' + RID, 'default.restore-journal.json']


def test_finished_closes_the_journal(node, capsys):
    node.run(capsys)
    node.run(capsys, 'swapped')

    finished = node.run(capsys, 'finished')
    again = node.run(capsys, 'finished')

    assert finished['changed'] is True and again['changed'] is False
    assert finished['moved_aside_to'] == node.paths().aside
    assert phases(node.record()) == ['staging', 'staged', 'swapping', 'swapped', 'finished']
    assert is_backed_up_data(node, node.data_dir) and is_current_data(node.paths().aside)


@pytest.mark.parametrize('after', ['swapped', 'finished'])
def test_rolled_back_puts_the_previous_data_back_and_keeps_the_restored_data(node, capsys, after):
    node.run(capsys)
    node.run(capsys, 'swapped')
    if after == 'finished':
        node.run(capsys, 'finished')

    rolled_back = node.run(capsys, 'rolled_back')
    again = node.run(capsys, 'rolled_back')

    paths = node.paths()
    assert rolled_back['changed'] is True and again['changed'] is False
    assert rolled_back['rolled_back'] == ['moved the restored data %s to %s' % (node.data_dir, paths.rolled_back),
                                          'moved the previous data %s back to %s' % (paths.aside, node.data_dir)]
    assert again['rolled_back'] == [] and rolled_back['moved_aside_to'] is None
    assert is_current_data(node.data_dir) and is_backed_up_data(node, paths.rolled_back)
    assert node.record()['phase'] == 'rolled_back'
    assert node.beside() == ['default', 'default.restore-journal.json', 'default.rolled-back-' + RID]


def test_rolled_back_after_staging_only_touches_nothing(node, capsys):
    node.run(capsys)

    rolled_back = node.run(capsys, 'rolled_back')
    restaged = node.run(capsys)

    assert rolled_back['changed'] is True and rolled_back['rolled_back'] == []
    assert is_current_data(node.data_dir) and node.record()['phase'] == 'rolled_back'
    assert restaged['failed'] is True
    assert restaged['msg'] == 'Restore %s was rolled back on this node: start a new restore.' % RID


def test_a_node_rebuilt_empty_gets_the_data_with_nothing_moved_aside(node, capsys):
    os.unlink(os.path.join(node.data_dir, 'metadata'))
    os.rmdir(node.data_dir)
    node.run(capsys)

    swapped = node.run(capsys, 'swapped')
    rolled_back = node.run(capsys, 'rolled_back')

    assert swapped['changed'] is True and swapped['moved_aside_to'] is None and swapped['journal']['aside'] is None
    assert rolled_back['rolled_back'] == ['moved the restored data %s to %s' % (node.data_dir, node.paths().rolled_back)]
    assert not os.path.exists(node.data_dir)


# --- resuming after a crash --------------------------------------------------------------------------------

def crash_at(monkeypatch, point):
    """Make the module die at one fault point."""
    def checkpoint(reached):
        if reached == point:
            raise Crash(point)
    monkeypatch.setattr(data_restore, 'checkpoint', checkpoint)


def test_a_crash_while_unpacking_is_resumed_from_scratch(node, capsys, monkeypatch):
    crash_at(monkeypatch, 'data_restore:staging')
    with pytest.raises(Crash):
        node.run(capsys)
    paths = node.paths()
    os.makedirs(os.path.join(paths.unpacking, 'tables'))
    with open(os.path.join(paths.unpacking, 'tables', 'votes'), 'wb') as half:
        half.write(b'half unpacked')
    assert node.record()['phase'] == 'staging'
    monkeypatch.undo()

    staged = node.run(capsys)

    assert staged['changed'] is True and staged['journal']['phase'] == 'staged'
    assert is_backed_up_data(node, paths.staged) and not os.path.exists(paths.unpacking)
    assert node.beside() == ['default', 'default.restore-' + RID, 'default.restore-journal.json']


def test_a_crash_after_unpacking_before_the_journal_said_staged_is_resumed(node, capsys, monkeypatch):
    """The module died right after renaming the unpacked directory into place, before recording staged."""
    crash_when_called(monkeypatch, data_restore, 'fsync_dir')
    with pytest.raises(Crash):
        node.run(capsys)
    assert os.path.isdir(node.paths().staged) and node.record()['phase'] == 'staging'
    monkeypatch.undo()

    staged = node.run(capsys)

    assert staged.get('failed') is None, staged.get('msg')
    assert staged['journal']['phase'] == 'staged' and is_backed_up_data(node, node.paths().staged)
    assert node.beside() == ['default', 'default.restore-' + RID, 'default.restore-journal.json']


def test_a_crash_when_staged_is_resumed_by_the_swap(node, capsys, monkeypatch):
    crash_at(monkeypatch, 'data_restore:staged')
    with pytest.raises(Crash):
        node.run(capsys)
    monkeypatch.undo()

    again = node.run(capsys)
    swapped = node.run(capsys, 'swapped')

    assert again['changed'] is False and swapped['changed'] is True
    assert is_backed_up_data(node, node.data_dir)


def crash_when_called(monkeypatch, owner, name):
    """Make the module die when it calls owner.name (fsync_dir right after a rename, say)."""
    def crash(*args):
        raise Crash('%s.%s' % (owner.__name__, name))
    monkeypatch.setattr(owner, name, crash)


def crash_on_rename(monkeypatch, number):
    """Make the module die at the given rename of the swap (1: before the data moves aside, 2: after it)."""
    real_rename = os.rename
    done = []

    def rename(source, dest):
        done.append(source)
        if len(done) == number:
            raise Crash('rename %d' % number)
        real_rename(source, dest)

    monkeypatch.setattr(restore_journal.os, 'rename', rename)


@pytest.mark.parametrize('renames_done', [0, 1, 2])
def test_a_crash_during_the_swap_is_finished_by_running_it_again(node, capsys, monkeypatch, renames_done):
    node.run(capsys)
    if renames_done == 2:
        crash_when_called(monkeypatch, restore_journal, 'fsync_dir')
    else:
        crash_on_rename(monkeypatch, renames_done + 1)
    with pytest.raises(Crash):
        node.run(capsys, 'swapped')
    monkeypatch.undo()
    assert node.record()['phase'] == 'swapping'
    paths = node.paths()
    assert [os.path.exists(path) for path in (node.data_dir, paths.aside, paths.staged)] == [
        [True, False, True], [False, True, True], [True, True, False]][renames_done]

    swapped = node.run(capsys, 'swapped')
    finished = node.run(capsys, 'finished')

    assert swapped['changed'] is True and swapped['journal']['phase'] == 'swapped'
    assert finished['changed'] is True
    assert is_backed_up_data(node, node.data_dir) and is_current_data(paths.aside)
    assert node.beside() == ['default', 'default.before-restore-' + RID, 'default.restore-journal.json']


@pytest.mark.parametrize('renames_done', [0, 1, 2])
def test_a_crash_during_the_swap_can_be_rolled_back(node, capsys, monkeypatch, renames_done):
    node.run(capsys)
    if renames_done == 2:
        crash_when_called(monkeypatch, restore_journal, 'fsync_dir')
    else:
        crash_on_rename(monkeypatch, renames_done + 1)
    with pytest.raises(Crash):
        node.run(capsys, 'swapped')
    monkeypatch.undo()

    rolled_back = node.run(capsys, 'rolled_back')

    assert rolled_back['changed'] is True and len(rolled_back['rolled_back']) == renames_done
    assert is_current_data(node.data_dir) and not os.path.exists(node.paths().aside)
    assert node.record()['phase'] == 'rolled_back'


def test_a_crash_during_the_swap_of_a_node_rebuilt_empty_rolls_back_to_no_data(node, capsys, monkeypatch):
    """No data directory before the restore, and the module died after the restored data was renamed into
    place but before the journal said swapped: rolling back must leave no data directory, as it does after a
    completed swap, with the restored data kept aside."""
    os.unlink(os.path.join(node.data_dir, 'metadata'))
    os.rmdir(node.data_dir)
    node.run(capsys)
    crash_when_called(monkeypatch, restore_journal, 'fsync_dir')
    with pytest.raises(Crash):
        node.run(capsys, 'swapped')
    monkeypatch.undo()

    rolled_back = node.run(capsys, 'rolled_back')

    assert node.record()['phase'] == 'rolled_back'
    assert rolled_back['rolled_back'] == ['moved the restored data %s to %s' % (node.data_dir, node.paths().rolled_back)]
    assert not os.path.exists(node.data_dir) and is_backed_up_data(node, node.paths().rolled_back)


def test_a_crash_when_swapped_is_finished_later(node, capsys, monkeypatch):
    node.run(capsys)
    crash_at(monkeypatch, 'data_restore:swapped')
    with pytest.raises(Crash):
        node.run(capsys, 'swapped')
    monkeypatch.undo()

    again = node.run(capsys, 'swapped')
    finished = node.run(capsys, 'finished')

    assert again['changed'] is False and again['moved_aside_to'] == node.paths().aside
    assert finished['changed'] is True and is_backed_up_data(node, node.data_dir)


# --- restores one after another ------------------------------------------------------------------------------

def test_the_same_set_restored_again_under_a_new_restore_id_is_unpacked_and_swapped_again(node, capsys):
    for state in ('staged', 'swapped', 'finished'):
        node.run(capsys, state)
    first_inode = os.stat(node.data_dir).st_ino
    with open(os.path.join(node.data_dir, 'metadata'), 'wb') as changed:
        changed.write(b'written after the first restore')

    staged = node.run(capsys, restore_id=RID2)
    swapped = node.run(capsys, 'swapped', restore_id=RID2)
    finished = node.run(capsys, 'finished', restore_id=RID2)

    second = node.paths(RID2)
    assert staged['changed'] is True and staged['entries'] == 4 and staged['superseded'] is None
    assert swapped['changed'] is True and finished['changed'] is True
    assert swapped['moved_aside_to'] == second.aside
    assert os.stat(node.data_dir).st_ino != first_inode
    assert is_backed_up_data(node, node.data_dir)
    with open(os.path.join(second.aside, 'metadata'), 'rb') as kept:
        assert kept.read() == b'written after the first restore'
    assert is_current_data(node.paths().aside)
    assert node.record()['restore_id'] == RID2 and phases(node.record()) == ['staging', 'staged', 'swapping', 'swapped', 'finished']


def test_a_new_restore_takes_over_one_that_only_staged(node, capsys):
    node.run(capsys)

    staged = node.run(capsys, restore_id=RID2)

    assert staged['changed'] is True and staged['superseded'] == RID
    assert not os.path.exists(node.paths().staged)
    assert is_backed_up_data(node, node.paths(RID2).staged) and is_current_data(node.data_dir)
    assert node.record()['restore_id'] == RID2
    assert node.beside() == ['default', 'default.restore-' + RID2, 'default.restore-journal.json']


def test_a_new_restore_takes_over_one_that_died_unpacking(node, capsys, monkeypatch):
    crash_at(monkeypatch, 'data_restore:staging')
    with pytest.raises(Crash):
        node.run(capsys)
    os.makedirs(node.paths().unpacking)
    monkeypatch.undo()

    staged = node.run(capsys, restore_id=RID2)

    assert staged['superseded'] == RID
    assert node.beside() == ['default', 'default.restore-' + RID2, 'default.restore-journal.json']


@pytest.mark.parametrize('phase', ['swapping', 'swapped'])
def test_another_restore_that_moved_data_is_never_taken_over(node, capsys, monkeypatch, phase):
    node.run(capsys)
    if phase == 'swapping':
        crash_at(monkeypatch, 'data_restore:swapping')
        with pytest.raises(Crash):
            node.run(capsys, 'swapped')
        monkeypatch.undo()
    else:
        node.run(capsys, 'swapped')
    before = node.everything()

    results = [node.run(capsys, state, restore_id=RID2) for state in ('staged', 'swapped', 'finished', 'rolled_back')]

    message = ('This node has an unfinished restore %s of set %s (phase %s): run the restore of set %s again to finish it, or roll it '
               'back (restore_rollback=true in the restore role; data_restore state=rolled_back).' % (RID, SET_ID, phase, SET_ID))
    assert [(result['failed'], result['msg']) for result in results] == [(True, message)] * 4
    assert results[0]['journal'] == node.record() and node.record()['restore_id'] == RID
    assert node.everything() == before


def test_a_finished_restore_of_another_id_is_not_this_one(node, capsys):
    for state in ('staged', 'swapped', 'finished'):
        node.run(capsys, state)

    swapped = node.run(capsys, 'swapped', restore_id=RID2)

    assert swapped['failed'] is True
    assert swapped['msg'] == 'The latest restore on this node is %s, not %s: stage this one first.' % (RID, RID2)


# --- check mode ----------------------------------------------------------------------------------------------

def test_check_mode_changes_nothing_in_any_state(node, capsys):
    before = node.everything()
    staged = node.run(capsys, _ansible_check_mode=True)
    assert node.everything() == before
    assert staged['changed'] is True and staged['msg'] == 'Would unpack part %s into %s.' % (PART_PATH, node.paths().staged)

    node.run(capsys)
    before = node.everything()
    swapped = node.run(capsys, 'swapped', _ansible_check_mode=True)
    rolled_back = node.run(capsys, 'rolled_back', _ansible_check_mode=True)
    assert node.everything() == before
    assert swapped['msg'] == 'Would move %s aside to %s and put %s in its place.' % (node.data_dir, node.paths().aside, node.paths().staged)
    assert rolled_back['msg'] == 'Would put the data from before restore %s back.' % RID

    node.run(capsys, 'swapped')
    before = node.everything()
    finished = node.run(capsys, 'finished', _ansible_check_mode=True)
    assert node.everything() == before
    assert finished['changed'] is True and finished['msg'] == 'Would record restore %s as finished.' % RID


def test_check_mode_of_a_swap_cut_short(node, capsys, monkeypatch):
    node.run(capsys)
    crash_at(monkeypatch, 'data_restore:swapping')
    with pytest.raises(Crash):
        node.run(capsys, 'swapped')
    monkeypatch.undo()
    before = node.everything()

    checked = node.run(capsys, 'swapped', _ansible_check_mode=True)

    assert checked['msg'] == 'Would finish putting %s in place.' % node.paths().staged
    assert node.everything() == before


def test_check_mode_of_a_new_restore_keeps_what_another_one_staged(node, capsys):
    node.run(capsys)
    before = node.everything()

    checked = node.run(capsys, restore_id=RID2, _ansible_check_mode=True)

    assert checked['changed'] is True and checked['superseded'] == RID
    assert node.everything() == before, 'check mode removed the directory another restore had staged'


# --- refusals that change nothing ----------------------------------------------------------------------------

def test_a_data_directory_in_use_is_refused(node, capsys):
    node.run(capsys)
    server = subprocess.Popen(['sleep', '60'], cwd=node.data_dir)
    try:
        before = node.everything()
        swapped = node.run(capsys, 'swapped')
        unchanged = node.everything()
    finally:
        server.kill()
        server.wait()

    assert swapped['failed'] is True
    assert swapped['msg'] == '%s is in use by %d (sleep): stop the RethinkDB server first.' % (node.data_dir, server.pid)
    assert swapped['journal']['phase'] == 'staged'
    assert unchanged == before


def test_a_restored_data_directory_in_use_is_not_rolled_back(node, capsys):
    node.run(capsys)
    node.run(capsys, 'swapped')
    server = subprocess.Popen(['sleep', '60'], cwd=os.path.join(node.data_dir, 'tables'))
    try:
        before = node.everything()
        rolled_back = node.run(capsys, 'rolled_back')
        unchanged = node.everything()
    finally:
        server.kill()
        server.wait()

    assert rolled_back['msg'] == '%s is in use by %d (sleep): stop the RethinkDB server first.' % (node.data_dir, server.pid)
    assert unchanged == before


def test_a_part_that_is_not_the_one_recorded_is_refused(node, capsys):
    staged = node.run(capsys, part=dict(node.part, sha256='0' * 64))

    assert staged['failed'] is True
    assert staged['msg'] == ('Cannot restore part %s here: the archive has sha256 %s, expected %s: it is not the archive recorded, or '
                             'it was damaged. Nothing was changed.' % (PART_PATH, node.part['sha256'], '0' * 64))
    assert node.beside() == ['default', 'default.restore-journal.json'] and is_current_data(node.data_dir)
    assert node.record()['phase'] == 'staging'


def test_a_file_index_that_does_not_match_is_refused(node, capsys):
    index = [dict(entry, sha256='0' * 64) if entry['path'] == 'metadata' else entry for entry in node.part['files']]

    staged = node.run(capsys, part=dict(node.part, files=index))

    assert staged['msg'].startswith("Cannot restore part %s here: member 'metadata' unpacked as 4000 bytes with sha256 " % PART_PATH)
    assert staged['msg'].endswith('but was archived as 4000 bytes with sha256 %s. Nothing was changed.' % ('0' * 64))
    assert node.beside() == ['default', 'default.restore-journal.json'] and is_current_data(node.data_dir)


def test_a_part_missing_from_the_repository_is_one_line(node, capsys):
    staged = node.run(capsys, archive=None, repository=str(node.tmp / 'backups'), cluster=CLUSTER)

    assert staged['msg'] == ('Cannot restore part %s here: cannot read part %s of set %s: No such file or directory. Nothing was changed.'
                             % (PART_PATH, PART_PATH, SET_ID))
    assert is_current_data(node.data_dir)


@pytest.mark.parametrize('change, message', [
    (dict(part={'path': PART_PATH}), "part needs path and sha256 (64 hex digits), as the set's manifest records them."),
    (dict(part={'sha256': 'ab' * 32}), "part needs path and sha256 (64 hex digits), as the set's manifest records them."),
    (dict(archive=None), 'state=staged needs archive (a file on this node), or repository and cluster.'),
    (dict(set_id='latest'), "set_id: 'latest' is not a backup set id (like 20261124T163000Z-dump-3f9a)."),
    (dict(set_id=None), 'state is staged but all of the following are missing: set_id'),
    (dict(owner='no-such-user-here'), "User 'no-such-user-here' does not exist on this node."),
    (dict(group='no-such-group-here'), "Group 'no-such-group-here' does not exist on this node."),
])
def test_bad_input_is_one_clear_line_and_changes_nothing(node, capsys, change, message):
    if 'owner' in change or 'group' in change:
        if not AS_ROOT:
            pytest.skip('owners are looked up only by root')
    before = node.everything()

    staged = node.run(capsys, **change)

    assert staged['failed'] is True and staged['msg'] == message
    assert node.everything() == before


def test_not_enough_room_to_unpack_is_refused_first(node, capsys):
    before = node.everything()

    staged = node.run(capsys, part=dict(node.part, raw_bytes=1 << 60))

    assert staged['msg'].startswith('Not enough space to unpack part %s beside %s: ' % (PART_PATH, node.data_dir))
    assert staged['msg'].endswith(' bytes free, %d needed.' % ((1 << 60) + data_restore.HEADROOM_BYTES))
    assert node.everything() == before


def test_a_data_directory_whose_parent_is_missing_is_refused(node, capsys):
    staged = node.run(capsys, data_dir=str(node.tmp / 'missing' / 'default'))

    assert staged['msg'] == '%s, the directory that holds data_dir, does not exist.' % (node.tmp / 'missing')
    assert not os.path.exists(str(node.tmp / 'missing'))


@pytest.mark.skipif(not AS_ROOT, reason='mounts a tmpfs')
def test_a_data_directory_that_is_a_mount_point_is_refused(node, capsys):
    mountpoint = str(node.tmp / 'mnt')
    os.mkdir(mountpoint)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountpoint], check=True)
    try:
        staged = node.run(capsys, data_dir=mountpoint)
    finally:
        subprocess.run(['umount', mountpoint], check=True)

    assert staged['msg'] == ('data_dir %s is a mount point, which cannot be moved aside: keep the data in a subdirectory of the mount '
                             '(and point RethinkDB at it).' % mountpoint)
    assert os.listdir(str(node.tmp)).count('mnt.restore-journal.json') == 0


def test_steps_out_of_order_say_what_to_do_first(node, capsys, monkeypatch):
    swapped = node.run(capsys, 'swapped')
    crash_at(monkeypatch, 'data_restore:staging')
    with pytest.raises(Crash):
        node.run(capsys)
    monkeypatch.undo()
    unstaged = node.run(capsys, 'swapped')
    node.run(capsys)
    finished = node.run(capsys, 'finished')

    assert swapped['msg'] == 'No restore %s on this node (no journal %s): stage it first.' % (RID, node.journal)
    assert swapped['journal'] is None
    assert unstaged['msg'] == 'Restore %s is staging on this node, so its data cannot be put in place: stage it first.' % RID
    assert finished['msg'] == 'Restore %s is staged on this node, not swapped: it cannot be finished.' % RID
    assert is_current_data(node.data_dir)


def test_a_swap_refuses_a_moved_aside_directory_made_by_hand(node, capsys):
    node.run(capsys)
    os.mkdir(node.paths().aside)
    before = node.everything()

    swapped = node.run(capsys, 'swapped')

    assert swapped['msg'] == ('%s already exists, made by hand or by something else: move it elsewhere (the collection never deletes it), '
                              'then run again.' % node.paths().aside)
    assert node.everything() == before


def test_finished_refuses_a_data_directory_replaced_since_the_swap(node, capsys):
    node.run(capsys)
    node.run(capsys, 'swapped')
    os.rename(node.data_dir, str(node.tmp / 'elsewhere'))
    os.mkdir(node.data_dir)

    finished = node.run(capsys, 'finished')

    assert finished['msg'] == ('%s is not the directory restore %s put in place: something replaced it since. Look at it before anything '
                               'else.' % (node.data_dir, RID))
    assert node.record()['phase'] == 'swapped'


@pytest.mark.parametrize('text, message', [
    ('{"phase": ', '{path} is not valid JSON; it was not written by this collection, or was damaged. Move it away (keep it: it '
                   'records what a restore did), then run again.'),
    ('[]', '{path} is not a restore journal. Move it away, then run again.'),
], ids=['not-json', 'not-an-object'])
def test_a_damaged_journal_is_one_line_not_a_traceback(node, capsys, text, message):
    with open(node.journal, 'w', encoding='utf-8') as journal:
        journal.write(text)

    staged = node.run(capsys)

    assert (staged['failed'], staged['msg']) == (True, message.format(path=node.journal))
    assert node.beside() == ['default', 'default.restore-journal.json'] and is_current_data(node.data_dir)


# --- owners, keys, special bits ------------------------------------------------------------------------------

@pytest.mark.skipif(not AS_ROOT, reason='giving files away needs root')
def test_unpacked_files_belong_to_the_data_directorys_owner_or_the_one_given(node, capsys):
    os.chown(node.data_dir, 4321, 4322)

    node.run(capsys)
    node.run(capsys, restore_id=RID2, owner='5000', group='5001')

    def owners(root):
        return set((os.lstat(os.path.join(directory, name)).st_uid, os.lstat(os.path.join(directory, name)).st_gid)
                   for directory, subdirs, names in os.walk(root) for name in subdirs + names + ['.'])

    assert owners(node.paths(RID2).staged) == {(5000, 5001)}
    node.run(capsys, 'rolled_back', restore_id=RID2)
    node.run(capsys, restore_id='20261202T071500Z-e5f6')
    assert owners(node.paths('20261202T071500Z-e5f6').staged) == {(4321, 4322)}


def encrypted_part(node, identity):
    path = str(node.tmp / 'encrypted' / 'data.tar.zst')
    return write_part(node.backed_up, FileWriter(path), recipients=[str(identity.to_public())]), path


def test_an_encrypted_part_is_decrypted_with_the_identity_file(node, capsys):
    identity = pyrage.x25519.Identity.generate()
    part, path = encrypted_part(node, identity)
    (node.tmp / 'identity.txt').write_text('# created by age-keygen\n%s\n' % identity)

    staged = node.run(capsys, part=part, archive=path, identity_file=str(node.tmp / 'identity.txt'))

    assert staged['changed'] is True and is_backed_up_data(node, node.paths().staged)


def test_an_encrypted_part_without_the_right_identity_is_refused_before_anything(node, capsys):
    identity, wrong = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    part, path = encrypted_part(node, identity)
    (node.tmp / 'identity.txt').write_text('%s\n' % wrong)
    before = node.everything()

    without = node.run(capsys, part=part, archive=path)
    refused = node.run(capsys, part=part, archive=path, identity_file=str(node.tmp / 'identity.txt'))

    recipient = str(identity.to_public())
    assert without['msg'] == 'Part %s is encrypted to %s: give identity_file, the age identity of one of them.' % (PART_PATH, recipient)
    assert refused['msg'] == ('Cannot restore part %s here: part %s is encrypted to %s, and the identity file holds the key(s) of %s: give '
                              'the identity of one of its recipients. Nothing was changed.' % (PART_PATH, PART_PATH, recipient,
                                                                                               wrong.to_public()))
    assert str(wrong) not in json.dumps(refused)
    assert node.everything() == before


def test_set_id_bits_are_left_out_with_a_warning(node, capsys):
    os.chmod(os.path.join(node.backed_up, 'metadata'), 0o4644)
    part = write_part(node.backed_up, FileWriter(str(node.tmp / 'suid' / 'data.tar.zst')))

    staged = node.run(capsys, part=part, archive=str(node.tmp / 'suid' / 'data.tar.zst'))

    assert staged['special_bits'] == ['metadata']
    assert os.stat(os.path.join(node.paths().staged, 'metadata')).st_mode & 0o7777 == 0o644
    assert [warning for warning in staged['warnings'] if 'had set-uid, set-gid or sticky bits on metadata' in str(warning)]
