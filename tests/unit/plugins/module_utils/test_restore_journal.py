"""The restore journal: where a restore keeps its directories, each phase written durably with its time, and
the two renames of a swap done or undone from whatever state a crash left."""

from __future__ import annotations

import json
import os
import re

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import restore_journal
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.restore_journal import Journal, JournalError, Paths

RID = '20261202T051500Z-a1b2'
TIME_RE = r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z'


@pytest.fixture(name='paths')
def restore_paths(tmp_path):
    return Paths(str(tmp_path / 'default'), RID)


def make(path, content: str) -> None:
    os.makedirs(path)
    with open(os.path.join(path, 'marker'), 'w', encoding='utf-8') as marker:
        marker.write(content)


def content(path) -> str | None:
    if not os.path.isdir(path):
        return None
    with open(os.path.join(path, 'marker'), encoding='utf-8') as marker:
        return marker.read()


def test_paths_lie_beside_the_data_directory(paths, tmp_path):
    base = str(tmp_path / 'default')

    assert (paths.data_dir, paths.staged, paths.unpacking, paths.aside, paths.rolled_back) == (
        base, base + '.restore-' + RID, base + '.restore-' + RID + '.partial', base + '.before-restore-' + RID,
        base + '.rolled-back-' + RID)
    assert restore_journal.journal_path(base + '/') == base + '.restore-journal.json'


def test_each_phase_is_recorded_with_its_time_and_history(tmp_path):
    journal = Journal(str(tmp_path / 'default'))

    assert journal.read() is None
    staging = journal.record(dict(restore_id=RID, set_id='S'), 'staging')
    staged = journal.record(staging, 'staged', entries=4)

    assert staged['phase'] == 'staged' and staged['entries'] == 4 and staged['restore_id'] == RID
    assert [step['phase'] for step in staged['history']] == ['staging', 'staged']
    assert all(re.fullmatch(TIME_RE, step['at']) for step in staged['history'])
    assert staging['history'] == staged['history'][:1]
    assert journal.read() == staged
    assert sorted(os.listdir(str(tmp_path))) == ['default.restore-journal.json']
    assert os.stat(journal.path).st_mode & 0o777 == 0o600


@pytest.mark.parametrize('text, message', [
    ('{"phase": ', '{path} is not valid JSON; it was not written by this collection, or was damaged. Move it away (keep it: it '
                   'records what a restore did), then run again.'),
    ('["staged"]', '{path} is not a restore journal. Move it away, then run again.'),
])
def test_a_damaged_journal_says_what_to_do(tmp_path, text, message):
    journal = Journal(str(tmp_path / 'default'))
    with open(journal.path, 'w', encoding='utf-8') as stream:
        stream.write(text)

    with pytest.raises(JournalError) as refused:
        journal.read()

    assert str(refused.value) == message.format(path=journal.path)


@pytest.mark.parametrize('phase, unfinished', [('staging', True), ('staged', True), ('swapping', True), ('swapped', True),
                                               ('finished', False), ('rolled_back', False)])
def test_unfinished_phases(phase, unfinished):
    assert restore_journal.is_unfinished({'phase': phase}) is unfinished
    assert restore_journal.is_unfinished(None) is False


# --- the swap --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('renames_done', [0, 1, 2])
def test_finish_swap_completes_a_swap_from_any_point(paths, renames_done):
    make(paths.data_dir, 'before')
    make(paths.staged, 'restored')
    if renames_done >= 1:
        os.rename(paths.data_dir, paths.aside)
    if renames_done == 2:
        os.rename(paths.staged, paths.data_dir)

    restore_journal.finish_swap(paths, {'aside': paths.aside})

    assert (content(paths.data_dir), content(paths.aside), content(paths.staged)) == ('restored', 'before', None)


def test_finish_swap_without_previous_data(paths):
    make(paths.staged, 'restored')

    restore_journal.finish_swap(paths, {'aside': None})

    assert (content(paths.data_dir), os.path.lexists(paths.aside), os.path.lexists(paths.staged)) == ('restored', False, False)


def test_finish_swap_refuses_a_data_directory_made_meanwhile(paths):
    make(paths.staged, 'restored')
    make(paths.aside, 'before')
    make(paths.data_dir, 'recreated')

    with pytest.raises(JournalError) as refused:
        restore_journal.finish_swap(paths, {'aside': paths.aside})

    assert str(refused.value) == ('%s exists while the restored data is still in %s: something recreated the data directory during the '
                                  'restore. Move it away (the restore never deletes data), then run again.' % (paths.data_dir, paths.staged))
    assert (content(paths.data_dir), content(paths.aside), content(paths.staged)) == ('recreated', 'before', 'restored')


def test_finish_swap_refuses_when_the_restored_data_is_nowhere(paths):
    make(paths.aside, 'before')

    with pytest.raises(JournalError) as refused:
        restore_journal.finish_swap(paths, {'aside': paths.aside})

    assert str(refused.value) == ('%s is missing and %s holds no restored data: the directories are not as the journal %s says. Look at '
                                  'them and at the journal before anything else.'
                                  % (paths.data_dir, paths.staged, restore_journal.journal_path(paths.data_dir)))
    assert content(paths.aside) == 'before'


def test_undo_swap_after_a_swap(paths):
    make(paths.data_dir, 'before')
    make(paths.staged, 'restored')
    restore_journal.finish_swap(paths, {'aside': paths.aside})
    record = {'aside': paths.aside, 'data_dir_inode': restore_journal.data_dir_inode(paths.data_dir)}

    done = restore_journal.undo_swap(paths, record)
    again = restore_journal.undo_swap(paths, record)

    assert done == ['moved the restored data %s to %s' % (paths.data_dir, paths.rolled_back),
                    'moved the previous data %s back to %s' % (paths.aside, paths.data_dir)]
    assert again == []
    assert (content(paths.data_dir), content(paths.rolled_back), os.path.lexists(paths.aside)) == ('before', 'restored', False)


@pytest.mark.parametrize('renames_done', [0, 1, 2])
def test_undo_swap_of_a_swap_cut_short(paths, renames_done):
    """The journal says swapping (no inode recorded yet): the directories tell how far the swap went."""
    make(paths.data_dir, 'before')
    make(paths.staged, 'restored')
    if renames_done >= 1:
        os.rename(paths.data_dir, paths.aside)
    if renames_done == 2:
        os.rename(paths.staged, paths.data_dir)

    done = restore_journal.undo_swap(paths, {'aside': paths.aside})

    assert content(paths.data_dir) == 'before' and not os.path.lexists(paths.aside)
    assert content(paths.staged if renames_done < 2 else paths.rolled_back) == 'restored'
    assert len(done) == renames_done


def test_data_dir_inode(paths):
    assert restore_journal.data_dir_inode(paths.data_dir) is None
    make(paths.data_dir, 'x')
    assert restore_journal.data_dir_inode(paths.data_dir) == os.stat(paths.data_dir).st_ino


def test_the_journal_is_json_a_person_can_read(tmp_path):
    journal = Journal(str(tmp_path / 'default'))
    journal.record(dict(restore_id=RID), 'staging')

    with open(journal.path, encoding='utf-8') as stream:
        text = stream.read()

    assert text.startswith('{\n  "restore_id": ') and json.loads(text)['phase'] == 'staging'
