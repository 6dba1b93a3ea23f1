"""The data_restore_info module through main(): the node's restore journal as the restore role reads it."""

from __future__ import annotations

import os

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.restore_journal import Journal
from ansible_collections.bigchaindb.rethinkdb.plugins.modules import data_restore_info
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import run_module

RID = '20261202T051500Z-a1b2'


@pytest.fixture(name='data_dir')
def node_data_dir(tmp_path):
    (tmp_path / 'lib' / 'default').mkdir(parents=True)
    return str(tmp_path / 'lib' / 'default')


def test_a_node_without_a_journal(data_dir, capsys):
    result = run_module(data_restore_info.main, dict(data_dir=data_dir), capsys)

    assert (result['changed'], result['journal'], result['unfinished']) == (False, None, False)
    assert result['journal_file'] == data_dir + '.restore-journal.json' and 'failed' not in result
    assert os.listdir(os.path.dirname(data_dir)) == ['default']


@pytest.mark.parametrize('phases, unfinished', [
    (['staging'], True), (['staging', 'staged'], True), (['staging', 'staged', 'swapping'], True),
    (['staging', 'staged', 'swapping', 'swapped'], True), (['staging', 'staged', 'swapping', 'swapped', 'finished'], False),
    (['staging', 'staged', 'rolled_back'], False),
])
def test_the_latest_restore_and_whether_it_is_unfinished(data_dir, capsys, phases, unfinished):
    journal = Journal(data_dir)
    record = dict(restore_id=RID, set_id='20261124T163000Z-snapshot-3f9a')
    for phase in phases:
        record = journal.record(record, phase)

    result = run_module(data_restore_info.main, dict(data_dir=data_dir, _ansible_check_mode=True), capsys)

    assert result['changed'] is False and result['unfinished'] is unfinished
    assert result['journal'] == record and [step['phase'] for step in result['journal']['history']] == phases


def test_a_data_directory_given_through_a_symbolic_link_is_resolved(data_dir, tmp_path, capsys):
    Journal(data_dir).record(dict(restore_id=RID), 'staged')
    os.symlink(data_dir, str(tmp_path / 'link'))

    result = run_module(data_restore_info.main, dict(data_dir=str(tmp_path / 'link')), capsys)

    assert result['journal_file'] == data_dir + '.restore-journal.json'
    assert (result['journal']['restore_id'], result['unfinished']) == (RID, True)


def test_a_damaged_journal_is_one_line(data_dir, capsys):
    path = data_dir + '.restore-journal.json'
    with open(path, 'w', encoding='utf-8') as journal:
        journal.write('{"phase": "swa')

    result = run_module(data_restore_info.main, dict(data_dir=data_dir), capsys)

    assert result['failed'] is True and result['journal_file'] == path
    assert result['msg'] == ('%s is not valid JSON; it was not written by this collection, or was damaged. Move it away (keep it: it '
                             'records what a restore did), then run again.' % path)
    with open(path, encoding='utf-8') as journal:
        assert journal.read() == '{"phase": "swa'
